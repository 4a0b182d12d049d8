"""Exercises of the dynamic-convolution chapter (``book/dynamic_conv.md``): the kernel attention with its
temperature, and per-sample kernels through one grouped convolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._framework import Case, Exercise, Mistake, describe, make_block, randint, randn, uniform


def _dy(gen):
    C_in, C_out, k = randint(gen, 4, 12), randint(gen, 3, 10), (1, 3, 5)[randint(gen, 0, 2)]
    K = randint(gen, 2, 5)
    tau = float(uniform(gen, 1.5, 8.0))
    block = make_block("dynamic_conv", C_in, C_out, k, num_kernels=K, reduction=2, temperature=tau, gen=gen,
                       std=3.0)
    B, H, W = randint(gen, 2, 4), randint(gen, 3, 6), randint(gen, 4, 7)
    return block, randn(gen, B, C_in, H, W)


def _attention_case(gen):
    block, x = _dy(gen)
    with torch.no_grad():
        expected = block.kernel_attention(x)
    args = (x, block.fc1.weight.detach(), block.fc1.bias.detach(), block.fc2.weight.detach(),
            block.fc2.bias.detach(), block.temperature)
    return Case(args, expected, describe(x=x, W1=args[1], W2=args[3], tau=block.temperature))


def dy_attention(x, W1, b1, W2, b2, tau):
    z = x.mean(dim=(2, 3))                                  # pool: (B, C_in)
    logits = torch.relu(z @ W1.T + b1) @ W2.T + b2          # (B, K)
    return torch.softmax(logits / tau, dim=1)               # over the K kernels, with temperature: (B, K)


def _logits(x, W1, b1, W2, b2):
    return torch.relu(x.mean(dim=(2, 3)) @ W1.T + b1) @ W2.T + b2


attention = Exercise(
    key="dynamic_conv.attention",
    title="DY-CNN's kernel attention",
    signature="dy_attention(x, W1, b1, W2, b2, tau)",
    task="x has shape (B, C_in, H, W); W1 (C_r, C_in), b1, W2 (K, C_r), b2 are the attention's two linear "
         "layers and tau the temperature τ. Return π = softmax(z / τ) of eq. dyconv-attention, shape (B, K).",
    make_case=_attention_case,
    solution=dy_attention,
    mistakes=[
        Mistake("tau_times", lambda x, W1, b1, W2, b2, tau: torch.softmax(_logits(x, W1, b1, W2, b2) * tau, dim=1),
                "you multiplied the logits by τ: the temperature *divides* them, so a large τ (30 at the start "
                "of training) makes π nearly uniform."),
        Mistake("no_tau", lambda x, W1, b1, W2, b2, tau: torch.softmax(_logits(x, W1, b1, W2, b2), dim=1),
                "the temperature is missing: divide the logits by τ before the softmax."),
        Mistake("softmax_batch", lambda x, W1, b1, W2, b2, tau: torch.softmax(_logits(x, W1, b1, W2, b2) / tau, dim=0),
                "your softmax runs over the batch: each sample's K attention weights must sum to 1."),
        Mistake("sigmoid", lambda x, W1, b1, W2, b2, tau: torch.sigmoid(_logits(x, W1, b1, W2, b2) / tau),
                "you used a sigmoid per kernel (that is DKA's, and CondConv's, choice): DY-CNN normalises "
                "with a softmax over the K kernels."),
        Mistake("batch_mean", lambda x, W1, b1, W2, b2, tau: torch.softmax(_logits(x, W1, b1, W2, b2) / tau, dim=1).mean(0, keepdim=True)
                .expand(x.shape[0], -1),
                "every sample gets the same attention (averaged over the batch): that destroys the per-sample "
                "kernels, the point of dynamic convolution."),
    ],
    hints=["Same bottleneck as SE, but with K outputs and a softmax; mind where τ goes."],
)


def _conv_case(gen):
    block, x = _dy(gen)
    B = x.shape[0]
    with torch.no_grad():
        pi = block.kernel_attention(x)
        expected = block(x)
    args = (x, pi, block.weight.detach(), block.bias.detach())
    return Case(args, expected, describe(x=x, pi=pi, weight=args[2], bias=args[3]), max_calls={"conv2d": 1})


def dy_conv(x, pi, weight, bias):
    B, C_in, H, W = x.shape
    K, C_out, _, k, _ = weight.shape
    w = (pi @ weight.flatten(1)).view(B * C_out, C_in, k, k)   # one kernel per sample: (B·C_out, C_in, k, k)
    b = (pi @ bias).flatten()                                  # one bias per sample: (B·C_out,)
    y = F.conv2d(x.reshape(1, B * C_in, H, W), w, b, padding=k // 2, groups=B)  # samples as groups
    return y.view(B, C_out, H, W)


def _per_sample(x, pi, weight, bias, bias_mode="pi"):
    B, C_in, H, W = x.shape
    K, C_out, _, k, _ = weight.shape
    w = (pi @ weight.flatten(1)).view(B * C_out, C_in, k, k)
    if bias_mode == "pi":
        b = (pi @ bias).flatten()
    elif bias_mode == "sum":
        b = bias.sum(0).repeat(B)
    else:
        b = None
    return F.conv2d(x.reshape(1, B * C_in, H, W), w, b, padding=k // 2, groups=B).view(B, C_out, H, W)


def _shared(x, pi, weight, bias, how="mean"):
    p = pi.mean(0) if how == "mean" else pi[0]
    k = weight.shape[-1]
    return F.conv2d(x, torch.einsum("k,koihw->oihw", p, weight), p @ bias, padding=k // 2)


conv = Exercise(
    key="dynamic_conv.conv",
    title="Per-sample kernels through one grouped convolution",
    signature="dy_conv(x, pi, weight, bias)",
    task="x has shape (B, C_in, H, W); pi (B, K) the attention; weight (K, C_out, C_in, k, k) and bias "
         "(K, C_out) the K kernels (k odd, stride 1, padding k // 2, groups 1). Return the dynamic "
         "convolution's output (eqs. dyconv-aggregate and dyconv-conv), shape (B, C_out, H, W), with exactly "
         "one call to F.conv2d whatever B is: fold the batch into the channel axis and use groups.",
    make_case=_conv_case,
    solution=dy_conv,
    mistakes=[
        Mistake("batch_mean", lambda *a: _shared(*a, how="mean"),
                "you averaged the attention (or the kernels) over the batch: every sample must be convolved "
                "with its own kernel Σ_k π_k(x) W_k. Fold the batch into the channels and use groups = B."),
        Mistake("first_sample", lambda *a: _shared(*a, how="first"),
                "every sample is convolved with the first sample's kernel: each sample has its own π."),
        Mistake("no_bias", lambda *a: _per_sample(*a, bias_mode=None),
                "the bias is missing: it is aggregated like the kernels, b̃ = Σ_k π_k b_k."),
        Mistake("bias_summed", lambda *a: _per_sample(*a, bias_mode="sum"),
                "the biases are summed without the attention: b̃ = Σ_k π_k b_k, per sample."),
    ],
    hints=[
        "π @ weight.flatten(1) aggregates the K kernels of every sample at once: (B, C_out·C_in·k·k).",
        "Reshape x to (1, B·C_in, H, W) and the kernels to (B·C_out, C_in, k, k); groups=B keeps each sample "
        "with its own kernel.",
    ],
)

EXERCISES = [attention, conv]
