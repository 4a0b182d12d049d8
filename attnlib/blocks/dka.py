"""Dynamic kernel aggregation (DKA), from Dite-HRNet.

Paper: Li et al., "Dite-HRNet: Dynamic Lightweight High-Resolution Network for
Human Pose Estimation", IJCAI 2022, arXiv:2204.10762.

Idea: like dynamic convolution, convolve every sample with its own weighted sum of K kernels; the
weights come from an attention branch that ends in an independent sigmoid per kernel (CondConv-like),
so they neither sum to 1 nor need a temperature.

Equations (book labels):
    - ``dka-pool``: :math:`z = \\mathrm{GAP}(x)`, shape (B, C_in, 1, 1).
    - ``dka-attention``: :math:`\\alpha = \\sigma\\big(W_2\\,\\delta(\\mathrm{BN}(W_1 z)) + b_2\\big)`, shape (B, K).
    - ``dka-aggregate``: :math:`\\tilde W = \\sum_k \\alpha_k W_k`, :math:`\\tilde b = \\sum_k \\alpha_k b_k`.
    - ``dka-conv``: :math:`y = \\tilde W * x + \\tilde b`, one grouped convolution with ``groups = G * B``.

Deviations from the paper: none. Initialisation follows the released code: the two 1x1 convolutions of
the attention branch are Kaiming normal (``fan_out``, ReLU gain) with zero bias, the BatchNorm starts
at (1, 0), every kernel :math:`W_k` is Kaiming uniform (``a = 0``, bound ``sqrt(6 / fan_in)``,
``fan_in = C_in / G * k * k``) and the biases :math:`b_k` start at 0. The released code makes the hidden
width ``C_in // 4`` (``K`` when ``C_in = 3``); here it is :func:`attnlib.validation.reduced_width`
``(C_in, 4)``, which equals ``C_in // 4`` whenever that is >= 1. Square kernels only.

Book chapter: ``book/dka.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from ..validation import check_positive_int, conv_arguments, reduced_width
from .base import AttentionBlock


@register("dka", family="dynamic",
          paper="Dite-HRNet: Dynamic Lightweight High-Resolution Network for Human Pose Estimation",
          year=2022, arxiv="2204.10762", chapter="dka")
class DynamicKernelAggregation(AttentionBlock):
    r"""Dynamic kernel aggregation: a per-sample sigmoid-weighted sum of K kernels, used like ``nn.Conv2d``.

    .. math::
        \alpha(x) = \sigma\big(W_2\,\delta(\mathrm{BN}(W_1\,\mathrm{GAP}(x))) + b_2\big), \qquad
        y = \Big(\sum_{k=1}^{K} \alpha_k(x)\, W_k\Big) * x + \sum_{k=1}^{K} \alpha_k(x)\, b_k

    with :math:`W_1 \in \mathbb{R}^{C_r \times C_{in}}` (no bias), :math:`C_r = \lfloor C_{in}/r \rfloor`
    (r = 4; a width of 0 raises a ``ValueError``: pass a smaller ``reduction`` for few input channels), :math:`W_2 \in \mathbb{R}^{K \times C_r}`, :math:`\delta` = ReLU, :math:`\sigma` = sigmoid.
    Each :math:`\alpha_k \in (0, 1)` independently: no softmax, no temperature.

    Args:
        in_channels: C_in, channels of the input.
        out_channels: C_out, channels of the output (default: ``in_channels``).
        kernel_size: k, side of the square kernels (default 3).
        stride: stride of the convolution (default 1).
        padding: zero padding on each side; ``None`` (default) gives "same" padding ``dilation * (k // 2)``.
        dilation: dilation of the convolution (default 1).
        groups: G, as in ``nn.Conv2d``; must divide ``in_channels`` and ``out_channels``.
        bias: whether each of the K kernels has a bias :math:`b_k` (default True; Dite-HRNet itself
            builds its DKA layers with ``bias=False`` and a BatchNorm after them).
        num_kernels: K, the number of kernels (default 4; Dite-HRNet uses 4 in its two highest-resolution
            branches, 2 and 1 in the lower ones).
        reduction: r, the attention branch's reduction ratio (default 4, as in Dite-HRNet): C_r = C_in // r.

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`
        - Output: :math:`(B, C_{out}, H', W')` with ``nn.Conv2d``'s output size.

    Attributes:
        weight: the K kernels :math:`W_k`, shape :math:`(K, C_{out}, C_{in}/G, k, k)`.
        bias: the K biases :math:`b_k`, shape :math:`(K, C_{out})` (or ``None``).
        conv1: :math:`W_1`, ``nn.Conv2d(C_in, C_r, 1, bias=False)``.
        bn: ``nn.BatchNorm2d(C_r)``.
        conv2: :math:`W_2, b_2`, ``nn.Conv2d(C_r, K, 1)``.

    Captured:
        ``attention``: :math:`\alpha`, shape :math:`(B, K)` (entries in (0, 1), rows need not sum to 1).

    Batch size 1 in training mode raises ``ValueError``: the attention branch applies BatchNorm to
    globally pooled (1x1) features, and with one sample each channel has a single value, so its batch
    variance is undefined. Evaluation mode (running statistics) accepts one sample.
    An input smaller than the dilated kernel after padding (no output position) raises a ``ValueError``.

    Example:
        >>> import torch, attnlib
        >>> dka = attnlib.create_block("dka", 32, 64, 3, stride=2)
        >>> dka(torch.randn(2, 32, 14, 14)).shape
        torch.Size([2, 64, 7, 7])
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, kernel_size: int = 3, *,
                 stride: int = 1, padding: int | None = None, dilation: int = 1, groups: int = 1,
                 bias: bool = True, num_kernels: int = 4, reduction: float = 4):
        super().__init__()
        args = conv_arguments(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self._store_conv_arguments(args)
        self.num_kernels = check_positive_int(num_kernels, "num_kernels")
        self.reduction = reduction
        self.reduced_channels = reduced_width(in_channels, reduction, channels_name="in_channels")
        K, C_out, C_in_g = num_kernels, self.out_channels, in_channels // groups
        self.weight = nn.Parameter(torch.empty(K, C_out, C_in_g, kernel_size, kernel_size))  # W_k
        self.bias = nn.Parameter(torch.empty(K, C_out)) if bias else None  # b_k
        self.conv1 = nn.Conv2d(in_channels, self.reduced_channels, 1, bias=False)  # W1: (C_r, C_in, 1, 1)
        self.bn = nn.BatchNorm2d(self.reduced_channels)
        self.conv2 = nn.Conv2d(self.reduced_channels, num_kernels, 1)  # W2: (K, C_r, 1, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for k in range(self.num_kernels):
            nn.init.kaiming_uniform_(self.weight[k])  # a = 0: bound sqrt(6 / fan_in), as in Dite-HRNet
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.conv2.bias)
        self.bn.reset_parameters()

    def kernel_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention :math:`\\alpha` over the K kernels, shape (B, K), for an input (B, C_in, H, W)."""
        if self.training and x.shape[0] == 1:
            raise ValueError(
                f"{type(self).__name__}: batch size 1 is not supported in training mode: the attention "
                "branch applies BatchNorm to globally pooled 1x1 features, whose batch variance needs at "
                "least 2 samples. Use a batch of 2 or more, or eval() mode."
            )
        z = x.mean(dim=(2, 3), keepdim=True)            # pool, eq. dka-pool: (B, C_in, 1, 1)
        h = torch.relu(self.bn(self.conv1(z)))          # reduce, eq. dka-attention: (B, C_r, 1, 1)
        return torch.sigmoid(self.conv2(h).flatten(1))  # sigmoid per kernel, eq. dka-attention: (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.in_channels)
        self._check_conv_input(x)
        B, C_in, H, W = x.shape
        alpha = self.kernel_attention(x)                # attention, eq. dka-attention: (B, K)
        self._record("attention", alpha)
        w = alpha @ self.weight.flatten(1)              # aggregate kernels, eq. dka-aggregate: (B, C_out·C_in/G·k·k)
        w = w.view(B * self.out_channels, *self.weight.shape[2:])  # per-sample kernels, eq. dka-aggregate: (B·C_out, C_in/G, k, k)
        b = None if self.bias is None else (alpha @ self.bias).flatten()  # aggregate biases, eq. dka-aggregate: (B·C_out,)
        x = x.reshape(1, B * C_in, H, W)                # samples as channel groups, eq. dka-conv: (1, B·C_in, H, W)
        y = F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups * B)  # one grouped conv, eq. dka-conv: (1, B·C_out, H', W')
        return y.view(B, self.out_channels, *y.shape[2:])  # eq. dka-conv: (B, C_out, H', W')

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.bias is not None}, num_kernels={self.num_kernels}, reduction={self.reduction}, "
                f"reduced_channels={self.reduced_channels}")
