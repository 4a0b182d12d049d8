"""Exercises of the CBAM chapter (``book/cbam.md``): the channel gate, and the spatial gate."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._framework import Case, Exercise, Mistake, describe, make_block, randint, randn


def _channel_case(gen):
    C, r = randint(gen, 6, 40), (2, 3, 4)[randint(gen, 0, 2)]
    B, H, W = randint(gen, 1, 3), randint(gen, 2, 6), randint(gen, 3, 7)
    block = make_block("cbam_channel", C, reduction=r, gen=gen)
    x = randn(gen, B, C, H, W)
    args = (x, block.fc1.weight.detach(), block.fc1.bias.detach(), block.fc2.weight.detach(),
            block.fc2.bias.detach())
    with torch.no_grad():
        expected = block.gate(x)
    return Case(args, expected, describe(x=x, W0=args[1], W1=args[3]))


def cbam_channel_gate(x, W0, b0, W1, b1):
    def mlp(v):                                # the shared MLP: (B, C) -> (B, C)
        return torch.relu(v @ W0.T + b0) @ W1.T + b1

    avg = x.mean(dim=(2, 3))                   # (B, C)
    mx = x.amax(dim=(2, 3))                    # (B, C)
    return torch.sigmoid(mlp(avg) + mlp(mx))[:, :, None, None]  # (B, C, 1, 1)


def _mlp(v, W0, b0, W1, b1):
    return torch.relu(v @ W0.T + b0) @ W1.T + b1


def _pools(x):
    return x.mean(dim=(2, 3)), x.amax(dim=(2, 3))


def _g(t):
    return t[:, :, None, None]


channel_gate = Exercise(
    key="cbam.channel_gate",
    title="CBAM's channel gate",
    signature="cbam_channel_gate(x, W0, b0, W1, b1)",
    task="x has shape (B, C, H, W); W0 (C_r, C), b0, W1 (C, C_r), b1 are the shared MLP's two layers. Return "
         "M_c = σ(MLP(AvgPool(x)) + MLP(MaxPool(x))) (eq. cbam-channel-gate), shape (B, C, 1, 1).",
    make_case=_channel_case,
    solution=cbam_channel_gate,
    mistakes=[
        Mistake("product", lambda x, *w: _g(torch.sigmoid(_mlp(_pools(x)[0], *w) * _mlp(_pools(x)[1], *w))),
                "you multiplied the two MLP outputs: CBAM *sums* them before the sigmoid."),
        Mistake("sigmoid_each", lambda x, *w: _g(torch.sigmoid(_mlp(_pools(x)[0], *w))
                                               + torch.sigmoid(_mlp(_pools(x)[1], *w))),
                "you applied a sigmoid to each descriptor and added the results (values up to 2): sum the "
                "two MLP outputs first, then one sigmoid."),
        Mistake("avg_only", lambda x, *w: _g(torch.sigmoid(_mlp(_pools(x)[0], *w))),
                "only the average-pooled descriptor is used (that is SE): CBAM adds the MLP of the "
                "max-pooled one."),
        Mistake("max_only", lambda x, *w: _g(torch.sigmoid(_mlp(_pools(x)[1], *w))),
                "only the max-pooled descriptor is used: CBAM adds the MLPs of both the average- and the "
                "max-pooled descriptors."),
        Mistake("bias_once", lambda x, W0, b0, W1, b1: _g(torch.sigmoid(
                (torch.relu(_pools(x)[0] @ W0.T + b0) + torch.relu(_pools(x)[1] @ W0.T + b0)) @ W1.T + b1)),
                "you summed the hidden activations before the second layer, so its bias b1 enters once: "
                "the MLP is applied to each descriptor in full, and b1 enters twice (eq. cbam-channel-mlp)."),
        Mistake("pooled_together", lambda x, *w: _g(torch.sigmoid(_mlp(_pools(x)[0] + _pools(x)[1], *w))),
                "you added the two descriptors before the MLP: the MLP is non-linear, so apply it to each "
                "descriptor and add the outputs."),
    ],
    hints=[
        "Write the shared MLP as a small inner function and call it twice.",
        "x.amax(dim=(2, 3)) is the max pool over H and W.",
    ],
)


def _spatial_case(gen):
    C, k = randint(gen, 3, 24), (3, 5, 7)[randint(gen, 0, 2)]
    B, H, W = randint(gen, 1, 3), randint(gen, 7, 9), randint(gen, 8, 10)
    block = make_block("cbam_spatial", C, kernel_size=k, gen=gen)
    x = randn(gen, B, C, H, W)
    with torch.no_grad():
        expected = block.gate(x)
    w = block.conv.weight.detach()
    return Case((x, w), expected, describe(x=x, w=w))


def cbam_spatial_gate(x, w):
    avg = x.mean(dim=1, keepdim=True)          # mean over channels: (B, 1, H, W)
    mx = x.amax(dim=1, keepdim=True)           # max over channels: (B, 1, H, W)
    f = torch.cat([avg, mx], dim=1)            # [avg; max]: (B, 2, H, W)
    k = w.shape[-1]
    return torch.sigmoid(F.conv2d(f, w, padding=k // 2))  # (B, 1, H, W)


def _spatial(x, w, order="avg_max", reduce="mean", pad=True, act=torch.sigmoid):
    avg = x.mean(dim=1, keepdim=True) if reduce == "mean" else x.sum(dim=1, keepdim=True)
    mx = x.amax(dim=1, keepdim=True)
    f = torch.cat([avg, mx] if order == "avg_max" else [mx, avg], dim=1)
    return act(F.conv2d(f, w, padding=w.shape[-1] // 2 if pad else 0))


spatial_gate = Exercise(
    key="cbam.spatial_gate",
    title="CBAM's spatial gate",
    signature="cbam_spatial_gate(x, w)",
    task="x has shape (B, C, H, W); w, shape (1, 2, k, k), is the convolution f^{k×k} (no bias). Return the "
         "spatial gate M_s = σ(f^{k×k}([AvgPool(x); MaxPool(x)])) of eq. cbam-spatial-gate, the pools running "
         "over the channel axis, in the paper's order (average first), shape (B, 1, H, W).",
    make_case=_spatial_case,
    solution=cbam_spatial_gate,
    mistakes=[
        Mistake("swapped", lambda x, w: _spatial(x, w, order="max_avg"),
                "your descriptor is [max; avg]: that is the official code's order; the paper (and the book's "
                "default) puts the average first, [avg; max], and the kernel's input channel 0 sees it."),
        Mistake("sum", lambda x, w: _spatial(x, w, reduce="sum"),
                "your first map sums over the channels: CBAM averages (its descriptor would otherwise grow "
                "with C)."),
        Mistake("no_padding", lambda x, w: _spatial(x, w, pad=False),
                "the gate is smaller than the feature map: pad the convolution with k // 2 zeros so that "
                "every pixel gets a gate."),
        Mistake("no_sigmoid", lambda x, w: _spatial(x, w, act=lambda t: t),
                "these are the gate's logits: finish with a sigmoid."),
        Mistake("scaled", lambda x, w: x * _spatial(x, w),
                "you returned the refined features x * M_s: this exercise asks for the gate M_s."),
    ],
    hints=[
        "Pool over dim=1 with keepdim=True to keep (B, 1, H, W) maps, then concatenate them along dim=1.",
        "F.conv2d(f, w, padding=...) with w of shape (1, 2, k, k) maps (B, 2, H, W) to (B, 1, H, W).",
    ],
)

EXERCISES = [channel_gate, spatial_gate]
