"""The zoo's data: cluttered scenes of real garment photographs over real backgrounds, deterministic.

A scene (64x64 RGB) holds one *target* garment from Fashion-MNIST (:mod:`attnlib.zoo.fashion`), cropped
to its own pixels, scaled so its longest side is ``BASE * scale`` pixels (``scale`` log-uniform in
:data:`SCALE_RANGE`: 24 to 38 px, a small object), tinted a random colour (the photographs are grey)
and pasted at a random position over a crop of a real background photograph. Before the target go
three to six clutter fragments, 6x6 to 9x9 pieces cut from other garments of the same split and tinted (the
cluttered-MNIST recipe), and, in half the scenes, a *distractor*: a whole garment of another class, 40 to
60 % of the target's size. The label is the target's class; the ground truth is the target's pixel mask
(from its own pixels, which nothing covers: it is pasted last) and its box.

Why 64x64: the backbone's stages then see 32, 16, 8 and 4 px maps, so a 24 to 38 px target covers one
to five cells of the 8x8 map and several of the 16x16 one: attention has somewhere to point. Larger
canvases cost training time quadratically on the 2-core machines the zoo is trained on.

Scene ``i`` of split ``s`` under ``seed`` depends on ``(seed, s, i)`` only. A split's scenes use that
split's garments only (train, val and test instances are disjoint: :func:`fashion.garments`) and its
band of every background photo (:data:`attnlib.zoo.backgrounds.SPLIT_BANDS`).

    >>> from attnlib.zoo import scenes
    >>> s = scenes.render_scene("test", 0)
    >>> s.image.shape, s.mask.shape, s.label in range(len(scenes.CLASSES))
    ((64, 64, 3), (64, 64), True)
"""

from __future__ import annotations

import colorsys
import functools
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .. import images
from . import fashion
from .fashion import CLASSES
from .backgrounds import BACKGROUNDS, split_region

SPLITS = fashion.SPLITS
#: side of a scene in pixels
SIZE = 64
#: longest side of a target at scale 1.0, in pixels
BASE = 24
#: the target's scale is drawn log-uniformly from this range (24 to 38 px)
SCALE_RANGE = (1.0, 1.6)
#: a forced scale (``render_scene(scale=...)``) may go this far (12 to 48 px)
SCALE_LIMITS = (0.5, 2.0)
#: probability that a scene carries a distractor garment of another class
DISTRACTOR_PROB = 0.5
#: the distractor's size relative to the target's
DISTRACTOR_RATIO = (0.4, 0.6)
#: number of clutter fragments per scene, and their side in garment pixels
FRAGMENTS = (3, 6)
FRAGMENT_SIDE = (6, 9)
MAX_FRAGMENTS = FRAGMENTS[1]
#: a garment pixel belongs to the garment when its grey value is at least this
MASK_THRESHOLD = 12


@dataclass(frozen=True)
class Scene:
    """One rendered scene.

    Attributes:
        image: ``(SIZE, SIZE, 3)`` uint8 RGB.
        label: index into :data:`CLASSES` of the target garment.
        mask: ``(SIZE, SIZE)`` bool, the target's visible pixels.
        box: the target's box ``(x0, y0, x1, y1)`` in scene pixels (``x1``, ``y1`` exclusive).
        scale: the target's scale (1.0 means a longest side of ``BASE`` pixels).
        garment: the target's garment id (:func:`fashion.garments`).
        distractor: the distractor's garment id, or -1.
        fragments: garment ids the clutter fragments were cut from.
        background: index into :data:`BACKGROUNDS`.
        region: the box of the background photo the crop was cut from (inside the split's band).
        rotation: quarter turns applied to every garment of the scene (``render_scene(rotate=...)``).
    """

    image: np.ndarray
    label: int
    mask: np.ndarray
    box: tuple[int, int, int, int]
    scale: float
    garment: int
    distractor: int
    fragments: tuple[int, ...]
    background: int
    region: tuple[int, int, int, int]
    rotation: int = 0


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    return images.load_photo(name)


def _tight(grey: np.ndarray) -> np.ndarray:
    """The garment's image cropped to the box of its own pixels."""
    ys, xs = np.nonzero(grey >= MASK_THRESHOLD)
    if len(ys) == 0:
        return grey
    return grey[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _tint(rng: np.random.Generator) -> np.ndarray:
    """A random colour: any hue, saturation 0.3 to 1, value 0.55 to 1 (RGB in [0, 1])."""
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.55, 1.0)),
                    np.float32)


