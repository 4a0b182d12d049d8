"""Dynamic convolution (DY-CNN).

Paper: Chen, Dai, Liu, Chen, Yuan, Liu, "Dynamic Convolution: Attention over Convolution Kernels",
CVPR 2020, arXiv:1912.03458.

Idea: keep K convolution kernels and let a small squeeze-excitation style branch compute, for every
sample, a softmax attention over them; the sample is convolved once with the attention-weighted sum of
the kernels (and biases). The aggregation costs K multiply-adds per weight, far less than K convolutions.

Equations (book labels):
    - ``dyconv-pool``: :math:`z = \\frac{1}{HW}\\sum_{i,j} x_{:,i,j}`, shape (B, C_in).
    - ``dyconv-attention``: :math:`\\pi = \\operatorname{softmax}\\big(W_2\\,\\delta(W_1 z + b_1) + b_2)/\\tau\\big)`,
      shape (B, K).
    - ``dyconv-aggregate``: :math:`\\tilde W = \\sum_k \\pi_k W_k`, :math:`\\tilde b = \\sum_k \\pi_k b_k`,
      per sample.
    - ``dyconv-conv``: :math:`y = \\tilde W * x + \\tilde b`, every sample with its own kernel, computed as one
      grouped convolution with ``groups = G * B``.

Deviations from the paper: none in the computation. The paper anneals :math:`\\tau` from 30 to 1 during
the first epochs; the block stores the current temperature and :mod:`attnlib.temperature` sets or
anneals it. The paper does not give the initialisation: every kernel :math:`W_k` and bias :math:`b_k`
gets ``nn.Conv2d``'s default (Kaiming uniform with ``a = sqrt(5)``, i.e. bound ``1/sqrt(fan_in)``, with
``fan_in = C_in / G * k * k``); the attention FCs get ``nn.Linear``'s default. Square kernels only.

The widely used reference code differs in the attention branch, and both differences are options: its
first layer has no bias (``attention_bias=False``) and its hidden width is ``int(C_in / 4) + 1``, not
``floor(C_in / 4)`` (``reduced_channels=in_channels // 4 + 1``).

The softmax subtracts each row's largest logit before dividing by :math:`\tau` (the same softmax), so
a small temperature gives a sharp but finite attention in every float format; :math:`\tau` must be at
least ``attnlib.validation.MIN_TEMPERATURE`` (1e-3).

Book chapter: ``book/dynamic_conv.md``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from ..validation import check_bool, check_positive_float, check_positive_int, check_temperature, conv_arguments, reduced_width
from .base import AttentionBlock


@register("dynamic_conv", family="dynamic", paper="Dynamic Convolution: Attention over Convolution Kernels",
          year=2020, arxiv="1912.03458", chapter="dynamic_conv")
class DynamicConv2d(AttentionBlock):
    r"""Dynamic convolution: a per-sample softmax mixture of K convolution kernels, used like ``nn.Conv2d``.

    .. math::
        \pi(x) = \operatorname{softmax}\!\Big(\frac{W_2\,\delta(W_1\,\mathrm{GAP}(x) + b_1) + b_2}{\tau}\Big),
        \qquad
        y = \Big(\sum_{k=1}^{K} \pi_k(x)\, W_k\Big) * x + \sum_{k=1}^{K} \pi_k(x)\, b_k

    with :math:`W_1 \in \mathbb{R}^{C_r \times C_{in}}`, :math:`C_r = \lfloor C_{in}/r \rfloor` (r = 4; 0 raises),
    :math:`W_2 \in \mathbb{R}^{K \times C_r}`, :math:`\delta` = ReLU, and :math:`\sum_k \pi_k = 1`.

    Args:
        in_channels: C_in, channels of the input.
        out_channels: C_out, channels of the output (default: ``in_channels``).
        kernel_size: k, side of the square kernels (default 3).
        stride: stride of the convolution (default 1).
        padding: zero padding on each side; ``None`` (default) gives "same" padding ``dilation * (k // 2)``.
        dilation: dilation of the convolution (default 1).
        groups: G, as in ``nn.Conv2d``; must divide ``in_channels`` and ``out_channels``.
        bias: whether each of the K kernels has a bias :math:`b_k` (default True).
        num_kernels: K, the number of kernels (paper: 4).
        reduction: r of the attention branch, :math:`C_r = \lfloor C_{in}/r \rfloor` (paper: 4).
        temperature: :math:`\tau` of the softmax, at least 1e-3 (paper: 30 at the start of training,
            annealed to 1; use :func:`attnlib.temperature.set_temperature` or
            :class:`attnlib.temperature.TemperatureAnnealer`).
        reduced_channels: :math:`C_r` given directly, overriding ``reduction`` (default ``None``: computed
            from ``reduction``). The reference code uses ``in_channels // 4 + 1``.
        attention_bias: whether the attention's first layer has its bias :math:`b_1` (default True; the
            reference code has none).

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`
        - Output: :math:`(B, C_{out}, H', W')` with
          :math:`H' = \lfloor (H + 2p - d(k-1) - 1)/s \rfloor + 1`, likewise :math:`W'` (``nn.Conv2d``'s rule).

    Attributes:
        weight: the K kernels :math:`W_k`, shape :math:`(K, C_{out}, C_{in}/G, k, k)`, each initialised
            like ``nn.Conv2d.weight`` (Kaiming uniform, ``a = sqrt(5)``).
        bias: the K biases :math:`b_k`, shape :math:`(K, C_{out})` (or ``None``), uniform
            :math:`\pm 1/\sqrt{C_{in} k^2 / G}` like ``nn.Conv2d.bias``.
        fc1: :math:`W_1, b_1`, ``nn.Linear(C_in, C_r)`` (no :math:`b_1` with ``attention_bias=False``).
        fc2: :math:`W_2, b_2`, ``nn.Linear(C_r, K)``.

    Captured:
        ``attention``: :math:`\pi`, shape :math:`(B, K)` (each row sums to 1).

    An input smaller than the dilated kernel after padding (no output position) raises a ``ValueError``.
    Batch size 1 in training mode works (no BatchNorm). Every sample gets its own kernel: the
    attention is never averaged over the batch. The temperature is a plain attribute, not part of the
    ``state_dict``; :meth:`attnlib.temperature.TemperatureAnnealer.state_dict` resumes a schedule.

    Example:
        >>> import torch, attnlib
        >>> conv = attnlib.create_block("dynamic_conv", 64, 128, 3, stride=2)
        >>> conv(torch.randn(2, 64, 14, 14)).shape
        torch.Size([2, 128, 7, 7])
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, kernel_size: int = 3, *,
                 stride: int = 1, padding: int | None = None, dilation: int = 1, groups: int = 1,
                 bias: bool = True, num_kernels: int = 4, reduction: float = 4, temperature: float = 30.0,
                 reduced_channels: int | None = None, attention_bias: bool = True):
        super().__init__()
        args = conv_arguments(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self._store_conv_arguments(args)
        self.num_kernels = check_positive_int(num_kernels, "num_kernels")
        self.reduction = reduction
        if reduced_channels is None:
            self.reduced_channels = reduced_width(in_channels, reduction, channels_name="in_channels")
        else:
            check_positive_float(reduction, "reduction")  # still a valid number, though unused
            self.reduced_channels = check_positive_int(reduced_channels, "reduced_channels")
        self.attention_bias = check_bool(attention_bias, "attention_bias")
        self.temperature = check_temperature(temperature)
        K, C_out, C_in_g = num_kernels, self.out_channels, in_channels // groups
        self.weight = nn.Parameter(torch.empty(K, C_out, C_in_g, kernel_size, kernel_size))  # W_k
        self.bias = nn.Parameter(torch.empty(K, C_out)) if bias else None  # b_k
        self.fc1 = nn.Linear(in_channels, self.reduced_channels, bias=attention_bias)  # W1: (C_r, C_in)
        self.fc2 = nn.Linear(self.reduced_channels, num_kernels)  # W2: (K, C_r)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for k in range(self.num_kernels):
            nn.init.kaiming_uniform_(self.weight[k], a=math.sqrt(5))  # nn.Conv2d's default, per kernel
        if self.bias is not None:
            fan_in = self.weight[0].shape[1] * self.kernel_size * self.kernel_size  # C_in / G * k * k
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)
        self.fc1.reset_parameters()
        self.fc2.reset_parameters()

    def set_temperature(self, temperature: float) -> None:
        """Set the softmax temperature :math:`\\tau` (>= 1e-3) used from the next forward on."""
        self.temperature = check_temperature(temperature)

    def kernel_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention :math:`\\pi` over the K kernels, shape (B, K), for an input (B, C_in, H, W)."""
        z = x.mean(dim=(2, 3))                          # pool, eq. dyconv-pool: (B, C_in)
        logits = self.fc2(torch.relu(self.fc1(z)))      # attention logits, eq. dyconv-attention: (B, K)
        logits = logits - logits.amax(dim=1, keepdim=True).detach()  # shift, softmax unchanged: (B, K)
        return torch.softmax(logits / self.temperature, dim=1)  # softmax, eq. dyconv-attention: (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.in_channels)
        self._check_conv_input(x)
        B, C_in, H, W = x.shape
        pi = self.kernel_attention(x)                   # attention, eq. dyconv-attention: (B, K)
        self._record("attention", pi)
        w = pi @ self.weight.flatten(1)                 # aggregate kernels, eq. dyconv-aggregate: (B, C_out·C_in/G·k·k)
        w = w.view(B * self.out_channels, *self.weight.shape[2:])  # per-sample kernels, eq. dyconv-aggregate: (B·C_out, C_in/G, k, k)
        b = None if self.bias is None else (pi @ self.bias).flatten()  # aggregate biases, eq. dyconv-aggregate: (B·C_out,)
        x = x.reshape(1, B * C_in, H, W)                # samples as channel groups, eq. dyconv-conv: (1, B·C_in, H, W)
        y = F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups * B)  # one grouped conv, eq. dyconv-conv: (1, B·C_out, H', W')
        return y.view(B, self.out_channels, *y.shape[2:])  # eq. dyconv-conv: (B, C_out, H', W')

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
             f"bias={self.bias is not None}, num_kernels={self.num_kernels}, "
             f"reduced_channels={self.reduced_channels}, temperature={self.temperature:g}")
        if not self.attention_bias:
            s += ", attention_bias=False"
        return s
