"""Exercises of the ECA chapter (``book/eca.md``): the adaptive kernel size, and the ECA gate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..blocks.eca import eca_kernel_size
from ._framework import Case, Exercise, Mistake, describe, make_block, randint, randn

_CHANNELS = (16, 24, 32, 48, 64, 96, 100, 128, 192, 256, 320, 512, 640, 1000, 1024, 2048)


def _kernel_case(gen):
    C = _CHANNELS[randint(gen, 0, len(_CHANNELS) - 1)]
    gamma, b = ((2, 1), (2, 1), (2, 1), (1.5, 1), (3, 2), (2, 0))[randint(gen, 0, 5)]
    return Case((C, gamma, b), eca_kernel_size(C, gamma, b), describe(C=C, gamma=gamma, b=b))


def eca_k(C, gamma=2, b=1):
    t = int(abs((math.log2(C) + b) / gamma))  # floor of |(log2 C + b) / γ|
    return t if t % 2 == 1 else t + 1         # odd: keep it; even: the next odd number


def _odd_up(t):
    return t if t % 2 else t + 1


kernel_size = Exercise(
    key="eca.kernel_size",
    title="ECA's kernel-size rule",
    signature="eca_k(C, gamma=2, b=1)",
    task="Return ECA's adaptive kernel size k = |(log2 C + b) / γ|_odd (eq. eca-kernel) as an integer, with "
         "the rounding of the paper's formula: take the floor t of |(log2 C + b) / γ|, and use t if it is odd, "
         "t + 1 if it is even.",
    make_case=_kernel_case,
    solution=eca_k,
    trials=24,
    mistakes=[
        Mistake("not_odd", lambda C, g=2, b=1: int(abs((math.log2(C) + b) / g)),
                "some of your kernel sizes are even: an even k has no centre channel and zero padding "
                "(k - 1) / 2 would not keep C gates; make t odd."),
        Mistake("odd_down", lambda C, g=2, b=1: (lambda t: t if t % 2 else t - 1)(int(abs((math.log2(C) + b) / g))),
                "when t is even you went down to t - 1: the paper's rule (and the book) goes up to t + 1 "
                "(C = 128 gives k = 5, not 3)."),
        Mistake("round", lambda C, g=2, b=1: _odd_up(round((math.log2(C) + b) / g)),
                "you rounded (log2 C + b) / γ to the nearest integer before making it odd: the rule takes the "
                "floor first (C = 64 gives t = 3, so k = 3, not 5)."),
        Mistake("ceil", lambda C, g=2, b=1: _odd_up(math.ceil((math.log2(C) + b) / g)),
                "you took the ceiling of (log2 C + b) / γ: the rule takes the floor."),
        Mistake("natural_log", lambda C, g=2, b=1: _odd_up(int(abs((math.log(C) + b) / g))),
                "you used the natural logarithm: the rule uses log2 C (channel counts are powers of two)."),
        Mistake("ignores_args", lambda C, g=2, b=1: _odd_up(int(abs((math.log2(C) + 1) / 2))),
                "right for γ = 2, b = 1 only: use the gamma and b arguments."),
    ],
    hints=[
        "math.log2(C) gives log2 C; int() of a positive number is its floor.",
        "Make t odd by adding 1 when t % 2 == 0.",
    ],
)


def _gate_case(gen):
    C, k = randint(gen, 8, 40), (3, 5, 7)[randint(gen, 0, 2)]
    B, H, W = randint(gen, 1, 3), randint(gen, 2, 6), randint(gen, 3, 7)
    eca = make_block("eca", C, kernel_size=k, gen=gen)
    x, w = randn(gen, B, C, H, W), eca.conv.weight.detach().view(-1)
    with torch.no_grad():
        expected = eca.gate(x)
    return Case((x, w), expected, describe(x=x, w=w))


def eca_gate(x, w):
    k = w.numel()
    y = x.mean(dim=(2, 3))                                        # squeeze: (B, C)
    y = F.conv1d(y[:, None, :], w.view(1, 1, k), padding=k // 2)  # 1-D conv over channels: (B, 1, C)
    return torch.sigmoid(y)[:, 0, :, None, None]                  # (B, C, 1, 1)


def _conv(x, w, pad="zeros", flip=False, pool="mean"):
    k = w.numel()
    y = x.mean(dim=(2, 3)) if pool == "mean" else x.amax(dim=(2, 3))
    y = y[:, None, :]
    kernel = (w.flip(0) if flip else w).view(1, 1, k)
    if pad == "zeros":
        return F.conv1d(y, kernel, padding=k // 2)[:, 0]
    if pad == "circular":
        return F.conv1d(F.pad(y, (k // 2, k // 2), mode="circular"), kernel)[:, 0]
    return F.conv1d(y, kernel)[:, 0]


gate = Exercise(
    key="eca.gate",
    title="The ECA gate",
    signature="eca_gate(x, w)",
    task="x has shape (B, C, H, W); w, of shape (k,) with k odd, holds the 1-D kernel. Return the gate "
         "ω = σ(C1D_k(GAP(x))) of eq. eca-excite as a (B, C, 1, 1) tensor: the kernel slides along the "
         "channel axis, with zero padding so that there is one gate per channel, and no bias.",
    make_case=_gate_case,
    solution=eca_gate,
    mistakes=[
        Mistake("no_padding", lambda x, w: torch.sigmoid(_conv(x, w, pad=None))[:, :, None, None],
                "you get C - k + 1 gates: pad the channel axis with (k - 1) / 2 zeros on each side so "
                "that each of the C channels has its gate."),
        Mistake("circular", lambda x, w: torch.sigmoid(_conv(x, w, pad="circular"))[:, :, None, None],
                "your padding wraps around (the first channels see the last ones): ECA pads with zeros."),
        Mistake("flipped", lambda x, w: torch.sigmoid(_conv(x, w, flip=True))[:, :, None, None],
                "your kernel is reversed: nn.Conv1d (and F.conv1d) compute a cross-correlation, "
                "out_c = Σ_j w_j y_{c + j - (k-1)/2}, with no flip."),
        Mistake("softmax", lambda x, w: torch.softmax(_conv(x, w), dim=1)[:, :, None, None],
                "you normalised with a softmax over the channels: ECA's gate is a sigmoid per channel."),
        Mistake("max_pool", lambda x, w: torch.sigmoid(_conv(x, w, pool="max"))[:, :, None, None],
                "the squeeze takes each channel's maximum: ECA averages over H and W (eq. eca-squeeze)."),
        Mistake("no_sigmoid", lambda x, w: _conv(x, w)[:, :, None, None],
                "these are the gate's logits: finish with a sigmoid."),
    ],
    hints=[
        "After the squeeze, treat the C averages of a sample as a 1-D signal with one input channel: "
        "shape (B, 1, C).",
        "F.conv1d(signal, kernel, padding=...) wants the kernel shaped (out_channels, in_channels, k) = (1, 1, k).",
    ],
)

EXERCISES = [kernel_size, gate]
