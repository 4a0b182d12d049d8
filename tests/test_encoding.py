"""Encoding layer (Deep TEN): the matmul formulation against the expanded (B, N, K, C) one."""

import pytest
import torch

import attnlib
from attnlib.blocks.encoding import Encoding


def _expanded(x, codewords, scale):
    """The paper's equations written literally, with a (B, N, K, C) tensor of residuals x_i - d_k."""
    B, C, H, W = x.shape
    X = x.flatten(2).transpose(1, 2)                                  # (B, N, C)
    residuals = X[:, :, None, :] - codewords[None, None, :, :]        # (B, N, K, C)
    a = torch.softmax(scale * residuals.pow(2).sum(-1), dim=2)        # (B, N, K), softmax over k
    e = (a[..., None] * residuals).sum(1)                             # (B, K, C)
    return e, a


def _perturbed(C=16, K=8, dtype=torch.float64):
    torch.manual_seed(0)
    enc = Encoding(C, num_codes=K).to(dtype)
    with torch.no_grad():  # codewords at the scale of the data, so the assignments are far from uniform
        enc.codewords.normal_()
        enc.scale.uniform_(-0.5, -0.05)
    return enc


def test_equals_expanded_formulation_in_float64():
    enc = _perturbed()
    x = torch.randn(3, 16, 7, 5, dtype=torch.float64)
    with attnlib.capture(enc) as maps:
        e = enc(x)
    e_ref, a_ref = _expanded(x, enc.codewords, enc.scale)
    assert a_ref.max() > 0.5, "assignments must not be near uniform for the test to mean something"
    torch.testing.assert_close(e, e_ref, rtol=1e-10, atol=1e-10)
    a = maps[""]["assignments"]                                       # (B, K, H, W)
    torch.testing.assert_close(a.flatten(2).transpose(1, 2), a_ref, rtol=1e-10, atol=1e-12)


def test_gradients_equal_expanded_formulation():
    enc = _perturbed()
    x = torch.randn(2, 16, 4, 6, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 8, 16, dtype=torch.float64)
    grads = torch.autograd.grad((enc(x) * g).sum(), (x, enc.codewords, enc.scale))
    ref = torch.autograd.grad((_expanded(x, enc.codewords, enc.scale)[0] * g).sum(), (x, enc.codewords, enc.scale))
    for a, b in zip(grads, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_assignments_sum_to_one_and_output_is_orderless():
    enc = _perturbed(dtype=torch.float32)
    x = torch.randn(2, 16, 6, 6)
    with attnlib.capture(enc) as maps:
        e = enc(x)
    torch.testing.assert_close(maps[""]["assignments"].sum(1), torch.ones(2, 6, 6))
    perm = torch.randperm(36)
    shuffled = x.flatten(2)[:, :, perm].view(2, 16, 6, 6)  # same set of vectors, other positions
    torch.testing.assert_close(enc(shuffled), e, rtol=1e-5, atol=1e-5)


def test_bfloat16_input_is_encoded_in_float32():
    enc = _perturbed(C=64, dtype=torch.float32)
    x = torch.randn(2, 64, 8, 8) + 3.0  # large ||x||^2: the expansion would cancel in bfloat16
    ref = enc(x)
    y = enc.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    assert ((y.float() - ref).abs().max() / ref.abs().max()) < 0.02


def test_initialisation_and_parameter_names():
    torch.manual_seed(0)
    enc = attnlib.create_block("encoding", 64)
    assert enc.num_codes == 32
    assert dict((n, tuple(p.shape)) for n, p in enc.named_parameters()) == {"codewords": (32, 64), "scale": (32,)}
    bound = 1 / (32 * 64) ** 0.5
    assert enc.codewords.abs().max() <= bound and enc.codewords.abs().max() > 0.95 * bound
    assert (enc.scale < 0).all() and (enc.scale > -1).all()


@pytest.mark.parametrize("kwargs, argument", [
    (dict(num_codes=0), "num_codes"),
    (dict(num_codes=-3), "num_codes"),
])
def test_bad_arguments_raise(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        Encoding(16, **kwargs)


def _saved_sizes(fn):
    sizes = []

    def pack(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn().sum().backward()
    return sizes


def test_saves_no_BNKC_tensor_for_backward():
    """Every tensor kept for the backward pass stays below B*N*K*C / 4 elements (the expanded
    formulation, measured the same way, keeps full B*N*K*C ones)."""
    enc = Encoding(64, num_codes=16)
    x = torch.randn(2, 64, 16, 16, requires_grad=True)
    limit = 2 * 256 * 16 * 64 // 4
    assert max(_saved_sizes(lambda: enc(x))) < limit
    assert max(_saved_sizes(lambda: _expanded(x, enc.codewords, enc.scale)[0])) >= 4 * limit


def test_positive_scale_keeps_every_smoothing_factor_positive_and_computes_the_same_layer():
    """positive_scale stores rho with s = softplus(rho): the same equations (the layer on the s it
    yields equals the reference parametrisation with scale = -s), and no s_k can become negative,
    even after a step that pushes every s_k down hard."""
    torch.manual_seed(0)
    pos = attnlib.create_block("encoding", 8, num_codes=4, positive_scale=True).double()
    ref = attnlib.create_block("encoding", 8, num_codes=4).double()
    assert "scale" not in dict(pos.named_parameters()) and "rho" in dict(pos.named_parameters())
    s = pos.smoothing()
    assert ((s > 0.05 - 1e-9) & (s < 1 + 1e-9)).all()
    with torch.no_grad():
        ref.codewords.copy_(pos.codewords)
        ref.scale.copy_(-s)
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    assert torch.allclose(pos(x), ref(x), atol=1e-12)
    opt = torch.optim.SGD(pos.parameters(), lr=100.0)
    pos.smoothing().sum().backward()
    opt.step()
    assert (pos.smoothing() > 0).all()
    assert "positive_scale=True" in repr(pos)
    with pytest.raises(ValueError, match="positive_scale must be True or False"):
        attnlib.create_block("encoding", 8, positive_scale=1)
    lvc = attnlib.create_block("lvc", 16, num_codes=8, positive_scale=True)
    assert lvc.encoding.positive_scale and "positive_scale=True" in repr(lvc)
