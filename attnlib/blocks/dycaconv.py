"""DyCAConv: a convolution preceded by a dynamically mixed coordinate-attention gate.

Paper: none. The block is defined by the publicly circulated DyCAConv code (h-swish, r = 32, a
``Linear(C, 2)`` and a softmax for π, then Conv-BN-SiLU); this module reproduces that code numerically when
built with ``bias=True`` (the circulated code's final convolution has a bias; the default here has none,
as a BatchNorm follows).

Idea: compute coordinate attention's row gate g^h and column gate g^w, but instead of multiplying them,
mix them with two sample-dependent weights π = softmax(Linear(GAP(x))): the gate π₀ g^w + π₁ g^h is a
convex *sum* that lets each sample lean on rows or on columns. The gated input then goes through an ordinary
k x k convolution, BatchNorm and SiLU, so the block replaces a ``Conv-BN-SiLU`` unit.

Equations (book labels):
    dycaconv-pool-h      z^h_c(i) = mean_j x_c(i, j)  (``pool="max"``: max_j)          (B, C, H, 1)
    dycaconv-pool-w      z^w_c(j) = mean_i x_c(i, j)  (``pool="max"``: max_i)          (B, C, 1, W)
    dycaconv-concat      [z^h; z^w] joined along the spatial axis                        (B, C, H + W, 1)
    dycaconv-transform   f = h_swish(BN(F_1 [z^h; z^w]))                                (B, C_r, H + W, 1)
    dycaconv-split       f -> f^h (B, C_r, H, 1), f^w (B, C_r, 1, W)
    dycaconv-gate-h      g^h = σ(F_h f^h)                                               (B, C, H, 1)
    dycaconv-gate-w      g^w = σ(F_w f^w)                                               (B, C, 1, W)
    dycaconv-mix         π = softmax(W_π GAP(x) + b_π)                                  (B, 2)
    dycaconv-gate        a_c(i, j) = π₀ g^w_c(j) + π₁ g^h_c(i)                          (B, C, H, W)
    dycaconv-modulate    u = x ⊙ a                                                      (B, C, H, W)
    dycaconv-conv        out = SiLU(BN(Conv_{k x k}(u)))                                (B, C_out, H', W')

Deviations from the circulated code: none but the default ``bias=False`` of the final convolution
(``bias=True`` reproduces it). The explanation that circulates with the code garbles its formula: it names
ReLU instead of h-swish, calls the directional pools global, drops the two sigmoids, joins the pooled maps
along channels instead of space, applies the final convolution to the attention branch instead of the
gated input, and multiplies the gate with the convolution's output instead of with the input x; the book
checks the derivation against the module numerically. A max-pooled variant must use
``AdaptiveMaxPool2d((None, 1))`` / ``((1, None))``: ``MaxPool2d((1, None))`` is built without complaint
but fails at its first forward pass (``TypeError``).
Initialisation: PyTorch's defaults.

Book chapter: ``book/dycaconv.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from ..validation import check_choice, check_positive_int, conv_arguments, reduced_width
from .base import AttentionBlock

POOLS = ("avg", "max")


@register("dycaconv", family="dynamic",
          paper="no paper: defined by its publicly circulated code (coordinate-attention gates mixed by a "
                "softmax, then Conv-BN-SiLU)",
          year=2021, arxiv=None, chapter="dycaconv")  # year: of coordinate attention, which it extends (the code is undated)
class DyCAConv(AttentionBlock):
    r"""DyCAConv: Conv-BN-SiLU on the input gated by a softmax mix of coordinate-attention gates.

    .. math::
        \pi = \mathrm{softmax}\big(W_\pi \bar{x} + b_\pi\big), \quad
        a_c(i, j) = \pi_0\, g^w_c(j) + \pi_1\, g^h_c(i), \quad
        \mathrm{out} = \mathrm{SiLU}\big(\mathrm{BN}(W * (x \odot a))\big)

    where :math:`\bar{x}` is the global average of x, and :math:`g^h = \sigma(F_h f^h)`,
    :math:`g^w = \sigma(F_w f^w)` with :math:`[f^h; f^w] = \text{h-swish}(\mathrm{BN}(F_1 [z^h; z^w]))` are
    coordinate attention's row and column gates (:math:`F_1: C \to C_r`, :math:`C_r = \max(8, \lfloor C/r
    \rfloor)`). The gate is a convex *sum* of the two, not their product.

    Args:
        in_channels: C, input channels.
        out_channels: C_out, output channels of the convolution (default: C).
        kernel_size: k of the square convolution (default 3).
        stride: stride of the convolution (default 1).
        padding: zero padding; ``None`` (default) gives "same" padding ``dilation * (k // 2)`` (k // 2 for
            dilation 1).
        dilation: dilation of the convolution (default 1).
        groups: groups of the convolution; must divide C and C_out.
        bias: bias in the convolution (default False: a BatchNorm follows).
        reduction: r of the attention branch (default 32).
        min_reduced_channels: lower bound of C_r (default 8).
        pool: ``"avg"`` (default) or ``"max"``: the directional descriptors :math:`z^h, z^w` by average or
            by max pooling over a whole axis (``AdaptiveMaxPool2d``). π always uses the global average.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C_{out}, H', W')` with
          :math:`H' = \lfloor (H + 2p - d(k - 1) - 1) / s \rfloor + 1` (likewise W'), as for ``nn.Conv2d``.

    Attributes:
        conv1, bn1, conv_h, conv_w: :math:`F_1`, its BatchNorm, :math:`F_h`, :math:`F_w` (1x1 convs with bias).
        fc_pi: :math:`W_\pi, b_\pi`, ``nn.Linear(C, 2)``.
        conv: :math:`W`, ``nn.Conv2d(C, C_out, k, stride, padding, dilation, groups, bias)``.
        bn: BatchNorm over C_out.

    Captured:
        ``g_h``: :math:`g^h`, shape :math:`(B, C, H, 1)`; ``g_w``: :math:`g^w`, shape :math:`(B, C, 1, W)`;
        ``pi``: :math:`\pi`, shape :math:`(B, 2)` (``pi[:, 0]`` weighs :math:`g^w`, ``pi[:, 1]`` weighs
        :math:`g^h`); ``gate``: :math:`a`, shape :math:`(B, C, H, W)`.

    Batch size 1 in training mode works while the output has more than one position (the attention
    branch's BatchNorm sees H + W >= 2 positions; the output BatchNorm sees B H' W' values per channel):
    a batch of one whose output is 1x1 raises a ``ValueError`` in training mode (eval mode accepts it).
    An input smaller than the dilated kernel after padding (no output position) raises a ``ValueError``.

    Example:
        >>> import torch, attnlib
        >>> conv = attnlib.create_block("dycaconv", 64, 128, 3, stride=2)
        >>> with attnlib.capture(conv) as maps:
        ...     y = conv(torch.randn(2, 64, 16, 12))
        >>> y.shape, maps[""]["pi"].shape, maps[""]["gate"].shape
        (torch.Size([2, 128, 8, 6]), torch.Size([2, 2]), torch.Size([2, 64, 16, 12]))
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, kernel_size: int = 3, *,
                 stride: int = 1, padding: int | None = None, dilation: int = 1, groups: int = 1,
                 bias: bool = False, reduction: float = 32, min_reduced_channels: int = 8, pool: str = "avg"):
        super().__init__()
        args = conv_arguments(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self._store_conv_arguments(args)
        self.reduction = reduction
        self.min_reduced_channels = check_positive_int(min_reduced_channels, "min_reduced_channels")
        self.reduced_channels = reduced_width(in_channels, reduction, minimum=min_reduced_channels,
                                              channels_name="in_channels")
        self.pool = check_choice(pool, "pool", POOLS)
        C, C_r = in_channels, self.reduced_channels
        pool_cls = nn.AdaptiveAvgPool2d if pool == "avg" else nn.AdaptiveMaxPool2d
        self.pool_h = pool_cls((None, 1))                   # whole-axis pooling along W
        self.pool_w = pool_cls((1, None))                   # whole-axis pooling along H
        self.conv1 = nn.Conv2d(C, C_r, kernel_size=1)       # F_1: (C_r, C, 1, 1)
        self.bn1 = nn.BatchNorm2d(C_r)
        self.conv_h = nn.Conv2d(C_r, C, kernel_size=1)      # F_h: (C, C_r, 1, 1)
        self.conv_w = nn.Conv2d(C_r, C, kernel_size=1)      # F_w: (C, C_r, 1, 1)
        self.fc_pi = nn.Linear(C, 2)                        # W_π: (2, C)
        self.conv = nn.Conv2d(**args)                       # W: (C_out, C / G, k, k)
        self.bn = nn.BatchNorm2d(self.out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (self.conv1, self.bn1, self.conv_h, self.conv_w, self.fc_pi, self.conv, self.bn):
            m.reset_parameters()

    def directional_gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinate attention's row gate g^h (B, C, H, 1) and column gate g^w (B, C, 1, W)."""
        H, W = x.shape[2], x.shape[3]
        z_h = self.pool_h(x)                                # pool along W, eq. dycaconv-pool-h: (B, C, H, 1)
        z_w = self.pool_w(x)                                # pool along H, eq. dycaconv-pool-w: (B, C, 1, W)
        z = torch.cat([z_h, z_w.transpose(2, 3)], dim=2)    # join along space, eq. dycaconv-concat: (B, C, H + W, 1)
        f = F.hardswish(self.bn1(self.conv1(z)))  # shared transform, eq. dycaconv-transform: (B, C_r, H + W, 1)
        f_h, f_w = torch.split(f, [H, W], dim=2)            # split, eq. dycaconv-split: (B, C_r, H, 1), (B, C_r, W, 1)
        g_h = torch.sigmoid(self.conv_h(f_h))               # row gate, eq. dycaconv-gate-h: (B, C, H, 1)
        g_w = torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))  # column gate, eq. dycaconv-gate-w: (B, C, 1, W)
        return g_h, g_w

    def mixing_weights(self, x: torch.Tensor) -> torch.Tensor:
        """π (B, 2): softmax of a linear map of the global average."""
        return torch.softmax(self.fc_pi(x.mean(dim=(2, 3))), dim=1)  # mixing weights, eq. dycaconv-mix: (B, 2)

    def gate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The gate a = π₀ g^w + π₁ g^h (B, C, H, W), with g^h, g^w and π."""
        g_h, g_w = self.directional_gates(x)
        pi = self.mixing_weights(x)                         # mixing weights, eq. dycaconv-mix: (B, 2)
        p0 = pi[:, 0, None, None, None]                     # weight of g^w, eq. dycaconv-gate: (B, 1, 1, 1)
        p1 = pi[:, 1, None, None, None]                     # weight of g^h, eq. dycaconv-gate: (B, 1, 1, 1)
        a = p0 * g_w + p1 * g_h                             # convex sum, eq. dycaconv-gate: (B, C, H, W)
        return a, g_h, g_w, pi

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.in_channels)
        self._check_conv_input(x)
        H_out = (x.shape[2] + 2 * self.padding - self.dilation * (self.kernel_size - 1) - 1) // self.stride + 1
        W_out = (x.shape[3] + 2 * self.padding - self.dilation * (self.kernel_size - 1) - 1) // self.stride + 1
        self._check_batch_statistics(x.shape[0] * H_out * W_out, "the output BatchNorm (bn)", x)
        a, g_h, g_w, pi = self.gate(x)
        if self._capturing:
            self._record("g_h", g_h)
            self._record("g_w", g_w)
            self._record("pi", pi)
            self._record("gate", a)
        u = x * a                                           # gated input, eq. dycaconv-modulate: (B, C, H, W)
        return F.silu(self.bn(self.conv(u)))                # Conv-BN-SiLU, eq. dycaconv-conv: (B, C_out, H', W')

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.conv.bias is not None}, reduction={self.reduction}, "
                f"reduced_channels={self.reduced_channels}, pool={self.pool!r}")
