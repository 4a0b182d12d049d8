"""Efficient Channel Attention (ECA).

Paper: Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020, arXiv:1910.03151.

Idea: keep SE's squeeze (global average per channel) but replace its bottleneck MLP by a single 1-D
convolution of size k across the channel axis, so each channel's gate depends only on its k neighbours
and no dimensionality reduction is needed. The kernel size grows with log2 C, so wider layers see wider
neighbourhoods.

Deviations from the paper: none. The paper writes ``k = |(log2 C + b) / γ|_odd`` (nearest odd number)
and rounds by ``t = floor(|(log2 C + b) / γ|)``, plus 1 when ``t`` is even: the nearest odd number with
ties broken upwards (e.g. C=128: t=4 gives k=5). That rounding rule is the paper's formula, and this module
follows it. The official code never computes k from C: its layers take a kernel size as an argument,
given per stage (the released ECA-ResNet-50 uses 3, 5, 5, 7; ECA-MobileNetV2 uses 1 in blocks of fewer
than 96 output channels, 3 from 96 on); pass ``kernel_size`` to match such weights. The official code places the
block on the residual branch, after the last BatchNorm and before the addition. The paper does not state
an initialisation for the 1-D convolution; the official code leaves PyTorch's default, and so do we.

Equations:
    eca-kernel: k = ψ(C) = |(log2 C + b) / γ|_odd, the adaptive kernel size
    eca-squeeze: y = GAP(x), one average per channel
    eca-excite: ω = σ(C1D_k(y)), a 1-D convolution over the channel axis, then sigmoid
    eca-scale: out = ω ⊙ x

Book chapter: ``book/eca.md``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import register
from ..validation import MAX_SIZE, as_float, check_positive_float, check_positive_int, describe
from .base import AttentionBlock


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """The adaptive kernel size ``k = ψ(C) = |(log2 C + b) / γ|_odd`` of ECA (eq. eca-kernel).

    ``|t|_odd`` is the nearest odd number to ``t``, ties broken upwards, computed by the paper's rule:
    ``floor(|t|)``, plus 1 if that is even. ``gamma`` must be a positive number, ``b`` a finite number,
    and together they must give a kernel size of at most :data:`attnlib.validation.MAX_SIZE`.

    Example:
        >>> [eca_kernel_size(c) for c in (64, 128, 256, 512, 1024, 2048)]
        [3, 5, 5, 5, 5, 7]
    """
    check_positive_int(channels, "channels")
    gamma = check_positive_float(gamma, "gamma")
    b = as_float(b, "b")
    t = abs((math.log2(channels) + b) / gamma)       # eq. eca-kernel
    if not t < MAX_SIZE:                             # also catches an overflow to inf
        raise ValueError(f"gamma={describe(gamma)} and b={describe(b)} give |(log2 C + b) / gamma| = {t:g} for "
                         f"channels={channels}, a kernel size above the limit {MAX_SIZE}; use a larger gamma or a "
                         f"smaller |b|")
    t = int(t)
    return t if t % 2 else t + 1


@register("eca", family="channel", paper="ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks",
          year=2020, arxiv="1910.03151", chapter="eca")
class EfficientChannelAttention(AttentionBlock):
    r"""Efficient Channel Attention block.

    .. math::
        y = \frac{1}{HW}\sum_{i,j} x_{:,i,j}, \qquad
        \omega = \sigma\big(\mathrm{C1D}_k(y)\big), \qquad
        \mathrm{out} = \omega \odot x, \qquad
        k = \psi(C) = \left|\frac{\log_2 C + b}{\gamma}\right|_{odd}

    :math:`\mathrm{C1D}_k` is a 1-D convolution with one input and one output channel, kernel size
    :math:`k`, zero padding :math:`(k-1)/2` and no bias, sliding along the channel axis: gate
    :math:`\omega_c` depends on :math:`y_{c-(k-1)/2}, \dots, y_{c+(k-1)/2}` only, with the same
    :math:`k` weights for every channel.

    Args:
        channels: C, the number of input (and output) channels.
        kernel_size: k, an odd kernel size. ``None`` (default) computes it from C with eq. eca-kernel
            (C=256 gives 5, C=2048 gives 7).
        gamma: γ of eq. eca-kernel (paper: 2). Ignored when ``kernel_size`` is given.
        b: b of eq. eca-kernel (paper: 1). Ignored when ``kernel_size`` is given.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H, W)`

    Attributes:
        conv: ``nn.Conv1d(1, 1, k, padding=(k-1)//2, bias=False)``, weight of shape ``(1, 1, k)``: the
            block's only k parameters.
        kernel_size: the k in use.

    Captured:
        ``gate``: :math:`\omega`, shape :math:`(B, C, 1, 1)`.

    Batch size 1 in training mode works (no BatchNorm).

    Example:
        >>> import torch, attnlib
        >>> eca = attnlib.create_block("eca", 256)
        >>> eca.kernel_size
        5
        >>> eca(torch.randn(2, 256, 14, 14)).shape
        torch.Size([2, 256, 14, 14])
    """

    def __init__(self, channels: int, *, kernel_size: int | None = None, gamma: float = 2, b: float = 1):
        super().__init__()
        self.channels = check_positive_int(channels, "channels")
        self.gamma = gamma
        self.b = b
        adaptive_k = eca_kernel_size(channels, gamma, b)  # validates gamma and b even when overridden
        self.adaptive = kernel_size is None
        if kernel_size is None:
            self.kernel_size = adaptive_k
        else:
            check_positive_int(kernel_size, "kernel_size")
            if kernel_size % 2 == 0:
                raise ValueError(
                    f"kernel_size must be an odd integer >= 1 (zero padding (k-1)/2 keeps C gates), got {kernel_size}"
                )
            self.kernel_size = kernel_size
        self.conv = nn.Conv1d(1, 1, self.kernel_size, padding=(self.kernel_size - 1) // 2, bias=False)  # (1, 1, k)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gate :math:`\\omega` of shape (B, C, 1, 1) for an input of shape (B, C, H, W)."""
        y = x.mean(dim=(2, 3))                          # squeeze, eq. eca-squeeze: (B, C)
        y = y.unsqueeze(1)                              # channels as a 1-D signal, eq. eca-excite: (B, 1, C)
        w = torch.sigmoid(self.conv(y))                 # 1-D conv across channels + sigmoid, eq. eca-excite: (B, 1, C)
        return w.transpose(1, 2).unsqueeze(-1)          # gate per channel, eq. eca-excite: (B, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        w = self.gate(x)                                # channel gate, eq. eca-excite: (B, C, 1, 1)
        self._record("gate", w)
        return x * w                                    # scale, eq. eca-scale: (B, C, H, W)

    def extra_repr(self) -> str:
        how = f"adaptive, gamma={self.gamma}, b={self.b}" if self.adaptive else "explicit"
        return f"channels={self.channels}, kernel_size={self.kernel_size} ({how})"
