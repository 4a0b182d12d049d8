"""CBAM against its paper's equations (with the official code's options), parameter counts and argument checks."""

import pytest
import torch
import torch.nn.functional as F

import attnlib


def _sigmoid(t):
    return 1 / (1 + torch.exp(-t))


def _channel_gate(x, fc1, fc2):
    """M_c = sigma(MLP(avg) + MLP(max)), the MLP written out with the module's weights: (B, C)."""
    W0, b0, W1, b1 = fc1.weight, fc1.bias, fc2.weight, fc2.bias
    avg = x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])
    mx = x.flatten(2).max(dim=2).values
    mlp = lambda v: torch.clamp(v @ W0.T + b0, min=0) @ W1.T + b1  # noqa: E731
    return _sigmoid(mlp(avg) + mlp(mx))


def _spatial_gate(x, conv, bn, order):
    """M_s = sigma(BN(conv7x7([avg; max]))) with the BatchNorm written out in eval mode: (B, 1, H, W)."""
    avg = x.sum(dim=1, keepdim=True) / x.shape[1]
    mx = x.max(dim=1, keepdim=True).values
    f = torch.cat([avg, mx] if order == "avg_max" else [mx, avg], dim=1)
    k = conv.weight.shape[-1]
    a = F.conv2d(f, conv.weight, padding=k // 2)
    if bn is not None:
        a = (a - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    return _sigmoid(a)


def _randomise(block):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.3 * torch.randn_like(p))
        for m in block.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    return block.eval()


@pytest.mark.parametrize("order", ["avg_max", "max_avg"])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_cbam_equations_on_the_modules_own_weights(order, batch_norm):
    cbam = _randomise(attnlib.create_block("cbam", 32, reduction=4, pool_order=order, batch_norm=batch_norm).double())
    x = torch.randn(3, 32, 9, 6, dtype=torch.float64)
    mc = _channel_gate(x, cbam.channel.fc1, cbam.channel.fc2)[:, :, None, None]
    x1 = mc * x
    ms = _spatial_gate(x1, cbam.spatial.conv, cbam.spatial.bn, order)
    with attnlib.capture(cbam) as maps:
        y = cbam(x)
    torch.testing.assert_close(y, ms * x1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(maps[""]["channel"], mc, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(maps[""]["spatial"], ms, rtol=1e-12, atol=1e-12)


def test_channel_and_spatial_blocks_on_their_own_weights():
    x = torch.randn(2, 24, 7, 8, dtype=torch.float64)
    ch = _randomise(attnlib.create_block("cbam_channel", 24, reduction=3).double())
    torch.testing.assert_close(ch(x), _channel_gate(x, ch.fc1, ch.fc2)[:, :, None, None] * x, rtol=1e-12, atol=1e-12)
    sp = _randomise(attnlib.create_block("cbam_spatial", 24, kernel_size=3).double())
    torch.testing.assert_close(sp(x), _spatial_gate(x, sp.conv, sp.bn, "avg_max") * x, rtol=1e-12, atol=1e-12)


def test_max_pooled_descriptor_matters():
    # an MLP on the average alone (SE) differs from CBAM's avg + max
    ch = _randomise(attnlib.create_block("cbam_channel", 16, reduction=4).double())
    x = torch.randn(2, 16, 5, 5, dtype=torch.float64)
    avg = x.mean(dim=(2, 3))
    avg_only = _sigmoid(2 * (torch.relu(avg @ ch.fc1.weight.T + ch.fc1.bias) @ ch.fc2.weight.T + ch.fc2.bias))
    assert not torch.allclose(ch.gate(x).flatten(1), avg_only)


def test_pool_order_swaps_the_conv_input_channels():
    a = _randomise(attnlib.create_block("cbam_spatial", 8, pool_order="avg_max"))
    b = attnlib.create_block("cbam_spatial", 8, pool_order="max_avg").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 8, 10, 9)
    assert not torch.allclose(a(x), b(x))
    with torch.no_grad():
        b.conv.weight.copy_(a.conv.weight.flip(1))  # swap the two input channels
    torch.testing.assert_close(a(x), b(x))


def test_batch_norm_off_has_no_batch_norm_and_matches_the_printed_equation():
    sp = attnlib.create_block("cbam_spatial", 8, batch_norm=False)
    assert sp.bn is None and not any(isinstance(m, torch.nn.BatchNorm2d) for m in sp.modules())
    assert sum(p.numel() for p in sp.parameters()) == 2 * 7 * 7
    x = torch.randn(1, 8, 6, 6)  # batch 1 in training is fine without the BatchNorm, even at 1x1
    torch.testing.assert_close(sp.train()(x), sp.eval()(x))
    sp(torch.randn(1, 8, 1, 1))


def test_zero_gamma_makes_the_spatial_gate_one_half_at_init():
    cbam = attnlib.create_block("cbam", 32, batch_norm=True, zero_init_bn=True)
    assert torch.equal(cbam.spatial.bn.weight, torch.zeros(1))
    x = torch.randn(4, 32, 8, 7) * 3
    for mode in (True, False):
        with attnlib.capture(cbam.train(mode)) as maps:
            cbam(x)
        assert torch.equal(maps[""]["spatial"], torch.full((4, 1, 8, 7), 0.5))
    # default gamma = 1: the gate varies over the image
    default = attnlib.create_block("cbam", 32, batch_norm=True).train()
    with attnlib.capture(default) as maps:
        default(x)
    assert maps[""]["spatial"].std() > 0.05


def test_spatial_batch_of_one_pixel_in_training_raises():
    # only with the official code's BatchNorm; the paper's gate (default) has none
    assert attnlib.create_block("cbam_spatial", 8).train()(torch.randn(1, 8, 1, 1)).shape == (1, 8, 1, 1)
    sp = attnlib.create_block("cbam_spatial", 8, batch_norm=True).train()
    with pytest.raises(ValueError, match="batch"):
        sp(torch.randn(1, 8, 1, 1))
    assert sp.eval()(torch.randn(1, 8, 1, 1)).shape == (1, 8, 1, 1)


@pytest.mark.parametrize("C, r", [(64, 16), (256, 16), (2048, 16), (48, 4)])
def test_parameter_counts_match_the_paper(C, r):
    Cr = C // r
    channel = 2 * C * Cr + Cr + C      # shared MLP with biases
    spatial = 2 * 7 * 7                # 7x7 conv from 2 maps to 1, no bias (paper)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(attnlib.create_block("cbam_channel", C, reduction=r)) == channel
    assert count(attnlib.create_block("cbam_spatial", C)) == spatial
    assert count(attnlib.create_block("cbam", C, reduction=r)) == channel + spatial
    assert count(attnlib.create_block("cbam_spatial", C, kernel_size=3)) == 2 * 3 * 3
    # the official code's BatchNorm adds its gamma and beta
    assert count(attnlib.create_block("cbam", C, reduction=r, batch_norm=True)) == channel + spatial + 2


def test_resnet50_plus_cbam_extra_parameters():
    # ResNet-50 25.56M -> ResNet-50 + CBAM 28.09M: one CBAM after each of the 3, 4, 6, 3 bottlenecks
    stages = [(3, 256), (4, 512), (6, 1024), (3, 2048)]
    extra = sum(n * sum(p.numel() for p in attnlib.create_block("cbam", c).parameters()) for n, c in stages)
    assert abs(extra - (28.09e6 - 25.56e6)) < 0.01e6


@pytest.mark.parametrize("name, kwargs, match", [
    ("cbam_channel", {"reduction": 0}, "reduction"),
    ("cbam_channel", {"reduction": 64}, "reduction"),
    ("cbam", {"reduction": 33}, "reduction"),
    ("cbam_spatial", {"kernel_size": 6}, "kernel_size"),
    ("cbam_spatial", {"kernel_size": 0}, "kernel_size"),
    ("cbam", {"kernel_size": 4}, "kernel_size"),
    ("cbam_spatial", {"pool_order": "avg-max"}, "pool_order"),
    ("cbam", {"pool_order": "mean_max"}, "pool_order"),
    ("cbam_spatial", {"batch_norm": "yes"}, "batch_norm"),
    ("cbam", {"zero_init_bn": 1}, "zero_init_bn"),
    ("cbam", {"batch_norm": False, "zero_init_bn": True}, "zero_init_bn"),
    ("cbam_spatial", {}, "channels"),
])
def test_bad_hyper_parameters(name, kwargs, match):
    channels = 0 if not kwargs else 32
    with pytest.raises(ValueError, match=match):
        attnlib.create_block(name, channels, **kwargs)


@pytest.mark.parametrize("name", ["cbam", "cbam_channel", "cbam_spatial"])
@pytest.mark.parametrize("channels", [0, -3, 2.5, True])
def test_bad_channels(name, channels):
    with pytest.raises(ValueError, match="channels"):
        attnlib.create_block(name, channels)


def test_spatial_conv_uses_the_official_kaiming_fan_out_init():
    # fan-out of a (1, 2, 7, 7) kernel is 1 * 7 * 7 = 49: std sqrt(2 / 49) = 0.202 (fan-in would give 0.143)
    torch.manual_seed(0)
    sp = attnlib.create_block("cbam_spatial", 8)
    stds = []
    for _ in range(40):
        sp.reset_parameters()
        stds.append(sp.conv.weight.std().item())
    assert abs(sum(stds) / len(stds) - (2 / 49) ** 0.5) < 0.02


def test_cbam_in_training_uses_batch_statistics_of_the_spatial_map():
    # training mode: the spatial BatchNorm normalises the (B, 1, H, W) conv output with its own batch mean and
    # biased variance over B, H, W (not the running statistics), and updates the running statistics
    cbam = _randomise(attnlib.create_block("cbam", 16, reduction=4, batch_norm=True).double()).train()
    x = torch.randn(3, 16, 6, 5, dtype=torch.float64)
    mc = _channel_gate(x, cbam.channel.fc1, cbam.channel.fc2)[:, :, None, None]
    x1 = mc * x
    f = torch.cat([x1.mean(dim=1, keepdim=True), x1.amax(dim=1, keepdim=True)], dim=1)
    a = F.conv2d(f, cbam.spatial.conv.weight, padding=3)
    bn = cbam.spatial.bn
    mean, var = a.mean(), a.var(unbiased=False)
    ms = _sigmoid((a - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias)
    running_mean = bn.running_mean.clone()
    with attnlib.capture(cbam) as maps:
        y = cbam(x)
    torch.testing.assert_close(maps[""]["spatial"], ms, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y, ms * x1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bn.running_mean, (1 - bn.momentum) * running_mean + bn.momentum * mean.detach().reshape(1))


def test_reset_parameters_restores_the_configured_initialisation():
    cbam = attnlib.create_block("cbam", 32, batch_norm=True, zero_init_bn=True)
    with torch.no_grad():
        for p in cbam.parameters():
            p.add_(1.0)
    cbam.reset_parameters()
    assert torch.equal(cbam.spatial.bn.weight, torch.zeros(1)) and torch.equal(cbam.spatial.bn.bias, torch.zeros(1))
    default = attnlib.create_block("cbam_spatial", 32, batch_norm=True)
    with torch.no_grad():
        default.bn.weight.fill_(3.0)
    default.reset_parameters()
    assert torch.equal(default.bn.weight, torch.ones(1))


@pytest.mark.parametrize("kwargs", [{"batch_norm": True}, {"batch_norm": True, "zero_init_bn": True},
                                    {"pool_order": "max_avg", "kernel_size": 3}])
def test_gradcheck_of_the_non_default_configurations(kwargs):
    # the generic suite runs gradcheck on the default configuration only
    cbam = _randomise(attnlib.create_block("cbam", 8, reduction=2, **kwargs).double()).train()
    x = torch.randn(2, 8, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(cbam, (x,), fast_mode=True, atol=1e-6, rtol=1e-4)
