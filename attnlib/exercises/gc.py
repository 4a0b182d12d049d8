"""Exercises of the GC chapter (``book/gc.md``): context pooling, and additive fusion."""

from __future__ import annotations

import torch

from ._framework import Case, Exercise, Mistake, describe, make_block, randint, randn


def _gc(gen, **kwargs):
    C = randint(gen, 4, 32)
    B, H, W = randint(gen, 2, 3), randint(gen, 3, 6), randint(gen, 4, 7)
    return make_block("gc", C, reduction=2, gen=gen, **kwargs), randn(gen, B, C, H, W)


def _context_case(gen):
    block, x = _gc(gen)
    w = block.conv_mask.weight.detach().view(-1)
    with torch.no_grad():
        expected = block.context(x)[0]
    return Case((x, w), expected, describe(x=x, w_k=w))


def gc_context(x, w_k):
    B, C, H, W = x.shape
    logits = torch.einsum("bcn,c->bn", x.flatten(2), w_k)  # one logit per position: (B, N)
    alpha = torch.softmax(logits, dim=1)                     # over the N positions: (B, N)
    c = torch.einsum("bcn,bn->bc", x.flatten(2), alpha)      # weighted sum: (B, C)
    return c[:, :, None, None]                               # (B, C, 1, 1)


def _ctx(x, w, norm=lambda t: torch.softmax(t, dim=1)):
    logits = torch.einsum("bcn,c->bn", x.flatten(2), w)
    return torch.einsum("bcn,bn->bc", x.flatten(2), norm(logits))[:, :, None, None]


context = Exercise(
    key="gc.context",
    title="GC's context pooling",
    signature="gc_context(x, w_k)",
    task="x has shape (B, C, H, W); w_k (C,) is the 1x1 convolution C -> 1 (no bias) that scores each "
         "position. Return the global context c = Σ_j softmax_j(w_k · x_j) x_j of eqs. gc-mask, gc-softmax and "
         "gc-context, shape (B, C, 1, 1).",
    make_case=_context_case,
    solution=gc_context,
    mistakes=[
        Mistake("softmax_channel_axis", lambda x, w: _ctx(x, w, norm=torch.ones_like),
                "your weights are all 1: the softmax ran over an axis of size 1 (the mask's channel axis). "
                "Flatten the mask to (B, N) and normalise over the N positions."),
        Mistake("softmax_batch", lambda x, w: _ctx(x, w, norm=lambda t: torch.softmax(t, dim=0)),
                "your softmax runs over the batch: each sample's mask must sum to 1 over its own positions."),
        Mistake("sigmoid", lambda x, w: _ctx(x, w, norm=torch.sigmoid),
                "you used a sigmoid per position: GC normalises the mask with a softmax over the positions, "
                "so the context is a weighted *average*."),
        Mistake("average", lambda x, w: x.mean(dim=(2, 3), keepdim=True),
                "you returned the global average (SE's squeeze): GC weights the positions with the softmax "
                "of the mask w_k · x_j."),
        Mistake("sum_no_softmax", lambda x, w: _ctx(x, w, norm=lambda t: t),
                "the mask's logits weight the positions directly: normalise them with a softmax over the "
                "positions first."),
    ],
    hints=[
        "Flatten the spatial axes: x.flatten(2) has shape (B, C, N).",
        "The logit of position j is the dot product of w_k with the feature vector x_j; torch.einsum does it "
        "for all positions at once.",
    ],
)


def _fusion_case(gen):
    block, x = _gc(gen)
    with torch.no_grad():
        c = block.context(x)[0]
        expected = block(x)
    t = block.channel_add_conv
    return Case((x, c, t), expected, describe(x=x, c=c))


def gc_fuse(x, c, transform):
    return x + transform(c)                    # additive fusion: (B, C, H, W) + (B, C, 1, 1)


fuse = Exercise(
    key="gc.fuse",
    title="GC's fusion (the default, additive)",
    signature="gc_fuse(x, c, transform)",
    task="x has shape (B, C, H, W); c (B, C, 1, 1) is the global context; transform is the bottleneck "
         "transform (conv, LayerNorm, ReLU, conv) as a callable on c. Return the block's output with GC's "
         "default fusion (eq. gc-fuse-add), shape (B, C, H, W).",
    make_case=_fusion_case,
    solution=gc_fuse,
    mistakes=[
        Mistake("product", lambda x, c, t: x * t(c),
                "you multiplied the features by the transformed context: GC's default fusion *adds* it to "
                "every position (broadcast over H and W)."),
        Mistake("sigmoid_product", lambda x, c, t: x * torch.sigmoid(t(c)),
                "that is the multiplicative fusion (x · σ(t), eq. gc-fuse-mul), an option: the default, "
                "and this exercise, add."),
        Mistake("no_residual", lambda x, c, t: t(c),
                "you returned the transformed context alone: add it to x, at every position."),
        Mistake("context_added", lambda x, c, t: x + c,
                "you added the raw context: pass it through transform first."),
    ],
    hints=[
        "Shapes (B, C, H, W) and (B, C, 1, 1) broadcast: the same vector is used at every position.",
    ],
)

EXERCISES = [context, fuse]
