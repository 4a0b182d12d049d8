"""Convolutional Block Attention Module (CBAM): channel gate, spatial gate, and both in sequence.

Paper: Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018, arXiv:1807.06521.

Idea: refine a feature map twice, first along channels (an SE-style gate whose shared MLP sees both the
average- and the max-pooled descriptor) and then along space (a 7x7 convolution over the per-pixel
average and maximum across channels). Each gate is a sigmoid that multiplies the features.
In ResNet the block sits on the residual branch of each bottleneck, before the shortcut is added.

Deviations from the paper: none by default. The defaults are the paper's configuration: the spatial gate
is ``σ(f7x7([AvgPool(F); MaxPool(F)]))`` as printed, with no normalisation. The official code differs in
three ways, each offered as an option: it puts a BatchNorm (no conv bias) between the 7x7 convolution and
the sigmoid (``batch_norm=True``), it concatenates ``[max; avg]`` instead of the paper's
``[avg; max]`` (``pool_order="max_avg"``), and its ResNet initialises the spatial BatchNorm's scale γ to 0,
so that every spatial gate starts at σ(0) = 0.5 (``zero_init_bn=True``). The paper gives no
initialisation; the MLP keeps PyTorch's default (the official ResNet zeroes its biases) and the 7x7
convolution uses the official ResNet's Kaiming-normal (fan-out) initialisation. The official spatial
BatchNorm uses momentum 0.01 (``bn_momentum=0.01``); by default this module keeps PyTorch's 0.1.

Equations:
    cbam-channel-pool: F_avg^c, F_max^c = AvgPool(F), MaxPool(F) over H, W, each (B, C)
    cbam-channel-mlp: MLP(v) = W_1 δ(W_0 v + b_0) + b_1, shared by both descriptors
    cbam-channel-gate: M_c(F) = σ(MLP(F_avg^c) + MLP(F_max^c))
    cbam-channel-scale: F' = M_c(F) ⊗ F
    cbam-spatial-pool: [F_avg^s; F_max^s], mean and max over channels, concatenated, (B, 2, H, W)
    cbam-spatial-conv: f^{7x7}(·) (then BatchNorm with ``batch_norm=True``, the official code)
    cbam-spatial-gate: M_s(F') = σ(f^{7x7}([F_avg^s; F_max^s])) (σ(BN(·)) with ``batch_norm=True``)
    cbam-spatial-scale: F'' = M_s(F') ⊗ F'

Book chapter: ``book/cbam.md``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register
from ..validation import check_bool, check_choice, check_momentum, check_positive_int, reduced_width
from .base import AttentionBlock

PAPER = "CBAM: Convolutional Block Attention Module"
POOL_ORDERS = ("avg_max", "max_avg")


@register("cbam_channel", family="channel", paper=PAPER, year=2018, arxiv="1807.06521", chapter="cbam")
class CBAMChannel(AttentionBlock):
    r"""CBAM's channel attention module.

    .. math::
        M_c(F) = \sigma\big(\mathrm{MLP}(\mathrm{AvgPool}(F)) + \mathrm{MLP}(\mathrm{MaxPool}(F))\big),
        \qquad \mathrm{MLP}(v) = W_1\,\delta(W_0 v + b_0) + b_1, \qquad F' = M_c(F) \otimes F

    with :math:`W_0 \in \mathbb{R}^{C_r \times C}`, :math:`W_1 \in \mathbb{R}^{C \times C_r}`,
    :math:`C_r = \lfloor C / r \rfloor`, :math:`\delta` = ReLU; the pools run over H and W and the MLP is
    shared by both descriptors (so :math:`b_1` enters twice).

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r, the reduction ratio of the shared MLP (paper: 16). ``C // r`` must be >= 1.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H, W)`

    Attributes:
        fc1: :math:`W_0, b_0`, ``nn.Linear(C, C_r)``.
        fc2: :math:`W_1, b_1`, ``nn.Linear(C_r, C)``.

    Captured:
        ``gate``: :math:`M_c(F)`, shape :math:`(B, C, 1, 1)`.

    Batch size 1 in training mode works (no BatchNorm).

    Example:
        >>> import torch, attnlib
        >>> block = attnlib.create_block("cbam_channel", 64)
        >>> block(torch.randn(2, 64, 14, 14)).shape
        torch.Size([2, 64, 14, 14])
    """

    def __init__(self, channels: int, *, reduction: float = 16):
        super().__init__()
        self.channels = channels
        self.reduction = reduction
        self.reduced_channels = reduced_width(channels, reduction)
        self.fc1 = nn.Linear(channels, self.reduced_channels)  # W0: (C_r, C)
        self.fc2 = nn.Linear(self.reduced_channels, channels)  # W1: (C, C_r)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.fc1.reset_parameters()
        self.fc2.reset_parameters()

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gate :math:`M_c` of shape (B, C, 1, 1) for an input of shape (B, C, H, W)."""
        avg = x.mean(dim=(2, 3))                        # average pool, eq. cbam-channel-pool: (B, C)
        mx = x.amax(dim=(2, 3))                         # max pool, eq. cbam-channel-pool: (B, C)
        v = torch.stack([avg, mx])                      # both descriptors, eq. cbam-channel-pool: (2, B, C)
        m = self.fc2(torch.relu(self.fc1(v)))           # shared MLP on both at once, eq. cbam-channel-mlp: (2, B, C)
        s = torch.sigmoid(m.sum(dim=0))                 # sum and sigmoid, eq. cbam-channel-gate: (B, C)
        return s[:, :, None, None]                      # gate map, eq. cbam-channel-gate: (B, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        s = self.gate(x)                                # channel gate, eq. cbam-channel-gate: (B, C, 1, 1)
        self._record("gate", s)
        return x * s                                    # scale, eq. cbam-channel-scale: (B, C, H, W)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}, reduced_channels={self.reduced_channels}"


