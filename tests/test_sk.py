"""Selective Kernel convolution against the paper's equations, its kernel configurations, parameter counts
(SKNet-50 from ResNeXt-50 layer shapes) and argument checks."""

import pytest
import torch
import torch.nn.functional as F

import attnlib

count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731


def _bn(t, bn, training, dims):
    """BatchNorm written out: batch statistics (biased variance) in training, running ones in eval."""
    shape = [1, -1] + [1] * (t.dim() - 2)
    if training:
        mean, var = t.mean(dim=dims), t.var(dim=dims, unbiased=False)
    else:
        mean, var = bn.running_mean, bn.running_var
    return (t - mean.view(shape)) / torch.sqrt(var.view(shape) + bn.eps) * bn.weight.view(shape) + bn.bias.view(shape)


def _reference(sk, x, training):
    """Split, fuse, select from the paper with F.conv2d, matmuls and an explicit softmax: (output, a)."""
    us = []
    for m, branch in enumerate(sk.branches):
        conv, bn = branch[0], branch[1]
        k = 3 + 2 * m
        if sk.dilated:   # a 3x3 kernel with dilation m + 1 covers k x k
            assert conv.weight.shape[-1] == 3
            u = F.conv2d(x, conv.weight, stride=sk.stride, padding=m + 1, dilation=m + 1, groups=sk.groups)
        else:
            assert conv.weight.shape[-1] == k
            u = F.conv2d(x, conv.weight, stride=sk.stride, padding=(k - 1) // 2, groups=sk.groups)
        us.append(torch.clamp(_bn(u, bn, training, (0, 2, 3)), min=0))       # U_m
    U = sum(us)                                                                 # fuse: U = sum_m U_m
    s = U.sum(dim=(2, 3)) / (U.shape[2] * U.shape[3])                           # s = GAP(U): (B, C)
    z = torch.clamp(_bn(s @ sk.fc.weight.T, sk.fc_bn, training, (0,)), min=0)   # z = relu(BN(W s)): (B, d)
    C = sk.out_channels
    A = [sk.select.weight[m * C:(m + 1) * C] for m in range(sk.num_branches)]   # A_m: (C, d)
    e = [torch.exp(z @ A_m.T) for A_m in A]                                     # (B, C) each
    a = [e_m / sum(e) for e_m in e]                                             # explicit softmax over m
    V = sum(a_m[:, :, None, None] * u_m for a_m, u_m in zip(a, us))
    return V, torch.stack(a, dim=1)[..., None, None]


def _randomised(*args, **kwargs):
    torch.manual_seed(0)
    sk = attnlib.create_block("sk", *args, **kwargs).double()
    with torch.no_grad():
        for p in sk.parameters():
            p.add_(0.2 * torch.randn_like(p))
        for mod in sk.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_mean.normal_(0, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
    return sk


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("args, kwargs", [
    ((64,), {}),                                                            # paper: M=2, G=32, dilated
    ((16,), {"num_branches": 3, "groups": 1, "reduction": 4, "dilated": False, "min_width": 4}),
    ((32, 64), {"stride": 2, "groups": 8, "num_branches": 3}),              # dilated 3x3 with dilation 1, 2, 3
])
def test_equations_on_the_modules_own_weights(args, kwargs, training):
    sk = _randomised(*args, **kwargs).train(training)
    x = torch.randn(3, sk.in_channels, 9, 7, dtype=torch.float64)
    with torch.no_grad():
        expected, a = _reference(sk, x, training)
        with attnlib.capture(sk) as maps:
            y = sk(x)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(maps[""]["attention"], a, rtol=1e-10, atol=1e-10)


def test_attention_is_a_softmax_across_branches():
    sk = _randomised(64, num_branches=3).eval()
    x = torch.randn(2, 64, 8, 8, dtype=torch.float64)
    a = sk.attention(sk.split(x))
    assert a.shape == (2, 3, 64, 1, 1)
    torch.testing.assert_close(a.sum(dim=1), torch.ones(2, 64, 1, 1, dtype=torch.float64))
    assert (a > 0).all() and a.std() > 1e-3


def test_true_kernels_3_5_7_with_m3_g1_r4():
    sk = attnlib.create_block("sk", 64, num_branches=3, groups=1, reduction=4, dilated=False)
    convs = [branch[0] for branch in sk.branches]
    assert [c.kernel_size for c in convs] == [(3, 3), (5, 5), (7, 7)]
    assert [c.dilation for c in convs] == [(1, 1)] * 3
    assert [c.groups for c in convs] == [1, 1, 1]
    assert [tuple(c.weight.shape) for c in convs] == [(64, 64, k, k) for k in (3, 5, 7)]
    assert sk.width == max(64 // 4, 32)
    assert sk(torch.randn(2, 64, 9, 6)).shape == (2, 64, 9, 6)


def test_default_is_two_branches_3x3_and_3x3_dilation_2():
    sk = attnlib.create_block("sk", 64)
    convs = [branch[0] for branch in sk.branches]
    assert [(c.kernel_size, c.dilation, c.padding, c.groups) for c in convs] == [
        ((3, 3), (1, 1), (1, 1), 32), ((3, 3), (2, 2), (2, 2), 32)]
    assert sk.kernel_sizes == [3, 5]


@pytest.mark.parametrize("C, M, G, r, L, dilated", [
    (64, 2, 32, 16, 32, True), (256, 2, 32, 16, 32, True), (1024, 2, 32, 16, 32, True),
    (64, 3, 1, 4, 32, False), (96, 4, 8, 2, 16, False),
])
def test_parameter_count_matches_the_formula(C, M, G, r, L, dilated):
    d = max(C // r, L)
    kernels = [3] * M if dilated else [3 + 2 * m for m in range(M)]
    convs = sum(C * (C // G) * k * k for k in kernels)   # grouped convs, no bias
    bns = M * 2 * C                                      # gamma, beta per branch
    fuse = C * d + 2 * d                                 # W (no bias) + BN
    select = M * C * d                                   # A_m, no bias
    sk = attnlib.create_block("sk", C, num_branches=M, groups=G, reduction=r, min_width=L, dilated=dilated)
    assert count(sk) == convs + bns + fuse + select


def _resnext50_params(sk: bool) -> int:
    """ResNeXt-50 (32x4d) from its layer shapes; with ``sk`` every 3x3 grouped conv + BN is an SK unit."""
    total = 3 * 64 * 7 * 7 + 2 * 64                        # stem conv + BN
    c_in = 64
    for planes, blocks in [(64, 3), (128, 4), (256, 6), (512, 3)]:
        width, c_out = 2 * planes, 4 * planes              # 32 groups x 4 channels = 128 in the first stage
        for i in range(blocks):
            total += c_in * width + 2 * width              # 1x1 reduce + BN
            if sk:
                total += count(attnlib.create_block("sk", width))
            else:
                total += width * (width // 32) * 9 + 2 * width
            total += width * c_out + 2 * c_out             # 1x1 expand + BN
            if i == 0:
                total += c_in * c_out + 2 * c_out          # projection shortcut + BN
            c_in = c_out
    return total + 2048 * 1000 + 1000                      # classifier


def test_sknet50_parameter_count_matches_the_paper():
    # paper: ResNeXt-50 25.0M, SKNet-50 27.5M (M=2, G=32, r=16, L=32)
    assert round(_resnext50_params(False) / 1e6, 1) == 25.0
    assert round(_resnext50_params(True) / 1e6, 1) == 27.5


def test_batch_of_one_in_training_explains_the_batchnorm():
    sk = attnlib.create_block("sk", 64).train()
    with pytest.raises(ValueError, match="batch") as err:
        sk(torch.randn(1, 64, 6, 6))
    assert "BatchNorm" in str(err.value) and "eval" in str(err.value)
    assert sk.eval()(torch.randn(1, 64, 6, 6)).shape == (1, 64, 6, 6)


def test_out_channels_and_stride():
    sk = attnlib.create_block("sk", 64, 128, stride=2)
    assert sk(torch.randn(2, 64, 9, 8)).shape == (2, 128, 5, 4)
    with attnlib.capture(sk) as maps:
        sk(torch.randn(2, 64, 9, 8))
    assert maps[""]["attention"].shape == (2, 2, 128, 1, 1)


@pytest.mark.parametrize("args, kwargs, match", [
    ((48,), {}, "groups"),                              # 48 not divisible by G=32
    ((64, 48), {}, "groups"),
    ((64,), {"groups": 0}, "groups"),
    ((64,), {"num_branches": 0}, "num_branches"),
    ((64,), {"num_branches": 1}, "num_branches must be an integer >= 2"),
    ((64,), {"num_branches": 2.0}, "num_branches"),
    ((64,), {"reduction": 0}, "reduction"),
    ((64,), {"reduction": -16}, "reduction"),
    ((64,), {"min_width": 0}, "min_width"),
    ((64,), {"stride": 0}, "stride"),
    ((64,), {"dilated": "yes"}, "dilated"),
    ((64, 0), {}, "out_channels"),
    ((0,), {}, "in_channels"),
    ((2.5,), {}, "in_channels"),
])
def test_bad_hyper_parameters(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        attnlib.create_block("sk", *args, **kwargs)


@pytest.mark.parametrize("args, kwargs", [
    ((8,), {"num_branches": 3, "groups": 1, "reduction": 4, "dilated": False, "min_width": 4}),
    ((4, 8), {"stride": 2, "groups": 2, "min_width": 4}),
])
def test_gradcheck_of_the_non_default_configurations(args, kwargs):
    # the generic suite runs gradcheck on the default configuration only
    sk = _randomised(*args, **kwargs).train()
    x = torch.randn(2, sk.in_channels, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sk, (x,), fast_mode=True, atol=1e-6, rtol=1e-4)


def test_channels_last_input_with_true_kernels_and_stride():
    sk = _randomised(16, 32, stride=2, num_branches=3, groups=4, dilated=False).eval()
    x = torch.randn(2, 16, 9, 7, dtype=torch.float64)
    torch.testing.assert_close(sk(x.to(memory_format=torch.channels_last)), sk(x))


def test_reset_parameters_gives_the_resnext_initialisation():
    # branch convs: Kaiming normal, fan-out = C * k * k (3x3 kernels here), ReLU gain: std sqrt(2 / (9 C));
    # fan-in would give sqrt(2 / (9 C / G)), G = 32 times larger in variance
    torch.manual_seed(0)
    sk = attnlib.create_block("sk", 256)
    with torch.no_grad():
        for p in sk.parameters():
            p.add_(1.0)
    sk.reset_parameters()
    for branch in sk.branches:
        std = branch[0].weight.std().item()
        assert abs(std / (2 / (9 * 256)) ** 0.5 - 1) < 0.05, std
        assert abs(branch[0].weight.mean().item()) < 0.01
        assert torch.equal(branch[1].weight, torch.ones(256)) and torch.equal(branch[1].bias, torch.zeros(256))
    assert torch.equal(sk.fc_bn.weight, torch.ones(sk.width)) and torch.equal(sk.fc_bn.bias, torch.zeros(sk.width))
