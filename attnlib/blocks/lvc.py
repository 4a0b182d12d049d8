"""Learnable visual center (LVC) and explicit visual center (EVC), from CFPNet.

Paper: Quan et al., "Centralized Feature Pyramid for Object Detection", IEEE TIP 2023,
arXiv:2210.02093.

Idea: LVC summarises a feature map by a Deep TEN encoding against K learned codewords (the "visual
centre" of the map), turns the mean of the encoded residuals into a channel gate :math:`\\gamma` and
rescales the features with it, :math:`\\mathrm{ReLU}(u + u \\odot \\gamma)`. EVC runs LVC next to a
lightweight MetaFormer-style MLP (long-range dependencies) after a 7x7 stem and fuses the two.

Equations (book labels):
    - ``lvc-bottleneck``: :math:`u = \\delta(\\mathrm{BN}(\\text{1x1} \\circ \\delta\\mathrm{BN}\\,\\text{3x3}
      \\circ \\delta\\mathrm{BN}\\,\\text{1x1}(x)) + \\mathrm{BN}(\\text{1x1}(x)))`, shape (B, C, H, W).
    - ``lvc-reduce``: :math:`v = \\delta(\\mathrm{BN}(W_v u))`, a 1x1 convolution, shape (B, C, H, W).
    - ``lvc-encode``: :math:`E = \\mathrm{Encoding}_K(v)` (see ``book/encoding.md``), shape (B, K, C).
    - ``lvc-pool``: :math:`m = \\frac{1}{K}\\sum_k \\delta(\\mathrm{BN_{1d}}(E))_k`, shape (B, C).
    - ``lvc-gamma``: :math:`\\gamma = \\sigma(W_\\gamma m + b_\\gamma)`, shape (B, C).
    - ``lvc-out``: :math:`y = \\delta(u + u \\odot \\gamma)`, shape (B, C, H, W).
    - ``evc-stem``: :math:`s = \\mathrm{MaxPool}_{3,1}(\\delta(\\mathrm{BN}(\\text{7x7}(x))))`, shape (B, C, H, W).
    - ``evc-mixer``: :math:`t = s + \\lambda_1 \\odot \\mathrm{Mixer}(\\mathrm{GN}(s))`, shape (B, C, H, W).
    - ``evc-mlp``: :math:`t' = t + \\lambda_2 \\odot \\mathrm{MLP}(\\mathrm{GN}(t))`, shape (B, C, H, W).
    - ``evc-fuse``: :math:`y = W_f [\\mathrm{LVC}(s); t'] + b_f`, a 1x1 convolution of the concatenation,
      shape (B, C, H, W).

Deviations from the paper and its released code:
    - ``num_codes`` is respected. The released code overwrites it with a hard-coded 64 (in both the
      LVC block and its Encoding layer), so K = 32 and K = 64 build the same layer there; here they do
      not. The default is 64, the value that code actually uses.
    - Token mixer of the lightweight MLP: the paper describes a depthwise convolution; the released code
      builds it with kernel size 1 (a depthwise 1x1 convolution + BN + SiLU, then a pointwise 1x1
      convolution + BN + SiLU), which mixes no tokens. This block uses the released code's version by
      default (``mixer_kernel_size=1``); ``mixer_kernel_size=3`` (or any odd k) gives a real k x k
      depthwise token mixer.
    - EVC keeps C channels (the released code can change the width in its last 1x1 convolution, but its
      lightweight MLP only works when input and output widths agree).

Initialisation follows the released code: PyTorch defaults, except the channel MLP of the lightweight
MLP (truncated normal, std 0.02, zero bias) and the layer scales :math:`\\lambda_1, \\lambda_2` (1e-5);
BatchNorms inside the LVC bottleneck use ``eps = 1e-6`` as there.

Book chapter: ``book/lvc.md`` (LVC and EVC).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from ..validation import MAX_SIZE, check_positive_float, check_positive_int, reduced_width
from .base import AttentionBlock
from .encoding import Encoding


class _Bottleneck(nn.Module):
    """The LVC's residual bottleneck: 1x1 (C -> C/4), 3x3, 1x1 (C/4 -> C), each with BatchNorm, a
    projected shortcut (1x1 conv + BN) and ReLU after the sum."""

    def __init__(self, channels: int):
        super().__init__()
        width = reduced_width(channels, 4)
        self.conv1 = nn.Conv2d(channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=1e-6)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width, eps=1e-6)
        self.conv3 = nn.Conv2d(width, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels, eps=1e-6)
        self.shortcut_conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))         # 1x1 reduce, eq. lvc-bottleneck: (B, C/4, H, W)
        h = torch.relu(self.bn2(self.conv2(h)))         # 3x3, eq. lvc-bottleneck: (B, C/4, H, W)
        h = self.bn3(self.conv3(h))                     # 1x1 expand, eq. lvc-bottleneck: (B, C, H, W)
        return torch.relu(h + self.shortcut_bn(self.shortcut_conv(x)))  # projected shortcut, eq. lvc-bottleneck: (B, C, H, W)


@register("lvc", family="context", paper="Centralized Feature Pyramid for Object Detection", year=2023,
          arxiv="2210.02093", chapter="lvc")
class LVC(AttentionBlock):
    r"""Learnable visual center: a channel gate computed from a codeword encoding of the whole map.

    .. math::
        u = \mathrm{Bottleneck}(x), \quad
        \gamma = \sigma\Big(W_\gamma \tfrac{1}{K}\textstyle\sum_k \delta\big(\mathrm{BN_{1d}}(
        \mathrm{Encoding}_K(\delta(\mathrm{BN}(W_v u))))\big)_k + b_\gamma\Big), \quad
        y = \delta(u + u \odot \gamma)

    where :math:`\mathrm{Encoding}_K` is Deep TEN's residual encoding against K codewords (shape
    (B, K, C), see :class:`attnlib.blocks.encoding.Encoding`), :math:`\mathrm{BN_{1d}}` normalises each
    codeword's residuals, :math:`\delta` = ReLU, :math:`\sigma` = sigmoid.

    Args:
        channels: C, channels of the input and output.
        num_codes: K, the number of codewords (default 64, what the released code uses; unlike that code,
            another value really changes the layer: the codewords, smoothing factors and the BatchNorm
            over codewords have K·(C + 3) parameters).
        positive_scale: passed to the Encoding layer: keep every smoothing factor :math:`s_k` positive
            through :math:`s = \mathrm{softplus}(\rho)` (default ``False``, the released code's
            parametrisation; see :class:`~attnlib.blocks.encoding.Encoding`).

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H, W)`

    Attributes:
        bottleneck: the residual bottleneck (1x1 → 3x3 → 1x1, width C/4, projected shortcut).
        reduce_conv, reduce_bn: :math:`W_v`, ``nn.Conv2d(C, C, 1, bias=False)`` and its BatchNorm.
        encoding: :class:`~attnlib.blocks.encoding.Encoding` with K codewords.
        code_bn: ``nn.BatchNorm1d(K)`` over the encoded residuals.
        fc: :math:`W_\gamma, b_\gamma`, ``nn.Linear(C, C)``.

    Captured:
        ``gamma``: the channel gate :math:`\gamma`, shape :math:`(B, C)`.

    Batch size 1 in training mode works when the map has more than one position: the BatchNorms of the
    bottleneck and of ``reduce_bn`` see B·H·W values per channel, and ``code_bn`` normalises each codeword
    over the B·C entries of its residual vectors (C values when B = 1). A batch of one 1x1 map raises a
    ``ValueError`` in training mode (eval mode accepts it). ``channels`` must be at least 4 (the bottleneck
    has C // 4 channels).

    Example:
        >>> import torch, attnlib
        >>> lvc = attnlib.create_block("lvc", 64, num_codes=32)
        >>> lvc(torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    def __init__(self, channels: int, *, num_codes: int = 64, positive_scale: bool = False):
        super().__init__()
        # the bottleneck's width is C // 4: at least 4 channels
        self.channels = check_positive_int(channels, "channels", minimum=4)
        self.num_codes = check_positive_int(num_codes, "num_codes")
        self.bottleneck = _Bottleneck(channels)
        self.reduce_conv = nn.Conv2d(channels, channels, 1, bias=False)  # W_v: (C, C, 1, 1)
        self.reduce_bn = nn.BatchNorm2d(channels)
        self.encoding = Encoding(channels, num_codes=num_codes, positive_scale=positive_scale)  # d: (K, C), s: (K,)
        self.code_bn = nn.BatchNorm1d(num_codes)
        self.fc = nn.Linear(channels, channels)  # W_gamma: (C, C)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def gate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The bottleneck features :math:`u` (B, C, H, W) and the gate :math:`\\gamma` (B, C) of an input
        (B, C, H, W); the block's output is ``self.rescale(u, gamma)``."""
        u = self.bottleneck(x)                          # eq. lvc-bottleneck: (B, C, H, W)
        v = torch.relu(self.reduce_bn(self.reduce_conv(u)))  # 1x1 conv + BN + ReLU, eq. lvc-reduce: (B, C, H, W)
        e, _ = self.encoding.encode(v)                  # residual encoding, eq. lvc-encode: (B, K, C)
        e = torch.relu(self.code_bn(e))                 # BN over each codeword, eq. lvc-pool: (B, K, C)
        m = e.mean(dim=1)                               # mean over codewords, eq. lvc-pool: (B, C)
        return u, torch.sigmoid(self.fc(m))             # gate, eq. lvc-gamma: (B, C)

    @staticmethod
    def rescale(u: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """:math:`\\mathrm{ReLU}(u + u \\odot \\gamma)` for u (B, C, H, W) and gamma (B, C)."""
        return torch.relu(u + u * gamma[:, :, None, None])  # rescale, eq. lvc-out: (B, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        self._check_batch_statistics(x.shape[0] * x.shape[2] * x.shape[3], "the bottleneck's BatchNorm", x)
        u, gamma = self.gate(x)                         # eq. lvc-bottleneck: (B, C, H, W); eq. lvc-gamma: (B, C)
        self._record("gamma", gamma)
        return self.rescale(u, gamma)                   # eq. lvc-out: (B, C, H, W)

    def extra_repr(self) -> str:
        extra = ", positive_scale=True" if self.encoding.positive_scale else ""
        return f"channels={self.channels}, num_codes={self.num_codes}{extra}"


class _LightMLP(nn.Module):
    """EVC's lightweight MLP branch, a MetaFormer block: GroupNorm(1) → token mixer → layer scale →
    residual, then GroupNorm(1) → 1x1 MLP (ratio r, GELU) → layer scale → residual."""

    def __init__(self, channels: int, mlp_ratio: float, layer_scale_init: float, mixer_kernel_size: int):
        super().__init__()
        hidden = int(channels * mlp_ratio)  # expanded width, as int(C * r) in the released code
        if hidden < 1:
            raise ValueError(f"mlp_ratio={mlp_ratio!r} leaves a hidden width of 0 for channels={channels}; "
                             f"mlp_ratio must be >= {1 / channels:g}")
        if hidden > MAX_SIZE:
            raise ValueError(f"mlp_ratio={mlp_ratio!r} gives a hidden width of {hidden} for channels={channels}, "
                             f"above the limit {MAX_SIZE}; mlp_ratio must be <= {MAX_SIZE / channels:g}")
        k = mixer_kernel_size
        self.layer_scale_init = layer_scale_init
        self.norm1 = nn.GroupNorm(1, channels)
        self.dw_conv = nn.Conv2d(channels, channels, k, padding=k // 2, groups=channels, bias=False)
        self.dw_bn = nn.BatchNorm2d(channels)
        self.pw_conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(channels)
        self.layer_scale_1 = nn.Parameter(torch.empty(channels))  # lambda_1
        self.norm2 = nn.GroupNorm(1, channels)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.layer_scale_2 = nn.Parameter(torch.empty(channels))  # lambda_2
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in (self.norm1, self.dw_conv, self.dw_bn, self.pw_conv, self.pw_bn, self.norm2):
            module.reset_parameters()
        for fc in (self.fc1, self.fc2):
            nn.init.trunc_normal_(fc.weight, std=0.02)
            nn.init.zeros_(fc.bias)
        nn.init.constant_(self.layer_scale_1, self.layer_scale_init)
        nn.init.constant_(self.layer_scale_2, self.layer_scale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = F.silu(self.dw_bn(self.dw_conv(self.norm1(x))))  # GN + depthwise conv + BN + SiLU, eq. evc-mixer: (B, C, H, W)
        t = F.silu(self.pw_bn(self.pw_conv(t)))         # pointwise conv + BN + SiLU, eq. evc-mixer: (B, C, H, W)
        x = x + self.layer_scale_1[:, None, None] * t   # layer scale + residual, eq. evc-mixer: (B, C, H, W)
        m = self.fc2(F.gelu(self.fc1(self.norm2(x))))   # GN + channel MLP, eq. evc-mlp: (B, C, H, W)
        return x + self.layer_scale_2[:, None, None] * m  # layer scale + residual, eq. evc-mlp: (B, C, H, W)


@register("evc", family="context", paper="Centralized Feature Pyramid for Object Detection", year=2023,
          arxiv="2210.02093", chapter="lvc")
class EVC(AttentionBlock):
    r"""Explicit visual center: LVC (local corner regions) beside a lightweight MLP (global dependencies).

    .. math::
        s = \mathrm{MaxPool}_{3\times3,\,1}\big(\delta(\mathrm{BN}(W_7 * x))\big), \qquad
        y = W_f\,\big[\mathrm{LVC}(s);\ \mathrm{LightMLP}(s)\big] + b_f

    where LVC is :class:`LVC` (gate :math:`\gamma`), LightMLP is the MetaFormer block
    :math:`t = s + \lambda_1 \odot \mathrm{Mixer}(\mathrm{GN}(s))`,
    :math:`\mathrm{LightMLP}(s) = t + \lambda_2 \odot W_2\,\mathrm{GELU}(W_1 \mathrm{GN}(t))`, GN is
    GroupNorm with one group, and :math:`W_f` a 1x1 convolution from 2C to C channels.

    Args:
        channels: C, channels of the input and output.
        num_codes: K, codewords of the LVC branch (default 64).
        mlp_ratio: hidden width of the channel MLP as a multiple of C (default 4).
        layer_scale_init: initial value of the layer scales :math:`\lambda_1, \lambda_2` (default 1e-5).
        mixer_kernel_size: kernel of the depthwise token mixer, odd (default 1, as in the released code;
            see "Deviations" in the module docstring).

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, C, H, W)`

    Attributes:
        stem_conv, stem_bn: the 7x7 stem ``nn.Conv2d(C, C, 7, padding=3, bias=False)`` and its BatchNorm.
        lvc: the :class:`LVC` branch.
        mlp: the lightweight MLP branch.
        fuse: :math:`W_f, b_f`, ``nn.Conv2d(2C, C, 1)``.

    Captured:
        ``gamma``: the LVC branch's channel gate :math:`\gamma`, shape :math:`(B, C)`.

    Batch size 1 in training mode works when the map has more than one position: every BatchNorm sees
    B·H·W values per channel (or B·C values per codeword for the LVC's ``code_bn``), GroupNorm is per
    sample; a batch of one 1x1 map raises a ``ValueError`` in training mode (eval mode accepts it).
    ``channels`` must be at least 4, as for :class:`LVC`.

    Example:
        >>> import torch, attnlib
        >>> evc = attnlib.create_block("evc", 64)
        >>> evc(torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    def __init__(self, channels: int, *, num_codes: int = 64, mlp_ratio: float = 4.0,
                 layer_scale_init: float = 1e-5, mixer_kernel_size: int = 1):
        super().__init__()
        self.channels = check_positive_int(channels, "channels", minimum=4)  # its LVC needs C // 4 >= 1
        self.num_codes = check_positive_int(num_codes, "num_codes")
        self.mlp_ratio = check_positive_float(mlp_ratio, "mlp_ratio")
        self.layer_scale_init = check_positive_float(layer_scale_init, "layer_scale_init")
        self.mixer_kernel_size = check_positive_int(mixer_kernel_size, "mixer_kernel_size")
        if mixer_kernel_size % 2 == 0:
            raise ValueError(f"mixer_kernel_size must be odd (the mixer keeps the spatial size), "
                             f"got {mixer_kernel_size}")
        self.stem_conv = nn.Conv2d(channels, channels, 7, padding=3, bias=False)  # W_7: (C, C, 7, 7)
        self.stem_bn = nn.BatchNorm2d(channels)
        self.lvc = LVC(channels, num_codes=num_codes)
        self.mlp = _LightMLP(channels, self.mlp_ratio, self.layer_scale_init, mixer_kernel_size)
        self.fuse = nn.Conv2d(2 * channels, channels, 1)  # W_f: (C, 2C, 1, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in (self.stem_conv, self.stem_bn, self.lvc, self.mlp, self.fuse):
            module.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        self._check_batch_statistics(x.shape[0] * x.shape[2] * x.shape[3], "the stem's BatchNorm (stem_bn)", x)
        s = torch.relu(self.stem_bn(self.stem_conv(x)))  # 7x7 conv + BN + ReLU, eq. evc-stem: (B, C, H, W)
        s = F.max_pool2d(s, 3, stride=1, padding=1)     # 3x3 max-pool, stride 1, eq. evc-stem: (B, C, H, W)
        u, gamma = self.lvc.gate(s)                     # LVC branch, eq. lvc-bottleneck: (B, C, H, W); eq. lvc-gamma: (B, C)
        self._record("gamma", gamma)
        y_lvc = self.lvc.rescale(u, gamma)              # eq. lvc-out: (B, C, H, W)
        y_mlp = self.mlp(s)                             # lightweight MLP branch, eq. evc-mlp: (B, C, H, W)
        return self.fuse(torch.cat([y_lvc, y_mlp], dim=1))  # concat + 1x1 conv, eq. evc-fuse: (B, C, H, W)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_codes={self.num_codes}, mlp_ratio={self.mlp_ratio:g}, "
                f"layer_scale_init={self.layer_scale_init:g}, mixer_kernel_size={self.mixer_kernel_size}")