@register("cbam_spatial", family="spatial", paper=PAPER, year=2018, arxiv="1807.06521", chapter="cbam")
class CBAMSpatial(AttentionBlock):
    r"""CBAM's spatial attention module.

    .. math::
        M_s(F) = \sigma\big(f^{k \times k}([\mathrm{AvgPool}(F); \mathrm{MaxPool}(F)])\big),
        \qquad F' = M_s(F) \otimes F

    where the pools run over the channel axis (one average and one maximum per pixel, each
    :math:`(B, 1, H, W)`), :math:`f^{k \times k}` is a convolution from 2 channels to 1 with zero padding
    :math:`k // 2` and no bias. With ``batch_norm=True`` (the official code) a one-channel BatchNorm
    sits between the convolution and the sigmoid: :math:`\sigma(\mathrm{BN}(f^{k \times k}(\cdot)))`.

    Args:
        channels: C, the number of input (and output) channels (checked on the input; the gate has no
            per-channel parameters).
        kernel_size: k, odd size of the convolution (paper: 7; its ablation also tries 3).
        batch_norm: put a BatchNorm between the convolution and the sigmoid, as the official code does
            (default ``False``: the paper's equation).
        zero_init_bn: initialise the BatchNorm scale γ to 0, as the official ResNet does, so that every
            gate starts at 0.5 (default ``False``: γ = 1). Requires ``batch_norm=True``.
        pool_order: ``"avg_max"`` (paper: :math:`[\mathrm{AvgPool}; \mathrm{MaxPool}]`) or ``"max_avg"``
            (official code): which pooled map is input channel 0 of the convolution.
        bn_momentum: momentum of that BatchNorm's running statistics, in [0, 1] (PyTorch's convention;
            default 0.1, PyTorch's default; the official code uses 0.01). Requires ``batch_norm=True``
            when it is not 0.1.

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H, W)`

    Attributes:
        conv: :math:`f^{k \times k}`, ``nn.Conv2d(2, 1, k, padding=k // 2, bias=False)``.
        bn: ``nn.BatchNorm2d(1)``, or ``None`` with ``batch_norm=False``.

    Captured:
        ``gate``: :math:`M_s(F)`, shape :math:`(B, 1, H, W)`.

    Batch size 1 in training mode works. With ``batch_norm=True`` it needs :math:`H W > 1` (the
    BatchNorm then normalises over the pixels); a single 1x1 sample in training raises a ``ValueError``.

    Example:
        >>> import torch, attnlib
        >>> block = attnlib.create_block("cbam_spatial", 64)
        >>> block(torch.randn(2, 64, 14, 14)).shape
        torch.Size([2, 64, 14, 14])
    """

    def __init__(self, channels: int, *, kernel_size: int = 7, batch_norm: bool = False, zero_init_bn: bool = False,
                 pool_order: str = "avg_max", bn_momentum: float = 0.1):
        super().__init__()
        self.channels = check_positive_int(channels, "channels")
        check_positive_int(kernel_size, "kernel_size")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd integer >= 1 (padding k // 2 keeps H x W), got {kernel_size}")
        self.kernel_size = kernel_size
        self.batch_norm = check_bool(batch_norm, "batch_norm")
        self.zero_init_bn = check_bool(zero_init_bn, "zero_init_bn")
        if zero_init_bn and not batch_norm:
            raise ValueError("zero_init_bn=True needs batch_norm=True (there is no BatchNorm scale to set to 0)")
        self.pool_order = check_choice(pool_order, "pool_order", POOL_ORDERS)
        self.bn_momentum = check_momentum(bn_momentum)
        if self.bn_momentum != 0.1 and not batch_norm:
            raise ValueError(f"bn_momentum={bn_momentum!r} needs batch_norm=True (without it there is no BatchNorm)")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)  # f^{kxk}: (1, 2, k, k)
        self.bn = nn.BatchNorm2d(1, momentum=self.bn_momentum) if batch_norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out")  # official ResNet: Kaiming normal, fan-out
        if self.bn is not None:
            self.bn.reset_parameters()
            if self.zero_init_bn:
                nn.init.zeros_(self.bn.weight)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial gate :math:`M_s` of shape (B, 1, H, W) for an input of shape (B, C, H, W)."""
        if self.bn is not None and self.bn.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            raise ValueError(
                f"{type(self).__name__}: a batch of one 1x1 sample cannot be used in training mode: the BatchNorm "
                f"after the {self.kernel_size}x{self.kernel_size} convolution needs more than one value "
                f"(batch size x H x W > 1) to normalise; got input {tuple(x.shape)}. Use eval mode or a larger batch."
            )
        avg = x.mean(dim=1, keepdim=True)               # mean over channels, eq. cbam-spatial-pool: (B, 1, H, W)
        mx = x.amax(dim=1, keepdim=True)                # max over channels, eq. cbam-spatial-pool: (B, 1, H, W)
        pooled = [avg, mx] if self.pool_order == "avg_max" else [mx, avg]
        f = torch.cat(pooled, dim=1)                    # concatenate, eq. cbam-spatial-pool: (B, 2, H, W)
        a = self.conv(f)                                # kxk conv, eq. cbam-spatial-conv: (B, 1, H, W)
        if self.bn is not None:
            a = self.bn(a)                              # BatchNorm, eq. cbam-spatial-conv: (B, 1, H, W)
        return torch.sigmoid(a)                         # sigmoid, eq. cbam-spatial-gate: (B, 1, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        s = self.gate(x)                                # spatial gate, eq. cbam-spatial-gate: (B, 1, H, W)
        self._record("gate", s)
        return x * s                                    # scale, eq. cbam-spatial-scale: (B, C, H, W)

    def extra_repr(self) -> str:
        momentum = f", bn_momentum={self.bn_momentum:g}" if self.batch_norm else ""
        return (f"channels={self.channels}, kernel_size={self.kernel_size}, batch_norm={self.batch_norm}, "
                f"zero_init_bn={self.zero_init_bn}, pool_order={self.pool_order!r}{momentum}")


@register("cbam", family="hybrid", paper=PAPER, year=2018, arxiv="1807.06521", chapter="cbam")
class CBAM(AttentionBlock):
    r"""Convolutional Block Attention Module: channel gate, then spatial gate.

    .. math::
        F' = M_c(F) \otimes F, \qquad F'' = M_s(F') \otimes F'

    with :math:`M_c` of :class:`CBAMChannel` and :math:`M_s` of :class:`CBAMSpatial` (the spatial gate
    is computed on the channel-refined :math:`F'`, the paper's sequential channel-first order).

    Args:
        channels: C, the number of input (and output) channels.
        reduction: r of the channel gate's shared MLP (paper: 16). ``C // r`` must be >= 1.
        kernel_size: k of the spatial gate's convolution, odd (paper: 7).
        batch_norm: BatchNorm between the spatial convolution and its sigmoid (official code; default
            ``False``, the paper's printed equation).
        zero_init_bn: initialise that BatchNorm's γ to 0 (official ResNet), so the spatial gate starts
            at 0.5 everywhere (default ``False``).
        pool_order: ``"avg_max"`` (paper) or ``"max_avg"`` (official code), the order of the spatial
            gate's pooled maps.
        bn_momentum: momentum of the spatial BatchNorm (default 0.1, PyTorch's; official code: 0.01).

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H, W)`

    Attributes:
        channel: the :class:`CBAMChannel` whose ``gate`` gives :math:`M_c`.
        spatial: the :class:`CBAMSpatial` whose ``gate`` gives :math:`M_s`.

    Captured:
        ``channel``: :math:`M_c(F)`, shape :math:`(B, C, 1, 1)`.
        ``spatial``: :math:`M_s(F')`, shape :math:`(B, 1, H, W)`.

    Batch size 1 in training mode works for :math:`H W > 1` (see :class:`CBAMSpatial`).

    Example:
        >>> import torch, attnlib
        >>> cbam = attnlib.create_block("cbam", 64)
        >>> with attnlib.capture(cbam) as maps:
        ...     y = cbam(torch.randn(2, 64, 14, 14))
        >>> maps[""]["channel"].shape, maps[""]["spatial"].shape
        (torch.Size([2, 64, 1, 1]), torch.Size([2, 1, 14, 14]))
    """

    def __init__(self, channels: int, *, reduction: float = 16, kernel_size: int = 7, batch_norm: bool = False,
                 zero_init_bn: bool = False, pool_order: str = "avg_max", bn_momentum: float = 0.1):
        super().__init__()
        self.channels = channels
        self.channel = CBAMChannel(channels, reduction=reduction)
        self.spatial = CBAMSpatial(channels, kernel_size=kernel_size, batch_norm=batch_norm,
                                   zero_init_bn=zero_init_bn, pool_order=pool_order, bn_momentum=bn_momentum)

    def reset_parameters(self) -> None:
        self.channel.reset_parameters()
        self.spatial.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        mc = self.channel.gate(x)                       # channel gate, eq. cbam-channel-gate: (B, C, 1, 1)
        self._record("channel", mc)
        x = x * mc                                      # F', eq. cbam-channel-scale: (B, C, H, W)
        ms = self.spatial.gate(x)                       # spatial gate on F', eq. cbam-spatial-gate: (B, 1, H, W)
        self._record("spatial", ms)
        return x * ms                                   # F'', eq. cbam-spatial-scale: (B, C, H, W)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
