"""Plot helpers shared by every chapter of the book: one colormap and one overlay convention.

Conventions (book-wide):

- Attention maps use the colormap :data:`CMAP`, drawn over the photo with opacity
  :data:`ALPHA`. A map is upsampled to the photo's size with bilinear interpolation
  (``align_corners=False``), so a 7x7 map covers the photo the way its 7x7 cells cover the input.
- Every overlay has a colorbar whose label states the normalisation: ``"minmax"`` rescales the map to
  [0, 1] per map (comparisons *within* a map), ``"none"`` shows raw values (comparisons *across* maps).
- Gates (values in [0, 1], one per channel) are drawn as bar plots with :func:`gate_bars`.
- The dataflow figure of a block's idea is drawn with :func:`flow_diagram`.

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt, numpy as np
    >>> from attnlib import plotting
    >>> fig, ax = plt.subplots()
    >>> im = plotting.overlay(ax, np.zeros((32, 48, 3), np.uint8), np.random.rand(4, 6), title="demo")
    >>> im.get_array().shape
    (32, 48)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

#: The one colormap for attention maps, book-wide.
CMAP = "inferno"
#: Opacity of an attention map drawn over a photo.
ALPHA = 0.55
#: Colours for the bars of gate plots: ordinary, highlighted.
BAR_COLOUR = "#4c72b0"
HIGHLIGHT_COLOURS = ("#dd8452", "#55a868", "#c44e52", "#8172b3")

_NORMALISATIONS = ("minmax", "none")


def colormap_hex(n: int = 256) -> list[str]:
    """:data:`CMAP` sampled at ``n`` evenly spaced points, as ``"#rrggbb"`` colours (for pages drawing maps
    in JavaScript)."""
    import matplotlib

    cmap = matplotlib.colormaps[CMAP]
    return [matplotlib.colors.to_hex(cmap(i / (n - 1))) for i in range(n)]


def _to_numpy(a, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().to("cpu", torch.float32).numpy()
    try:
        return np.asarray(a)
    except Exception as exc:  # pragma: no cover - defensive, numpy accepts almost anything
        raise ValueError(f"{name} must be array-like, got {type(a).__name__}") from exc


def _image_hw3(image) -> np.ndarray:
    """A photo as an (H, W, 3) float array in [0, 1]."""
    img = _to_numpy(image, "image")
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[2] not in (1, 3):
        img = np.moveaxis(img, 0, -1)  # (3, H, W) -> (H, W, 3)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3) or min(img.shape[:2]) == 0:
        raise ValueError(f"overlay: image must have shape (H, W, 3), (H, W) or (3, H, W); got {img.shape}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    img = img.astype(np.float32)
    lo, hi = float(img.min()), float(img.max())
    if lo < 0.0 or hi > 1.0:  # e.g. a normalised tensor: rescale for display only
        img = (img - lo) / max(hi - lo, 1e-12)
    return img


def upsample_map(attention_map, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling (``align_corners=False``) of a 2-D map of shape (h, w) to ``size`` = (H, W).

    Singleton leading axes (e.g. a captured ``(1, 1, h, w)`` map) are squeezed first.
    """
    m = torch.as_tensor(_to_numpy(attention_map, "attention_map"), dtype=torch.float32)
    while m.dim() > 2 and m.shape[0] == 1:
        m = m[0]
    if m.dim() != 2 or m.numel() == 0:
        raise ValueError(
            f"overlay: attention_map must be 2-D (h, w) after removing leading singleton axes; "
            f"got shape {tuple(m.shape)}")
    out = torch.nn.functional.interpolate(m[None, None], size=tuple(size), mode="bilinear", align_corners=False)
    return out[0, 0].numpy()


def normalise_map(m: np.ndarray, normalise: str, quantity: str = "attention") -> tuple[np.ndarray, str]:
    """Apply the named normalisation; returns the map and the colorbar label that states it, naming
    ``quantity`` (what the map holds, e.g. ``"attention"`` or ``"feature value"``)."""
    if normalise not in _NORMALISATIONS:
        raise ValueError(f"overlay: normalise must be one of {_NORMALISATIONS}, got {normalise!r}")
    if not isinstance(quantity, str) or not quantity.strip():
        raise ValueError(f"overlay: quantity must be a non-empty string naming what the map holds, got {quantity!r}")
    if normalise == "none":
        return m, f"{quantity} (raw values)"
    lo, hi = float(m.min()), float(m.max())
    if hi - lo <= 0:
        return np.zeros_like(m), f"{quantity} (min-max to [0, 1]; constant map shown as 0)"
    return (m - lo) / (hi - lo), f"{quantity} (min-max normalised to [0, 1])"


