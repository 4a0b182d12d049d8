"""Concurrent spatial and channel squeeze-and-excitation (cSE, sSE, scSE).

Paper: Roy, Navab, Wachinger, "Concurrent Spatial and Channel 'Squeeze & Excitation' in Fully
Convolutional Networks", MICCAI 2018, arXiv:1803.02579.

Idea: for segmentation, where pixel-wise information matters, pair SE's channel gate (cSE: squeeze
space, excite channels) with its transpose (sSE: squeeze channels with a 1x1 convolution, excite
pixels), run both on the same input and combine the two recalibrated maps.

Deviations from the paper: one, the biases. The paper's equations write the two FC layers and the 1x1
convolution without biases; here, as in the authors' released code (and SE in this library), all three
carry biases. The combination follows the MICCAI paper by default (addition); the released code (and
the authors' later journal version) takes the element-wise maximum, offered as ``combine="max"``. The
paper gives no initialisation: PyTorch's defaults are used.

Equations:
    scse-squeeze: z = GAP(U), one average per channel, (B, C)
    scse-excite: s = σ(W_1 δ(W_2 z)), the cSE channel gate, W_2: C -> C/r, W_1: C/r -> C
    scse-channel-scale: Û_cSE = s ⊙ U
    scse-spatial: q = σ(W_sq ⋆ U), the sSE spatial gate from a 1x1 convolution C -> 1, (B, 1, H, W)
    scse-spatial-scale: Û_sSE = q ⊙ U
    scse-combine: Û_scSE = Û_cSE + Û_sSE (paper), or max(Û_cSE, Û_sSE) (official code)

Book chapter: ``book/scse.md``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register
from ..validation import check_choice, check_positive_int, reduced_width
from .base import AttentionBlock

PAPER = "Concurrent Spatial and Channel 'Squeeze & Excitation' in Fully Convolutional Networks"
COMBINES = ("add", "max")


@register("cse", family="channel", paper=PAPER, year=2018, arxiv="1803.02579", chapter="scse")
class ChannelSE(AttentionBlock):
    r"""cSE: spatial squeeze and channel excitation (SE with the scSE paper's reduction r = 2).

    .. math::
        z = \frac{1}{HW}\sum_{i,j} U_{:,i,j}, \qquad
        s = \sigma\big(W_1\, \delta(W_2 z + b_2) + b_1\big), \qquad
        \hat U_{cSE} = s \odot U

    with :math:`W_2 \in \mathbb{R}^{C_r \times C}`, :math:`W_1 \in \mathbb{R}^{C \times C_r}`,
    :math:`C_r = \lfloor C / r \rfloor` (the paper's numbering: :math:`W_2` comes first).

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r, the bottleneck ratio (paper: 2). ``C // r`` must be >= 1.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H, W)`

    Attributes:
        fc1: :math:`W_2, b_2`, ``nn.Linear(C, C_r)`` (applied first).
        fc2: :math:`W_1, b_1`, ``nn.Linear(C_r, C)``.

    Captured:
        ``gate``: :math:`s`, shape :math:`(B, C, 1, 1)`.

    Batch size 1 in training mode works (no BatchNorm).

    Example:
        >>> import torch, attnlib
        >>> cse = attnlib.create_block("cse", 64)
        >>> cse(torch.randn(2, 64, 14, 14)).shape
        torch.Size([2, 64, 14, 14])
    """

    def __init__(self, channels: int, *, reduction: float = 2):
        super().__init__()
        self.channels = channels
        self.reduction = reduction
        self.reduced_channels = reduced_width(channels, reduction)
        self.fc1 = nn.Linear(channels, self.reduced_channels)  # W2: (C_r, C)
        self.fc2 = nn.Linear(self.reduced_channels, channels)  # W1: (C, C_r)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.fc1.reset_parameters()
        self.fc2.reset_parameters()

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gate :math:`s` of shape (B, C, 1, 1) for an input of shape (B, C, H, W)."""
        z = x.mean(dim=(2, 3))                          # squeeze, eq. scse-squeeze: (B, C)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))  # excitation, eq. scse-excite: (B, C)
        return s[:, :, None, None]                      # gate map, eq. scse-excite: (B, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        s = self.gate(x)                                # channel gate, eq. scse-excite: (B, C, 1, 1)
        self._record("gate", s)
        return x * s                                    # scale, eq. scse-channel-scale: (B, C, H, W)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}, reduced_channels={self.reduced_channels}"


@register("sse", family="spatial", paper=PAPER, year=2018, arxiv="1803.02579", chapter="scse")
class SpatialSE(AttentionBlock):
    r"""sSE: channel squeeze and spatial excitation.

    .. math::
        q = \sigma(W_{sq} \star U + b_{sq}), \qquad \hat U_{sSE} = q \odot U

    where :math:`W_{sq} \in \mathbb{R}^{1 \times 1 \times C \times 1}` is a 1x1 convolution from C
    channels to one: each pixel's gate is a learned weighted sum of its own C values.

    Args:
        channels: C, the number of input (and output) channels.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H, W)`

    Attributes:
        conv: :math:`W_{sq}, b_{sq}`, ``nn.Conv2d(C, 1, 1)``.

    Captured:
        ``gate``: :math:`q`, shape :math:`(B, 1, H, W)`.

    Batch size 1 in training mode works (no BatchNorm).

    Example:
        >>> import torch, attnlib
        >>> sse = attnlib.create_block("sse", 64)
        >>> sse(torch.randn(2, 64, 14, 14)).shape
        torch.Size([2, 64, 14, 14])
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = check_positive_int(channels, "channels")
        self.conv = nn.Conv2d(channels, 1, kernel_size=1)  # W_sq: (1, C, 1, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial gate :math:`q` of shape (B, 1, H, W) for an input of shape (B, C, H, W)."""
        return torch.sigmoid(self.conv(x))              # 1x1 conv C -> 1 + sigmoid, eq. scse-spatial: (B, 1, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        q = self.gate(x)                                # spatial gate, eq. scse-spatial: (B, 1, H, W)
        self._record("gate", q)
        return x * q                                    # scale, eq. scse-spatial-scale: (B, C, H, W)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


@register("scse", family="hybrid", paper=PAPER, year=2018, arxiv="1803.02579", chapter="scse")
class ChannelSpatialSE(AttentionBlock):
    r"""scSE: cSE and sSE in parallel on the same input, combined.

    .. math::
        \hat U_{scSE} = \hat U_{cSE} + \hat U_{sSE} = s \odot U + q \odot U
        \quad(\texttt{combine="add"}, \text{paper}), \qquad
        \hat U_{scSE} = \max(\hat U_{cSE}, \hat U_{sSE}) \quad(\texttt{combine="max"}, \text{official code})

    with :math:`s` the channel gate of :class:`ChannelSE` and :math:`q` the spatial gate of
    :class:`SpatialSE`. The maximum is taken element-wise between the two recalibrated tensors (not
    between the gates, which differs where :math:`U < 0`).

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r of the cSE bottleneck (paper: 2). ``C // r`` must be >= 1.
        combine: ``"add"`` (MICCAI paper, default) or ``"max"`` (released code, journal version).

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H, W)`

    Attributes:
        cse: the :class:`ChannelSE` whose ``gate`` gives :math:`s`.
        sse: the :class:`SpatialSE` whose ``gate`` gives :math:`q`.

    Captured:
        ``channel``: :math:`s`, shape :math:`(B, C, 1, 1)`.
        ``spatial``: :math:`q`, shape :math:`(B, 1, H, W)`.

    Batch size 1 in training mode works (no BatchNorm).

    Example:
        >>> import torch, attnlib
        >>> scse = attnlib.create_block("scse", 64)
        >>> scse(torch.randn(2, 64, 14, 14)).shape
        torch.Size([2, 64, 14, 14])
    """

    def __init__(self, channels: int, *, reduction: float = 2, combine: str = "add"):
        super().__init__()
        self.channels = channels
        self.combine = check_choice(combine, "combine", COMBINES)
        self.cse = ChannelSE(channels, reduction=reduction)
        self.sse = SpatialSE(channels)

    def reset_parameters(self) -> None:
        self.cse.reset_parameters()
        self.sse.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        s = self.cse.gate(x)                            # channel gate, eq. scse-excite: (B, C, 1, 1)
        q = self.sse.gate(x)                            # spatial gate, eq. scse-spatial: (B, 1, H, W)
        self._record("channel", s)
        self._record("spatial", q)
        if self.combine == "add":
            return x * s + x * q                        # sum of both recalibrations, eq. scse-combine: (B, C, H, W)
        return torch.maximum(x * s, x * q)              # element-wise max, eq. scse-combine: (B, C, H, W)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, combine={self.combine!r}"
