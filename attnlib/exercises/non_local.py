"""Exercises of the Non-local chapter (``book/nonlocal.md``): attention on tokens with an explicit softmax,
and the embedded-Gaussian block through ``scaled_dot_product_attention``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._framework import Case, Exercise, Mistake, describe, make_block, randint, randn


def _attend_case(gen):
    B, N, d = randint(gen, 1, 3), randint(gen, 6, 20), randint(gen, 2, 6)
    block = make_block("nonlocal", 2 * d, sub_sample=False, implementation="explicit", gen=gen)
    theta, phi, g = (randn(gen, B, N, d) for _ in range(3))
    with torch.no_grad():
        expected = block.aggregate(theta[:, None], phi[:, None], g[:, None])[:, 0]
    return Case((theta, phi, g), expected, describe(theta=theta, phi=phi, g=g))


def nl_attend(theta, phi, g):
    f = theta @ phi.transpose(1, 2)            # pairwise logits θ_i · φ_j: (B, N, N)
    a = torch.softmax(f, dim=-1)               # normalise over the keys j: (B, N, N)
    return a @ g                               # weighted sum of the values: (B, N, d)


def _logits(theta, phi):
    return theta @ phi.transpose(1, 2)


attend = Exercise(
    key="nonlocal.attend",
    title="Embedded-Gaussian attention on tokens",
    signature="nl_attend(theta, phi, g)",
    task="theta, phi and g have shape (B, N, d): the queries θ(x_i), keys φ(x_j) and values g(x_j) of N "
         "positions. Return y_i = Σ_j softmax_j(θ_i · φ_j) g_j for every i (eqs. nonlocal-pairwise to "
         "nonlocal-aggregate, embedded Gaussian, as the paper writes it), shape (B, N, d).",
    make_case=_attend_case,
    solution=nl_attend,
    mistakes=[
        Mistake("softmax_queries", lambda t, p, g: torch.softmax(_logits(t, p), dim=1) @ g,
                "your softmax runs over the queries i: normalise over the keys j (the last axis of θ φᵀ), so "
                "that the weights each position i gives to all positions sum to 1."),
        Mistake("scaled", lambda t, p, g: torch.softmax(_logits(t, p) / math.sqrt(t.shape[-1]), dim=-1) @ g,
                "you divided the logits by sqrt(d): the paper's embedded Gaussian has no such scale (the "
                "official Caffe2 code adds it; the library offers it as scale_logits=True)."),
        Mistake("dot_product", lambda t, p, g: _logits(t, p) / p.shape[1] @ g,
                "you divided by N instead of applying a softmax: that is the dot-product variant; the "
                "embedded Gaussian normalises with a softmax."),
        Mistake("transposed", lambda t, p, g: torch.softmax(_logits(t, p), dim=-1).transpose(1, 2) @ g,
                "your attention matrix is transposed: row i of softmax(θ φᵀ) holds the weights of query i "
                "and multiplies g directly."),
        Mistake("keys_as_queries", lambda t, p, g: torch.softmax(_logits(p, t), dim=-1) @ g,
                "θ and φ play swapped roles: the queries are θ (rows of the logit matrix), the keys φ."),
    ],
    hints=[
        "The logits are a batched matrix product of theta with phi transposed over its last two axes.",
        "Each row of the attention matrix must sum to 1.",
    ],
)


def _sdpa_case(gen):
    C = 2 * randint(gen, 2, 4)
    B, H, W = randint(gen, 1, 2), randint(gen, 5, 8), randint(gen, 6, 9)
    block = make_block("nonlocal", C, sub_sample=False, gen=gen)
    x = randn(gen, B, C, H, W)
    with torch.no_grad():
        q, k, v, _ = block.embed(x)
        y = block.aggregate(q, k, v)                         # (B, 1, N, C_r)
        expected = y[:, 0].transpose(1, 2).reshape(B, -1, H, W)
    args = (x, block.theta.weight.detach()[:, :, 0, 0], block.theta.bias.detach(),
            block.phi.weight.detach()[:, :, 0, 0], block.g.weight.detach()[:, :, 0, 0], block.g.bias.detach())
    return Case(args, expected, describe(x=x, W_theta=args[1]), max_numel=B * C * H * W)


def nl_sdpa(x, W_theta, b_theta, W_phi, W_g, b_g):
    B, C, H, W = x.shape
    t = x.flatten(2).transpose(1, 2)                            # tokens: (B, N, C)
    q = (t @ W_theta.T + b_theta)[:, None].contiguous()         # queries: (B, 1, N, C_r)
    k = (t @ W_phi.T)[:, None].contiguous()                     # keys: (B, 1, N, C_r)
    v = (t @ W_g.T + b_g)[:, None].contiguous()                 # values: (B, 1, N, C_r)
    y = F.scaled_dot_product_attention(q, k, v, scale=1.0)      # no 1/sqrt(C_r): (B, 1, N, C_r)
    return y[:, 0].transpose(1, 2).reshape(B, -1, H, W)         # back to a map: (B, C_r, H, W)


def _sdpa(x, Wt, bt, Wp, Wg, bg, scale=1.0, tokens="transpose", back="transpose"):
    B, C, H, W = x.shape
    t = x.flatten(2).transpose(1, 2) if tokens == "transpose" else x.reshape(B, H * W, C)
    q, k, v = (t @ Wt.T + bt)[:, None], (t @ Wp.T)[:, None], (t @ Wg.T + bg)[:, None]
    y = F.scaled_dot_product_attention(q, k, v, scale=scale)[:, 0]
    return y.transpose(1, 2).reshape(B, -1, H, W) if back == "transpose" else y.reshape(B, -1, H, W)


sdpa = Exercise(
    key="nonlocal.sdpa",
    title="The Non-local block through scaled_dot_product_attention",
    signature="nl_sdpa(x, W_theta, b_theta, W_phi, W_g, b_g)",
    task="x has shape (B, C, H, W); W_theta (C_r, C) with b_theta, W_phi (C_r, C) without bias, W_g (C_r, C) "
         "with b_g are the 1x1 convolutions θ, φ, g. Return y of eq. nonlocal-aggregate (embedded Gaussian, "
         "no sub-sampling, before W_z and the residual) as a (B, C_r, H, W) map, computed with "
         "torch.nn.functional.scaled_dot_product_attention: no tensor may hold the N x N attention matrix "
         "(at most B·C·H·W elements per tensor).",
    make_case=_sdpa_case,
    solution=nl_sdpa,
    mistakes=[
        Mistake("default_scale", lambda *a: _sdpa(*a, scale=None),
                "scaled_dot_product_attention divides the logits by sqrt(C_r) unless told otherwise: the "
                "paper's embedded Gaussian has no scale, so pass scale=1.0."),
        Mistake("tokens_not_transposed", lambda *a: _sdpa(*a, tokens="view"),
                "your tokens are wrong: x.view(B, N, C) (or reshape) does not transpose; flatten the spatial "
                "axes to (B, C, N) and then transpose to (B, N, C)."),
        Mistake("output_not_transposed", lambda *a: _sdpa(*a, back="view"),
                "the output is scrambled: the attention returns (B, N, C_r); transpose it to (B, C_r, N) "
                "before reshaping to (B, C_r, H, W)."),
    ],
    hints=[
        "scaled_dot_product_attention wants (B, heads, N, d) tensors: add a heads axis of size 1.",
        "Look at the scale argument of scaled_dot_product_attention.",
    ],
)

EXERCISES = [attend, sdpa]
