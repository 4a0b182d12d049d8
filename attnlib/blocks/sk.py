"""Selective Kernel convolution (SK).

Paper: Li, Wang, Hu, Yang, "Selective Kernel Networks", CVPR 2019, arXiv:1903.06586.

Idea: run the same input through M convolution branches with growing receptive fields (split), sum
them and squeeze the sum into a compact descriptor (fuse), then let a per-channel softmax across the
branches decide how much of each receptive field every channel takes (select). The block replaces a
convolution: it maps ``in_channels`` to ``out_channels`` like ``nn.Conv2d``.

Deviations from the paper: none. The larger kernels are by default 3x3 convolutions with dilation
2, 3, ... (the paper's efficient choice: the 5x5 branch is a dilated 3x3); ``dilated=False`` builds true
5x5, 7x7, ... kernels. The paper writes the select matrices (its A, B) without biases and so does this
module. The paper gives no initialisation; the branch convolutions use Kaiming-normal (fan-out, ReLU)
as in ResNet/ResNeXt, BatchNorms γ = 1, β = 0, and the two linear layers PyTorch's default. The released
Caffe models update the BatchNorm statistics with ``moving_average_fraction`` 0.95, i.e. momentum 0.05 in
PyTorch's convention: ``bn_momentum=0.05``; the default keeps PyTorch's 0.1.

Equations:
    sk-split: U_m = δ(BN(conv_m(X))), branch m with effective kernel 3 + 2m (m = 0..M-1), (B, C, H, W)
    sk-fuse-sum: U = Σ_m U_m
    sk-squeeze: s = GAP(U), (B, C)
    sk-fuse: z = δ(BN(W s)), W: C -> d, d = max(C / r, L), (B, d)
    sk-select: a_m = exp(A_m z) / Σ_m' exp(A_m' z), a softmax across the M branches per channel, (B, M, C)
    sk-aggregate: V = Σ_m a_m ⊙ U_m, (B, C, H, W)

Book chapter: ``book/sk.md``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register
from ..validation import check_bool, check_divisible, check_momentum, check_positive_int, reduced_width
from .base import AttentionBlock


@register("sk", family="channel", paper="Selective Kernel Networks", year=2019, arxiv="1903.06586", chapter="sk")
class SelectiveKernel(AttentionBlock):
    r"""Selective Kernel convolution: M branches, fused, then a softmax selection across branches.

    .. math::
        U_m = \delta(\mathrm{BN}(K_m * X)), \quad
        s = \mathrm{GAP}\Big(\sum_m U_m\Big), \quad
        z = \delta(\mathrm{BN}(W s)), \quad
        a_{m,c} = \frac{e^{A_{m,c}\, z}}{\sum_{m'} e^{A_{m',c}\, z}}, \quad
        V_c = \sum_m a_{m,c}\, U_{m,c}

    with :math:`K_m` the grouped convolution of branch :math:`m` (effective kernel :math:`3 + 2m`),
    :math:`W \in \mathbb{R}^{d \times C}`, :math:`A_m \in \mathbb{R}^{C \times d}` (the paper's
    :math:`A, B` for M = 2), :math:`d = \max(\lfloor C / r \rfloor, L)` and :math:`C` = ``out_channels``.

    Args:
        in_channels: input channels of the branch convolutions.
        out_channels: C, output channels (default: ``in_channels``).
        stride: stride of every branch convolution (default 1).
        num_branches: M >= 2, the number of branches (paper: 2). Branch m has a 3x3 kernel with dilation
            m + 1 (``dilated=True``) or a true (3 + 2m)x(3 + 2m) kernel, padding m + 1 either way.
        groups: G, the groups of every branch convolution (paper: 32). ``in_channels`` and
            ``out_channels`` must be divisible by G.
        reduction: r, the reduction ratio of the fuse layer (paper: 16).
        min_width: L, the minimum width d of the fuse layer (paper: 32).
        dilated: ``True`` (paper's default) for dilated 3x3 kernels, ``False`` for true large kernels.
        bn_momentum: momentum of every BatchNorm's running statistics (the M branch BatchNorms and
            ``fc_bn``), in [0, 1], PyTorch's convention (default 0.1; the released Caffe models: 0.05).

    Shape:
        - Input: :math:`(B, C_{in}, H, W)`
        - Output: :math:`(B, C, H', W')`, :math:`H' = \lfloor (H - 1) / \text{stride} \rfloor + 1`,
          likewise :math:`W'`.

    Attributes:
        branches: ``nn.ModuleList`` of M ``nn.Sequential(conv, BatchNorm2d(C), ReLU)``; conv of branch m
            has weight ``(C, C_in / G, k_m, k_m)`` and no bias.
        fc: :math:`W`, ``nn.Linear(C, d, bias=False)``; followed by ``fc_bn`` (``nn.BatchNorm1d(d)``).
        select: all :math:`A_m` stacked, ``nn.Linear(d, M * C, bias=False)``: rows
            ``m * C : (m + 1) * C`` of its weight are :math:`A_m`.

    Captured:
        ``attention``: the branch weights :math:`a`, shape :math:`(B, M, C, 1, 1)` (summing to 1 over M).

    Batch size 1 in training mode raises a ``ValueError``: the fuse layer's BatchNorm normalises the
    pooled d-vectors over the batch, impossible with one sample. Eval mode accepts a batch of one.

    Example:
        >>> import torch, attnlib
        >>> sk = attnlib.create_block("sk", 64)
        >>> sk(torch.randn(2, 64, 14, 14)).shape
        torch.Size([2, 64, 14, 14])
        >>> big = attnlib.create_block("sk", 64, num_branches=3, groups=1, reduction=4, dilated=False)
        >>> [b[0].kernel_size for b in big.branches]
        [(3, 3), (5, 5), (7, 7)]
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, *, stride: int = 1, num_branches: int = 2,
                 groups: int = 32, reduction: float = 16, min_width: int = 32, dilated: bool = True,
                 bn_momentum: float = 0.1):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        out_channels = in_channels if out_channels is None else out_channels
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.stride = check_positive_int(stride, "stride")
        # one branch would make the softmax across branches the constant 1: no selection, and fc, fc_bn and
        # select would never receive a gradient
        self.num_branches = check_positive_int(num_branches, "num_branches", minimum=2)
        self.groups = check_positive_int(groups, "groups")
        check_divisible(in_channels, groups, "in_channels")
        check_divisible(out_channels, groups, "out_channels")
        self.min_width = check_positive_int(min_width, "min_width")
        check_bool(dilated, "dilated")
        self.dilated = dilated
        self.bn_momentum = check_momentum(bn_momentum)
        self.reduction = reduction
        # d = max(C / r, L)
        self.width = reduced_width(out_channels, reduction, minimum=min_width, channels_name="out_channels")
        self.branches = nn.ModuleList()
        for m in range(num_branches):
            if dilated:
                conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=m + 1, dilation=m + 1,
                                 groups=groups, bias=False)
            else:
                conv = nn.Conv2d(in_channels, out_channels, 3 + 2 * m, stride=stride, padding=m + 1,
                                 groups=groups, bias=False)
            bn = nn.BatchNorm2d(out_channels, momentum=self.bn_momentum)
            self.branches.append(nn.Sequential(conv, bn, nn.ReLU(inplace=True)))
        self.fc = nn.Linear(out_channels, self.width, bias=False)                     # W: (d, C)
        self.fc_bn = nn.BatchNorm1d(self.width, momentum=self.bn_momentum)
        self.select = nn.Linear(self.width, num_branches * out_channels, bias=False)  # [A_0; ...; A_{M-1}]: (M C, d)
        self.reset_parameters()

    @property
    def kernel_sizes(self) -> list[int]:
        """The effective kernel size 3 + 2m of each branch m."""
        return [3 + 2 * m for m in range(self.num_branches)]

    def reset_parameters(self) -> None:
        for branch in self.branches:
            nn.init.kaiming_normal_(branch[0].weight, mode="fan_out", nonlinearity="relu")
            branch[1].reset_parameters()
        self.fc.reset_parameters()
        self.fc_bn.reset_parameters()
        self.select.reset_parameters()

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """The M branch outputs :math:`U_m`, stacked once: shape (B, M, C, H', W')."""
        return torch.stack([branch(x) for branch in self.branches], dim=1)  # split, eq. sk-split: (B, M, C, H, W)

    def attention(self, u: torch.Tensor) -> torch.Tensor:
        """The branch weights :math:`a` of shape (B, M, C, 1, 1) for stacked branch outputs ``u`` (B, M, C, H, W)."""
        fused = u.sum(dim=1)                            # fuse by sum, eq. sk-fuse-sum: (B, C, H, W)
        s = fused.mean(dim=(2, 3))                      # squeeze, eq. sk-squeeze: (B, C)
        z = torch.relu(self.fc_bn(self.fc(s)))          # compact descriptor, eq. sk-fuse: (B, d)
        logits = self.select(z)                         # A_m z for every branch, eq. sk-select: (B, M C)
        logits = logits.view(-1, self.num_branches, self.out_channels)  # one row per branch, eq. sk-select: (B, M, C)
        a = torch.softmax(logits, dim=1)                # softmax across branches, eq. sk-select: (B, M, C)
        return a[..., None, None]                       # branch weights, eq. sk-select: (B, M, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.in_channels)
        if self.training and x.shape[0] == 1:
            raise ValueError(
                f"{type(self).__name__}: batch size 1 in training mode: the fuse layer's BatchNorm1d normalises "
                f"the pooled descriptors (one {self.width}-vector per sample) over the batch, which needs at least "
                f"2 samples; got input {tuple(x.shape)}. Use a batch of 2 or more, or eval mode (running statistics)."
            )
        u = self.split(x)                               # branch outputs, eq. sk-split: (B, M, C, H, W)
        a = self.attention(u)                           # branch weights, eq. sk-select: (B, M, C, 1, 1)
        self._record("attention", a)
        return (a * u).sum(dim=1)                       # weighted sum of branches, eq. sk-aggregate: (B, C, H, W)

    def extra_repr(self) -> str:
        out = "" if self.out_channels == self.in_channels else f", out_channels={self.out_channels}"
        return (f"in_channels={self.in_channels}{out}, stride={self.stride}, num_branches={self.num_branches}, "
                f"kernel_sizes={self.kernel_sizes}, dilated={self.dilated}, groups={self.groups}, "
                f"reduction={self.reduction}, min_width={self.min_width}, width={self.width}, "
                f"bn_momentum={self.bn_momentum:g}")
