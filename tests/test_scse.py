"""cSE, sSE and scSE against the paper's equations, parameter counts, add vs max, and argument checks."""

import pytest
import torch

import attnlib


def _sigmoid(t):
    return 1 / (1 + torch.exp(-t))


def _cse_gate(x, cse):
    """s = sigma(W1 relu(W2 z + b2) + b1), written out: (B, C, 1, 1)."""
    z = x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])
    hidden = torch.clamp(z @ cse.fc1.weight.T + cse.fc1.bias, min=0)
    return _sigmoid(hidden @ cse.fc2.weight.T + cse.fc2.bias)[:, :, None, None]


def _sse_gate(x, sse):
    """q = sigma(W_sq * U + b): a weighted sum over channels at every pixel, written as an einsum: (B, 1, H, W)."""
    w = sse.conv.weight.reshape(-1)                       # (C,)
    return _sigmoid(torch.einsum("bchw,c->bhw", x, w) + sse.conv.bias)[:, None]


def _randomised(name, C, **kwargs):
    torch.manual_seed(0)
    block = attnlib.create_block(name, C, **kwargs).double()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return block


def test_cse_and_sse_equations_on_the_modules_own_weights():
    x = torch.randn(3, 20, 7, 5, dtype=torch.float64)
    cse = _randomised("cse", 20)
    torch.testing.assert_close(cse(x), _cse_gate(x, cse) * x, rtol=1e-12, atol=1e-12)
    sse = _randomised("sse", 20)
    torch.testing.assert_close(sse(x), _sse_gate(x, sse) * x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("combine", ["add", "max"])
def test_scse_equations_on_the_modules_own_weights(combine):
    x = torch.randn(3, 20, 7, 5, dtype=torch.float64)
    scse = _randomised("scse", 20, combine=combine)
    u_c = _cse_gate(x, scse.cse) * x
    u_s = _sse_gate(x, scse.sse) * x
    expected = u_c + u_s if combine == "add" else torch.where(u_c > u_s, u_c, u_s)
    with attnlib.capture(scse) as maps:
        y = scse(x)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(maps[""]["channel"], _cse_gate(x, scse.cse), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(maps[""]["spatial"], _sse_gate(x, scse.sse), rtol=1e-12, atol=1e-12)


def test_add_and_max_differ_and_max_is_of_the_recalibrated_maps():
    x = torch.randn(2, 16, 6, 6)
    add = attnlib.create_block("scse", 16)
    mx = attnlib.create_block("scse", 16, combine="max")
    mx.load_state_dict(add.state_dict())
    s, q = add.cse.gate(x), add.sse.gate(x)
    assert not torch.allclose(add(x), mx(x))
    # the sum is x * (s + q); the max is not x * max(s, q) where x < 0
    torch.testing.assert_close(add(x), x * (s + q))
    assert not torch.allclose(mx(x), x * torch.maximum(s, q))
    torch.testing.assert_close(mx(x), torch.maximum(x * s, x * q))
    # both gates are in (0, 1), so the max never exceeds |x| and the sum stays under 2|x|
    assert (mx(x).abs() <= x.abs()).all() and (add(x).abs() < 2 * x.abs() + 1e-6).all()


def test_scse_max_gradcheck():
    scse = _randomised("scse", 6, combine="max")
    x = torch.randn(2, 6, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(scse, (x,), fast_mode=True)


@pytest.mark.parametrize("C, r", [(64, 2), (256, 2), (48, 4), (7, 2)])
def test_parameter_counts_match_the_paper(C, r):
    Cr = C // r
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    cse = 2 * C * Cr + Cr + C      # W2 (C_r x C), W1 (C x C_r) and their biases
    sse = C + 1                    # 1x1 conv C -> 1 with bias
    assert count(attnlib.create_block("cse", C, reduction=r)) == cse
    assert count(attnlib.create_block("sse", C)) == sse
    assert count(attnlib.create_block("scse", C, reduction=r)) == cse + sse


def test_default_reduction_is_two():
    assert attnlib.create_block("cse", 64).fc1.out_features == 32
    assert attnlib.create_block("scse", 64).cse.fc1.out_features == 32


@pytest.mark.parametrize("name, kwargs, match", [
    ("cse", {"reduction": 0}, "reduction"),
    ("cse", {"reduction": 17}, "reduction"),
    ("scse", {"reduction": -2}, "reduction"),
    ("scse", {"reduction": 32}, "reduction"),
    ("scse", {"combine": "sum"}, "combine"),
    ("scse", {"combine": "Max"}, "combine"),
    ("scse", {"combine": None}, "combine"),
])
def test_bad_hyper_parameters(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        attnlib.create_block(name, 16, **kwargs)


@pytest.mark.parametrize("name", ["cse", "sse", "scse"])
@pytest.mark.parametrize("channels", [0, -3, 2.5, True])
def test_bad_channels(name, channels):
    with pytest.raises(ValueError, match="channels"):
        attnlib.create_block(name, channels)


@pytest.mark.parametrize("combine, factor", [("add", 1.0), ("max", 0.5)])
def test_zero_weights_give_identity_with_add_and_half_with_max(combine, factor):
    block = attnlib.create_block("scse", 16, combine=combine)
    with torch.no_grad():
        for p in block.parameters():
            p.zero_()
        x = torch.randn(2, 16, 5, 5)
        torch.testing.assert_close(block(x), factor * x)


@pytest.mark.parametrize("name", ["cse", "sse", "scse"])
def test_commutes_with_a_permutation_of_the_positions_and_keeps_samples_apart(name):
    torch.manual_seed(3)
    block = attnlib.create_block(name, 32).double()
    x = torch.randn(4, 32, 9, 7, dtype=torch.float64)
    perm = torch.randperm(9 * 7)
    permute = lambda t: t.flatten(2)[:, :, perm].reshape_as(t)  # noqa: E731
    with torch.no_grad():
        y = block(x)
        torch.testing.assert_close(block(permute(x)), permute(y))
        torch.testing.assert_close(torch.cat([block(x[i:i + 1]) for i in range(4)]), y)


@pytest.mark.parametrize("name, kwargs, labels", [
    ("cse", {}, ["scse-squeeze", "scse-excite", "scse-channel-scale"]),
    ("sse", {}, ["scse-spatial", "scse-spatial-scale"]),
    ("scse", {}, ["scse-squeeze", "scse-excite", "scse-spatial", "scse-combine"]),
    ("scse", {"combine": "max"}, ["scse-squeeze", "scse-excite", "scse-spatial", "scse-combine"]),
])
def test_trace_labels_and_shapes(name, kwargs, labels):
    from attnlib.trace import trace_block

    tr = trace_block(attnlib.create_block(name, 48, **kwargs), torch.randn(2, 48, 6, 5))
    assert tr.mismatches == []
    assert tr.labels == labels
    assert tr.output_shape == (2, 48, 6, 5)


@pytest.mark.parametrize("B, C, H, W, r", [(2, 64, 14, 14, 2), (1, 256, 56, 56, 2), (1, 96, 7, 9, 16)])
def test_counted_flops_and_created_bytes(B, C, H, W, r):
    from attnlib import cost

    Cr, N = C // r, H * W
    for combine in ("add", "max"):
        block = attnlib.create_block("scse", C, reduction=r, combine=combine)
        assert cost.flops(block, (B, C, H, W)) == 4 * B * C * Cr + 2 * B * C * N
        assert cost.created_bytes(block, torch.randn(B, C, H, W)) == 4 * B * (3 * C * N + 2 * N + 3 * C + 2 * Cr)
    assert cost.flops(attnlib.create_block("cse", C, reduction=r), (B, C, H, W)) == 4 * B * C * Cr
    assert cost.flops(attnlib.create_block("sse", C), (B, C, H, W)) == 2 * B * C * N
