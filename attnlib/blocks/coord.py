"""Coordinate attention.

Paper: Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021,
arXiv:2103.02907.

Idea: instead of squeezing each channel to one number, average it along W (one value per row) and along H
(one value per column), so the two descriptors keep where along the other axis a feature lies. A shared
1x1 convolution mixes both, then two 1x1 convolutions turn them into a row gate g^h and a column gate g^w,
whose product rescales every position.

Equations (book labels):
    coord-pool-h      z^h_c(i) = (1/W) Σ_j x_c(i, j)                       (B, C, H, 1)
    coord-pool-w      z^w_c(j) = (1/H) Σ_i x_c(i, j)                       (B, C, 1, W)
    coord-concat      [z^h; z^w] joined along the spatial axis              (B, C, H + W, 1)
    coord-transform   f = h_swish(BN(F_1 [z^h; z^w]))                      (B, C_r, H + W, 1)
    coord-split       f -> f^h (B, C_r, H, 1), f^w (B, C_r, 1, W)
    coord-gate-h      g^h = σ(F_h f^h)                                     (B, C, H, 1)
    coord-gate-w      g^w = σ(F_w f^w)                                     (B, C, 1, W)
    coord-scale       y_c(i, j) = x_c(i, j) · g^h_c(i) · g^w_c(j)

Deviations from the paper: none; the configuration is the official code's (1x1 convolutions with bias,
C_r = max(8, C // 32), h-swish, BatchNorm). Initialisation: PyTorch's defaults, as in the official code.
The floor of 8 binds when C < 8 r (below C = 256 at the official r = 32). In the official MobileNetV2
(mbv2_ca.py) one block follows the depthwise convolution of each of the 16 inverted residual blocks whose
expansion ratio is not 1, at the expanded width.

Book chapter: ``book/coord.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from ..validation import check_positive_int, reduced_width
from .base import AttentionBlock


@register("coord", family="hybrid", paper="Coordinate Attention for Efficient Mobile Network Design", year=2021,
          arxiv="2103.02907", chapter="coord")
class CoordinateAttention(AttentionBlock):
    r"""Coordinate attention block.

    .. math::
        f = \delta\big(\mathrm{BN}(F_1 [z^h; z^w])\big), \quad
        g^h = \sigma(F_h f^h), \quad g^w = \sigma(F_w f^w), \quad
        y_c(i, j) = x_c(i, j)\, g^h_c(i)\, g^w_c(j)

    where :math:`z^h_c(i) = \frac{1}{W}\sum_j x_c(i, j)`, :math:`z^w_c(j) = \frac{1}{H}\sum_i x_c(i, j)`,
    :math:`[\cdot;\cdot]` joins them along the spatial axis (H + W positions), :math:`\delta` is h-swish
    :math:`x \cdot \mathrm{ReLU6}(x + 3) / 6`, and :math:`F_1: C \to C_r`, :math:`F_h, F_w: C_r \to C` are 1x1
    convolutions with bias, :math:`C_r = \max(8, \lfloor C / r \rfloor)`.

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r, the reduction ratio (official code: 32).
        min_reduced_channels: the lower bound of C_r (official code: 8).

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H, W)`

    Attributes:
        conv1: :math:`F_1`, ``nn.Conv2d(C, C_r, 1)``.
        bn1: BatchNorm over the :math:`C_r` channels of the (B, C_r, H + W, 1) joint descriptor.
        conv_h: :math:`F_h`, ``nn.Conv2d(C_r, C, 1)``.
        conv_w: :math:`F_w`, ``nn.Conv2d(C_r, C, 1)``.

    Captured:
        ``g_h``: :math:`g^h`, shape :math:`(B, C, H, 1)`; ``g_w``: :math:`g^w`, shape :math:`(B, C, 1, W)`;
        ``gate``: their product :math:`g^h g^w`, shape :math:`(B, C, H, W)`.

    Batch size 1 in training mode works: the BatchNorm normalises over the H + W >= 2 positions of the
    joint descriptor.

    Example:
        >>> import torch, attnlib
        >>> ca = attnlib.create_block("coord", 64)
        >>> ca.reduced_channels
        8
        >>> with attnlib.capture(ca) as maps:
        ...     y = ca(torch.randn(2, 64, 14, 10))
        >>> y.shape, maps[""]["g_h"].shape, maps[""]["g_w"].shape
        (torch.Size([2, 64, 14, 10]), torch.Size([2, 64, 14, 1]), torch.Size([2, 64, 1, 10]))
    """

    def __init__(self, channels: int, *, reduction: float = 32, min_reduced_channels: int = 8):
        super().__init__()
        self.channels = channels
        self.reduction = reduction
        self.min_reduced_channels = check_positive_int(min_reduced_channels, "min_reduced_channels")
        self.reduced_channels = reduced_width(channels, reduction, minimum=min_reduced_channels)
        self.conv1 = nn.Conv2d(channels, self.reduced_channels, kernel_size=1)   # F_1: (C_r, C, 1, 1)
        self.bn1 = nn.BatchNorm2d(self.reduced_channels)
        self.conv_h = nn.Conv2d(self.reduced_channels, channels, kernel_size=1)  # F_h: (C, C_r, 1, 1)
        self.conv_w = nn.Conv2d(self.reduced_channels, channels, kernel_size=1)  # F_w: (C, C_r, 1, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (self.conv1, self.bn1, self.conv_h, self.conv_w):
            m.reset_parameters()

    def directional_gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The row gate g^h (B, C, H, 1) and the column gate g^w (B, C, 1, W)."""
        H, W = x.shape[2], x.shape[3]
        z_h = x.mean(dim=3, keepdim=True)                   # pool along W, eq. coord-pool-h: (B, C, H, 1)
        z_w = x.mean(dim=2, keepdim=True)                   # pool along H, eq. coord-pool-w: (B, C, 1, W)
        z = torch.cat([z_h, z_w.transpose(2, 3)], dim=2)    # join along space, eq. coord-concat: (B, C, H + W, 1)
        f = F.hardswish(self.bn1(self.conv1(z)))            # shared transform, eq. coord-transform: (B, C_r, H + W, 1)
        f_h, f_w = torch.split(f, [H, W], dim=2)            # split, eq. coord-split: (B, C_r, H, 1), (B, C_r, W, 1)
        g_h = torch.sigmoid(self.conv_h(f_h))               # row gate, eq. coord-gate-h: (B, C, H, 1)
        g_w = torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))  # column gate, eq. coord-gate-w: (B, C, 1, W)
        return g_h, g_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        g_h, g_w = self.directional_gates(x)
        if self._capturing:
            self._record("g_h", g_h)
            self._record("g_w", g_w)
            self._record("gate", g_h * g_w)                 # combined gate, eq. coord-scale: (B, C, H, W)
        return x * g_h * g_w                                # rescale, eq. coord-scale: (B, C, H, W)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, reduction={self.reduction}, "
                f"reduced_channels={self.reduced_channels}")
