"""Global Context (GC) block.

Paper: Cao, Xu, Lin, Wei, Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond",
ICCV Workshops 2019, arXiv:1904.11492.

Idea: the non-local block's attention maps are almost the same for every query, so GC computes one
query-independent map: a 1x1 convolution and a softmax over positions pool the input into a single context
vector, which a bottleneck transform (conv, LayerNorm, ReLU, conv) turns into a per-channel term fused into
every position, by addition (default) and/or sigmoid multiplication.

Equations (book labels):
    gc-mask        l_j = w_kᵀ x_j                       (context mask logits)
    gc-softmax     α_j = exp(l_j) / Σ_m exp(l_m)        (over the N positions)
    gc-context     c = Σ_j α_j x_j                      (``pooling="avg"``: c = mean_j x_j)
    gc-transform   t = W_v2 ReLU(LN(W_v1 c + b_1)) + b_2
    gc-fuse-mul    z = x ⊙ σ(t_mul)
    gc-fuse-add    z = z + t_add

Deviations from the paper: the context-mask convolution has no bias: a bias adds the same constant to every
logit, which the softmax cancels (the official code has one, with no effect on the output). Initialisation
follows the official code: the mask convolution is Kaiming-normal (fan-in), the first transform convolution
uses PyTorch's default, and the *last* convolution of each fusion transform is zero (weight and bias), so with
``fusion=("add",)`` the block starts as the identity (with ``"mul"`` it starts as x · σ(0) = x / 2).

Book chapter: ``book/gc.md``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register
from ..validation import check_choice, reduced_width
from .base import AttentionBlock

POOLINGS = ("attention", "avg")
FUSIONS = ("add", "mul")


def _check_fusion(fusion) -> tuple[str, ...]:
    """A non-empty collection (tuple, list, set) of distinct names from FUSIONS, in canonical order."""
    if isinstance(fusion, str):
        raise ValueError(
            f"fusion must be a collection of names such as ('add',) or ('add', 'mul'), not the bare string "
            f"{fusion!r}: a string is not a tuple (('add') is just 'add'), and membership tests on a string "
            f"are substring tests. Allowed names: {FUSIONS}"
        )
    if not isinstance(fusion, (tuple, list, set, frozenset)):
        raise ValueError(f"fusion must be a tuple, list or set of names from {FUSIONS}, got {fusion!r}")
    names = list(fusion)
    if not names:
        raise ValueError(f"fusion must name at least one of {FUSIONS}, got {fusion!r}")
    for name in names:
        check_choice(name, "each fusion entry", FUSIONS)
    if len(set(names)) != len(names):
        raise ValueError(f"fusion names must be distinct, got {fusion!r}")
    return tuple(n for n in FUSIONS if n in names)


def _transform(channels: int, reduced: int) -> nn.Sequential:
    """W_v2 ReLU(LN(W_v1 c)): conv C -> C_r, LayerNorm([C_r, 1, 1]), ReLU, conv C_r -> C."""
    return nn.Sequential(
        nn.Conv2d(channels, reduced, kernel_size=1),
        nn.LayerNorm([reduced, 1, 1]),
        nn.ReLU(inplace=True),
        nn.Conv2d(reduced, channels, kernel_size=1),
    )


@register("gc", family="context", paper="GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond",
          year=2019, arxiv="1904.11492", chapter="gc")
class GlobalContext(AttentionBlock):
    r"""Global Context block.

    .. math::
        \alpha_j = \frac{e^{w_k^\top x_j}}{\sum_m e^{w_k^\top x_m}}, \qquad
        c = \sum_j \alpha_j x_j, \qquad
        z_i = x_i + W_{v2}\, \mathrm{ReLU}\big(\mathrm{LN}(W_{v1} c)\big)

    (add fusion; mul fusion replaces the sum by :math:`x_i \odot \sigma(\cdot)`; with both, the
    multiplication comes first), :math:`W_{v1} \in \mathbb{R}^{C_r \times C}`, :math:`C_r = \lfloor C/r \rfloor`.

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r, the bottleneck ratio of the transform (paper: ratio 1/16, i.e. r = 16).
        pooling: ``"attention"`` (softmax-weighted sum, paper default) or ``"avg"`` (global average, which
            makes the context branch an SE-like squeeze).
        fusion: a tuple, list or set of ``"add"`` and/or ``"mul"`` (default ``("add",)``). A bare string is
            rejected: ``("add")`` is the string ``"add"``, not a tuple.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H, W)`

    Attributes:
        conv_mask: :math:`w_k`, ``nn.Conv2d(C, 1, 1, bias=False)`` (``pooling="attention"`` only).
        channel_add_conv, channel_mul_conv: the transform of each fusion present (names as in the official
            code), ``nn.Sequential(Conv2d(C, C_r, 1), LayerNorm([C_r, 1, 1]), ReLU, Conv2d(C_r, C, 1))``, the last
            convolution zero-initialised.

    Captured:
        ``context_mask``: :math:`\alpha` reshaped to :math:`(B, 1, H, W)` (attention pooling only; with
        ``pooling="avg"`` nothing is recorded, the weights being the constant 1/N).

    Batch size 1 in training mode works (LayerNorm, no BatchNorm).

    Example:
        >>> import torch, attnlib
        >>> gc = attnlib.create_block("gc", 64)
        >>> x = torch.randn(2, 64, 14, 14)
        >>> torch.equal(gc(x), x)   # add fusion starts as the identity
        True
        >>> with attnlib.capture(gc) as maps:
        ...     _ = gc(x)
        >>> maps[""]["context_mask"].shape
        torch.Size([2, 1, 14, 14])
    """

    def __init__(self, channels: int, *, reduction: float = 16, pooling: str = "attention",
                 fusion=("add",)):
        super().__init__()
        self.channels = channels
        self.reduction = reduction
        self.reduced_channels = reduced_width(channels, reduction)
        self.pooling = check_choice(pooling, "pooling", POOLINGS)
        self.fusion = _check_fusion(fusion)
        if pooling == "attention":
            self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1, bias=False)  # w_k: (1, C, 1, 1)
        if "add" in self.fusion:
            self.channel_add_conv = _transform(channels, self.reduced_channels)
        if "mul" in self.fusion:
            self.channel_mul_conv = _transform(channels, self.reduced_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.pooling == "attention":
            nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        for name in self.fusion:
            t = getattr(self, f"channel_{name}_conv")
            t[0].reset_parameters()
            t[1].reset_parameters()
            nn.init.zeros_(t[3].weight)
            nn.init.zeros_(t[3].bias)

    def context(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The context vector c (B, C, 1, 1) and, for attention pooling, the mask α (B, 1, H, W)."""
        B, C, H, W = x.shape
        if self.pooling == "avg":
            return x.mean(dim=(2, 3), keepdim=True), None  # average pooling, eq. gc-context: (B, C, 1, 1)
        logits = self.conv_mask(x).reshape(B, 1, H * W)    # mask logits, eq. gc-mask: (B, 1, N)
        alpha = torch.softmax(logits, dim=-1)              # softmax over positions, eq. gc-softmax: (B, 1, N)
        c = torch.einsum("bcn,bn->bc", x.reshape(B, C, H * W), alpha[:, 0])  # weighted sum, eq. gc-context: (B, C)
        c = c[:, :, None, None]                            # context as a map, eq. gc-context: (B, C, 1, 1)
        return c, alpha.reshape(B, 1, H, W)                # mask on the input grid, eq. gc-softmax: (B, 1, H, W)

    def transform(self, c: torch.Tensor, fusion: str) -> torch.Tensor:
        """The transform t of one fusion (``"add"`` or ``"mul"``) applied to the context c: (B, C, 1, 1)."""
        t = getattr(self, f"channel_{fusion}_conv")
        h = t[0](c)                                        # bottleneck W_v1, eq. gc-transform: (B, C_r, 1, 1)
        h = t[2](t[1](h))                                  # LayerNorm, ReLU, eq. gc-transform: (B, C_r, 1, 1)
        return t[3](h)                                     # W_v2, eq. gc-transform: (B, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        c, alpha = self.context(x)
        if alpha is not None:
            self._record("context_mask", alpha)
        z = x
        if "mul" in self.fusion:
            z = z * torch.sigmoid(self.transform(c, "mul"))   # multiplicative fusion, eq. gc-fuse-mul: (B, C, H, W)
        if "add" in self.fusion:
            z = z + self.transform(c, "add")                  # additive fusion, eq. gc-fuse-add: (B, C, H, W)
        return z

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, reduction={self.reduction}, reduced_channels={self.reduced_channels}, "
                f"pooling={self.pooling!r}, fusion={self.fusion}")
