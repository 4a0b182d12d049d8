"""Exercises of the Encoding chapter (``book/encoding.md``): soft assignments from distances computed
without the (B, N, K, C) tensor, and the residual aggregation."""

from __future__ import annotations

import torch

from ._framework import Case, Exercise, Mistake, describe, make_block, randint, randn, uniform


def _enc(gen):
    C, K = randint(gen, 4, 12), randint(gen, 3, 8)
    B, H, W = randint(gen, 1, 3), randint(gen, 3, 6), randint(gen, 4, 7)
    block = make_block("encoding", C, num_codes=K, gen=gen)
    with torch.no_grad():
        block.scale.copy_(-uniform(gen, 0.2, 1.0, K))   # the library stores -s, with s > 0
    x = randn(gen, B, C, H, W)
    return block, x


def _assign_case(gen):
    block, x = _enc(gen)
    B, C, H, W = x.shape
    K = block.num_codes
    d, s = block.codewords.detach(), -block.scale.detach()
    with torch.no_grad():
        expected = block.encode(x)[1]
    return Case((x, d, s), expected, describe(x=x, d=d, s=s), max_numel=B * H * W * max(K, C))


def enc_assign(x, d, s):
    X = x.flatten(2)                                        # features as columns: (B, C, N)
    xx = (X * X).sum(dim=1, keepdim=True)                   # ||x_i||^2: (B, 1, N)
    dd = (d * d).sum(dim=1)[:, None]                        # ||d_k||^2: (K, 1)
    dist = xx - 2 * (d @ X) + dd                            # ||x_i - d_k||^2: (B, K, N)
    return torch.softmax(-s[:, None] * dist, dim=1)         # over the K codewords: (B, K, N)


def _dist(x, d):
    X = x.flatten(2)
    return (X * X).sum(dim=1, keepdim=True) - 2 * (d @ X) + (d * d).sum(dim=1)[:, None]


assign = Exercise(
    key="encoding.assign",
    title="Soft assignments, without the (B, N, K, C) tensor",
    signature="enc_assign(x, d, s)",
    task="x has shape (B, C, H, W); d (K, C) holds the codewords, s (K,) the smoothing factors (s_k > 0). "
         "Return the soft assignments a_ik = softmax_k(-s_k ||x_i - d_k||^2) of eq. enc-assign as a (B, K, N) "
         "tensor, N = H W. No tensor may have more than B·N·max(K, C) elements: expand ||x - d||^2 instead of "
         "broadcasting x against d.",
    make_case=_assign_case,
    solution=enc_assign,
    mistakes=[
        Mistake("softmax_positions", lambda x, d, s: torch.softmax(-s[:, None] * _dist(x, d), dim=2),
                "your softmax runs over the positions: each feature x_i distributes its weight over the K "
                "codewords, so normalise over k."),
        Mistake("sign", lambda x, d, s: torch.softmax(s[:, None] * _dist(x, d), dim=1),
                "the sign is wrong: a near codeword must get a large weight, so the logits are "
                "-s_k ||x_i - d_k||^2."),
        Mistake("not_squared", lambda x, d, s: torch.softmax(-s[:, None] * _dist(x, d).clamp_min(0).sqrt(), dim=1),
                "you used the distance ||x_i - d_k||: the assignment uses its square."),
        Mistake("sign_cross", lambda x, d, s: torch.softmax(-s[:, None] * (_dist(x, d) + 4 * (d @ x.flatten(2))),
                                                            dim=1),
                "the cross term has the wrong sign: ||x - d||^2 = ||x||^2 - 2 x·d + ||d||^2."),
        Mistake("no_dd", lambda x, d, s: torch.softmax(-s[:, None] * (_dist(x, d) - (d * d).sum(dim=1)[:, None]),
                                                       dim=1),
                "the ||d_k||^2 term is missing: it differs between codewords, so it changes the softmax "
                "(||x_i||^2 does not, and may be dropped)."),
        Mistake("transposed", lambda x, d, s: torch.softmax(-s[:, None] * _dist(x, d), dim=1).transpose(1, 2),
                "right values, wrong layout: return (B, K, N), codewords first."),
    ],
    hints=[
        "||x_i - d_k||^2 = ||x_i||^2 - 2 x_i·d_k + ||d_k||^2: the middle term is one matrix product.",
        "With X = x.flatten(2) of shape (B, C, N), d @ X has shape (B, K, N).",
    ],
)


def _aggregate_case(gen):
    block, x = _enc(gen)
    B, C, H, W = x.shape
    K = block.num_codes
    with torch.no_grad():
        e, a = block.encode(x)
    d = block.codewords.detach()
    return Case((x, d, a), e, describe(x=x, d=d, a=a), max_numel=B * H * W * max(K, C))


def enc_aggregate(x, d, a):
    X = x.flatten(2)                                        # (B, C, N)
    return a @ X.transpose(1, 2) - a.sum(dim=2)[..., None] * d  # Σ_i a_ik x_i - (Σ_i a_ik) d_k: (B, K, C)


def _agg(x, d, a):
    return a @ x.flatten(2).transpose(1, 2)


aggregate = Exercise(
    key="encoding.aggregate",
    title="Residual aggregation",
    signature="enc_aggregate(x, d, a)",
    task="x has shape (B, C, H, W), d (K, C) the codewords, a (B, K, N) the soft assignments. Return "
         "e_k = Σ_i a_ik (x_i - d_k) of eq. enc-aggregate, shape (B, K, C), with no tensor larger than "
         "B·N·max(K, C) elements (no (B, K, N, C) residual tensor).",
    make_case=_aggregate_case,
    solution=enc_aggregate,
    mistakes=[
        Mistake("no_residual", lambda x, d, a: _agg(x, d, a),
                "you aggregated the features x_i: Encoding aggregates the residuals x_i - d_k, so subtract "
                "(Σ_i a_ik) d_k."),
        Mistake("residual_sign", lambda x, d, a: a.sum(dim=2)[..., None] * d - _agg(x, d, a),
                "the residual has the wrong sign: it is x_i - d_k."),
        Mistake("mean", lambda x, d, a: (_agg(x, d, a) - a.sum(dim=2)[..., None] * d) / a.sum(dim=2)[..., None],
                "you divided by Σ_i a_ik: Deep TEN's encoder sums the weighted residuals, it does not "
                "average them."),
        Mistake("d_once", lambda x, d, a: _agg(x, d, a) - d,
                "you subtracted d_k once: every position's residual subtracts it, weighted by a_ik, so the "
                "term is (Σ_i a_ik) d_k."),
        Mistake("transposed", lambda x, d, a: (_agg(x, d, a) - a.sum(dim=2)[..., None] * d).transpose(1, 2),
                "right values, wrong layout: return (B, K, C), codewords first."),
    ],
    hints=[
        "Split the sum: Σ_i a_ik x_i - (Σ_i a_ik) d_k.",
        "The first term is one batched matrix product of a (B, K, N) with the features as rows, (B, N, C).",
    ],
)

EXERCISES = [assign, aggregate]