def overlay(ax, image, attention_map, *, title: str | None = None, normalise: str = "minmax",
            colorbar: bool = True, quantity: str = "attention"):
    """Draw ``attention_map`` over ``image`` on the matplotlib axes ``ax``, with the book's convention.

    Args:
        ax: a matplotlib ``Axes``.
        image: the photo, ``(H, W, 3)`` uint8 (as from :func:`attnlib.images.load_photo`), ``(H, W)``,
            or a ``(3, H, W)`` tensor (rescaled to [0, 1] for display when outside that range).
        attention_map: a ``(h, w)`` array or tensor (leading singleton axes allowed, e.g. ``(1, 1, h, w)``);
            upsampled bilinearly to ``(H, W)``.
        title: axes title.
        normalise: ``"minmax"`` (rescale to [0, 1]) or ``"none"`` (raw values); stated in the colorbar label.
        colorbar: draw a colorbar beside the axes.
        quantity: what the map holds, named in the colorbar label (default ``"attention"``; e.g.
            ``"feature value"`` when a chapter draws a feature map rather than an attention map).

    Returns:
        The ``AxesImage`` of the map (its array is the upsampled, normalised map).
    """
    img = _image_hw3(image)
    m = upsample_map(attention_map, img.shape[:2])
    m, label = normalise_map(m, normalise, quantity)
    ax.imshow(img)
    kwargs = {"vmin": 0.0, "vmax": 1.0} if normalise == "minmax" else {}
    im = ax.imshow(m, cmap=CMAP, alpha=ALPHA, interpolation="nearest", **kwargs)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    if colorbar:
        cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        cb.set_label(label)
        cb.solids.set_alpha(1.0)
    return im


def gate_bars(ax, gate, *, title: str | None = None, highlight: Sequence[int] = (), ylabel: str = "gate $s_c$",
              xlabel: str = "channel $c$", ylim: tuple[float, float] | None = (0.0, 1.0)):
    """Bar plot of a per-channel gate (one value per channel, e.g. SE's :math:`s`), sample by sample.

    Args:
        ax: a matplotlib ``Axes``.
        gate: ``(C,)``, or any shape with ``C`` elements after squeezing singleton axes
            (``(1, C, 1, 1)`` as captured for one sample).
        title: axes title.
        highlight: channel indices drawn in the highlight colours (in order), e.g. the most and least
            excited channels shown elsewhere in the figure.
        ylabel, xlabel: axis labels.
        ylim: y-axis range; gates from a sigmoid lie in [0, 1]. ``None`` keeps matplotlib's choice.

    Returns:
        The ``BarContainer``.
    """
    g = _to_numpy(gate, "gate").squeeze()
    if g.ndim != 1 or g.size == 0:
        raise ValueError(f"gate_bars: gate must hold one value per channel (shape (C,) after squeezing); "
                         f"got shape {_to_numpy(gate, 'gate').shape}")
    colours = [BAR_COLOUR] * g.size
    for k, idx in enumerate(highlight):
        if not 0 <= int(idx) < g.size:
            raise ValueError(f"gate_bars: highlight index {idx} outside [0, {g.size - 1}]")
        colours[int(idx)] = HIGHLIGHT_COLOURS[k % len(HIGHLIGHT_COLOURS)]
    bars = ax.bar(np.arange(g.size), g, color=colours, width=0.85)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlim(-0.6, g.size - 0.4)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    return bars


def flow_diagram(ax, steps: Sequence[tuple[str, str]], *, title: str | None = None,
                 highlight: Sequence[int] = ()):
    """Draw a block's dataflow as a left-to-right chain of boxes: one box per step, its shape below.

    Args:
        ax: a matplotlib ``Axes`` (its axis is switched off).
        steps: ``[(label, shape), ...]``, e.g. ``[("x", "(B, C, H, W)"), ("squeeze", "(B, C)")]``.
            Labels may use matplotlib mathtext (``"$\\sigma$"``).
        title: axes title.
        highlight: indices of the steps drawn in the highlight colour (e.g. the gate).

    Returns:
        The list of text artists of the boxes.
    """
    if len(steps) == 0:
        raise ValueError("flow_diagram: steps must hold at least one (label, shape) pair")
    for step in steps:
        if not (isinstance(step, (tuple, list)) and len(step) == 2):
            raise ValueError(f"flow_diagram: each step must be a (label, shape) pair, got {step!r}")
    n = len(steps)
    ax.set_xlim(0, n)
    ax.set_ylim(0, 1)
    ax.set_axis_off()
    boxes = []
    for i, (label, shape) in enumerate(steps):
        face = HIGHLIGHT_COLOURS[0] if i in highlight else "#dfe7f2"
        t = ax.text(i + 0.5, 0.6, label, ha="center", va="center", fontsize=11,
                    bbox=dict(boxstyle="round,pad=0.45", facecolor=face, edgecolor="#33415c"))
        ax.text(i + 0.5, 0.3, shape, ha="center", va="center", fontsize=9, family="monospace", color="#33415c")
        boxes.append(t)
        if i + 1 < n:
            ax.annotate("", xy=(i + 1.12, 0.6), xytext=(i + 0.88, 0.6),
                        arrowprops=dict(arrowstyle="->", color="#33415c", lw=1.4))
    if title is not None:
        ax.set_title(title)
    return boxes
