"""The Encoding layer of Deep TEN (residual encoding with learned codewords).

Paper: Zhang, Xue, Dana, "Deep TEN: Texture Encoding Network", CVPR 2017, arXiv:1612.02844.

Idea: treat the N = H·W feature vectors of a map as an orderless set, softly assign each one to K learned
codewords with a softmax over scaled squared distances, and describe the set by the assignment-weighted
sum of residuals to each codeword: a learnable, end-to-end version of VLAD / Fisher vectors.

Equations (book labels):
    - ``enc-distance``: :math:`\\|x_i - d_k\\|^2 = \\|x_i\\|^2 - 2 x_i^\\top d_k + \\|d_k\\|^2`, shape (B, K, N).
    - ``enc-assign``: :math:`a_{ik} = \\operatorname{softmax}_k\\big(\\mathrm{scale}_k \\|x_i - d_k\\|^2\\big)`
      with :math:`\\mathrm{scale}_k = -s_k`, shape (B, K, N).
    - ``enc-aggregate``: :math:`e_k = \\sum_i a_{ik}(x_i - d_k) = \\sum_i a_{ik} x_i - \\big(\\sum_i a_{ik}\\big) d_k`,
      shape (B, K, C).

Both the distances and the aggregation go through matrix products, so the largest intermediate has
B·K·N entries; the expanded formulation with a (B, N, K, C) tensor of residuals is never built. Features
and codewords are first measured from the codewords' mean m (distances and residuals are unchanged by a
common shift): far from the origin, ``||x||^2 - 2 x·d + ||d||^2`` would otherwise subtract numbers of size
``||x||^2`` to get a small distance and lose most of float32's digits. This adds one (B, C, N) tensor.

Deviations from the paper: none by default. Parameters, names and initialisation follow the reference
code: ``codewords`` :math:`d \\in \\mathbb{R}^{K \\times C}` uniform :math:`\\pm 1/\\sqrt{KC}` and ``scale``
:math:`= -s \\in \\mathbb{R}^K` uniform in :math:`(-1, 0)`. Nothing keeps :math:`s_k > 0` during training;
the option ``positive_scale=True`` (not in the paper) stores :math:`\\rho` with
:math:`s = \\mathrm{softplus}(\\rho)` instead, so every :math:`s_k` stays positive. Inputs in float16 / bfloat16 are encoded in
float32 and the result is cast back, because the expansion of the squared distance cancels
catastrophically in 8 or 11 bits of mantissa.

Book chapter: ``book/encoding.md``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import register
from ..validation import check_positive_int
from .base import AttentionBlock


@register("encoding", family="context", paper="Deep TEN: Texture Encoding Network", year=2017,
          arxiv="1612.02844", chapter="encoding")
class Encoding(AttentionBlock):
    r"""Residual encoding of the N feature vectors against K learned codewords (Deep TEN).

    .. math::
        a_{ik} = \frac{\exp(-s_k \|x_i - d_k\|^2)}{\sum_{j=1}^{K} \exp(-s_j \|x_i - d_j\|^2)}, \qquad
        e_k = \sum_{i=1}^{N} a_{ik}\,(x_i - d_k)

    where :math:`x_i \in \mathbb{R}^C` is the feature vector at position :math:`i` of the :math:`N = HW`
    positions, :math:`d_k` the codewords and :math:`s_k` the smoothing factors (stored as ``scale`` =
    :math:`-s`). The output :math:`E = (e_1, \dots, e_K)` is orderless: it does not depend on where the
    features are in the map.

    Args:
        channels: C, channels of the input (the dimension of the codewords).
        num_codes: K, the number of codewords (default 32, the value of Deep TEN's experiments).
        positive_scale: store :math:`\\rho` with :math:`s = \\mathrm{softplus}(\\rho)` (parameter ``rho``,
            initialised so that :math:`s` is uniform in :math:`(0.05, 1)`) instead of ``scale`` :math:`= -s`:
            no :math:`s_k` can turn negative, which would make codeword :math:`k` favour the farthest
            features (default ``False``: the reference code's parametrisation).

    Shape:
        - Input: :math:`(B, C, H, W)`
        - Output: :math:`(B, K, C)`, one residual vector per codeword (not a feature map).

    Attributes:
        codewords: :math:`d`, shape :math:`(K, C)`, uniform :math:`\pm 1/\sqrt{KC}`.
        scale: :math:`-s`, shape :math:`(K,)`, uniform in :math:`(-1, 0)` (``rho``, shape :math:`(K,)`, with
            ``positive_scale``); :meth:`smoothing` gives :math:`s` either way.

    Captured:
        ``assignments``: the soft assignments :math:`a_{ik}` as K maps, shape :math:`(B, K, H, W)`;
        at every position the K values sum to 1.

    Batch size 1 in training mode works (no BatchNorm).

    Example:
        >>> import torch, attnlib
        >>> enc = attnlib.create_block("encoding", 128, num_codes=32)
        >>> enc(torch.randn(2, 128, 14, 14)).shape
        torch.Size([2, 32, 128])
    """

    def __init__(self, channels: int, *, num_codes: int = 32, positive_scale: bool = False):
        super().__init__()
        self.channels = check_positive_int(channels, "channels")
        self.num_codes = check_positive_int(num_codes, "num_codes")
        if not isinstance(positive_scale, bool):
            raise ValueError(f"Encoding: positive_scale must be True or False, got {positive_scale!r}")
        self.positive_scale = positive_scale
        self.codewords = nn.Parameter(torch.empty(num_codes, channels))  # d: (K, C)
        if positive_scale:
            self.rho = nn.Parameter(torch.empty(num_codes))  # s = softplus(rho): (K,)
        else:
            self.scale = nn.Parameter(torch.empty(num_codes))  # -s: (K,)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.num_codes * self.channels)
        nn.init.uniform_(self.codewords, -bound, bound)
        if self.positive_scale:
            with torch.no_grad():  # s uniform in (0.05, 1): rho = softplus^-1(s) = log(exp(s) - 1)
                self.rho.copy_(torch.empty_like(self.rho).uniform_(0.05, 1.0).expm1().log())
        else:
            nn.init.uniform_(self.scale, -1.0, 0.0)

    def smoothing(self) -> torch.Tensor:
        """The smoothing factors :math:`s` (K,) of eq. enc-assign, whichever parametrisation stores them."""
        return nn.functional.softplus(self.rho) if self.positive_scale else -self.scale

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoding :math:`E` (B, K, C) and the assignments :math:`a` (B, K, N) of an input (B, C, H, W).

        A plain method (no input check, no capture) for blocks that use the Encoding layer inside them.
        """
        low = x.dtype in (torch.float16, torch.bfloat16)  # half inputs are encoded in float32
        X = (x.float() if low else x).flatten(2)        # features as columns, eq. enc-distance: (B, C, N)
        d = self.codewords.float() if low else self.codewords  # codewords d_k, eq. enc-distance: (K, C)
        # -s_k, eq. enc-assign: (K,); the reference parametrisation reads the parameter itself (no
        # negated copies, so the tensors a forward pass creates stay those the Encoding chapter counts)
        scale = -self.smoothing() if self.positive_scale else self.scale
        scale = scale.float() if low else scale
        # Distances and residuals do not change when x and d move by the same vector m; measured from the
        # codewords' centre, ||x||^2 and ||d||^2 stay small and the expansion does not cancel.
        m = d.mean(dim=0).detach()                      # centre of the codewords, eq. enc-distance: (C,)
        X = X - m[:, None]                              # centred features, eq. enc-distance: (B, C, N)
        d = d - m                                       # centred codewords, eq. enc-distance: (K, C)
        xx = (X * X).sum(dim=1, keepdim=True)           # ||x_i||^2, eq. enc-distance: (B, 1, N)
        dd = (d * d).sum(dim=1)[:, None]                # ||d_k||^2, eq. enc-distance: (K, 1)
        dist = xx - 2 * (d @ X) + dd                    # squared distances, eq. enc-distance: (B, K, N)
        a = torch.softmax(scale[:, None] * dist, dim=1)  # soft assignment over k, eq. enc-assign: (B, K, N)
        e = a @ X.transpose(1, 2) - a.sum(dim=2, keepdim=True) * d  # residual sums, eq. enc-aggregate: (B, K, C)
        if low:
            e = e.to(x.dtype)                           # back to the input dtype, eq. enc-aggregate: (B, K, C)
            a = a.to(x.dtype)                           # back to the input dtype, eq. enc-assign: (B, K, N)
        return e, a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        B, _, H, W = x.shape
        e, a = self.encode(x)                           # eq. enc-aggregate: (B, K, C); eq. enc-assign: (B, K, N)
        self._record("assignments", a.view(B, self.num_codes, H, W))  # eq. enc-assign: (B, K, H, W)
        return e

    def extra_repr(self) -> str:
        extra = ", positive_scale=True" if self.positive_scale else ""
        return f"channels={self.channels}, num_codes={self.num_codes}{extra}"
