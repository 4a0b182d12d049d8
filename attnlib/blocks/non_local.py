"""Non-local block.

Paper: Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018, arXiv:1711.07971.

Idea: the response at each position is a weighted sum of (embedded) features at *all* positions, with
weights given by a pairwise affinity f(x_i, x_j), normalised by C(x); the result passes through a 1x1
convolution and BatchNorm and is added back to the input. With BN's scale initialised to 0, the block
starts as the identity and can be inserted into a pre-trained network.

Equations (book labels):
    nonlocal-theta      θ(x_i) = W_θ x_i + b_θ                   (queries)
    nonlocal-phi        φ(x_j) = W_φ x_j (+ b_φ)                 (keys)
    nonlocal-g          g(x_j) = W_g x_j + b_g                   (values)
    nonlocal-subsample  2x2 max pooling of φ and g (1-D: 2, 3-D: (1, 2, 2)), N -> N' keys
    nonlocal-pairwise   f(x_i, x_j): exp(θ_iᵀφ_j), exp(x_iᵀx_j), θ_iᵀφ_j or ReLU(w_fᵀ[θ_i; φ_j])
    nonlocal-normalise  a_ij = f_ij / C(x): softmax over j, or divide by N'
    nonlocal-aggregate  y_i = Σ_j a_ij g(x_j)
    nonlocal-out        z_i = BN(W_z y_i) + x_i

Computation (``implementation``):
    * ``"fast"`` (default): no N' x N matrix is built.
      - embedded Gaussian and Gaussian: ``torch.nn.functional.scaled_dot_product_attention`` on 4-D
        contiguous ``(B, 1, N, d)`` tensors (on CPU only that layout takes the fused O(N)-memory kernel;
        3-D or strided inputs silently fall back to a path that builds the matrix). In Gaussian mode the
        values (width C/2) are zero-padded to the key width C, because the fused kernel needs equal widths.
      - dot product: associativity, y = θ (φᵀ g) / N', linear in N.
      - concatenation: ReLU(a_i + b_j) with a_i = w_θᵀθ_i, b_j = w_φᵀφ_j does not factor, but sorting the
        b_j makes it exact in O((N + N') log N') time and O(N + N') memory: for each i only keys with
        b_j > -a_i contribute, so y_i = (a_i Σ_{b_j > -a_i} g_j + Σ_{b_j > -a_i} b_j g_j) / N', two suffix sums
        read at the position found by binary search.
    * ``"explicit"``: the equations as written, with the (B, N, N') matrix of a_ij. Every mode supports it;
      tests tie it to the fast path.

Deviations from the paper:
    * Optional logit scale 1/sqrt(d) (``scale_logits=True``, off by default): the official Caffe2 code
      scales the softmax logits by 1/sqrt(C/2); the paper has no scale.
    * φ has no bias in the softmax modes: adding b_φ adds θ_iᵀb_φ to every logit of row i, which the softmax
      cancels, so that bias would have no effect (and no gradient). It is kept in the dot-product and
      concatenation modes, where it matters.
    * C(x) for the dot-product and concatenation modes is N', the number of key positions (N without
      sub-sampling), so that a_ij sums over the same positions it is divided by.
    * The paper gives no initialisation beyond BN's zero scale; the 1x1 convolutions follow the official
      code, N(0, 0.01²) weights and zero biases, and w_f (concatenation) is drawn the same way.

Where to pool is ambiguous in the paper: its sub-sampled equation uses a pooled input x̂ in f(x_i, x̂_j) and
g(x̂_j), its text a max-pooling layer after φ and g. The library pools *after* φ and g; the official code
max-pools the input *before* them (the x̂ reading), which differs for a learned 1x1 convolution, since a max
does not commute with a linear map.

Book chapter: ``book/nonlocal.md``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register
from ..validation import check_bool, check_choice, describe, reduced_width
from .base import AttentionBlock

MODES = ("embedded_gaussian", "gaussian", "dot_product", "concatenation")
IMPLEMENTATIONS = ("fast", "explicit")

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_POOL = {1: (nn.MaxPool1d, 2), 2: (nn.MaxPool2d, (2, 2)), 3: (nn.MaxPool3d, (1, 2, 2))}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


@register("nonlocal", family="context", paper="Non-local Neural Networks", year=2018, arxiv="1711.07971",
          chapter="nonlocal")
class NonLocal(AttentionBlock):
    r"""Non-local block (1-D, 2-D or 3-D).

    .. math::
        y_i = \frac{1}{\mathcal{C}(x)} \sum_{j} f(x_i, x_j)\, g(x_j), \qquad
        z_i = \mathrm{BN}(W_z y_i) + x_i

    with, per ``mode``, :math:`f = e^{\theta_i^\top \phi_j}` (embedded Gaussian),
    :math:`e^{x_i^\top x_j}` (Gaussian), :math:`\theta_i^\top \phi_j` (dot product) or
    :math:`\mathrm{ReLU}(w_f^\top [\theta_i; \phi_j])` (concatenation); :math:`\mathcal{C}(x) = \sum_j f`
    (a softmax over j) for the first two and :math:`N'` (the number of key positions) for the last two.
    :math:`\theta, \phi, g` are 1x1 convolutions :math:`C \to C_r = \lfloor C/2 \rfloor`; with
    ``sub_sample`` the keys :math:`\phi` and values :math:`g` are max-pooled 2x2, so
    :math:`N' = \lfloor H/2 \rfloor \lfloor W/2 \rfloor \approx N/4` (else :math:`N' = N`).

    Args:
        channels: C, the number of input (and output) channels.
        mode: the pairwise function f: ``"embedded_gaussian"`` (paper default), ``"gaussian"``,
            ``"dot_product"`` or ``"concatenation"``.
        dimension: 1, 2 or 3: inputs (B, C, L), (B, C, H, W) or (B, C, T, H, W).
        sub_sample: max-pool φ and g (kernel 2; (1, 2, 2) in 3-D), as in the paper. Default True.
        reduction: the inner width is :math:`C_r = \lfloor C / \text{reduction} \rfloor` (paper: 2).
        scale_logits: multiply the softmax logits by :math:`1/\sqrt{d}` (d = width of θ: C_r, or C in
            Gaussian mode), as the official code does. Only for the two softmax modes. Default False.
        implementation: ``"fast"`` (default: SDPA / associativity / sorted prefix sums, no N' x N matrix)
            or ``"explicit"`` (builds the (B, N, N') matrix; equation-shaped).

    Shape:
        - Input: :math:`(B, C, H, W)` (``dimension=2``; :math:`(B, C, L)` for 1, :math:`(B, C, T, H, W)`
          for 3). With ``sub_sample`` each pooled axis (L, or H and W) must be at least 2.
        - Output: same as the input.

    Attributes:
        theta: :math:`W_\theta, b_\theta`, 1x1 conv ``C -> C_r`` (absent in Gaussian mode).
        phi: :math:`W_\phi`, 1x1 conv ``C -> C_r``, bias only in the dot-product and concatenation modes
            (absent in Gaussian mode).
        g: :math:`W_g, b_g`, 1x1 conv ``C -> C_r``.
        concat_project: :math:`w_f`, ``nn.Linear(2 C_r, 1, bias=False)`` (concatenation mode only).
        out_conv: :math:`W_z`, 1x1 conv ``C_r -> C``.
        bn: BatchNorm over C with its scale initialised to 0, so the block starts as the identity.

    Captured:
        ``attention``: :math:`a_{ij}` for the query positions requested through
        ``attnlib.capture(..., queries=[(row, col), ...])`` (fractions of the input's H, W; default the
        centre; the query row is :math:`\lfloor \text{row} \cdot H \rfloor`, clipped to H - 1, likewise the
        column), shape :math:`(B, Q, H', W')` where :math:`(H', W')` is the grid the *keys* live on:
        :math:`(H, W)` without sub-sampling, :math:`(\lfloor H/2 \rfloor, \lfloor W/2 \rfloor)` with it.
        1-D: :math:`(B, Q, L')`, the query at fraction ``col`` of L. 3-D: :math:`(B, Q, T, H', W')`, the
        query in the middle frame :math:`\lfloor T/2 \rfloor`. Only the Q requested rows are computed.

    Batch size 1 in training mode works while the sample has more than one position (the BatchNorm
    sees every position of the sample): a single position (B = 1 with a 1x1 map, L = 1 or T = H = W = 1,
    possible only without ``sub_sample``) raises a ``ValueError`` in training mode; eval mode accepts it.

    Example:
        >>> import torch, attnlib
        >>> block = attnlib.create_block("nonlocal", 64)
        >>> x = torch.randn(2, 64, 16, 12)
        >>> torch.equal(block(x), x)   # identity at initialisation (BN scale 0)
        True
        >>> with attnlib.capture(block, queries=[(0.5, 0.5), (0.0, 0.0)]) as maps:
        ...     _ = block(x)
        >>> maps[""]["attention"].shape   # keys on the 2x2-pooled grid
        torch.Size([2, 2, 8, 6])
    """

    def __init__(self, channels: int, *, mode: str = "embedded_gaussian", dimension: int = 2,
                 sub_sample: bool = True, reduction: float = 2, scale_logits: bool = False,
                 implementation: str = "fast"):
        super().__init__()
        if type(dimension) is not int or dimension not in (1, 2, 3):  # 2.0 or True are not dimensions
            raise ValueError(f"NonLocal: dimension must be one of the ints (1, 2, 3), got {describe(dimension)}")
        self.channels = channels
        self.mode = check_choice(mode, "mode", MODES)
        self.dimension = dimension
        self.sub_sample = check_bool(sub_sample, "sub_sample")
        self.reduction = reduction
        self.inner_channels = reduced_width(channels, reduction)
        self.scale_logits = check_bool(scale_logits, "scale_logits")
        if scale_logits and mode not in ("embedded_gaussian", "gaussian"):
            raise ValueError(
                f"scale_logits=True applies to the softmax modes ('embedded_gaussian', 'gaussian') only; "
                f"got mode={mode!r}"
            )
        self.implementation = check_choice(implementation, "implementation", IMPLEMENTATIONS)
        self.input_ndim = (dimension + 2,)

        conv, C, C_r = _CONV[dimension], channels, self.inner_channels
        if mode != "gaussian":
            self.theta = conv(C, C_r, kernel_size=1)
            self.phi = conv(C, C_r, kernel_size=1, bias=mode in ("dot_product", "concatenation"))
        self.g = conv(C, C_r, kernel_size=1)
        if mode == "concatenation":
            self.concat_project = nn.Linear(2 * C_r, 1, bias=False)
        pool, kernel = _POOL[dimension]
        self.pool = pool(kernel) if sub_sample else nn.Identity()
        self._pool_kernel = kernel if sub_sample else None
        self.out_conv = conv(C_r, C, kernel_size=1)
        self.bn = _BN[dimension](C)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        convs = [self.g, self.out_conv] + ([self.theta, self.phi] if self.mode != "gaussian" else [])
        for m in convs:
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        if self.mode == "concatenation":
            nn.init.normal_(self.concat_project.weight, std=0.01)
        self.bn.reset_parameters()
        nn.init.zeros_(self.bn.weight)  # block starts as the identity

    # ----------------------------------------------------------------------------------------- helpers
    @property
    def _logit_scale(self) -> float:
        width = self.channels if self.mode == "gaussian" else self.inner_channels
        return 1.0 / math.sqrt(width) if self.scale_logits else 1.0

    def _check_size(self, x: torch.Tensor) -> None:
        if self._pool_kernel is None:
            return
        kernel = (self._pool_kernel,) if isinstance(self._pool_kernel, int) else self._pool_kernel
        for axis, k in zip(range(2, x.dim()), kernel):
            if x.shape[axis] < k:
                raise ValueError(
                    f"NonLocal with sub_sample=True pools by {self._pool_kernel}: every pooled axis must be at "
                    f"least 2; got input shape {tuple(x.shape)} (use sub_sample=False for such small inputs)"
                )

    def embed(self, x: torch.Tensor):
        """Queries, keys and values as contiguous 4-D tensors (B, 1, N, d), (B, 1, N', d), (B, 1, N', C_r),
        and the spatial shape of the key grid."""
        # tokens: (B, d, *grid) -> (B, 1, positions, d), contiguous, the layout the fused SDPA kernel needs
        if self.mode == "gaussian":                         # θ and φ are the identity on x
            k_map = self.pool(x)  # keys φ(x) = x, sub-sampled, eq. nonlocal-subsample: (B, C, H', W')
            q = x.flatten(2).mT.unsqueeze(1).contiguous()  # query tokens, eq. nonlocal-theta: (B, 1, N, C)
            k = k_map.flatten(2).mT.unsqueeze(1).contiguous()  # key tokens, eq. nonlocal-phi: (B, 1, N', C)
        else:
            q_map = self.theta(x)                           # queries, eq. nonlocal-theta: (B, C_r, H, W)
            k_map = self.phi(x)                             # keys, eq. nonlocal-phi: (B, C_r, H, W)
            k_map = self.pool(k_map)  # sub-sample the keys, eq. nonlocal-subsample: (B, C_r, H', W')
            q = q_map.flatten(2).mT.unsqueeze(1).contiguous()  # query tokens, eq. nonlocal-theta: (B, 1, N, C_r)
            k = k_map.flatten(2).mT.unsqueeze(1).contiguous()  # key tokens, eq. nonlocal-phi: (B, 1, N', C_r)
        v_map = self.g(x)                                   # values, eq. nonlocal-g: (B, C_r, H, W)
        v_map = self.pool(v_map)  # sub-sample the values, eq. nonlocal-subsample: (B, C_r, H', W')
        v = v_map.flatten(2).mT.unsqueeze(1).contiguous()  # value tokens, eq. nonlocal-g: (B, 1, N', C_r)
        return q, k, v, tuple(v_map.shape[2:])

    def _concat_terms(self, q: torch.Tensor, k: torch.Tensor):
        """a_i = w_θᵀθ_i and b_j = w_φᵀφ_j of the concatenation mode: (B, 1, N) and (B, 1, N')."""
        w = self.concat_project.weight[0]                   # w_f = [w_θ; w_φ], eq. nonlocal-pairwise: (2*C_r)
        a = q @ w[: self.inner_channels]                    # query term a_i, eq. nonlocal-pairwise: (B, 1, N)
        b = k @ w[self.inner_channels:]                     # key term b_j, eq. nonlocal-pairwise: (B, 1, N')
        return a, b

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """The normalised weights a_ij for the given query rows: (B, 1, Q, N') for q of shape (B, 1, Q, d).

        This is the explicit formulation: memory grows as Q·N'.
        """
        n_keys = k.shape[2]
        if self.mode == "concatenation":
            a, b = self._concat_terms(q, k)
            f = torch.relu(a[..., :, None] + b[..., None, :])  # pairwise, eq. nonlocal-pairwise: (B, 1, Q, N')
            return f / n_keys  # normalise by C(x) = N', eq. nonlocal-normalise: (B, 1, Q, N')
        f = (q @ k.transpose(-2, -1))                       # pairwise logits, eq. nonlocal-pairwise: (B, 1, Q, N')
        if self.mode == "dot_product":
            return f / n_keys  # normalise by C(x) = N', eq. nonlocal-normalise: (B, 1, Q, N')
        if self.scale_logits:
            f = f * self._logit_scale  # logit scale 1/sqrt(d), eq. nonlocal-pairwise: (B, 1, Q, N')
        return torch.softmax(f, dim=-1)                     # normalise (softmax), eq. nonlocal-normalise: (B, 1, Q, N')

    def aggregate(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """y_i = Σ_j a_ij g_j for every query: (B, 1, N, C_r), by ``self.implementation``."""
        if self.implementation == "explicit":
            return self.attention_weights(q, k) @ v          # aggregate, eq. nonlocal-aggregate: (B, 1, N, C_r)
        n_keys, scale = k.shape[2], self._logit_scale
        if self.mode == "embedded_gaussian":
            return F.scaled_dot_product_attention(q, k, v, scale=scale)  # fused, eq. nonlocal-aggregate: (B, 1, N, C_r)
        if self.mode == "gaussian":
            v_pad = F.pad(v, (0, self.channels - self.inner_channels))  # pad to key width, eq. nonlocal-g: (B, 1, N', C)
            y = F.scaled_dot_product_attention(q, k, v_pad, scale=scale)  # fused, eq. nonlocal-aggregate: (B, 1, N, C)
            return y[..., : self.inner_channels]            # drop the padding, eq. nonlocal-aggregate: (B, 1, N, C_r)
        if self.mode == "dot_product":
            kv = k.mT @ v                                   # φᵀ g first, eq. nonlocal-aggregate: (B, 1, C_r, C_r)
            return (q @ kv) / n_keys                        # θ (φᵀ g) / N', eq. nonlocal-aggregate: (B, 1, N, C_r)
        return self._concat_sorted(q, k, v)

    def _concat_sorted(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Concatenation mode without the N x N' matrix (see the module docstring)."""
        dtype = v.dtype
        work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype  # suffix sums in >= fp32
        a, b = self._concat_terms(q, k)
        a = a.squeeze(1).to(work)                           # query terms a_i, eq. nonlocal-pairwise: (B, N)
        b = b.squeeze(1).to(work)                           # key terms b_j, eq. nonlocal-pairwise: (B, N')
        v = v.squeeze(1).to(work)                           # values g_j, eq. nonlocal-g: (B, N', C_r)
        n_keys = b.shape[1]
        b_sorted, order = torch.sort(b, dim=1)              # keys ordered by b_j, eq. nonlocal-aggregate: (B, N')
        v_sorted = v.gather(1, order[..., None].expand_as(v))  # same order, eq. nonlocal-aggregate: (B, N', C_r)
        s_v = self._suffix_sums(v_sorted)                   # Σ_{s >= k} g_s, eq. nonlocal-aggregate: (B, N' + 1, C_r)
        bv = b_sorted[..., None] * v_sorted                 # b_s g_s, eq. nonlocal-aggregate: (B, N', C_r)
        s_bv = self._suffix_sums(bv)                        # Σ_{s >= k} b_s g_s, eq. nonlocal-aggregate: (B, N' + 1, C_r)
        first = torch.searchsorted(b_sorted, -a, right=True)  # first key with b_j > -a_i, eq. nonlocal-pairwise: (B, N)
        idx = first[..., None].expand(-1, -1, v.shape[-1])  # gather index, eq. nonlocal-aggregate: (B, N, C_r)
        y = a[..., None] * s_v.gather(1, idx) + s_bv.gather(1, idx)  # a_i Σ g + Σ b g, eq. nonlocal-aggregate: (B, N, C_r)
        y = y / n_keys                                      # divide by C(x) = N', eq. nonlocal-normalise: (B, N, C_r)
        return y.to(dtype).unsqueeze(1)                     # back to 4-D, eq. nonlocal-aggregate: (B, 1, N, C_r)

    @staticmethod
    def _suffix_sums(t: torch.Tensor) -> torch.Tensor:
        """Σ_{s >= k} t[:, s] for k = 0..N' (the last one 0): (B, N' + 1, d) for t of shape (B, N', d)."""
        tail = t.flip(1).cumsum(1).flip(1)                  # suffix sums, eq. nonlocal-aggregate: (B, N', C_r)
        empty = torch.zeros_like(t[:, :1])                  # the empty suffix, eq. nonlocal-aggregate: (B, 1, C_r)
        return torch.cat([tail, empty], dim=1)              # suffix sums, eq. nonlocal-aggregate: (B, N' + 1, C_r)

    def _query_indices(self, spatial: tuple[int, ...]) -> list[int]:
        """Flat query positions for the capture queries (fractions (row, col); None -> centre)."""
        queries = self._capture_queries or [(0.5, 0.5)]
        pick = lambda frac, size: min(int(frac * size), size - 1)  # noqa: E731
        out = []
        for row, col in queries:
            if self.dimension == 1:
                out.append(pick(col, spatial[0]))
            elif self.dimension == 2:
                out.append(pick(row, spatial[0]) * spatial[1] + pick(col, spatial[1]))
            else:
                T, H, W = spatial
                out.append(((T // 2) * H + pick(row, H)) * W + pick(col, W))
        return out

    # ----------------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels)
        self._check_size(x)
        B = x.shape[0]
        self._check_batch_statistics(x.numel() // x.shape[1], "the output BatchNorm (bn)", x)  # B * N values
        q, k, v, key_grid = self.embed(x)
        if self._capturing:
            rows = torch.tensor(self._query_indices(tuple(x.shape[2:])), device=x.device)  # queries: (Q)
            a = self.attention_weights(q[:, :, rows], k)    # Q rows only, eq. nonlocal-normalise: (B, 1, Q, N')
            a = a.squeeze(1).reshape(B, len(rows), *key_grid)  # on the key grid, eq. nonlocal-normalise: (B, Q, H', W')
            self._record("attention", a)
        y = self.aggregate(q, k, v)                         # weighted sum, eq. nonlocal-aggregate: (B, 1, N, C_r)
        y = y.squeeze(1).mT.reshape(B, -1, *x.shape[2:])    # back to a map, eq. nonlocal-aggregate: (B, C_r, H, W)
        return self.bn(self.out_conv(y)) + x                # output and residual, eq. nonlocal-out: (B, C, H, W)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, mode={self.mode!r}, dimension={self.dimension}, "
                f"sub_sample={self.sub_sample}, inner_channels={self.inner_channels}, "
                f"scale_logits={self.scale_logits}, implementation={self.implementation!r}")
