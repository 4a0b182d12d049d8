"""Exercises of the SK chapter (``book/sk.md``): fuse-and-select weights, and the whole block."""

from __future__ import annotations

import torch

from ._framework import Case, Exercise, Mistake, describe, make_block, randint, randn


def _sk(gen):
    G = (1, 2, 4)[randint(gen, 0, 2)]
    C = G * randint(gen, 2, 6)
    M = randint(gen, 2, 3)
    sk = make_block("sk", C, num_branches=M, groups=G, reduction=2, min_width=3, gen=gen)
    B, H, W = randint(gen, 2, 3), randint(gen, 3, 6), randint(gen, 4, 7)
    return sk, randn(gen, B, C, H, W)


def _attention_case(gen):
    sk, x = _sk(gen)
    with torch.no_grad():
        u = sk.split(x)
        expected = sk.attention(u)[..., 0, 0]
    args = (u, sk.fc.weight.detach(), sk.fc_bn, sk.select.weight.detach())
    return Case(args, expected, describe(u=u, W=args[1], A=args[3]))


def sk_attention(u, W, norm, A):
    B, M, C = u.shape[:3]
    s = u.sum(dim=1).mean(dim=(2, 3))          # fuse by sum, then squeeze: (B, C)
    z = torch.relu(norm(s @ W.T))              # compact descriptor: (B, d)
    logits = (z @ A.T).view(B, M, C)           # one row of C logits per branch: (B, M, C)
    return torch.softmax(logits, dim=1)        # softmax across the branches: (B, M, C)


def _wrong_attention(u, W, norm, A, fuse="sum", pool="mean", layout="MC", act="softmax1"):
    B, M, C = u.shape[:3]
    f = u.sum(dim=1) if fuse == "sum" else u.mean(dim=1)
    s = f.mean(dim=(2, 3)) if pool == "mean" else f.amax(dim=(2, 3))
    z = torch.relu(norm(s @ W.T))
    logits = z @ A.T
    logits = logits.view(B, M, C) if layout == "MC" else logits.view(B, C, M).transpose(1, 2)
    if act == "softmax2":
        return torch.softmax(logits, dim=2)
    if act == "sigmoid":
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=1)


attention = Exercise(
    key="sk.attention",
    title="SK's fuse-and-select weights",
    signature="sk_attention(u, W, norm, A)",
    task="u has shape (B, M, C, H, W): the outputs of the M branches. W (d, C) is the fuse layer (no bias), "
         "norm the BatchNorm1d that follows it (call it as norm(t) on a (B, d) tensor; it is in eval mode), "
         "A (M C, d) the stacked select matrices [A_0; ...; A_{M-1}] (no bias). Return the branch weights "
         "a of eq. sk-select, shape (B, M, C): fuse by sum, squeeze, z = ReLU(norm(W s)), softmax.",
    make_case=_attention_case,
    solution=sk_attention,
    mistakes=[
        Mistake("softmax_channels", lambda *a: _wrong_attention(*a, act="softmax2"),
                "your softmax runs over the channels: SK's softmax runs across the M branches, so that for "
                "every channel the branch weights sum to 1 (eq. sk-select)."),
        Mistake("interleaved", lambda *a: _wrong_attention(*a, layout="CM"),
                "the logits are split the wrong way: A stacks the branches, A = [A_0; ...; A_{M-1}], so the "
                "M C logits of a sample are M consecutive blocks of C (view(B, M, C)), not C blocks of M."),
        Mistake("sigmoid", lambda *a: _wrong_attention(*a, act="sigmoid"),
                "you used a sigmoid per branch: SK makes the branches compete with a softmax across them."),
        Mistake("mean_fuse", lambda *a: _wrong_attention(*a, fuse="mean"),
                "you fused the branches by averaging: SK fuses them by element-wise *sum* (eq. sk-fuse-sum); "
                "with BatchNorm after the fuse layer the factor 1/M matters."),
        Mistake("max_pool", lambda *a: _wrong_attention(*a, pool="max"),
                "the squeeze takes the maximum over H and W: SK uses global average pooling (eq. sk-squeeze)."),
    ],
    hints=[
        "u.sum(dim=1) fuses the branches; then average over H and W.",
        "z @ A.T has M C columns per sample; reshape to (B, M, C) and normalise along the branch axis.",
    ],
)


def _forward_case(gen):
    sk, x = _sk(gen)
    with torch.no_grad():
        expected = sk(x)
    branches = list(sk.branches)
    args = (x, branches, sk.fc.weight.detach(), sk.fc_bn, sk.select.weight.detach())
    return Case(args, expected, describe(x=x, W=args[2], A=args[4]) + f", {len(branches)} branches")


def sk_forward(x, branches, W, norm, A):
    u = torch.stack([branch(x) for branch in branches], dim=1)  # split: (B, M, C, H, W)
    a = sk_attention(u, W, norm, A)                              # (B, M, C)
    return (a[..., None, None] * u).sum(dim=1)                   # select: (B, C, H, W)


def _u(x, branches):
    return torch.stack([b(x) for b in branches], dim=1)


forward = Exercise(
    key="sk.forward",
    title="The whole SK block",
    signature="sk_forward(x, branches, W, norm, A)",
    task="x has shape (B, C, H, W); branches is a list of M callables (conv + BN + ReLU, 3x3 with dilation "
         "1, 2, ...), each mapping x to (B, C, H, W); W, norm and A are those of the previous exercise (you "
         "may call your sk_attention). Return the block's output V = Σ_m a_m ⊙ U_m (eq. sk-aggregate).",
    make_case=_forward_case,
    solution=sk_forward,
    mistakes=[
        Mistake("equal_average", lambda x, br, *w: _u(x, br).mean(dim=1),
                "you averaged the branches with equal weights: each branch must be weighted by its attention "
                "a_m, per sample and per channel."),
        Mistake("fused_only", lambda x, br, *w: _u(x, br).sum(dim=1),
                "you returned the fused sum U = Σ_m U_m: the selection step, weighting each branch by a_m, "
                "is missing."),
        Mistake("softmax_channels", lambda x, br, W, n, A: (_wrong_attention(_u(x, br), W, n, A, act="softmax2")
                [..., None, None] * _u(x, br)).sum(dim=1),
                "your branch weights are normalised over the channels: SK's softmax runs across the branches."),
        Mistake("interleaved", lambda x, br, W, n, A: (_wrong_attention(_u(x, br), W, n, A, layout="CM")
                [..., None, None] * _u(x, br)).sum(dim=1),
                "the logits are split the wrong way: A stacks the branches, so reshape them to (B, M, C)."),
        Mistake("gate_input", lambda x, br, W, n, A: (_wrong_attention(_u(x, br), W, n, A)[..., None, None]
                * x[:, None]).sum(dim=1),
                "you weighted the input x instead of the branch outputs U_m: V = Σ_m a_m ⊙ U_m."),
    ],
    hints=[
        "Stack the branch outputs along a new axis 1: shape (B, M, C, H, W).",
        "Broadcast a (B, M, C) against u (B, M, C, H, W) with a[..., None, None], multiply, and sum over the "
        "branch axis.",
    ],
)

EXERCISES = [attention, forward]
