"""Squeeze-and-Excitation against its paper's equations, parameter count and argument checks."""

import pytest
import torch

import attnlib


def test_equations_on_the_modules_own_weights():
    torch.manual_seed(0)
    se = attnlib.create_block("se", 48, reduction=4).double()
    x = torch.randn(3, 48, 7, 5, dtype=torch.float64)
    W1, b1 = se.fc1.weight, se.fc1.bias   # (C_r, C), (C_r,)
    W2, b2 = se.fc2.weight, se.fc2.bias   # (C, C_r), (C,)
    z = x.sum(dim=(2, 3)) / (7 * 5)                       # squeeze: (B, C)
    s = 1 / (1 + torch.exp(-(torch.clamp(z @ W1.T + b1, min=0) @ W2.T + b2)))  # excite: (B, C)
    expected = x * s[:, :, None, None]
    torch.testing.assert_close(se(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("C, r", [(64, 16), (256, 16), (2048, 16), (48, 4), (100, 16)])
def test_parameter_count_matches_the_paper(C, r):
    # two FC layers with biases: C*C_r + C_r + C_r*C + C, with C_r = floor(C / r)
    Cr = C // r
    se = attnlib.create_block("se", C, reduction=r)
    assert sum(p.numel() for p in se.parameters()) == 2 * C * Cr + Cr + C


def test_se_resnet50_extra_parameters_match_the_paper_formula():
    # SE adds (2/r) * sum_s N_s * C_s^2 weights to ResNet-50 (stages: 3, 4, 6, 3 blocks; C_s = 256 ... 2048)
    r = 16
    stages = [(3, 256), (4, 512), (6, 1024), (3, 2048)]
    weights = sum(n * sum(p.numel() for n_, p in attnlib.create_block("se", c, reduction=r).named_parameters()
                          if n_.endswith("weight")) for n, c in stages)
    assert weights == sum(2 * n * c * c // r for n, c in stages) == 2_514_944
    # with biases it is the 2.53M difference between ResNet-50 (25.56M) and SE-ResNet-50 (28.09M)
    total = sum(n * sum(p.numel() for p in attnlib.create_block("se", c, reduction=r).parameters()) for n, c in stages)
    assert abs(total - (28.09e6 - 25.56e6)) < 0.01e6


def test_gate_lies_in_0_1_and_se_commutes_with_permutations_and_upsampling():
    torch.manual_seed(3)
    se = attnlib.create_block("se", 32, reduction=4).double().eval()
    x = torch.randn(4, 32, 9, 7, dtype=torch.float64)
    g = se.gate(x)
    assert g.shape == (4, 32, 1, 1) and bool(((g > 0) & (g < 1)).all())
    perm = torch.randperm(9 * 7)
    permuted = se(x.flatten(2)[:, :, perm].reshape_as(x))
    torch.testing.assert_close(permuted, se(x).flatten(2)[:, :, perm].reshape_as(x))
    torch.testing.assert_close(se.gate(torch.nn.functional.interpolate(x, scale_factor=3)), g)


@pytest.mark.parametrize("B, C, H, W, r", [(1, 16, 3, 5, 4), (2, 64, 1, 1, 8)])
def test_equations_at_other_sizes(B, C, H, W, r):
    se = attnlib.create_block("se", C, reduction=r).double()
    x = torch.randn(B, C, H, W, dtype=torch.float64)
    z = x.mean(dim=(2, 3))
    s = torch.sigmoid(torch.relu(z @ se.fc1.weight.T + se.fc1.bias) @ se.fc2.weight.T + se.fc2.bias)
    torch.testing.assert_close(se(x), s[:, :, None, None] * x)


def test_gate_is_per_sample():
    se = attnlib.create_block("se", 32, reduction=4).eval()
    x = torch.randn(4, 32, 6, 6)
    batched = se.gate(x)
    single = torch.cat([se.gate(x[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, single)
    assert not torch.allclose(batched[0], batched[1])


@pytest.mark.parametrize("kwargs, match", [
    ({"reduction": 0}, "reduction"),
    ({"reduction": -4}, "reduction"),
    ({"reduction": 64}, "reduced width of 0"),
    ({"reduction": float("nan")}, "reduction"),
])
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        attnlib.create_block("se", 32, **kwargs)


@pytest.mark.parametrize("channels", [0, -3, 2.5, True])
def test_bad_channels(channels):
    with pytest.raises(ValueError, match="channels"):
        attnlib.create_block("se", channels)


def test_integer_input_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="floating-point"):
        attnlib.create_block("se", 8, reduction=2)(torch.ones(1, 8, 2, 2, dtype=torch.long))
