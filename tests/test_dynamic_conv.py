"""Dynamic convolution (DY-CNN): the grouped-convolution path against an explicit per-sample loop."""

import math

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib.blocks.dynamic_conv import DynamicConv2d

CONFIGS = {
    "default": dict(),
    "groups2": dict(groups=2),
    "stride2": dict(stride=2),
    "dilation2": dict(dilation=2),
    "no_bias": dict(bias=False),
    "all": dict(groups=4, stride=2, dilation=2, bias=False, kernel_size=5, padding=1),
}


def _block(C_in=8, C_out=12, kernel_size=3, **kwargs):
    torch.manual_seed(0)
    block = DynamicConv2d(C_in, C_out, kernel_size, temperature=1.0, **kwargs)
    with torch.no_grad():  # larger attention weights: the K kernels get clearly different weights per sample
        block.fc1.weight.mul_(4.0)
        block.fc2.weight.mul_(4.0)
    return block


def _input(B, C, H, W, seed=1):
    """Noise plus a per-sample, per-channel offset, so the pooled features (and the attention) differ
    clearly between samples."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, C, H, W, generator=g) + torch.randn(B, C, 1, 1, generator=g)


def _per_sample_loop(block, x, pi):
    """Convolve each sample separately with its explicitly aggregated kernel sum_k pi_k W_k."""
    ys = []
    for i in range(x.shape[0]):
        w = sum(pi[i, k] * block.weight[k] for k in range(block.num_kernels))
        b = None if block.bias is None else sum(pi[i, k] * block.bias[k] for k in range(block.num_kernels))
        ys.append(F.conv2d(x[i:i + 1], w, b, block.stride, block.padding, block.dilation, block.groups))
    return torch.cat(ys)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_grouped_path_equals_per_sample_loop(config):
    block = _block(**config)
    x = _input(3, 8, 11, 9)
    pi = torch.softmax(block.fc2(torch.relu(block.fc1(x.mean(dim=(2, 3))))) / block.temperature, dim=1)
    assert (pi.max(0).values - pi.min(0).values).max() > 0.05, "attention must differ between samples"
    y = block(x)
    ref = _per_sample_loop(block, x, pi)
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_kernel_attention_matches_capture_and_sums_to_one():
    block = _block()
    x = _input(4, 8, 7, 6)
    with attnlib.capture(block) as maps:
        block(x)
    pi = maps[""]["attention"]
    torch.testing.assert_close(pi, block.kernel_attention(x))
    torch.testing.assert_close(pi.sum(1), torch.ones(4))


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batch_equals_single_samples(train):
    """No statistic is shared across the batch: y(batch)[i] == y(x[i:i+1])."""
    block = _block(groups=2, stride=2).train(train)
    x = _input(5, 8, 10, 10)
    y = block(x)
    for i in range(5):
        torch.testing.assert_close(y[i:i + 1], block(x[i:i + 1]), rtol=1e-5, atol=1e-5)


def test_large_temperature_gives_uniform_attention():
    block = _block()
    x = _input(4, 8, 6, 6)
    assert (block.kernel_attention(x) - 0.25).abs().max() > 0.05  # at tau = 1 the attention is not uniform
    block.set_temperature(1e6)
    torch.testing.assert_close(block.kernel_attention(x), torch.full((4, 4), 0.25), rtol=0, atol=1e-5)


def test_create_block_defaults():
    block = attnlib.create_block("dynamic_conv", 16)
    assert (block.in_channels, block.out_channels, block.kernel_size) == (16, 16, 3)
    assert (block.stride, block.padding, block.dilation, block.groups) == (1, 1, 1, 1)
    assert (block.num_kernels, block.temperature, block.reduced_channels) == (4, 30.0, 4)
    assert tuple(block.weight.shape) == (4, 16, 16, 3, 3) and tuple(block.bias.shape) == (4, 16)
    assert attnlib.create_block("dynamic_conv", 16, dilation=2).padding == 2


def test_parameter_count_matches_formula():
    C_in, C_out, k, G, K = 16, 24, 3, 4, 3
    block = DynamicConv2d(C_in, C_out, k, groups=G, num_kernels=K)
    C_r = C_in // 4
    expected = K * (C_out * C_in // G * k * k + C_out) + (C_in * C_r + C_r) + (C_r * K + K)
    assert sum(p.numel() for p in block.parameters()) == expected


def test_initialisation_is_conv2d_default_per_kernel():
    torch.manual_seed(0)
    block = DynamicConv2d(64, 64, 3, groups=2, num_kernels=4)
    bound = 1.0 / math.sqrt(64 // 2 * 9)  # kaiming_uniform(a=sqrt(5)) gives bound 1/sqrt(fan_in)
    for k in range(4):
        w = block.weight[k]
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
        assert abs(w.std().item() - bound / math.sqrt(3)) < 0.05 * bound
    assert block.bias.abs().max() <= bound
    assert not torch.equal(block.weight[0], block.weight[1])  # independent kernels


@pytest.mark.parametrize("kwargs, argument", [
    (dict(num_kernels=0), "num_kernels"),
    (dict(groups=3), "in_channels"),          # 3 does not divide 8
    (dict(out_channels=10, groups=4), "out_channels"),  # 4 divides 8 but not 10
    (dict(temperature=0.0), "temperature"),
    (dict(temperature=-1.0), "temperature"),
    (dict(stride=0), "stride"),
    (dict(padding=-1), "padding"),
    (dict(kernel_size=0), "kernel_size"),
    (dict(reduction=0), "reduction"),
])
def test_bad_arguments_raise(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        DynamicConv2d(8, **kwargs)


def test_set_temperature_rejects_non_positive():
    block = DynamicConv2d(8)
    for bad in (0.0, -2.0, float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            block.set_temperature(bad)
    assert block.temperature == 30.0
