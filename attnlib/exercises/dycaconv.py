"""Exercises of the DyCAConv chapter (``book/dycaconv.md``): the mixed gate (a convex *sum* of the two
directional gates), and the block's output (the convolution runs on the gated input)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._framework import Case, Exercise, Mistake, describe, make_block, randint, randn


def _dyca(gen, **kwargs):
    C = randint(gen, 4, 16)
    B, H, W = randint(gen, 2, 3), randint(gen, 3, 6), randint(gen, 7, 9)
    block = make_block("dycaconv", C, C, (1, 3)[randint(gen, 0, 1)], reduction=2, min_reduced_channels=2,
                       gen=gen, std=2.0, **kwargs)
    return block, randn(gen, B, C, H, W)


def _gate_case(gen):
    block, x = _dyca(gen)
    with torch.no_grad():
        g_h, g_w = block.directional_gates(x)
        expected = block.gate(x)[0]
    args = (x, g_h, g_w, block.fc_pi.weight.detach(), block.fc_pi.bias.detach())
    return Case(args, expected, describe(x=x, g_h=g_h, g_w=g_w, W_pi=args[3]))


def dyca_gate(x, g_h, g_w, W_pi, b_pi):
    pi = torch.softmax(x.mean(dim=(2, 3)) @ W_pi.T + b_pi, dim=1)  # mixing weights: (B, 2)
    p0 = pi[:, 0, None, None, None]                                # weight of the column gate: (B, 1, 1, 1)
    p1 = pi[:, 1, None, None, None]                                # weight of the row gate: (B, 1, 1, 1)
    return p0 * g_w + p1 * g_h                                     # convex sum: (B, C, H, W)


def _pi(x, W, b, norm=lambda t: torch.softmax(t, dim=1)):
    p = norm(x.mean(dim=(2, 3)) @ W.T + b)
    return p[:, 0, None, None, None], p[:, 1, None, None, None]


def _mix(x, g_h, g_w, W, b, **kw):
    p0, p1 = _pi(x, W, b, **kw)
    return p0 * g_w + p1 * g_h


gate = Exercise(
    key="dycaconv.gate",
    title="DyCAConv's mixed gate",
    signature="dyca_gate(x, g_h, g_w, W_pi, b_pi)",
    task="x has shape (B, C, H, W); g_h (B, C, H, 1) and g_w (B, C, 1, W) are coordinate attention's row and "
         "column gates; W_pi (2, C) and b_pi (2,) the mixing layer. Return the gate a of eqs. dycaconv-mix "
         "and dycaconv-gate, shape (B, C, H, W): π = softmax(W_π GAP(x) + b_π), then π₀ weighs the column "
         "gate g_w and π₁ the row gate g_h.",
    make_case=_gate_case,
    solution=dyca_gate,
    mistakes=[
        Mistake("product", lambda x, g_h, g_w, W, b: g_h * g_w,
                "you multiplied the two gates, as coordinate attention does: DyCAConv *adds* them, weighted "
                "by π (a convex sum, π₀ g_w + π₁ g_h)."),
        Mistake("weighted_product", lambda x, g_h, g_w, W, b: (lambda p: p[0] * p[1] * g_h * g_w)(_pi(x, W, b)),
                "you multiplied the weighted gates: the gate is the convex *sum* π₀ g_w + π₁ g_h."),
        Mistake("pi_swapped", lambda x, g_h, g_w, W, b: _mix(x, g_w, g_h, W, b),
                "π₀ and π₁ are swapped: π₀ weighs the column gate g_w, π₁ the row gate g_h (eq. dycaconv-gate)."),
        Mistake("sigmoid", lambda x, g_h, g_w, W, b: _mix(x, g_h, g_w, W, b, norm=torch.sigmoid),
                "you used a sigmoid per weight: π is a softmax over its two entries, so π₀ + π₁ = 1 and the "
                "gate stays in (0, 1)."),
        Mistake("softmax_batch", lambda x, g_h, g_w, W, b: _mix(x, g_h, g_w, W, b,
                                                                norm=lambda t: torch.softmax(t, dim=0)),
                "your softmax runs over the batch: each sample's two weights must sum to 1."),
        Mistake("average", lambda x, g_h, g_w, W, b: 0.5 * (g_h + g_w),
                "you averaged the two gates with fixed weights 1/2: the weights π depend on the sample, "
                "through the mixing layer."),
        Mistake("gated_input", lambda x, g_h, g_w, W, b: x * _mix(x, g_h, g_w, W, b),
                "you returned the gated input x ⊙ a: this exercise asks for the gate a."),
    ],
    hints=[
        "π comes from the global average of x (shape (B, C)) through the linear layer: (B, 2).",
        "Give π₀ and π₁ the shape (B, 1, 1, 1); (B, C, 1, W) + (B, C, H, 1) broadcasts to (B, C, H, W).",
    ],
)


def _out_case(gen):
    block, x = _dyca(gen)
    with torch.no_grad():
        a = block.gate(x)[0]
        expected = block(x)
    args = (x, a, block.conv.weight.detach(), block.bn)
    return Case(args, expected, describe(x=x, a=a, weight=args[2]))


def dyca_out(x, a, weight, norm):
    k = weight.shape[-1]
    u = x * a                                          # gate the input: (B, C, H, W)
    return F.silu(norm(F.conv2d(u, weight, padding=k // 2)))  # Conv-BN-SiLU: (B, C_out, H, W)


def _conv(t, w):
    return F.conv2d(t, w, padding=w.shape[-1] // 2)


output = Exercise(
    key="dycaconv.output",
    title="DyCAConv's output",
    signature="dyca_out(x, a, weight, norm)",
    task="x has shape (B, C, H, W); a (B, C, H, W) is the gate of the previous exercise; weight (C_out, C, k, "
         "k) is the convolution W (no bias, stride 1, padding k // 2) and norm the BatchNorm2d after it (eval "
         "mode). Return out of eqs. dycaconv-modulate and dycaconv-conv, shape (B, C_out, H, W).",
    make_case=_out_case,
    solution=dyca_out,
    mistakes=[
        Mistake("conv_on_attention", lambda x, a, w, n: x * F.silu(n(_conv(a, w))),
                "you applied the convolution to the attention branch and multiplied x by the result (the "
                "popular explanation's order): the convolution runs on the gated input u = x ⊙ a."),
        Mistake("gate_after_conv", lambda x, a, w, n: F.silu(n(_conv(x, w))) * a,
                "you multiplied the gate with the convolution's output: the gate multiplies the *input* x, and "
                "the convolution follows."),
        Mistake("relu", lambda x, a, w, n: torch.relu(n(_conv(x * a, w))),
                "the activation is ReLU: DyCAConv ends in SiLU (x · σ(x))."),
        Mistake("hardswish", lambda x, a, w, n: F.hardswish(n(_conv(x * a, w))),
                "the activation is h-swish (the attention branch's): the output unit is Conv-BN-SiLU."),
        Mistake("no_norm", lambda x, a, w, n: F.silu(_conv(x * a, w)),
                "the BatchNorm between the convolution and the SiLU is missing."),
        Mistake("no_gate", lambda x, a, w, n: F.silu(n(_conv(x, w))),
                "the gate is not used: multiply x by a before the convolution."),
    ],
    hints=["Three steps in order: gate the input, convolve, normalise and activate."],
)

EXERCISES = [gate, output]
