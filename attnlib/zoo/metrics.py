"""How well a map localises the target: measures that no offset or scale of the map can inflate.

Every map ``(n, h, w)`` is first upsampled bilinearly to the scene's size; the target is its pixel mask
``(n, SIZE, SIZE)`` (:attr:`attnlib.zoo.scenes.SceneSet.masks`). Per scene:

* :func:`auroc`: the area under the ROC curve of the map's pixel ranking against the mask, the chance
  that a random target pixel scores above a random other pixel (ties count half). 0.5 is chance, 1.0 a
  map whose every target pixel outranks every other; below 0.5 the map points *away* from the target.
  Any increasing transform of the map (an offset, a scale, a sigmoid) leaves it unchanged.
* :func:`pointing_game`: 1 when the map's maximum lies on the target (tied maxima count by the share
  of them on it). Chance is the target's share of the image, returned by :func:`mask_share`.
* :func:`deletion`: the model's accuracy after the map's top ``fraction`` of pixels are set to the
  image mean (0 after :func:`~attnlib.zoo.scenes.normalise`), next to the accuracy after as many
  *random* pixels are; a map that finds what the model uses drops accuracy more than random pixels do.

Reference maps from the same data: :func:`centre_prior` (a Gaussian at the canvas centre: what a map
that knows nothing about the scene gets for free) and Grad-CAM (:func:`attnlib.zoo.scores.grad_cam`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Maps ``(n, h, w)`` -> ``(n, size, size)`` float, bilinear (no clamping: the ranking is kept)."""
    m = torch.as_tensor(maps)
    m = m if m.dtype == torch.float64 else m.float()
    if m.ndim != 3:
        raise ValueError(f"maps must be (n, h, w), got shape {tuple(m.shape)}")
    if m.shape[1:] == (size, size):
        return m
    return F.interpolate(m[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def _masks(masks, n: int) -> torch.Tensor:
    k = torch.as_tensor(np.asarray(masks)).bool()
    if k.ndim != 3 or k.shape[0] != n or k.shape[1] != k.shape[2]:
        raise ValueError(f"masks must be (n, S, S) with n = {n}, got shape {tuple(k.shape)}")
    if (k.flatten(1).sum(1) == 0).any() or k.flatten(1).all(1).any():
        raise ValueError("every mask must hold at least one target pixel and one other pixel")
    return k


def _quantised(m: torch.Tensor, levels: float = 1e6) -> torch.Tensor:
    """Each map (row) on a grid of ``levels`` steps of its own range: values that differ by less than a
    millionth of the range (interpolation round-off: a constant map upsampled is not exactly constant)
    tie. A constant map becomes all zeros."""
    lo = m.min(1, keepdim=True).values
    span = (m.max(1, keepdim=True).values - lo).clamp_min(1e-300)
    return torch.round((m - lo) / span * levels)


def auroc(maps: torch.Tensor, masks) -> np.ndarray:
    """Per-scene AUROC (n,) of the map's pixel ranking against the target mask (ties count half)."""
    from scipy.stats import rankdata

    k = _masks(masks, len(maps))
    m = _quantised(upsample(torch.as_tensor(maps).double(), k.shape[1]).flatten(1)).numpy()
    pos = k.flatten(1).numpy()
    ranks = rankdata(m, axis=1)                      # average ranks: ties count half
    n_pos = pos.sum(1)
    n_neg = pos.shape[1] - n_pos
    rank_sum = (ranks * pos).sum(1)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def pointing_game(maps: torch.Tensor, masks) -> np.ndarray:
    """Per-scene hit (n,) in [0, 1]: the share of the map's maximal pixels that lie on the target."""
    k = _masks(masks, len(maps))
    m = _quantised(upsample(torch.as_tensor(maps).double(), k.shape[1]).flatten(1))
    top = m == m.max(1, keepdim=True).values
    hit = (top & k.flatten(1)).sum(1).double() / top.sum(1).double()
    return hit.numpy()


def mask_share(masks) -> np.ndarray:
    """The target's share of the image per scene (n,): the pointing game's chance level."""
    k = torch.as_tensor(np.asarray(masks)).bool()
    return k.flatten(1).double().mean(1).numpy()


def centre_prior(n: int, size: int, sigma: float = 0.25) -> torch.Tensor:
    """A Gaussian at the canvas centre with standard deviation ``sigma * size``: ``(n, size, size)``."""
    r = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    return g.expand(n, size, size).clone()


@torch.no_grad()
def deletion(model: torch.nn.Module, images: torch.Tensor, labels, maps: torch.Tensor, fraction: float = 0.1,
             seed: int = 0, batch_size: int = 200) -> dict[str, np.ndarray]:
    """Correct (1) or not (0) per scene: ``"intact"``, after deleting the map's top ``fraction`` of pixels
    (``"map"``) and after deleting as many random pixels (``"random"``), from normalised ``images``
    ``(n, 3, S, S)``; deleted pixels are set to 0, the image mean."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    x = torch.as_tensor(images)
    n, _, s, _ = x.shape
    y = torch.as_tensor(np.asarray(labels))
    m = upsample(maps, s).flatten(1)
    k = max(1, round(fraction * s * s))
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(m.shape, generator=g) * 1e-6 * m.abs().amax(1, keepdim=True).clamp_min(1e-12)
    top = (m + noise).topk(k, dim=1).indices                  # ties broken at random
    rnd = torch.rand(m.shape, generator=g).topk(k, dim=1).indices
    device = next(model.parameters()).device
    out = {"intact": [], "map": [], "random": []}
    model.eval()
    for i in range(0, n, batch_size):
        xb = x[i:i + batch_size]
        yb = y[i:i + batch_size]
        for name, idx in (("intact", None), ("map", top[i:i + batch_size]), ("random", rnd[i:i + batch_size])):
            xi = xb.clone()
            if idx is not None:
                keep = torch.ones(xi.shape[0], s * s)
                keep.scatter_(1, idx, 0.0)
                xi = xi * keep.view(-1, 1, s, s)
            pred = model(xi.to(device)).argmax(1).cpu()
            out[name].append((pred == yb).double())
    return {k_: torch.cat(v).numpy() for k_, v in out.items()}
