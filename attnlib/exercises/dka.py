"""Exercises of the DKA chapter (``book/dka.md``): the sigmoid kernel attention, and the aggregated,
per-sample convolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._framework import Case, Exercise, Mistake, describe, make_block, randint, randn


def _dka(gen):
    C_in, C_out, k = randint(gen, 4, 12), randint(gen, 3, 10), (1, 3, 5)[randint(gen, 0, 2)]
    K = randint(gen, 2, 5)
    block = make_block("dka", C_in, C_out, k, num_kernels=K, reduction=2, gen=gen, std=2.0)
    B, H, W = randint(gen, 2, 4), randint(gen, 3, 6), randint(gen, 4, 7)
    return block, randn(gen, B, C_in, H, W)


def _attention_case(gen):
    block, x = _dka(gen)
    with torch.no_grad():
        expected = block.kernel_attention(x)
    args = (x, block.conv1.weight.detach()[:, :, 0, 0], block.bn, block.conv2.weight.detach()[:, :, 0, 0],
            block.conv2.bias.detach())
    return Case(args, expected, describe(x=x, W1=args[1], W2=args[3]))


def dka_attention(x, W1, norm, W2, b2):
    z = x.mean(dim=(2, 3))                                  # pool: (B, C_in)
    h = torch.relu(norm((z @ W1.T)[:, :, None, None]))      # 1x1 conv (no bias), BN, ReLU: (B, C_r, 1, 1)
    return torch.sigmoid(h[:, :, 0, 0] @ W2.T + b2)         # one sigmoid per kernel: (B, K)


def _logits(x, W1, norm, W2, b2, act=torch.relu, use_norm=True):
    t = (x.mean(dim=(2, 3)) @ W1.T)[:, :, None, None]
    h = act(norm(t) if use_norm else t)
    return h[:, :, 0, 0] @ W2.T + b2


attention = Exercise(
    key="dka.attention",
    title="DKA's kernel attention",
    signature="dka_attention(x, W1, norm, W2, b2)",
    task="x has shape (B, C_in, H, W); W1 (C_r, C_in) is the first 1x1 convolution (no bias), norm the "
         "BatchNorm2d after it (eval mode; call it on a (B, C_r, 1, 1) tensor), W2 (K, C_r) and b2 (K,) the "
         "second 1x1 convolution. Return the kernel attention α of eq. dka-attention, shape (B, K).",
    make_case=_attention_case,
    solution=dka_attention,
    mistakes=[
        Mistake("softmax", lambda *a: torch.softmax(_logits(*a), dim=1),
                "you normalised with a softmax over the kernels (DY-CNN's choice): DKA gives each kernel an "
                "independent sigmoid, as CondConv does, with no temperature."),
        Mistake("no_norm", lambda *a: torch.sigmoid(_logits(*a, use_norm=False)),
                "the BatchNorm after the first 1x1 convolution is missing: call norm on its output."),
        Mistake("no_relu", lambda *a: torch.sigmoid(_logits(*a, act=lambda t: t)),
                "the ReLU after the BatchNorm is missing."),
        Mistake("no_sigmoid", lambda *a: _logits(*a),
                "these are the attention logits: finish with a sigmoid per kernel."),
    ],
    hints=["Pool, 1x1 conv (a matrix product on the pooled vector), BatchNorm, ReLU, 1x1 conv, then the "
           "non-linearity the paper chose."],
)


def _conv_case(gen):
    block, x = _dka(gen)
    with torch.no_grad():
        alpha = block.kernel_attention(x)
        expected = block(x)
    args = (x, alpha, block.weight.detach(), block.bias.detach())
    return Case(args, expected, describe(x=x, alpha=alpha, weight=args[2], bias=args[3]), max_calls={"conv2d": 1})


def dka_conv(x, alpha, weight, bias):
    B, C_in, H, W = x.shape
    K, C_out, _, k, _ = weight.shape
    w = (alpha @ weight.flatten(1)).view(B * C_out, C_in, k, k)  # Σ_k α_k W_k per sample
    b = (alpha @ bias).flatten()                                 # Σ_k α_k b_k per sample
    y = F.conv2d(x.reshape(1, B * C_in, H, W), w, b, padding=k // 2, groups=B)
    return y.view(B, C_out, H, W)


def _agg(x, alpha, weight, bias):
    B, C_in, H, W = x.shape
    K, C_out, _, k, _ = weight.shape
    w = (alpha @ weight.flatten(1)).view(B * C_out, C_in, k, k)
    b = (alpha @ bias).flatten()
    return F.conv2d(x.reshape(1, B * C_in, H, W), w, b, padding=k // 2, groups=B).view(B, C_out, H, W)


conv = Exercise(
    key="dka.conv",
    title="DKA's aggregated convolution",
    signature="dka_conv(x, alpha, weight, bias)",
    task="x has shape (B, C_in, H, W); alpha (B, K) the sigmoid attention; weight (K, C_out, C_in, k, k) and "
         "bias (K, C_out) the K kernels (k odd, stride 1, padding k // 2, groups 1). Return the output of "
         "eqs. dka-aggregate and dka-conv, shape (B, C_out, H, W), with one call to F.conv2d.",
    make_case=_conv_case,
    solution=dka_conv,
    mistakes=[
        Mistake("normalised", lambda x, a, w, b: _agg(x, a / a.sum(dim=1, keepdim=True), w, b),
                "you divided α by its sum: DKA's weights are independent sigmoids, not a distribution; the "
                "aggregated kernel is Σ_k α_k W_k as it is."),
        Mistake("batch_mean", lambda x, a, w, b: _agg(x, a.mean(0, keepdim=True).expand_as(a), w, b),
                "you averaged the attention over the batch: every sample must get its own kernel."),
        Mistake("softmax_again", lambda x, a, w, b: _agg(x, torch.softmax(a, dim=1), w, b),
                "you passed α through a softmax: α is already the attention (sigmoids); use it as it is."),
        Mistake("no_bias", lambda x, a, w, b: _agg(x, a, w, torch.zeros_like(b)),
                "the bias is missing: it is aggregated like the kernels, Σ_k α_k b_k."),
    ],
    hints=["The same grouped-convolution trick as in dynamic convolution; only the attention differs."],
)

EXERCISES = [attention, conv]
