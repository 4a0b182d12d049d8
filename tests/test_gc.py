"""GC block: identity at initialisation, attention pooling against an explicit softmax-weighted sum, the
whole block against its equations on the module's weights, and the fusion argument checks."""

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib.blocks.gc import GlobalContext


def _perturbed(**kwargs):
    torch.manual_seed(0)
    block = GlobalContext(32, **kwargs).double()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return block


def _x(seed=1, shape=(3, 32, 7, 5)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_add_fusion_is_the_identity_at_initialisation():
    block = attnlib.create_block("gc", 32)
    assert torch.all(block.channel_add_conv[3].weight == 0) and torch.all(block.channel_add_conv[3].bias == 0)
    x = _x().float()
    for train in (True, False):
        assert torch.equal(block.train(train)(x), x)
    # mul fusion starts at x * sigmoid(0) = x / 2
    both = GlobalContext(32, fusion=("add", "mul"))
    torch.testing.assert_close(both(x), x / 2)


def test_attention_pooling_equals_explicit_softmax_weighted_sum():
    block = _perturbed()
    x = _x()
    B, C, H, W = x.shape
    c, alpha = block.context(x)
    w = block.conv_mask.weight.reshape(C)
    expected = torch.zeros(B, C, dtype=x.dtype)
    for b in range(B):
        logits = torch.stack([w @ x[b, :, i, j] for i in range(H) for j in range(W)])   # one per position
        weights = torch.exp(logits) / torch.exp(logits).sum()
        torch.testing.assert_close(alpha[b, 0].reshape(-1), weights)
        pos = [(i, j) for i in range(H) for j in range(W)]
        expected[b] = sum(weights[n] * x[b, :, i, j] for n, (i, j) in enumerate(pos))
    torch.testing.assert_close(c.reshape(B, C), expected)
    assert alpha.std() > 1e-3  # the weights are not uniform, so this differs from average pooling
    c_avg, none = GlobalContext(32, pooling="avg").double().context(x)
    assert none is None
    torch.testing.assert_close(c_avg.reshape(B, C), x.mean(dim=(2, 3)))


def _transform_by_hand(seq, c):
    h = F.conv2d(c, seq[0].weight, seq[0].bias)
    mu, var = h.mean(dim=(1, 2, 3), keepdim=True), h.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    h = (h - mu) / torch.sqrt(var + seq[1].eps) * seq[1].weight + seq[1].bias    # LayerNorm over (C_r, 1, 1)
    return F.conv2d(torch.relu(h), seq[3].weight, seq[3].bias)


@pytest.mark.parametrize("fusion", [("add",), ["mul"], {"add", "mul"}, ("mul", "add")])
@pytest.mark.parametrize("pooling", ["attention", "avg"])
def test_block_equals_its_equations(fusion, pooling):
    block = _perturbed(fusion=fusion, pooling=pooling)
    x = _x()
    if pooling == "attention":
        alpha = torch.softmax(torch.einsum("c,bchw->bhw", block.conv_mask.weight.reshape(-1), x).flatten(1), 1)
        c = torch.einsum("bn,bcn->bc", alpha, x.flatten(2))[:, :, None, None]
    else:
        c = x.mean(dim=(2, 3), keepdim=True)
    expected = x
    if "mul" in fusion:
        expected = expected * torch.sigmoid(_transform_by_hand(block.channel_mul_conv, c))
    if "add" in fusion:
        expected = expected + _transform_by_hand(block.channel_add_conv, c)
    torch.testing.assert_close(block(x), expected)
    assert (block(x) - x).abs().max() > 1e-2


def test_reduced_width_and_parameter_count():
    block = GlobalContext(256)
    assert block.reduced_channels == 16
    C, Cr = 256, 16
    expected = C + (C * Cr + Cr) + 2 * Cr + (Cr * C + C)  # mask, conv1, LN, conv2
    assert sum(p.numel() for p in block.parameters()) == expected
    with pytest.raises(ValueError, match="reduced width of 0"):  # never a transform with no units
        GlobalContext(8)
    assert GlobalContext(8, reduction=8).reduced_channels == 1


@pytest.mark.parametrize("fusion", ["add", "channel_add", "mul"])
def test_string_fusion_raises(fusion):
    with pytest.raises(ValueError, match="bare string"):
        GlobalContext(32, fusion=fusion)


@pytest.mark.parametrize("fusion,match", [
    ((), "at least one"), (("channel_add",), "fusion"), (("add", "add"), "distinct"), (None, "fusion"),
])
def test_bad_fusion_raises(fusion, match):
    with pytest.raises(ValueError, match=match):
        GlobalContext(32, fusion=fusion)


def test_bad_pooling_and_reduction_raise():
    with pytest.raises(ValueError, match="pooling"):
        GlobalContext(32, pooling="att")
    with pytest.raises(ValueError, match="reduction"):
        GlobalContext(32, reduction=64)
    with pytest.raises(TypeError, match="stride"):
        GlobalContext(32, stride=2)  # a gating block keeps the input's shape: it takes no stride


def test_avg_pooling_records_nothing():
    block = GlobalContext(32, pooling="avg")
    with attnlib.capture(block) as maps:
        block(_x().float())
    assert maps == {}


def test_parameter_count_on_resnet50_stages_c3_to_c5_matches_the_paper():
    """GC after the last 1x1 conv of every bottleneck of stages c3-c5 (r = 16): ResNet-50 25.56M -> 28.08M."""
    stages = [(512, 4), (1024, 6), (2048, 3)]  # (output width 4 * planes, number of bottlenecks)
    total = 0
    for C, n in stages:
        Cr = C // 16
        formula = C + (C * Cr + Cr) + 2 * Cr + (Cr * C + C)  # w_k, W_v1 (+ b), LayerNorm (γ, β), W_v2 (+ b)
        module = sum(p.numel() for p in GlobalContext(C).parameters())
        assert module == formula
        total += n * module
    resnet50 = 25_557_032
    print(f"\nGC on ResNet-50 c3-c5: {total} parameters; {resnet50 / 1e6:.2f}M -> {(resnet50 + total) / 1e6:.2f}M "
          f"(paper: 28.08M)")
    assert total == 2_521_728
    assert round((resnet50 + total) / 1e6, 2) == 28.08


def test_samples_independent_and_positions_permutation_equivariant():
    """Moved from the chapter's Tests: each sample's output depends on that sample only, and permuting the
    positions of x permutes those of z (the context is a weighted sum over positions)."""
    block = _perturbed(fusion=("add", "mul"))
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(torch.cat([block(x[i:i + 1]) for i in range(3)]), block(x))
        perm = torch.randperm(35, generator=torch.Generator().manual_seed(0))
        xp = x.flatten(2)[:, :, perm].reshape_as(x)
        torch.testing.assert_close(block(xp), block(x).flatten(2)[:, :, perm].reshape_as(x))


def test_zero_mask_weights_make_attention_pooling_average_pooling():
    """Chapter exercise 4: equal logits give alpha_j = 1/N, so w_k = 0 reproduces pooling="avg"."""
    block, avg = _perturbed(), _perturbed(pooling="avg")
    with torch.no_grad():
        block.conv_mask.weight.zero_()
        assert block.load_state_dict(avg.state_dict(), strict=False).missing_keys == ["conv_mask.weight"]
        torch.testing.assert_close(block(_x()), avg(_x()))


def test_initial_gate_is_one_half_for_gc_but_input_dependent_for_se():
    """Chapter exercise 2: GC's zero-initialised last convolution gives σ(0) = 1/2 for every input; SE's W₂ is
    random like W₁, so SE's initial gate depends on the input."""
    x = torch.randn(4, 64, 6, 6)
    for pooling in ("attention", "avg"):
        torch.testing.assert_close(GlobalContext(64, pooling=pooling, fusion=("mul",))(x), x / 2)
    gate = attnlib.create_block("se", 64).gate(x)
    assert (gate - gate[:1]).abs().max() > 1e-3
