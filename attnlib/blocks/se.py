"""Squeeze-and-Excitation (SE).

Paper: Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018, arXiv:1709.01507.

Idea: summarise each channel by its global average (squeeze), pass the C averages through a two-layer
bottleneck MLP ending in a sigmoid (excitation), and rescale every channel of the input by its gate.

Deviations from the paper: the paper's equation (its eq. 3, s = σ(W2 δ(W1 z))) has no biases; the
released SENet models have them in both FC layers, and so does this block (b1, b2). The paper does not
specify the FC initialisation; PyTorch's default ``nn.Linear`` initialisation is used.

Equations:
    se-squeeze: z = GAP(x), one average per channel
    se-excite: s = σ(W2 δ(W1 z + b1) + b2), the channel gate
    se-scale: y = s ⊙ x

Book chapter: ``book/se.md``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register
from ..validation import reduced_width
from .base import AttentionBlock


@register("se", family="channel", paper="Squeeze-and-Excitation Networks", year=2018, arxiv="1709.01507",
          chapter="se")
class SqueezeExcitation(AttentionBlock):
    r"""Squeeze-and-Excitation block.

    .. math::
        z = \frac{1}{HW}\sum_{i,j} x_{:,i,j}, \qquad
        s = \sigma\big(W_2\, \delta(W_1 z + b_1) + b_2\big), \qquad
        y = s \odot x

    with :math:`W_1 \in \mathbb{R}^{C_r \times C}`, :math:`W_2 \in \mathbb{R}^{C \times C_r}`,
    :math:`C_r = \lfloor C / r \rfloor`, :math:`\delta` = ReLU, :math:`\sigma` = sigmoid.

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r, the reduction ratio of the bottleneck (paper: 16). ``C // r`` must be >= 1.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H, W)`

    Attributes:
        fc1: :math:`W_1, b_1`, ``nn.Linear(C, C_r)``.
        fc2: :math:`W_2, b_2`, ``nn.Linear(C_r, C)``.

    Captured:
        ``gate``: :math:`s`, shape :math:`(B, C, 1, 1)`.

    Batch size 1 in training mode works (no BatchNorm).

    Example:
        >>> import torch, attnlib
        >>> se = attnlib.create_block("se", 64)
        >>> se(torch.randn(2, 64, 14, 14)).shape
        torch.Size([2, 64, 14, 14])
    """

    def __init__(self, channels: int, *, reduction: float = 16):
        super().__init__()
        self.channels = channels
        self.reduction = reduction
        self.reduced_channels = reduced_width(channels, reduction)
        self.fc1 = nn.Linear(channels, self.reduced_channels)  # W1: (C_r, C)
        self.fc2 = nn.Linear(self.reduced_channels, channels)  # W2: (C, C_r)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.fc1.reset_parameters()
        self.fc2.reset_parameters()

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The excitation :math:`s` of shape (B, C, 1, 1) for an input of shape (B, C, H, W)."""
        z = x.mean(dim=(2, 3))                          # squeeze, eq. se-squeeze: (B, C)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))  # excitation, eq. se-excite: (B, C)
        return s[:, :, None, None]                      # gate as a map, eq. se-excite: (B, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        s = self.gate(x)
        self._record("gate", s)
        return x * s                                    # scale, eq. se-scale: (B, C, H, W)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}, reduced_channels={self.reduced_channels}"
