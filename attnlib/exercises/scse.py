"""Exercises of the scSE chapter (``book/scse.md``): the spatial squeeze gate, and the combined block."""

from __future__ import annotations

import torch

from ._framework import Case, Exercise, Mistake, describe, make_block, randint, randn


def _sse_case(gen):
    C = randint(gen, 3, 32)
    B, H, W = randint(gen, 1, 3), randint(gen, 3, 7), randint(gen, 4, 8)
    block = make_block("sse", C, gen=gen)
    x = randn(gen, B, C, H, W)
    w, b = block.conv.weight.detach().view(-1), block.conv.bias.detach()
    with torch.no_grad():
        expected = block.gate(x)
    return Case((x, w, b), expected, describe(x=x, w=w, b=b))


def sse_gate(x, w, b):
    q = torch.einsum("bchw,c->bhw", x, w) + b  # 1x1 conv C -> 1: (B, H, W)
    return torch.sigmoid(q)[:, None]           # (B, 1, H, W)


def _q(x, w, b):
    return (torch.einsum("bchw,c->bhw", x, w) + b)[:, None]


sse = Exercise(
    key="scse.sse_gate",
    title="The spatial squeeze gate (sSE)",
    signature="sse_gate(x, w, b)",
    task="x has shape (B, C, H, W); w (C,) and b (1,) are the weights of the 1x1 convolution C -> 1. Return "
         "the spatial gate q = σ(W_sq ⋆ x) of eq. scse-spatial, shape (B, 1, H, W).",
    make_case=_sse_case,
    solution=sse_gate,
    mistakes=[
        Mistake("softmax_positions", lambda x, w, b: torch.softmax(_q(x, w, b).flatten(2), dim=-1).view_as(_q(x, w, b)),
                "you normalised with a softmax over the positions (that is GC's context mask): sSE gates each "
                "pixel independently with a sigmoid."),
        Mistake("channel_mean", lambda x, w, b: torch.sigmoid(x.mean(dim=1, keepdim=True)),
                "your gate averages the channels: sSE projects them with learned weights w (a 1x1 "
                "convolution), then adds the bias."),
        Mistake("no_bias", lambda x, w, b: torch.sigmoid(_q(x, w, b) - b),
                "the bias b of the 1x1 convolution is missing."),
        Mistake("no_sigmoid", lambda x, w, b: _q(x, w, b),
                "these are the gate's logits: finish with a sigmoid."),
        Mistake("per_channel", lambda x, w, b: torch.sigmoid(x * w[:, None, None] + b),
                "you scaled each channel by its weight but did not sum over the channels: the projection "
                "maps the C channels of a pixel to one number."),
    ],
    hints=[
        "A 1x1 convolution from C channels to 1 is a weighted sum over the channel axis at every pixel.",
        "torch.einsum('bchw,c->bhw', x, w) computes it; add b and keep a channel axis of size 1.",
    ],
)


def _block_case(gen):
    C, r = randint(gen, 4, 32), 2
    B, H, W = randint(gen, 1, 3), randint(gen, 3, 7), randint(gen, 4, 8)
    block = make_block("scse", C, reduction=r, gen=gen)
    x = randn(gen, B, C, H, W)
    args = (x, block.cse.fc1.weight.detach(), block.cse.fc1.bias.detach(), block.cse.fc2.weight.detach(),
            block.cse.fc2.bias.detach(), block.sse.conv.weight.detach().view(-1), block.sse.conv.bias.detach())
    with torch.no_grad():
        expected = block(x)
    return Case(args, expected, describe(x=x, W1=args[1], W2=args[3], w=args[5]))


def scse_block(x, W1, b1, W2, b2, w, b):
    z = x.mean(dim=(2, 3))                                             # (B, C)
    s = torch.sigmoid(torch.relu(z @ W1.T + b1) @ W2.T + b2)[:, :, None, None]  # cSE gate: (B, C, 1, 1)
    q = sse_gate(x, w, b)                                              # sSE gate: (B, 1, H, W)
    return x * s + x * q                                               # the paper's addition: (B, C, H, W)


def _s(x, W1, b1, W2, b2):
    return torch.sigmoid(torch.relu(x.mean(dim=(2, 3)) @ W1.T + b1) @ W2.T + b2)[:, :, None, None]


block = Exercise(
    key="scse.block",
    title="The scSE block, as the paper combines it",
    signature="scse_block(x, W1, b1, W2, b2, w, b)",
    task="x has shape (B, C, H, W); W1, b1, W2, b2 are cSE's two linear layers (as in SE, r = 2), w (C,) and "
         "b (1,) sSE's 1x1 convolution. Return the scSE output of eq. scse-combine, with the MICCAI paper's "
         "combination (the book's default), shape (B, C, H, W).",
    make_case=_block_case,
    solution=scse_block,
    mistakes=[
        Mistake("max", lambda x, W1, b1, W2, b2, w, b: torch.maximum(x * _s(x, W1, b1, W2, b2),
                                                                     x * torch.sigmoid(_q(x, w, b))),
                "you took the element-wise maximum: that is the official code's (and the journal version's) "
                "combination; the MICCAI paper, and this exercise, *add* the two recalibrated maps."),
        Mistake("product", lambda x, W1, b1, W2, b2, w, b: x * _s(x, W1, b1, W2, b2) * torch.sigmoid(_q(x, w, b)),
                "you multiplied the two gates (x · s · q, as coordinate attention combines its gates): scSE "
                "adds the two recalibrated maps, x·s + x·q."),
        Mistake("mean", lambda x, W1, b1, W2, b2, w, b: (x * _s(x, W1, b1, W2, b2)
                                                         + x * torch.sigmoid(_q(x, w, b))) / 2,
                "you averaged the two recalibrated maps: the paper adds them, without the factor 1/2."),
        Mistake("sequential", lambda x, W1, b1, W2, b2, w, b: (lambda y: y * torch.sigmoid(_q(y, w, b)))(
                x * _s(x, W1, b1, W2, b2)),
                "you applied sSE to the output of cSE, in sequence (as CBAM does): in scSE both gates see "
                "the same input x and run in parallel."),
        Mistake("cse_only", lambda x, W1, b1, W2, b2, w, b: x * _s(x, W1, b1, W2, b2),
                "only the channel branch is there: add the spatial branch x · q."),
    ],
    hints=[
        "Compute both gates from x: s of shape (B, C, 1, 1), q of shape (B, 1, H, W).",
        "Each gate rescales x on its own; the two results are then combined element-wise, as the paper says.",
    ],
)

EXERCISES = [sse, block]
