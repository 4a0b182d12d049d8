"""ECA against its paper's equations, kernel-size rule, parameter count and argument checks."""

import math

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib.blocks.eca import eca_kernel_size


def _nearest_odd(t):
    """|t|_odd by brute force: the odd integer closest to t, the larger one on a tie."""
    candidates = range(1, 2 * int(abs(t)) + 4, 2)
    return min(candidates, key=lambda k: (abs(k - abs(t)), -k))


@pytest.mark.parametrize("C", [64, 128, 256, 512, 1024, 2048])
def test_adaptive_kernel_size_matches_the_paper_formula(C):
    gamma, b = 2, 1
    k = _nearest_odd(math.log2(C) / gamma + b / gamma)
    assert attnlib.create_block("eca", C).kernel_size == k == eca_kernel_size(C)
    assert attnlib.create_block("eca", C).conv.weight.shape == (1, 1, k)


def test_kernel_sizes_quoted_in_the_paper():
    assert [attnlib.create_block("eca", C).kernel_size for C in (64, 128, 256, 512, 1024, 2048)] == [3, 5, 5, 5, 5, 7]
    # other gamma, b: (log2 256 + 3) / 1 = 11 -> 11; (log2 64 + 0) / 3 = 2 -> 3
    assert attnlib.create_block("eca", 256, gamma=1, b=3).kernel_size == 11
    assert attnlib.create_block("eca", 64, gamma=3, b=0).kernel_size == 3


def test_explicit_kernel_size_overrides_the_formula():
    eca = attnlib.create_block("eca", 2048, kernel_size=3)
    assert eca.kernel_size == 3 and eca.conv.weight.shape == (1, 1, 3)
    assert "explicit" in eca.extra_repr()


@pytest.mark.parametrize("C, k", [(48, None), (256, None), (64, 9), (5, 7)])
def test_equations_on_the_modules_own_weights(C, k):
    torch.manual_seed(0)
    eca = attnlib.create_block("eca", C, kernel_size=k).double()
    k = eca.kernel_size
    x = torch.randn(3, C, 6, 5, dtype=torch.float64)
    w = eca.conv.weight.reshape(k)                           # the k shared weights
    y = x.sum(dim=(2, 3)) / 30                              # eq. eca-squeeze: (B, C)
    p = (k - 1) // 2
    y_pad = torch.cat([torch.zeros(3, p, dtype=x.dtype), y, torch.zeros(3, p, dtype=x.dtype)], dim=1)
    # a cross-correlation over the channel axis, written out: conv_c = sum_j w_j * y_{c + j - p}
    conv = torch.stack([sum(w[j] * y_pad[:, c + j] for j in range(k)) for c in range(C)], dim=1)
    omega = 1 / (1 + torch.exp(-conv))
    torch.testing.assert_close(eca(x), x * omega[:, :, None, None], rtol=1e-12, atol=1e-12)
    # the gate of channel c ignores channels further than (k-1)/2 away
    x2 = x.clone()
    x2[:, 0] += 5.0
    changed = (eca.gate(x2) != eca.gate(x)).reshape(3, C).any(0)
    assert changed.nonzero().flatten().tolist() == list(range(min(p + 1, C)))


@pytest.mark.parametrize("C", [64, 256, 2048])
def test_parameter_count_is_k(C):
    eca = attnlib.create_block("eca", C)
    assert sum(p.numel() for p in eca.parameters()) == eca_kernel_size(C)


def test_eca_resnet50_released_kernel_sizes_add_80_parameters():
    # the released ECA-ResNet-50: k = 3, 5, 5, 7 for stages of 3, 4, 6, 3 blocks
    stages = [(3, 256, 3), (4, 512, 5), (6, 1024, 5), (3, 2048, 7)]
    total = sum(n * sum(p.numel() for p in attnlib.create_block("eca", C, kernel_size=k).parameters())
                for n, C, k in stages)
    assert total == 3 * 3 + 4 * 5 + 6 * 5 + 3 * 7 == 80


@pytest.mark.parametrize("kwargs, match", [
    ({"kernel_size": 4}, "kernel_size"),
    ({"kernel_size": 0}, "kernel_size"),
    ({"kernel_size": -3}, "kernel_size"),
    ({"kernel_size": 3.0}, "kernel_size"),
    ({"gamma": 0}, "gamma"),
    ({"gamma": -2}, "gamma"),
    ({"b": float("inf")}, "b must"),
    ({"gamma": 0, "kernel_size": 3}, "gamma"),
])
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        attnlib.create_block("eca", 64, **kwargs)


@pytest.mark.parametrize("channels", [0, -3, 2.5, True])
def test_bad_channels(channels):
    with pytest.raises(ValueError, match="channels"):
        attnlib.create_block("eca", channels)


def test_kernel_rule_is_the_nearest_odd_number_with_ties_up_for_every_width():
    import math

    from attnlib.blocks.eca import eca_kernel_size

    def nearest_odd_ties_up(t):
        below = 2 * math.floor((t - 1) / 2) + 1            # the largest odd number <= t
        return below if t - below < below + 2 - t else below + 2

    for C in range(1, 4097):
        assert eca_kernel_size(C) == nearest_odd_ties_up((math.log2(C) + 1) / 2), C


def test_locality_per_sample_gate_and_invariances():
    torch.manual_seed(4)
    blk = attnlib.create_block("eca", 40, kernel_size=7).double().eval()
    x = torch.randn(3, 40, 9, 7, dtype=torch.float64)
    xb = x.clone()
    xb[:, 20] += 3.0
    with torch.no_grad():
        out = blk(x)
        changed = (blk(xb) - out).abs().amax(dim=(0, 2, 3)) > 0
        assert changed.nonzero().flatten().tolist() == list(range(17, 24))
        torch.testing.assert_close(torch.cat([blk(x[i:i + 1]) for i in range(3)]), out)
        perm = torch.randperm(9 * 7)
        torch.testing.assert_close(blk(x.flatten(2)[:, :, perm].reshape_as(x)), out.flatten(2)[:, :, perm].reshape_as(x))
        torch.testing.assert_close(blk.gate(torch.nn.functional.interpolate(x, scale_factor=3)), blk.gate(x))
        g = blk.gate(x)
        assert bool(((g > 0) & (g < 1)).all())
