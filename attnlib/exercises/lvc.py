"""Exercises of the LVC chapter (``book/lvc.md``): the channel gate γ from the encoded codewords, and the
residual rescaling."""

from __future__ import annotations

import torch

from ._framework import Case, Exercise, Mistake, describe, make_block, randint, randn


def _gamma_case(gen):
    C, K = 4 * randint(gen, 1, 4), randint(gen, 3, 9)
    B, H, W = randint(gen, 2, 3), randint(gen, 3, 5), randint(gen, 4, 6)
    block = make_block("lvc", C, num_codes=K, gen=gen)
    x = randn(gen, B, C, H, W)
    seen = []
    hook = block.code_bn.register_forward_pre_hook(lambda m, inp: seen.append(inp[0]))
    with torch.no_grad():
        gamma = block.gate(x)[1]
    hook.remove()
    e = seen[0]
    args = (e, block.code_bn, block.fc.weight.detach(), block.fc.bias.detach())
    return Case(args, gamma, describe(e=e, W=args[2]))


def lvc_gamma(e, norm, W, b):
    h = torch.relu(norm(e))                    # BatchNorm1d over the K codewords, then ReLU: (B, K, C)
    m = h.mean(dim=1)                          # mean over the codewords: (B, C)
    return torch.sigmoid(m @ W.T + b)          # fully connected + sigmoid: (B, C)


def _gamma(e, norm, W, b, act=torch.relu, reduce="mean", order="bn_relu"):
    h = act(norm(e)) if order == "bn_relu" else norm(act(e))
    m = h.mean(dim=1) if reduce == "mean" else h.sum(dim=1)
    return torch.sigmoid(m @ W.T + b)


gamma = Exercise(
    key="lvc.gamma",
    title="LVC's channel gate",
    signature="lvc_gamma(e, norm, W, b)",
    task="e has shape (B, K, C): the residual encodings of the K codewords. norm is the BatchNorm1d(K) that "
         "follows the encoder (eval mode; call norm(e)); W (C, C) and b (C,) the fully connected layer. "
         "Return γ of eqs. lvc-pool and lvc-gamma: BatchNorm, ReLU, mean over the codewords, fully connected, "
         "sigmoid; shape (B, C).",
    make_case=_gamma_case,
    solution=lvc_gamma,
    mistakes=[
        Mistake("sum", lambda *a: _gamma(*a, reduce="sum"),
                "you summed over the codewords: LVC takes their *mean* (the gate would otherwise grow with K)."),
        Mistake("no_relu", lambda *a: _gamma(*a, act=lambda t: t),
                "the ReLU after the BatchNorm is missing."),
        Mistake("relu_then_bn", lambda *a: _gamma(*a, order="relu_bn"),
                "ReLU and BatchNorm are in the wrong order: BatchNorm first, then ReLU."),
        Mistake("no_norm", lambda e, norm, W, b: _gamma(e, lambda t: t, W, b),
                "the BatchNorm over the codewords is missing: call norm(e) first."),
        Mistake("no_sigmoid", lambda e, norm, W, b: torch.relu(norm(e)).mean(dim=1) @ W.T + b,
                "these are γ's logits: finish with a sigmoid."),
    ],
    hints=[
        "The codeword axis is axis 1 of e; BatchNorm1d(K) normalises each codeword's C values.",
    ],
)


def _rescale_case(gen):
    C = randint(gen, 3, 16)
    B, H, W = randint(gen, 1, 3), randint(gen, 3, 6), randint(gen, 4, 7)
    u, g = randn(gen, B, C, H, W), torch.sigmoid(randn(gen, B, C))
    from ..blocks.lvc import LVC

    return Case((u, g), LVC.rescale(u, g), describe(u=u, gamma=g))


def lvc_rescale(u, gamma):
    return torch.relu(u + u * gamma[:, :, None, None])  # residual rescaling: (B, C, H, W)


rescale = Exercise(
    key="lvc.rescale",
    title="LVC's residual rescaling",
    signature="lvc_rescale(u, gamma)",
    task="u has shape (B, C, H, W), gamma (B, C) is the channel gate. Return LVC's output of eq. lvc-out, "
         "ReLU(u + u ⊗ γ), shape (B, C, H, W).",
    make_case=_rescale_case,
    solution=lvc_rescale,
    mistakes=[
        Mistake("product_only", lambda u, g: torch.relu(u * g[:, :, None, None]),
                "you scaled u by γ alone (an SE-style gate): LVC adds the input back, u + u ⊗ γ, so every "
                "channel keeps at least its own value."),
        Mistake("no_relu", lambda u, g: u + u * g[:, :, None, None],
                "the final ReLU is missing."),
        Mistake("added_gate", lambda u, g: torch.relu(u + g[:, :, None, None]),
                "you added γ to u: γ multiplies u, and that product is added to u."),
    ],
    hints=[
        "gamma[:, :, None, None] has shape (B, C, 1, 1) and broadcasts over H and W.",
    ],
)

EXERCISES = [gamma, rescale]
