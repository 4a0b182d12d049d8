"""DyCAConv: the gate is the convex sum π₀ g^w(j) + π₁ g^h(i) at every position (from the captured
tensors and from the equations written out on the module's weights), the max-pool option, and checks."""

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib.blocks.dycaconv import DyCAConv


def _perturbed(*args, **kwargs):
    torch.manual_seed(0)
    block = DyCAConv(*args, **kwargs).double()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return block


def _x(shape=(3, 16, 6, 5), seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _bn(t, bn, train, dims):
    if train:
        mean, var = t.mean(dim=dims), t.var(dim=dims, unbiased=False)
    else:
        mean, var = bn.running_mean, bn.running_var
    shape = (1, -1) + (1,) * (t.dim() - 2)
    return (t - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + bn.eps) * bn.weight.reshape(shape) \
        + bn.bias.reshape(shape)


def _by_hand(block, x, train):
    """DyCAConv written out on the module's weights: returns out, gate, g_h (B, C, H), g_w (B, C, W), π."""
    B, C, H, W = x.shape
    reduce = (lambda t, d: t.amax(dim=d)) if block.pool == "max" else (lambda t, d: t.mean(dim=d))
    z = torch.cat([reduce(x, 3), reduce(x, 2)], dim=2)                         # (B, C, H + W): rows, then columns
    u = torch.einsum("rc,bcp->brp", block.conv1.weight[:, :, 0, 0], z) + block.conv1.bias[:, None]
    u = _bn(u, block.bn1, train, (0, 2))
    f = u * torch.clamp(u + 3, 0, 6) / 6                                        # h-swish, not ReLU
    g_h = torch.sigmoid(torch.einsum("cr,brp->bcp", block.conv_h.weight[:, :, 0, 0], f[:, :, :H])
                        + block.conv_h.bias[:, None])
    g_w = torch.sigmoid(torch.einsum("cr,brp->bcp", block.conv_w.weight[:, :, 0, 0], f[:, :, H:])
                        + block.conv_w.bias[:, None])
    logits = x.mean(dim=(2, 3)) @ block.fc_pi.weight.T + block.fc_pi.bias
    pi = torch.exp(logits) / torch.exp(logits).sum(1, keepdim=True)
    gate = torch.empty_like(x)
    for i in range(H):
        for j in range(W):
            gate[:, :, i, j] = pi[:, 0, None] * g_w[:, :, j] + pi[:, 1, None] * g_h[:, :, i]
    c = block.conv
    v = F.conv2d(x * gate, c.weight, c.bias, c.stride, c.padding, c.dilation, c.groups)  # conv on the GATED INPUT
    v = _bn(v, block.bn, train, (0, 2, 3))
    return v * torch.sigmoid(v), gate, g_h, g_w, pi


def test_captured_gate_is_the_convex_sum_at_every_position():
    block = _perturbed(16).eval()
    x = _x()
    with attnlib.capture(block) as maps:
        block(x)
    m = maps[""]
    g_h, g_w, pi, gate = m["g_h"], m["g_w"], m["pi"], m["gate"]
    torch.testing.assert_close(pi.sum(1), torch.ones(3, dtype=pi.dtype))
    assert (pi > 0).all() and (pi[:, 0] - 0.5).abs().max() > 1e-3  # both weights used, not a fixed 1/2
    B, C, H, W = x.shape
    for i in range(H):
        for j in range(W):
            expected = pi[:, 0, None] * g_w[:, :, 0, j] + pi[:, 1, None] * g_h[:, :, i, 0]
            torch.testing.assert_close(gate[:, :, i, j], expected, rtol=1e-12, atol=1e-12)
    assert (gate - g_h * g_w).abs().max() > 1e-2  # a sum, not coordinate attention's product


@pytest.mark.parametrize("pool", ["avg", "max"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("conv", [dict(), dict(out_channels=24, kernel_size=5, stride=2, groups=4)])
def test_module_equals_equations_on_its_weights(pool, train, conv):
    block = _perturbed(16, pool=pool, **conv)
    block.train()(_x(seed=7))  # running statistics off their initial values
    block.train(train)
    x = _x()
    out_ref, gate_ref, g_h, g_w, pi = _by_hand(block, x, train)
    with attnlib.capture(block) as maps:
        out = block(x)
    torch.testing.assert_close(out, out_ref)
    torch.testing.assert_close(maps[""]["gate"], gate_ref)
    torch.testing.assert_close(maps[""]["g_h"][..., 0], g_h)
    torch.testing.assert_close(maps[""]["g_w"][:, :, 0], g_w)
    torch.testing.assert_close(maps[""]["pi"], pi)


def test_max_pool_option_runs_and_differs_from_avg():
    avg = _perturbed(16).eval()
    mx = DyCAConv(16, pool="max").double().eval()
    mx.load_state_dict(avg.state_dict())  # same weights: only the directional pooling differs
    x = _x()
    with attnlib.capture(mx) as maps_max, attnlib.capture(avg) as maps_avg:
        y_max, y_avg = mx(x), avg(x)
    assert y_max.shape == y_avg.shape == (3, 16, 6, 5)
    assert (y_max - y_avg).abs().max() > 1e-3
    assert (maps_max[""]["g_h"] - maps_avg[""]["g_h"]).abs().max() > 1e-3
    torch.testing.assert_close(maps_max[""]["pi"], maps_avg[""]["pi"])  # π uses the global average in both
    assert isinstance(mx.pool_h, torch.nn.AdaptiveMaxPool2d) and mx.pool_h.output_size == (None, 1)


def test_conv_arguments_follow_nn_conv2d():
    block = DyCAConv(16, 32, 3, stride=2)
    assert block(torch.randn(2, 16, 9, 7)).shape == (2, 32, 5, 4)
    assert DyCAConv(16, kernel_size=3, dilation=2)(torch.randn(2, 16, 9, 7)).shape == (2, 16, 9, 7)
    assert DyCAConv(16, kernel_size=1, padding=0).conv.padding == (0, 0)
    assert attnlib.create_block("dycaconv", 16).conv.kernel_size == (3, 3)
    assert DyCAConv(256).reduced_channels == 8 and DyCAConv(512).reduced_channels == 16


@pytest.mark.parametrize("args,kwargs,match", [
    ((16, 24), {"groups": 5}, "groups"), ((16, 20), {"groups": 8}, "out_channels"), ((16,), {"pool": "mean"}, "pool"),
    ((16,), {"stride": 0}, "stride"), ((16,), {"reduction": 0}, "reduction"), ((16, 0), {}, "out_channels"),
    ((16,), {"min_reduced_channels": 0}, "min_reduced_channels"),
])
def test_bad_arguments_raise(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        DyCAConv(*args, **kwargs)
