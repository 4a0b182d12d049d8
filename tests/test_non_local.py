"""Non-local block: fast paths against the explicit matrix, an independent re-derivation on the module's
weights, identity at initialisation, captured query rows, and argument checks."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib.blocks.non_local import MODES, NonLocal

SHAPES = {1: (2, 8, 10), 2: (2, 8, 6, 5), 3: (2, 8, 3, 4, 6)}


def _perturbed(seed=0, **kwargs):
    torch.manual_seed(seed)
    block = NonLocal(8, **kwargs).double()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return block


def _x(dim, seed=1):
    return torch.randn(*SHAPES[dim], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("mode,dim,sub_sample", list(itertools.product(MODES, (1, 2, 3), (True, False))))
def test_fast_path_equals_explicit_path(mode, dim, sub_sample):
    block = _perturbed(mode=mode, dimension=dim, sub_sample=sub_sample).train()
    x = _x(dim).requires_grad_()
    q, k, v, _ = block.embed(x)
    if mode == "concatenation":  # the sorted formulation only means something if the ReLU is active and not
        a, b = block._concat_terms(q, k)  # always on: check both signs of a_i + b_j occur
        active = (a[..., :, None] + b[..., None, :] > 0).double().mean()
        assert 0.1 < active < 0.9, f"degenerate test: {active:.2f} of the pairs are active"
    y_fast = block.aggregate(q, k, v)
    block.implementation = "explicit"
    y_ref = block.aggregate(q, k, v)
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-10, atol=1e-12)
    # the whole block, forward and gradients with respect to the input and every parameter
    w = torch.randn_like(x)
    leaves = [x] + list(block.parameters())
    out_ref = block(x)
    g_ref = torch.autograd.grad((out_ref * w).sum(), leaves)
    block.implementation = "fast"
    out_fast = block(x)
    g_fast = torch.autograd.grad((out_fast * w).sum(), leaves)
    assert (out_fast - x).abs().max() > 1e-3  # the non-local branch contributes (BN scale is not 0 here)
    torch.testing.assert_close(out_fast, out_ref, rtol=1e-10, atol=1e-12)
    for name, a, b in zip(["x"] + [n for n, _ in block.named_parameters()], g_fast, g_ref):
        assert b.abs().max() > 0, f"no gradient reaches {name}"
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10, msg=lambda m: f"gradient of {name}: {m}")


def test_fast_path_equals_explicit_in_float32_larger_input():
    torch.manual_seed(0)
    for mode in MODES:
        block = NonLocal(32, mode=mode, sub_sample=False).eval()
        with torch.no_grad():
            for p in block.parameters():
                p.add_(0.1 * torch.randn_like(p))
        x = torch.randn(2, 32, 24, 20)
        y_fast = block(x)
        block.implementation = "explicit"
        torch.testing.assert_close(y_fast, block(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode,dim", list(itertools.product(MODES, (1, 2, 3))))
def test_identity_at_initialisation(mode, dim):
    block = NonLocal(8, mode=mode, dimension=dim)
    assert torch.all(block.bn.weight == 0)
    x = _x(dim).float()
    for train in (True, False):
        assert torch.equal(block.train(train)(x), x)


def _reference_2d(block, x):
    """The paper's equations written out with functional ops on the module's weights (2-D, eval mode)."""
    B, C, H, W = x.shape
    pool = (lambda t: F.max_pool2d(t, 2)) if block.sub_sample else (lambda t: t)
    gx = pool(F.conv2d(x, block.g.weight, block.g.bias)).flatten(2)                 # (B, C_r, M)
    if block.mode == "gaussian":
        th, ph = x.flatten(2), pool(x).flatten(2)
    else:
        th = F.conv2d(x, block.theta.weight, block.theta.bias).flatten(2)           # (B, C_r, N)
        ph = pool(F.conv2d(x, block.phi.weight, block.phi.bias)).flatten(2)         # (B, C_r, M)
    M = ph.shape[-1]
    if block.mode == "concatenation":
        f = torch.zeros(B, H * W, M, dtype=x.dtype)
        w = block.concat_project.weight[0]
        for i in range(H * W):                                                      # w_fᵀ [θ_i; φ_j], pair by pair
            for j in range(M):
                f[:, i, j] = torch.relu(torch.cat([th[:, :, i], ph[:, :, j]], 1) @ w)
        a = f / M
    else:
        logits = torch.einsum("bci,bcj->bij", th, ph)
        if block.mode == "dot_product":
            a = logits / M
        else:
            scale = 1 / math.sqrt(th.shape[1]) if block.scale_logits else 1.0
            a = torch.exp(scale * logits)
            a = a / a.sum(-1, keepdim=True)
    y = torch.einsum("bij,bcj->bci", a, gx).reshape(B, -1, H, W)
    wz = F.conv2d(y, block.out_conv.weight, block.out_conv.bias)
    bn = block.bn
    z = (wz - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    return z * bn.weight[:, None, None] + bn.bias[:, None, None] + x, a


@pytest.mark.parametrize("mode,sub_sample,scale", [
    ("embedded_gaussian", True, False), ("embedded_gaussian", False, True), ("gaussian", True, True),
    ("gaussian", False, False), ("dot_product", True, False), ("dot_product", False, False),
    ("concatenation", True, False),
])
def test_module_equals_equations_on_its_weights(mode, sub_sample, scale):
    block = _perturbed(mode=mode, sub_sample=sub_sample, scale_logits=scale).train()
    block(_x(2, seed=5))  # move the BN running statistics
    block.eval()
    x = _x(2) * (0.3 if mode == "gaussian" else 1.0)
    ref, _ = _reference_2d(block, x)
    for impl in ("fast", "explicit"):
        block.implementation = impl
        torch.testing.assert_close(block(x), ref, rtol=1e-10, atol=1e-10)


def test_dot_product_associativity_equals_explicit_formula():
    block = _perturbed(mode="dot_product", sub_sample=False)
    x = _x(2)
    q, k, v, _ = block.embed(x)
    explicit = ((q @ k.transpose(-2, -1)) / k.shape[2]) @ v        # (θᵀφ / N) g, builds N x N
    fast = block.aggregate(q, k, v)                                 # θ (φᵀ g) / N
    torch.testing.assert_close(fast, explicit, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_captured_query_maps_equal_rows_of_the_explicit_matrix(mode):
    block = _perturbed(mode=mode).eval()
    x = _x(2) * (0.3 if mode == "gaussian" else 1.0)
    _, a = _reference_2d(block, x)                                 # (B, N, M), N = 6*5, M = 3*2
    queries = [(0.5, 0.5), (0.0, 0.0), (1.0, 1.0), (0.2, 0.7)]
    with attnlib.capture(block, queries=queries) as maps:
        block(x)
    att = maps[""]["attention"]
    assert att.shape == (2, 4, 3, 2)
    H, W = 6, 5
    for q, (r, c) in enumerate(queries):
        i = min(int(r * H), H - 1) * W + min(int(c * W), W - 1)
        torch.testing.assert_close(att[:, q].reshape(2, -1), a[:, i], rtol=1e-10, atol=1e-12)
    if mode in ("embedded_gaussian", "gaussian"):
        torch.testing.assert_close(att.sum(dim=(2, 3)), torch.ones(2, 4, dtype=att.dtype))


def test_capture_in_1d_and_3d_picks_the_documented_positions():
    for dim, expected_shape, pick in [
        (1, (2, 2, 5), lambda r, c: min(int(c * 10), 9)),
        (3, (2, 2, 3, 2, 3), lambda r, c: (1 * 4 + min(int(r * 4), 3)) * 6 + min(int(c * 6), 5)),
    ]:
        block = _perturbed(dimension=dim).eval()
        x = _x(dim)
        q, k, _, _ = block.embed(x)
        full = block.attention_weights(q, k)[:, 0]               # (B, N, M)
        queries = [(0.5, 0.5), (0.9, 0.1)]
        with attnlib.capture(block, queries=queries) as maps:
            block(x)
        att = maps[""]["attention"]
        assert tuple(att.shape) == expected_shape
        for n, (r, c) in enumerate(queries):
            torch.testing.assert_close(att[:, n].reshape(2, -1), full[:, pick(r, c)])


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_sdpa_inputs_are_4d_contiguous(memory_format):
    block = NonLocal(16)
    x = torch.randn(2, 16, 8, 6).to(memory_format=memory_format)
    for t in block.embed(x)[:3]:
        assert t.dim() == 4 and t.shape[1] == 1 and t.is_contiguous()


def test_phi_bias_only_where_it_matters():
    assert NonLocal(8).phi.bias is None
    assert NonLocal(8, mode="dot_product").phi.bias is not None
    assert NonLocal(8, mode="concatenation").phi.bias is not None
    assert not hasattr(NonLocal(8, mode="gaussian"), "theta")


@pytest.mark.parametrize("kwargs,match", [
    ({"dimension": 0}, "dimension"), ({"dimension": 4}, "dimension"), ({"dimension": True}, "dimension"),
    ({"mode": "embedded"}, "mode"), ({"implementation": "sdpa_math"}, "implementation"),
    ({"mode": "dot_product", "scale_logits": True}, "scale_logits"), ({"sub_sample": 1}, "sub_sample"),
    ({"reduction": 0}, "reduction"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NonLocal(8, **kwargs)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="NonLocal"):
        NonLocal(8, dimension=3)(torch.randn(2, 8, 4, 4))                  # rank 4 for a 3-D block
    with pytest.raises(ValueError, match="sub_sample"):
        NonLocal(8)(torch.randn(2, 8, 1, 6))                                 # nothing left to pool
    assert NonLocal(8, sub_sample=False)(torch.randn(2, 8, 1, 6)).shape == (2, 8, 1, 6)
    assert NonLocal(8, dimension=3)(torch.randn(2, 8, 1, 4, 4)).shape == (2, 8, 1, 4, 4)  # T is not pooled


@pytest.mark.skipif(not hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"),
                    reason="this PyTorch has no fused CPU attention kernel")
@pytest.mark.parametrize("mode", ["embedded_gaussian", "gaussian"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
def test_softmax_modes_run_the_fused_cpu_kernel_never_the_matrix(mode, train, memory_format):
    """On CPU, SDPA falls back to the math kernel (softmax of an N x M matrix) unless q, k, v are 4-D and
    contiguous (and equally wide): the fast path must dispatch to the fused kernel, also for a
    channels_last input and with gradients."""
    from torch.profiler import ProfilerActivity, profile

    block = NonLocal(16, mode=mode).train(train)
    x = torch.randn(2, 16, 12, 10).to(memory_format=memory_format).requires_grad_(train)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        block(x)
    ops = {e.key for e in prof.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in ops
    assert not ops & {"aten::_softmax", "aten::bmm", "aten::_scaled_dot_product_attention_math"}, sorted(ops)


@pytest.mark.parametrize("mode", MODES)
def test_fast_path_and_capture_never_hold_an_n_by_n_tensor(mode):
    """Every intermediate tensor of a traced forward pass (capture on, two queries) is far smaller than
    the B x N x N' matrix of the explicit formulation; the explicit path does hold it."""
    from attnlib.trace import trace_block

    B, C, H, W = 2, 8, 16, 12
    N = H * W
    sizes = {}
    for impl in ("fast", "explicit"):
        block = NonLocal(C, mode=mode, sub_sample=False, implementation=impl).eval()
        with attnlib.capture(block, queries=[(0.5, 0.5), (0.1, 0.9)]):
            trace = trace_block(block, torch.randn(B, C, H, W))
        sizes[impl] = max(math.prod(shape) for step in trace.steps for shape in step.outputs)
    assert sizes["explicit"] >= B * N * N
    assert sizes["fast"] <= B * N * C, f"{mode}: the fast path holds a tensor of {sizes['fast']} elements"


