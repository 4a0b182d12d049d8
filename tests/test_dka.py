"""Dynamic kernel aggregation (Dite-HRNet): grouped path against an explicit per-sample loop."""

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib.blocks.dka import DynamicKernelAggregation

CONFIGS = {
    "default": dict(),
    "groups2": dict(groups=2),
    "stride2": dict(stride=2),
    "dilation2": dict(dilation=2),
    "no_bias": dict(bias=False),
    "all": dict(groups=4, stride=2, dilation=2, bias=False, kernel_size=5, padding=1),
}


def _input(B, C, H, W, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, C, H, W, generator=g) + torch.randn(B, C, 1, 1, generator=g)


def _block(C_in=8, C_out=12, kernel_size=3, **kwargs):
    torch.manual_seed(0)
    block = DynamicKernelAggregation(C_in, C_out, kernel_size, **kwargs)
    with torch.no_grad():
        if block.bias is not None:
            block.bias.normal_()  # zero at init: move it so the bias aggregation is tested
    return block


def _explicit_attention(block, x):
    """alpha = sigmoid(W2 relu(BN(W1 GAP(x))) + b2), written with the BatchNorm formula spelt out."""
    z = x.mean(dim=(2, 3))                                              # (B, C_in)
    h = z @ block.conv1.weight.flatten(1).T                             # (B, C_r)
    if block.training:
        mean, var = h.mean(0), h.var(0, unbiased=False)
    else:
        mean, var = block.bn.running_mean, block.bn.running_var
    h = (h - mean) / torch.sqrt(var + block.bn.eps) * block.bn.weight + block.bn.bias
    return torch.sigmoid(torch.relu(h) @ block.conv2.weight.flatten(1).T + block.conv2.bias)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_grouped_path_equals_per_sample_loop(config, train):
    block = _block(**config)
    if not train:
        block.train()(_input(6, 8, 9, 9, seed=5))  # running statistics off their initial values
    block.train(train)
    x = _input(3, 8, 11, 9)
    alpha = _explicit_attention(block, x)
    assert (alpha.max(0).values - alpha.min(0).values).max() > 0.05, "attention must differ between samples"
    y = block(x)
    ys = []
    for i in range(3):
        w = sum(alpha[i, k] * block.weight[k] for k in range(block.num_kernels))
        b = None if block.bias is None else sum(alpha[i, k] * block.bias[k] for k in range(block.num_kernels))
        ys.append(F.conv2d(x[i:i + 1], w, b, block.stride, block.padding, block.dilation, block.groups))
    torch.testing.assert_close(y, torch.cat(ys), rtol=1e-5, atol=1e-5)


def test_attention_is_an_independent_sigmoid_per_kernel():
    block = _block().eval()
    x = _input(4, 8, 6, 6)
    with attnlib.capture(block) as maps:
        block(x)
    alpha = maps[""]["attention"]
    torch.testing.assert_close(alpha, _explicit_attention(block, x))
    assert ((alpha > 0) & (alpha < 1)).all()
    assert (alpha.sum(1) - 1).abs().max() > 0.1  # not a softmax: rows do not sum to 1


def test_eval_batch_equals_single_samples():
    block = _block(groups=2, stride=2)
    block.train()(_input(6, 8, 10, 10, seed=3))
    block.eval()
    x = _input(5, 8, 10, 10)
    y = block(x)
    for i in range(5):
        torch.testing.assert_close(y[i:i + 1], block(x[i:i + 1]), rtol=1e-5, atol=1e-5)


def test_batch_one_in_training_explains_why():
    block = _block().train()
    with pytest.raises(ValueError, match="batch size 1.*BatchNorm"):
        block(torch.randn(1, 8, 6, 6))
    assert block.eval()(torch.randn(1, 8, 6, 6)).shape == (1, 12, 6, 6)


def test_create_block_defaults_and_parameter_count():
    block = attnlib.create_block("dka", 16)
    assert (block.in_channels, block.out_channels, block.kernel_size, block.padding) == (16, 16, 3, 1)
    assert (block.num_kernels, block.reduced_channels) == (4, 4)
    C_in, C_out, k, G, K, C_r = 16, 24, 3, 2, 3, 4
    block = DynamicKernelAggregation(C_in, C_out, k, groups=G, num_kernels=K)
    expected = K * (C_out * C_in // G * k * k + C_out) + C_in * C_r + 2 * C_r + (C_r * K + K)
    assert sum(p.numel() for p in block.parameters()) == expected


def test_initialisation_follows_the_released_code():
    torch.manual_seed(0)
    block = DynamicKernelAggregation(64, 64, 3, num_kernels=4)
    bound = (6.0 / (64 * 9)) ** 0.5  # kaiming_uniform, a = 0
    assert block.weight.abs().max() <= bound and block.weight.abs().max() > 0.95 * bound
    assert torch.count_nonzero(block.bias) == 0 and torch.count_nonzero(block.conv2.bias) == 0


@pytest.mark.parametrize("kwargs, argument", [
    (dict(num_kernels=0), "num_kernels"),
    (dict(groups=3), "in_channels"),
    (dict(out_channels=10, groups=4), "out_channels"),
    (dict(dilation=0), "dilation"),
])
def test_bad_arguments_raise(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        DynamicKernelAggregation(8, **kwargs)


def test_has_no_temperature():
    with pytest.raises(TypeError, match="temperature"):
        DynamicKernelAggregation(8, temperature=30.0)


def test_reduction_is_an_argument_and_a_zero_width_is_refused():
    with pytest.raises(ValueError, match="reduction"):
        attnlib.create_block("dka", 3, 16)          # RGB stem: floor(3 / 4) = 0 hidden units
    block = attnlib.create_block("dka", 3, 16, reduction=3)
    assert block.reduced_channels == 1 and block.conv1.weight.shape == (1, 3, 1, 1)
