"""Coordinate attention: the equations written out on the module's weights, the parameter count on
MobileNetV2's expanded widths against the paper's formula, and argument checks."""

import pytest
import torch

import attnlib
from attnlib.blocks.coord import CoordinateAttention


def _perturbed(channels=16, **kwargs):
    torch.manual_seed(0)
    block = CoordinateAttention(channels, **kwargs).double()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return block


def _x(shape=(3, 16, 6, 5), seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _by_hand(block, x, train):
    """Coordinate attention, written position by position on the module's weights."""
    B, C, H, W = x.shape
    z_h = torch.stack([sum(x[:, :, i, j] for j in range(W)) / W for i in range(H)], dim=2)   # (B, C, H)
    z_w = torch.stack([sum(x[:, :, i, j] for i in range(H)) / H for j in range(W)], dim=2)   # (B, C, W)
    z = torch.cat([z_h, z_w], dim=2)                                                         # (B, C, H + W)
    u = torch.einsum("rc,bcp->brp", block.conv1.weight[:, :, 0, 0], z) + block.conv1.bias[:, None]
    if train:  # batch statistics over the batch and the H + W positions
        mean, var = u.mean(dim=(0, 2)), u.var(dim=(0, 2), unbiased=False)
    else:
        mean, var = block.bn1.running_mean, block.bn1.running_var
    u = (u - mean[:, None]) / torch.sqrt(var[:, None] + block.bn1.eps) * block.bn1.weight[:, None] \
        + block.bn1.bias[:, None]
    f = u * torch.clamp(u + 3, 0, 6) / 6                                                     # h-swish
    f_h, f_w = f[:, :, :H], f[:, :, H:]
    g_h = torch.sigmoid(torch.einsum("cr,brp->bcp", block.conv_h.weight[:, :, 0, 0], f_h) + block.conv_h.bias[:, None])
    g_w = torch.sigmoid(torch.einsum("cr,brp->bcp", block.conv_w.weight[:, :, 0, 0], f_w) + block.conv_w.bias[:, None])
    y = torch.empty_like(x)
    for i in range(H):
        for j in range(W):
            y[:, :, i, j] = x[:, :, i, j] * g_h[:, :, i] * g_w[:, :, j]
    return y, g_h, g_w


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_module_equals_equations_on_its_weights(train):
    block = _perturbed()
    block.train()(_x(seed=7))  # running statistics off their initial values
    block.train(train)
    x = _x()
    y_ref, g_h, g_w = _by_hand(block, x, train)
    with attnlib.capture(block) as maps:
        y = block(x)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(maps[""]["g_h"], g_h[..., None])
    torch.testing.assert_close(maps[""]["g_w"], g_w[:, :, None, :])
    torch.testing.assert_close(maps[""]["gate"] * x, y)
    assert (g_h.std(dim=2) > 1e-3).all()  # the row gate varies along H: not a channel-only gate


def test_rows_and_columns_are_not_swapped():
    """A feature present only in row 1: the first H entries of the joint descriptor are the row means
    (1 in row 1, 0 elsewhere), the last W entries the column means (1/H each)."""
    block = CoordinateAttention(16).double().eval()
    H, W = 5, 7
    x = torch.zeros(1, 16, H, W, dtype=torch.float64)
    x[:, :, 1, :] = 1.0
    seen = {}
    handle = block.conv1.register_forward_hook(lambda m, i, o: seen.update(z=i[0]))  # returns None
    block(x)
    handle.remove()
    z = seen["z"]
    assert z.shape == (1, 16, H + W, 1)
    expected = torch.cat([torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0]), torch.full((W,), 1.0 / H)]).double()
    torch.testing.assert_close(z[0, :, :, 0], expected.expand(16, -1))


def _mobilenet_v2_expanded_widths():
    """Hidden (expanded) width t * c_in of each of MobileNetV2's 17 inverted residual blocks (width 1.0)."""
    settings = [(1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1)]  # (t, c, n)
    widths, c_in = [], 32  # the stem convolution outputs 32 channels
    for t, c, n in settings:
        for _ in range(n):
            widths.append((t, t * c_in))
            c_in = c
    return widths


def test_parameter_count_on_mobilenet_v2_against_the_paper_formula():
    """The official mbv2_ca.py (houqb/CoordAttention) puts CoordAtt(hidden, hidden) after the depthwise
    convolution of every inverted residual block with expand_ratio != 1: 16 of the 17 blocks."""
    widths = [(t, C) for t, C in _mobilenet_v2_expanded_widths() if t != 1]
    assert len(widths) == 16
    total_formula = total_module = 0
    for _, C in widths:
        mip = max(8, C // 32)
        formula = C * mip + mip + 2 * mip + 2 * (mip * C + C)  # conv1 (w, b), BN (γ, β), conv_h and conv_w
        block = CoordinateAttention(C)
        assert block.reduced_channels == mip
        module = sum(p.numel() for p in block.parameters())
        assert module == formula, f"C={C}: module has {module} parameters, formula gives {formula}"
        total_formula += formula
        total_module += module
    first = sum(p.numel() for p in CoordinateAttention(32).parameters())  # the t = 1 block, which has none
    mobilenet_v2 = 3_504_872  # parameters of MobileNetV2 1.0 (ImageNet, 1000 classes)
    print(f"\ncoordinate attention on MobileNetV2: {total_module} parameters in 16 blocks "
          f"(17 blocks would give {total_module + first}); MobileNetV2 {mobilenet_v2 / 1e6:.3f}M -> "
          f"{(mobilenet_v2 + total_module) / 1e6:.3f}M (paper: 3.5M -> 3.95M)")
    assert total_module == total_formula == 445_776 and first == 856
    assert round((mobilenet_v2 + total_module) / 1e6, 2) == 3.95


def test_flipping_rows_flips_the_row_gate_and_leaves_the_column_gate():
    block = CoordinateAttention(32).double().eval()
    x = torch.randn(2, 32, 7, 5, dtype=torch.float64)
    with torch.no_grad():
        (gh, gw), (gh_f, gw_f) = block.directional_gates(x), block.directional_gates(x.flip(2))
    torch.testing.assert_close(gh_f, gh.flip(2))
    torch.testing.assert_close(gw_f, gw)


def test_batch_size_one_in_training_even_for_a_1x1_input():
    block = CoordinateAttention(16).train()
    assert block(torch.randn(1, 16, 1, 1)).shape == (1, 16, 1, 1)  # BN sees H + W = 2 positions


@pytest.mark.parametrize("kwargs,match", [
    ({"reduction": 0}, "reduction"), ({"reduction": -2}, "reduction"),
    ({"min_reduced_channels": 0}, "min_reduced_channels"), ({"min_reduced_channels": 2.5}, "min_reduced_channels"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CoordinateAttention(16, **kwargs)


def test_gating_block_takes_no_stride():
    with pytest.raises(TypeError, match="stride"):
        CoordinateAttention(16, stride=2)
