"""LVC and EVC (CFPNet): num_codes respected, the gate against an explicit float64 computation."""

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib.blocks.lvc import EVC, LVC


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_num_codes_changes_the_layer_and_parameter_count():
    C = 64
    lvc32, lvc64 = LVC(C, num_codes=32), LVC(C, num_codes=64)
    assert tuple(lvc32.encoding.codewords.shape) == (32, C)
    assert tuple(lvc64.encoding.codewords.shape) == (64, C)
    # codewords K*C + smoothing factors K + BatchNorm1d(K) weight and bias 2K
    assert _count(lvc64) - _count(lvc32) == (64 - 32) * (C + 3)
    assert _count(EVC(C, num_codes=64)) - _count(EVC(C, num_codes=32)) == (64 - 32) * (C + 3)


def test_parameter_count_matches_formula():
    C, K = 64, 48
    Cr = C // 4
    bottleneck = C * Cr + 2 * Cr + 9 * Cr * Cr + 2 * Cr + Cr * C + 2 * C + C * C + 2 * C
    expected = bottleneck + (C * C + 2 * C) + (K * C + K) + 2 * K + (C * C + C)
    assert _count(LVC(C, num_codes=K)) == expected
    assert attnlib.create_block("lvc", C).num_codes == 64


def _expanded_encoding(v, codewords, scale):
    X = v.flatten(2).transpose(1, 2)                                  # (B, N, C)
    r = X[:, :, None, :] - codewords                                  # (B, N, K, C)
    a = torch.softmax(scale * r.pow(2).sum(-1), dim=2)                # (B, N, K)
    return (a[..., None] * r).sum(1)                                  # (B, K, C)


def _bn(t, bn, dims):
    """Training-mode BatchNorm written out: batch statistics over ``dims``."""
    mean = t.mean(dims, keepdim=True)
    var = t.var(dims, unbiased=False, keepdim=True)
    shape = [1] * t.dim()
    shape[1] = -1
    return (t - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(shape) + bn.bias.view(shape)


def _explicit_lvc(m, x):
    b = m.bottleneck
    conv = lambda t, c, **kw: F.conv2d(t, c.weight, c.bias, **kw)
    h = torch.relu(_bn(conv(x, b.conv1), b.bn1, (0, 2, 3)))
    h = torch.relu(_bn(conv(h, b.conv2, padding=1), b.bn2, (0, 2, 3)))
    h = _bn(conv(h, b.conv3), b.bn3, (0, 2, 3))
    u = torch.relu(h + _bn(conv(x, b.shortcut_conv), b.shortcut_bn, (0, 2, 3)))
    v = torch.relu(_bn(conv(u, m.reduce_conv), m.reduce_bn, (0, 2, 3)))
    e = _expanded_encoding(v, m.encoding.codewords, m.encoding.scale)  # (B, K, C)
    e = torch.relu(_bn(e, m.code_bn, (0, 2)))                          # each codeword over B*C values
    gamma = torch.sigmoid(e.mean(1) @ m.fc.weight.T + m.fc.bias)
    return torch.relu(u + u * gamma[:, :, None, None]), gamma


@pytest.mark.parametrize("batch", [1, 3])
def test_lvc_equals_explicit_computation_in_training(batch):
    torch.manual_seed(0)
    m = LVC(16, num_codes=8).double().train()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = torch.randn(batch, 16, 6, 5, dtype=torch.float64)
    with attnlib.capture(m) as maps:
        y = m(x)
    y_ref, gamma_ref = _explicit_lvc(m, x)
    assert gamma_ref.std() > 0.01
    torch.testing.assert_close(maps[""]["gamma"], gamma_ref, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-10)


def test_evc_at_init_is_fuse_of_lvc_and_stem():
    """At initialisation the layer scales are 1e-5, so the MLP branch returns its input s (to 1e-4)."""
    torch.manual_seed(0)
    m = EVC(16, num_codes=8).eval()
    x = torch.randn(2, 16, 9, 7)
    with attnlib.capture(m) as maps:
        y = m(x)
    s = F.max_pool2d(torch.relu(m.stem_bn(m.stem_conv(x))), 3, stride=1, padding=1)
    u, gamma = m.lvc.gate(s)
    torch.testing.assert_close(maps[""]["gamma"], gamma)
    torch.testing.assert_close(m.lvc(s), torch.relu(u + u * gamma[:, :, None, None]))
    ref = m.fuse(torch.cat([m.lvc(s), s], dim=1))
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)
    assert (m.mlp(s) - s).abs().max() < 1e-3 and (m.mlp(s) - s).abs().max() > 0


def test_evc_defaults_follow_released_code():
    m = attnlib.create_block("evc", 32)
    assert m.lvc.num_codes == 64 and m.mixer_kernel_size == 1
    assert tuple(m.mlp.dw_conv.weight.shape) == (32, 1, 1, 1)       # the released "depthwise" 1x1 mixer
    assert tuple(m.mlp.fc1.weight.shape) == (128, 32, 1, 1)         # channel MLP x4
    assert torch.all(m.mlp.layer_scale_1 == 1e-5) and torch.all(m.mlp.layer_scale_2 == 1e-5)
    assert isinstance(m.mlp.norm1, torch.nn.GroupNorm) and m.mlp.norm1.num_groups == 1
    m3 = EVC(32, mixer_kernel_size=3)
    assert tuple(m3.mlp.dw_conv.weight.shape) == (32, 1, 3, 3)
    assert m3(torch.randn(2, 32, 7, 5)).shape == (2, 32, 7, 5)


@pytest.mark.parametrize("cls", [LVC, EVC])
def test_batch_one_trains(cls):
    m = cls(16, num_codes=8).train()
    y = m(torch.randn(1, 16, 6, 6))
    assert y.shape == (1, 16, 6, 6) and torch.isfinite(y).all()


@pytest.mark.parametrize("cls, kwargs, argument", [
    (LVC, dict(num_codes=0), "num_codes"),
    (EVC, dict(num_codes=0), "num_codes"),
    (EVC, dict(mixer_kernel_size=2), "mixer_kernel_size"),
    (EVC, dict(mlp_ratio=0), "mlp_ratio"),
    (EVC, dict(mlp_ratio=0.01), "mlp_ratio"),
    (EVC, dict(layer_scale_init=0.0), "layer_scale_init"),
])
def test_bad_arguments_raise(cls, kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        cls(16, **kwargs)
