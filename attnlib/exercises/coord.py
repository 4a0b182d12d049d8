"""Exercises of the coordinate-attention chapter (``book/coord.md``): the directional descriptor, and the
two directional gates."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._framework import Case, Exercise, Mistake, describe, make_block, randint, randn


def _coord(gen):
    C = randint(gen, 4, 24)
    B, H, W = randint(gen, 1, 3), randint(gen, 3, 6), randint(gen, 7, 10)  # H != W
    if randint(gen, 0, 1):
        H, W = W, H
    block = make_block("coord", C, reduction=2, min_reduced_channels=2, gen=gen)
    return block, randn(gen, B, C, H, W)


def _pool_case(gen):
    block, x = _coord(gen)
    seen = []
    hook = block.conv1.register_forward_pre_hook(lambda m, inp: seen.append(inp[0]))
    with torch.no_grad():
        block.directional_gates(x)
    hook.remove()
    return Case((x,), seen[0], describe(x=x))


def coord_pool(x):
    z_h = x.mean(dim=3, keepdim=True)                   # average along W, one value per row: (B, C, H, 1)
    z_w = x.mean(dim=2, keepdim=True)                   # average along H, one value per column: (B, C, 1, W)
    return torch.cat([z_h, z_w.transpose(2, 3)], dim=2)  # joined along space: (B, C, H + W, 1)


pool = Exercise(
    key="coord.pool",
    title="Coordinate attention's directional descriptor",
    signature="coord_pool(x)",
    task="x has shape (B, C, H, W). Return z of eqs. coord-pool-h, coord-pool-w and coord-concat: the H row "
         "averages (each averaged along W) followed by the W column averages (each averaged along H), joined "
         "along the spatial axis into a (B, C, H + W, 1) tensor.",
    make_case=_pool_case,
    solution=coord_pool,
    mistakes=[
        Mistake("swapped", lambda x: torch.cat([x.mean(dim=2, keepdim=True).transpose(2, 3),
                                                x.mean(dim=3, keepdim=True)], dim=2),
                "the two descriptors are in the wrong order (or each pools along the wrong axis): the first "
                "H entries must be the row averages, z^h, each taken along W; the W column averages follow."),
        Mistake("max", lambda x: torch.cat([x.amax(dim=3, keepdim=True),
                                            x.amax(dim=2, keepdim=True).transpose(2, 3)], dim=2),
                "you max-pooled: coordinate attention averages along each axis (a max-pooled twin would need "
                "AdaptiveMaxPool2d((None, 1)) and ((1, None)))."),
        Mistake("sum", lambda x: torch.cat([x.sum(dim=3, keepdim=True),
                                            x.sum(dim=2, keepdim=True).transpose(2, 3)], dim=2),
                "you summed along each axis: the descriptor holds averages (divide by W and by H)."),
        Mistake("row_layout", lambda x: torch.cat([x.mean(dim=3, keepdim=True).transpose(2, 3),
                                                   x.mean(dim=2, keepdim=True)], dim=3),
                "right values, wrong layout: you joined along the last axis into (B, C, 1, H + W); the book "
                "(and the library) stacks them as a column, (B, C, H + W, 1)."),
    ],
    hints=[
        "x.mean(dim=3, keepdim=True) averages along W and keeps a (B, C, H, 1) column.",
        "The column averages come out as (B, C, 1, W): transpose the last two axes before joining along dim=2.",
    ],
)


def _gates_case(gen):
    block, x = _coord(gen)
    with torch.no_grad():
        expected = block.directional_gates(x)
    args = (x, block.conv1.weight.detach()[:, :, 0, 0], block.conv1.bias.detach(), block.bn1,
            block.conv_h.weight.detach()[:, :, 0, 0], block.conv_h.bias.detach(),
            block.conv_w.weight.detach()[:, :, 0, 0], block.conv_w.bias.detach())
    return Case(args, expected, describe(x=x, W1=args[1], Wh=args[4]))


def coord_gates(x, W1, b1, norm, Wh, bh, Ww, bw):
    H, W = x.shape[2:]
    z = coord_pool(x)[..., 0]                                  # (B, C, H + W)
    f = torch.einsum("rc,bcl->brl", W1, z) + b1[:, None]       # shared 1x1 conv: (B, C_r, H + W)
    f = F.hardswish(norm(f[..., None]))[..., 0]                # BN + h-swish: (B, C_r, H + W)
    f_h, f_w = f[..., :H], f[..., H:]                          # split: (B, C_r, H), (B, C_r, W)
    g_h = torch.sigmoid(torch.einsum("cr,brl->bcl", Wh, f_h) + bh[:, None])  # (B, C, H)
    g_w = torch.sigmoid(torch.einsum("cr,brl->bcl", Ww, f_w) + bw[:, None])  # (B, C, W)
    return g_h[..., None], g_w[:, :, None, :]                  # (B, C, H, 1), (B, C, 1, W)


def _gates(x, W1, b1, norm, Wh, bh, Ww, bw, act=F.hardswish, pool=coord_pool, swap_convs=False, shape_w=True):
    H = x.shape[2]
    z = pool(x)[..., 0]
    f = act(norm((torch.einsum("rc,bcl->brl", W1, z) + b1[:, None])[..., None]))[..., 0]
    f_h, f_w = f[..., :H], f[..., H:]
    if swap_convs:
        Wh, bh, Ww, bw = Ww, bw, Wh, bh
    g_h = torch.sigmoid(torch.einsum("cr,brl->bcl", Wh, f_h) + bh[:, None])
    g_w = torch.sigmoid(torch.einsum("cr,brl->bcl", Ww, f_w) + bw[:, None])
    return g_h[..., None], (g_w[:, :, None, :] if shape_w else g_w[..., None])


def _swapped_pool(x):
    return torch.cat([x.mean(dim=2, keepdim=True).transpose(2, 3), x.mean(dim=3, keepdim=True)], dim=2)


def _swapped_split(x, W1, b1, norm, Wh, bh, Ww, bw):
    W = x.shape[3]
    z = coord_pool(x)[..., 0]
    f = F.hardswish(norm((torch.einsum("rc,bcl->brl", W1, z) + b1[:, None])[..., None]))[..., 0]
    f_w, f_h = f[..., :W], f[..., W:]
    g_h = torch.sigmoid(torch.einsum("cr,brl->bcl", Wh, f_h) + bh[:, None])
    g_w = torch.sigmoid(torch.einsum("cr,brl->bcl", Ww, f_w) + bw[:, None])
    return g_h[..., None], g_w[:, :, None, :]


gates = Exercise(
    key="coord.gates",
    title="Coordinate attention's two directional gates",
    signature="coord_gates(x, W1, b1, norm, Wh, bh, Ww, bw)",
    task="x has shape (B, C, H, W). W1 (C_r, C), b1 is the shared 1x1 convolution F_1 and norm the BatchNorm2d "
         "after it (eval mode; call it on a (B, C_r, L, 1) tensor); Wh, bh and Ww, bw (C, C_r) are F_h and "
         "F_w. Return the pair (g_h, g_w) of eqs. coord-gate-h and coord-gate-w, shapes (B, C, H, 1) and "
         "(B, C, 1, W). You may call your coord_pool.",
    make_case=_gates_case,
    solution=coord_gates,
    mistakes=[
        Mistake("relu", lambda *a: _gates(*a, act=torch.relu),
                "you used ReLU after the BatchNorm: coordinate attention uses h-swish (F.hardswish), "
                "x · ReLU6(x + 3) / 6."),
        Mistake("swapped_pool", lambda *a: _gates(*a, pool=_swapped_pool),
                "the descriptor's two parts are in the wrong order: the first H positions are the row "
                "averages z^h (averaged along W)."),
        Mistake("swapped_split", _swapped_split,
                "you split f at W instead of H: the first H positions belong to the rows (g_h), the last W "
                "to the columns (g_w)."),
        Mistake("swapped_convs", lambda *a: _gates(*a, swap_convs=True),
                "F_h and F_w are swapped: Wh, bh transform the row part f^h, Ww, bw the column part f^w."),
        Mistake("w_not_transposed", lambda *a: _gates(*a, shape_w=False),
                "g_w is a column (B, C, W, 1): transpose it back to a row, (B, C, 1, W), so that x * g_h * g_w "
                "broadcasts."),
        Mistake("no_norm", lambda x, W1, b1, norm, *w: _gates(x, W1, b1, lambda t: t, *w),
                "the BatchNorm after the shared convolution is missing: call norm on its output."),
    ],
    hints=[
        "Work on (B, C, H + W) sequences: a 1x1 convolution is then a matrix product over the channel axis "
        "(torch.einsum), and the split is slicing.",
        "norm expects a 4-D tensor: add a trailing axis of size 1 before calling it, and remove it after.",
    ],
)

EXERCISES = [pool, gates]
