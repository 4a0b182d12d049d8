"""Exercises of the SE chapter (``book/se.md``): the SE gate, and SE's parameter count."""

from __future__ import annotations

import torch

from ._framework import Case, Exercise, Mistake, describe, make_block, randint, randn


def _gate_case(gen):
    C = randint(gen, 6, 40)
    r = (2, 3, 4)[randint(gen, 0, 2)]
    B, H, W = randint(gen, 1, 3), randint(gen, 2, 6), randint(gen, 3, 7)
    se = make_block("se", C, reduction=r, gen=gen)
    x = randn(gen, B, C, H, W)
    args = (x, se.fc1.weight.detach(), se.fc1.bias.detach(), se.fc2.weight.detach(), se.fc2.bias.detach())
    with torch.no_grad():
        expected = se.gate(x)
    return Case(args, expected, describe(x=x, W1=args[1], W2=args[3]))


def se_gate(x, W1, b1, W2, b2):
    z = x.mean(dim=(2, 3))                     # squeeze: (B, C)
    h = torch.relu(z @ W1.T + b1)              # first layer: (B, C_r)
    s = torch.sigmoid(h @ W2.T + b2)           # excitation: (B, C)
    return s[:, :, None, None]                 # (B, C, 1, 1)


def _logits(x, W1, b1, W2, b2, pool=None, act=torch.relu):
    z = x.mean(dim=(2, 3)) if pool is None else pool(x)
    return act(z @ W1.T + b1) @ W2.T + b2


gate = Exercise(
    key="se.gate",
    title="The SE gate",
    signature="se_gate(x, W1, b1, W2, b2)",
    task="x has shape (B, C, H, W); W1 (C_r, C) and b1 (C_r,) are the first layer, W2 (C, C_r) and b2 (C,) "
         "the second. Return the excitation s of eq. se-excite, shaped (B, C, 1, 1) so that x * s is the "
         "block's output.",
    make_case=_gate_case,
    solution=se_gate,
    mistakes=[
        Mistake("no_sigmoid", lambda x, *w: _logits(x, *w)[:, :, None, None],
                "the values are the gate's logits: the excitation ends in a sigmoid, so that every gate lies "
                "in (0, 1)."),
        Mistake("softmax_channels", lambda x, *w: torch.softmax(_logits(x, *w), dim=1)[:, :, None, None],
                "you normalised the gates with a softmax over the channels: SE uses a sigmoid, so each "
                "channel is kept or suppressed independently (a softmax makes the C gates sum to 1)."),
        Mistake("no_relu", lambda x, *w: torch.sigmoid(_logits(x, *w, act=lambda t: t))[:, :, None, None],
                "the ReLU between the two layers is missing (eq. se-excite: W2 δ(W1 z + b1) + b2)."),
        Mistake("max_pool", lambda x, *w: torch.sigmoid(_logits(x, *w, pool=lambda t: t.amax(dim=(2, 3))))
                [:, :, None, None],
                "the squeeze takes each channel's maximum: SE's squeeze is the global *average* (eq. "
                "se-squeeze)."),
        Mistake("flat", lambda x, *w: torch.sigmoid(_logits(x, *w)),
                "the values are right but the gate is (B, C): reshape it to (B, C, 1, 1) so that x * s "
                "broadcasts over H and W."),
        Mistake("scaled", lambda x, *w: x * torch.sigmoid(_logits(x, *w))[:, :, None, None],
                "you returned the block's output x * s: this exercise asks for the gate s itself."),
    ],
    hints=[
        "Three steps: average each channel over H and W, two linear layers with a ReLU between them, a "
        "sigmoid.",
        "An nn.Linear with weight W computes z @ W.T + b; z has shape (B, C) after the squeeze.",
        "Index with [:, :, None, None] (or .view(B, C, 1, 1)) to return the gate as a (B, C, 1, 1) map.",
    ],
)


def _params_case(gen):
    r = (2, 4, 8, 16, 3, 5)[randint(gen, 0, 5)]
    C = randint(gen, r, 600)
    expected = sum(p.numel() for p in make_block("se", C, reduction=r, gen=gen).parameters())
    return Case((C, r), expected, describe(C=C, r=r))


def se_params(C, r):
    C_r = C // r                               # the bottleneck width, floored
    return 2 * C * C_r + C_r + C               # W1, W2, then the biases b1 and b2


params = Exercise(
    key="se.params",
    title="SE's parameter count",
    signature="se_params(C, r)",
    task="Return the number of parameters of one SE block with C channels and reduction ratio r (integers), "
         "as an integer. It is compared with sum(p.numel() for p in block.parameters()).",
    make_case=_params_case,
    solution=se_params,
    trials=12,
    mistakes=[
        Mistake("no_bias", lambda C, r: 2 * C * (C // r),
                "you counted the two weight matrices only: both linear layers have a bias."),
        Mistake("missing_b1", lambda C, r: 2 * C * (C // r) + C,
                "the bias of the first layer (C_r values) is missing."),
        Mistake("missing_b2", lambda C, r: 2 * C * (C // r) + C // r,
                "the bias of the second layer (C values) is missing."),
        Mistake("no_floor", lambda C, r: 2 * C * (C / r) + C / r + C,
                "right when r divides C, wrong otherwise: the bottleneck width is an integer, C_r = floor(C / r)."),
    ],
    hints=[
        "Count W1, b1, W2 and b2 separately, with their shapes from the previous exercise.",
        "C_r is an integer: use floor division.",
    ],
)

EXERCISES = [gate, params]
