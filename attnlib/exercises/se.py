"""Exercises of the SE chapter (``book/se.md``): the SE gate, and SE on channels-last feature maps."""

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


def _nhwc_case(gen):
    C = randint(gen, 6, 40)
    B, H, W = randint(gen, 1, 3), randint(gen, 2, 6), randint(gen, 3, 7)
    se = make_block("se", C, reduction=(2, 3, 4)[randint(gen, 0, 2)], gen=gen)
    x = randn(gen, B, H, W, C)
    args = (x, se.fc1.weight.detach(), se.fc1.bias.detach(), se.fc2.weight.detach(), se.fc2.bias.detach())
    with torch.no_grad():
        expected = se(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    return Case(args, expected, describe(x=x, W1=args[1], W2=args[3]))


def se_channels_last(x, W1, b1, W2, b2):
    z = x.mean(dim=(1, 2))                     # squeeze over H and W, now axes 1 and 2: (B, C)
    s = torch.sigmoid(torch.relu(z @ W1.T + b1) @ W2.T + b2)  # excitation: (B, C)
    return x * s[:, None, None, :]             # gate shaped (B, 1, 1, C): (B, H, W, C)


def _nhwc_gate(z, W1, b1, W2, b2):
    return torch.sigmoid(torch.relu(z @ W1.T + b1) @ W2.T + b2)


channels_last = Exercise(
    key="se.channels_last",
    title="SE on channels-last feature maps",
    signature="se_channels_last(x, W1, b1, W2, b2)",
    task="x has shape (B, H, W, C), channels last (as in TensorFlow or a ViT's token grid); W1, b1, W2, b2 "
         "are SE's two layers as in the previous exercise. Return the SE block's output, also (B, H, W, C), "
         "without permuting x to (B, C, H, W).",
    make_case=_nhwc_case,
    solution=se_channels_last,
    mistakes=[
        Mistake("nchw_output", lambda x, *w: (x * _nhwc_gate(x.mean(dim=(1, 2)), *w)[:, None, None, :])
                .permute(0, 3, 1, 2),
                "your output is (B, C, H, W): the input is channels-last, and so must the output be."),
        Mistake("mean_h_only", lambda x, *w: x * _nhwc_gate(x.mean(dim=1), *w)[:, None],
                "you averaged over axis 1 only (H): the squeeze averages over both spatial axes, 1 and 2 in "
                "this layout, so each channel gets one gate."),
        Mistake("mean_w_only", lambda x, *w: x * _nhwc_gate(x.mean(dim=2), *w)[:, :, None],
                "you averaged over axis 2 only (W): the squeeze averages over both spatial axes, 1 and 2 in "
                "this layout."),
        Mistake("no_squeeze", lambda x, *w: x * _nhwc_gate(x, *w),
                "you applied the MLP at every position: squeeze first (average over H and W), so that the "
                "gate is one number per channel and sample."),
        Mistake("gate_only", lambda x, *w: _nhwc_gate(x.mean(dim=(1, 2)), *w)[:, None, None, :],
                "you returned the gate: this exercise asks for the block's output x * s."),
        Mistake("max_pool", lambda x, *w: x * _nhwc_gate(x.amax(dim=(1, 2)), *w)[:, None, None, :],
                "the squeeze takes each channel's maximum: SE averages."),
    ],
    hints=[
        "In (B, H, W, C) the spatial axes are 1 and 2; an nn.Linear acts on the last axis, which is now C.",
        "Shape the gate (B, 1, 1, C) so that it broadcasts against (B, H, W, C).",
    ],
)

EXERCISES = [gate, channels_last]