def test_concatenation_fast_path_in_bfloat16():
    """The sorted formulation runs its suffix sums in float32 for bf16 inputs."""
    block = _perturbed(mode="concatenation").float().eval()
    x = _x(2).float()
    ref = block(x)
    y = block.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    assert ((y.float() - ref).abs().max() / ref.abs().max()) < 0.05


def test_permutation_equivariance_without_sub_sampling_and_samples_independent():
    """Moved from the chapter's Tests: permuting the positions of x permutes those of z (no sub-sampling),
    and in eval mode each sample's output depends on that sample only."""
    block = _perturbed(sub_sample=False).eval()
    x = _x(2)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(0))
    xp = x.flatten(2)[:, :, perm].reshape_as(x)
    torch.testing.assert_close(block(xp), block(x).flatten(2)[:, :, perm].reshape_as(x))
    block = _perturbed().eval()
    torch.testing.assert_close(torch.cat([block(x[i:i + 1]) for i in range(2)]), block(x))


@pytest.mark.parametrize("zero,expected", [(None, (True, True)), ("theta", (True, False)), ("phi", (False, True))])
def test_theta_needs_phi_and_phi_needs_theta_for_a_gradient(zero, expected):
    """Exercise 4 of the chapter: the logits θ_iᵀφ_j give θ the gradient factor φ and φ the factor θ. With
    θ = 0 every softmax row is uniform, and θ still receives a gradient (uniform rows pass it)."""
    torch.manual_seed(3)
    block = NonLocal(16)
    with torch.no_grad():
        block.bn.weight.fill_(1.0)
        block.theta.bias.zero_()
        for name in ("theta", "phi"):
            getattr(block, name).weight.mul_(0 if name == zero else 30)
    x = torch.randn(2, 16, 6, 6)
    if zero == "theta":
        q, k, _, _ = block.embed(x)
        a = block.attention_weights(q, k)
        torch.testing.assert_close(a, torch.full_like(a, 1 / k.shape[2]))
    (block(x) * torch.randn_like(x)).sum().backward()
    got = tuple(bool(getattr(block, n).weight.grad.abs().sum() > 0) for n in ("theta", "phi"))
    assert got == expected


def test_pooling_before_g_differs_from_pooling_after_g():
    """The library pools after φ and g; the official code pools the input before them: different functions."""
    block = _perturbed()
    x = _x(2)
    with torch.no_grad():
        _, _, v, _ = block.embed(x)
        after = F.max_pool2d(block.g(x), 2).flatten(2).mT
        before = block.g(F.max_pool2d(x, 2)).flatten(2).mT
    torch.testing.assert_close(v[:, 0], after)
    assert not torch.allclose(after, before)