def _garment_rgba(grey: np.ndarray, longest: int, colour: np.ndarray, flip: bool) -> np.ndarray:
    """A greyscale garment (h, w) uint8 resized so its longest side is ``longest`` and tinted: its grey
    value modulates the colour (dark folds stay visible); alpha is 1 on the garment's own pixels with an
    antialiased edge. Returns (h', w', 4) float32."""
    h, w = grey.shape
    f = longest / max(h, w)
    hh, ww = max(2, round(h * f)), max(2, round(w * f))
    g = np.asarray(Image.fromarray(grey).resize((ww, hh), Image.BILINEAR), np.float32) / 255
    a = np.asarray(Image.fromarray(((grey >= MASK_THRESHOLD) * 255).astype(np.uint8)).resize(
        (ww, hh), Image.BILINEAR), np.float32) / 255
    if flip:
        g, a = g[:, ::-1], a[:, ::-1]
    rgb = colour[None, None, :] * (0.25 + 0.75 * g[:, :, None])
    return np.concatenate([rgb, a[:, :, None]], axis=2).astype(np.float32)


def _paste(canvas: np.ndarray, rgba: np.ndarray, x: int, y: int) -> np.ndarray:
    """Alpha-paste ``rgba`` at ``(x, y)``, clipped to the canvas; returns the pasted alpha on the canvas."""
    h, w = rgba.shape[:2]
    H, W = canvas.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    cover = np.zeros((H, W), np.float32)
    if x1 <= x0 or y1 <= y0:
        return cover
    part = rgba[y0 - y:y1 - y, x0 - x:x1 - x]
    a = part[:, :, 3:4]
    canvas[y0:y1, x0:x1] = a * part[:, :, :3] + (1 - a) * canvas[y0:y1, x0:x1]
    cover[y0:y1, x0:x1] = a[:, :, 0]
    return cover


def _jitter(rgb: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Colour jitter: brightness, contrast, saturation, a hue rotation, sometimes grey."""
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    if rng.random() < 0.15 * strength:
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
    else:
        # hue rotation about the grey axis, by an angle up to +-40 degrees
        theta = np.deg2rad(rng.uniform(-40, 40) * strength)
        k = np.ones(3, np.float32) / np.sqrt(3)
        K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], np.float32)
        R = np.eye(3, dtype=np.float32) + np.sin(theta) * K + (1 - np.cos(theta)) * (K @ K)
        rgb = rgb @ R.T
        sat = rng.uniform(1 - 0.5 * strength, 1 + 0.5 * strength)
        rgb = grey[:, :, None] + sat * (rgb - grey[:, :, None])
    contrast = rng.uniform(1 - 0.4 * strength, 1 + 0.4 * strength)
    mean = rgb.mean()
    rgb = mean + contrast * (rgb - mean)
    rgb = rgb * rng.uniform(1 - 0.4 * strength, 1 + 0.4 * strength)
    return np.clip(rgb, 0, 1).astype(np.float32)


def _crop_background(split: str, rng: np.random.Generator, index: int | None = None):
    b = int(rng.integers(len(BACKGROUNDS))) if index is None else index
    x0, y0, x1, y1 = split_region(BACKGROUNDS[b], split)
    return b, (x0, y0, x1, y1)


def _background_patch(split: str, rng: np.random.Generator, out: int, smin: int, smax: int):
    """A square crop of side in [smin, smax] (clipped to the band) resized to ``out``: (out, out, 3)."""
    b, (x0, y0, x1, y1) = _crop_background(split, rng)
    side = int(rng.integers(smin, max(smin, min(smax, x1 - x0, y1 - y0)) + 1))
    side = min(side, x1 - x0, y1 - y0)
    cx = int(rng.integers(x0, x1 - side + 1))
    cy = int(rng.integers(y0, y1 - side + 1))
    photo = _photo(BACKGROUNDS[b][0])
    crop = photo[cy:cy + side, cx:cx + side]
    rgb = np.asarray(Image.fromarray(crop).resize((out, out), Image.BILINEAR), np.float32) / 255
    return b, (cx, cy, cx + side, cy + side), rgb


def _rng(split: str, index: int, seed: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(index, bool) or not (isinstance(index, (int, np.integer)) and index >= 0):
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return np.random.default_rng([int(seed), zlib.crc32(split.encode()), int(index)])


def render_scene(split: str, index: int, seed: int = 0, *, scale: float | None = None,
                 label: int | None = None, distractor: bool | None = None, rotate: int = 0) -> Scene:
    """Render scene ``index`` of ``split`` (``"train"``, ``"val"`` or ``"test"``) under ``seed``.

    Args:
        split: whose garments and background bands to draw from.
        index: the scene's number; the scene depends on ``(seed, split, index)`` only.
        seed: the generator's seed (a non-negative int).
        scale: force the target's scale, in :data:`SCALE_LIMITS` (default: log-uniform in
            :data:`SCALE_RANGE`).
        label: force the target's class (index into :data:`CLASSES`; default: uniform).
        distractor: force a distractor on (True) or off (False); default: with ``DISTRACTOR_PROB``.
        rotate: quarter turns (0 to 3) applied to the target, the distractor and the fragments.

    Every random draw happens whatever the overrides, so an override changes only its own quantity:
    the same index at another scale or rotation shows the same garment on the same background.
    """
    rng = _rng(split, index, seed)
    g_images, g_labels, g_ids = fashion.garments(split)
    lab = int(rng.integers(len(CLASSES)))
    s = float(np.exp(rng.uniform(np.log(SCALE_RANGE[0]), np.log(SCALE_RANGE[1]))))
    has_distractor = rng.random() < DISTRACTOR_PROB
    if label is not None:
        if isinstance(label, bool) or not (isinstance(label, (int, np.integer)) and 0 <= label < len(CLASSES)):
            raise ValueError(f"label must be an int in [0, {len(CLASSES)}), got {label!r}")
        lab = int(label)
    if scale is not None:
        if not (isinstance(scale, (int, float)) and SCALE_LIMITS[0] <= scale <= SCALE_LIMITS[1]):
            raise ValueError(f"scale must be a number in {list(SCALE_LIMITS)}, got {scale!r}")
        s = float(scale)
    if distractor is not None:
        has_distractor = bool(distractor)
    if rotate not in (0, 1, 2, 3) or isinstance(rotate, bool):
        raise ValueError(f"rotate must be 0, 1, 2 or 3 quarter turns, got {rotate!r}")
    # the target's instance: a uniform draw within the class (the class's instances in file order)
    pick = rng.random()
    by_class = _class_index(split)
    pool = by_class[lab]
    t = int(pool[int(pick * len(pool))])
    others = np.flatnonzero(g_labels != lab)
    d = int(others[int(rng.integers(len(others)))])

    def turn(grey):
        return np.ascontiguousarray(np.rot90(grey, rotate)) if rotate else grey

    # background: a square crop of the split's band, side 48..192 px, resized to SIZE
    b, region, canvas = _background_patch(split, rng, SIZE, 48, 192)
    canvas = _jitter(canvas, rng, strength=0.5)

    # clutter: fragments of other garments (never the target), each with at least 30 % garment pixels
    n_frag = int(rng.integers(FRAGMENTS[0], FRAGMENTS[1] + 1))
    frag_ids = []
    for _ in range(n_frag):
        k = int(rng.integers(len(g_labels)))
        k = k if k != t else (k + 1) % len(g_labels)
        side = int(rng.integers(FRAGMENT_SIDE[0], FRAGMENT_SIDE[1] + 1))
        grey = g_images[k]
        for _try in range(6):
            fy, fx = (int(v) for v in rng.integers(0, 28 - side + 1, size=2))
            piece = grey[fy:fy + side, fx:fx + side]
            if (piece >= MASK_THRESHOLD).mean() >= 0.3:
                break
        longest = max(4, round(side * s * BASE / 24))
        rgba = _garment_rgba(turn(piece), longest, _tint(rng), bool(rng.random() < 0.5))
        x, y = (int(v) for v in rng.integers(-2, SIZE - rgba.shape[0] + 3, size=2))
        _paste(canvas, rgba, x, y)
        frag_ids.append(int(g_ids[k]))

    # the target (sized and placed first, so the distractor can avoid it), pasted last
    target = _garment_rgba(turn(_tight(g_images[t])), round(BASE * s), _tint(rng), bool(rng.random() < 0.5))
    th, tw = target.shape[:2]
    tx = int(rng.integers(0, SIZE - tw + 1))
    ty = int(rng.integers(0, SIZE - th + 1))

    ratio = rng.uniform(*DISTRACTOR_RATIO)
    dis = _garment_rgba(turn(_tight(g_images[d])), max(4, round(BASE * s * ratio)), _tint(rng),
                        bool(rng.random() < 0.5))
    dh, dw = dis.shape[:2]
    best = None
    for _ in range(8):
        dx = int(rng.integers(0, SIZE - dw + 1))
        dy = int(rng.integers(0, SIZE - dh + 1))
        ox = max(0, min(dx + dw, tx + tw) - max(dx, tx))
        oy = max(0, min(dy + dh, ty + th) - max(dy, ty))
        if best is None or ox * oy < best[0]:
            best = (ox * oy, dx, dy)
    if has_distractor:
        _paste(canvas, dis, best[1], best[2])
    cover = _paste(canvas, target, tx, ty)
    mask = cover >= 0.5

    image = (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)
    return Scene(image, lab, mask, (tx, ty, tx + tw, ty + th), s, int(g_ids[t]),
                 int(g_ids[d]) if has_distractor else -1, tuple(frag_ids), b, region, int(rotate))


@functools.lru_cache(maxsize=3)
def _class_index(split: str) -> list[np.ndarray]:
    labels = fashion.garments(split)[1]
    return [np.flatnonzero(labels == c) for c in range(len(CLASSES))]


@dataclass
class SceneSet:
    """Many scenes as arrays: ``images`` (n, SIZE, SIZE, 3) uint8, ``labels`` (n,) int64, ``masks``
    (n, SIZE, SIZE) bool, ``boxes`` (n, 4) int64 as ``(x0, y0, x1, y1)``, ``scales`` (n,) float32, and the
    garment ids of each scene's target (n,), distractor (n,; -1 for none) and fragments (n,
    MAX_FRAGMENTS; -1 padded)."""

    split: str
    seed: int
    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    scales: np.ndarray
    garments: np.ndarray
    distractors: np.ndarray
    fragments: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self, index=slice(None), device="cpu"):
        """``(x, y)``: normalised images (B, 3, SIZE, SIZE) float32 and labels (B,) int64."""
        return normalise(self.images[index], device=device), torch.as_tensor(self.labels[index], device=device)

    def subset(self, index) -> "SceneSet":
        """The scenes at ``index`` (a slice, an int array or a boolean mask), as a new set."""
        return SceneSet(self.split, self.seed, *(getattr(self, f)[index] for f in _ARRAYS))

    def garment_ids(self) -> set[int]:
        """Every garment id any scene of the set uses (targets, distractors and fragments)."""
        ids = set(self.garments.tolist()) | set(self.distractors.tolist()) | set(self.fragments.ravel().tolist())
        ids.discard(-1)
        return ids


_ARRAYS = ("images", "labels", "masks", "boxes", "scales", "garments", "distractors", "fragments")


def make_scenes(split: str, n: int, seed: int = 0, *, start: int = 0, **overrides) -> SceneSet:
    """Render scenes ``start .. start + n - 1`` of ``split``; ``overrides`` go to :func:`render_scene`."""
    if isinstance(n, bool) or not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n must be a positive int (the number of scenes), got {n!r}")
    if isinstance(start, bool) or not (isinstance(start, (int, np.integer)) and start >= 0):
        raise ValueError(f"start must be a non-negative int, got {start!r}")
    scenes = [render_scene(split, start + i, seed, **overrides) for i in range(n)]
    frags = np.full((n, MAX_FRAGMENTS), -1, np.int64)
    for i, s in enumerate(scenes):
        frags[i, :len(s.fragments)] = s.fragments
    return SceneSet(
        split, seed,
        np.stack([s.image for s in scenes]),
        np.array([s.label for s in scenes], np.int64),
        np.stack([s.mask for s in scenes]),
        np.array([s.box for s in scenes], np.int64),
        np.array([s.scale for s in scenes], np.float32),
        np.array([s.garment for s in scenes], np.int64),
        np.array([s.distractor for s in scenes], np.int64),
        frags,
    )


def normalise(imgs: np.ndarray | torch.Tensor, device="cpu") -> torch.Tensor:
    """uint8 images (B, H, W, 3) as float (B, 3, H, W), each image and channel standardised to mean 0 and
    std 1 (the convention of :func:`attnlib.images.to_tensor`)."""
    x = torch.as_tensor(np.asarray(imgs), device=device)
    if x.ndim == 3:
        x = x[None]
    return standardise(x.permute(0, 3, 1, 2).float().div(255))


def standardise(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1], (B, 3, H, W), each image and channel standardised to mean 0 and std 1 (what
    :func:`normalise` does after scaling; the exported graphs apply it to the page's pixels)."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    return (x - mean) / std


def box_mask(boxes: np.ndarray | torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """Boxes (n, 4) as ``(x0, y0, x1, y1)`` -> boolean masks (n, size, size)."""
    b = torch.as_tensor(np.asarray(boxes))
    r = torch.arange(size)
    rows = (r[None, :] >= b[:, 1:2]) & (r[None, :] < b[:, 3:4])
    cols = (r[None, :] >= b[:, 0:1]) & (r[None, :] < b[:, 2:3])
    return rows[:, :, None] & cols[:, None, :]
