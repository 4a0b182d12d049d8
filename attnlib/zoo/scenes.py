"""The zoo's data: scenes built from real photographs, deterministic from a seed.

A scene pastes one object (:data:`attnlib.zoo.objects.OBJECTS`) onto a crop of a real background, at a
random position, scale (0.5x to 2x, log-uniform), horizontal flip and colour jitter. To keep the task
from saturating, a scene also carries clutter (one to three patches cut from other backgrounds) and,
half of the time, a *distractor*: a smaller object of another class (at most 60 % of the target's
size). The label is the class of the larger object, the target; the ground truth box is the target's.

Scene ``i`` of split ``s`` under seed ``seed`` depends on ``(seed, s, i)`` only, so any scene can be
re-rendered alone, in any order. Training, validation and test scenes draw backgrounds and clutter from
disjoint vertical bands of every background photo (:data:`attnlib.zoo.objects.SPLIT_BANDS`).

    >>> from attnlib.zoo import scenes
    >>> s = scenes.render_scene("test", 0)
    >>> s.image.shape, s.label in range(len(scenes.CLASSES))
    ((64, 64, 3), True)
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .. import images
from .objects import BACKGROUNDS, CLASSES, OBJECTS, SPLITS, split_region

#: side of a scene in pixels
SIZE = 64
#: longest side of an object at scale 1.0, in pixels
BASE = 24
SCALE_RANGE = (0.5, 2.0)
#: probability that a scene carries a smaller distractor object of another class
DISTRACTOR_PROB = 0.5
#: the distractor's size relative to the target's, drawn from this range
DISTRACTOR_RATIO = (0.35, 0.6)


@dataclass(frozen=True)
class Scene:
    """One rendered scene.

    Attributes:
        image: ``(SIZE, SIZE, 3)`` uint8 RGB.
        label: index into :data:`CLASSES` of the target object.
        box: the target's box ``(x0, y0, x1, y1)`` in scene pixels (``x1``, ``y1`` exclusive).
        scale: the target's scale (1.0 means a longest side of ``BASE`` pixels).
        obj: index into :data:`OBJECTS` of the target instance.
        distractor: index into :data:`OBJECTS` of the distractor, or -1.
        background: index into :data:`BACKGROUNDS`.
        region: the box of the background photo the crop was cut from (inside the split's band).
    """

    image: np.ndarray
    label: int
    box: tuple[int, int, int, int]
    scale: float
    obj: int
    distractor: int
    background: int
    region: tuple[int, int, int, int]


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    return images.load_photo(name)


@functools.lru_cache(maxsize=None)
def _object_rgba(index: int) -> np.ndarray:
    """The object crop, downscaled so its longest side is at most ``2 * BASE * max scale``, with an
    alpha channel from its mask: ``(h, w, 4)`` float32 in [0, 1]."""
    obj = OBJECTS[index]
    x0, y0, x1, y1 = obj.box
    crop = _photo(obj.photo)[y0:y1, x0:x1]
    h, w = crop.shape[:2]
    limit = int(2 * BASE * SCALE_RANGE[1])
    f = min(1.0, limit / max(h, w))
    hh, ww = max(1, round(h * f)), max(1, round(w * f))
    rgb = np.asarray(Image.fromarray(crop).resize((ww, hh), Image.LANCZOS), dtype=np.float32) / 255
    alpha = _mask(obj.mask, hh, ww)
    return np.concatenate([rgb, alpha[:, :, None]], axis=2)


def _mask(kind: str, h: int, w: int) -> np.ndarray:
    if kind == "rect":
        return np.ones((h, w), np.float32)
    yy = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
    xx = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    r = np.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2)
    edge = 2.0 / max(4, min(h, w))  # about one pixel of soft edge
    return np.clip((1 - r) / edge, 0, 1).astype(np.float32)


def _resize(arr: np.ndarray, w: int, h: int) -> np.ndarray:
    """Resize a float (h, w, c) array in [0, 1] channel by channel with PIL (antialiased)."""
    out = [np.asarray(Image.fromarray(arr[:, :, c]).resize((w, h), Image.BILINEAR, reducing_gap=None))
           for c in range(arr.shape[2])]
    return np.stack(out, axis=2)


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


def _paste(canvas: np.ndarray, rgba: np.ndarray, x: int, y: int) -> None:
    h, w = rgba.shape[:2]
    a = rgba[:, :, 3:4]
    region = canvas[y:y + h, x:x + w]
    region[:] = a * rgba[:, :, :3] + (1 - a) * region


def _render_object(index: int, longest: int, rng: np.random.Generator) -> np.ndarray:
    rgba = _object_rgba(index)
    h, w = rgba.shape[:2]
    f = longest / max(h, w)
    hh, ww = max(2, round(h * f)), max(2, round(w * f))
    out = _resize(rgba, ww, hh)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    rgb = _jitter(np.ascontiguousarray(out[:, :, :3]), rng)
    return np.concatenate([rgb, np.clip(out[:, :, 3:4], 0, 1)], axis=2)


def _rng(split: str, index: int, seed: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not (isinstance(index, (int, np.integer)) and index >= 0):
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    return np.random.default_rng([int(seed), zlib.crc32(split.encode()), int(index)])


def render_scene(split: str, index: int, seed: int = 0, *, scale: float | None = None,
                 label: int | None = None, distractor: bool | None = None) -> Scene:
    """Render scene ``index`` of ``split`` (``"train"``, ``"val"`` or ``"test"``) under ``seed``.

    Args:
        split: which background bands to draw from.
        index: the scene's number; the scene depends on ``(seed, split, index)`` only.
        seed: the generator's seed.
        scale: force the target's scale (e.g. 1.0, 1.5, 2.0 for the SKNet figure); default: drawn
            log-uniformly from ``SCALE_RANGE``.
        label: force the target's class (index into :data:`CLASSES`); default: uniform.
        distractor: force a distractor on (True) or off (False); default: with ``DISTRACTOR_PROB``.
    """
    rng = _rng(split, index, seed)
    # every draw below happens whatever the overrides, so an override changes only its own quantity
    lab = int(rng.integers(len(CLASSES)))
    s = float(np.exp(rng.uniform(np.log(SCALE_RANGE[0]), np.log(SCALE_RANGE[1]))))
    has_distractor = rng.random() < DISTRACTOR_PROB
    if label is not None:
        if not (isinstance(label, (int, np.integer)) and 0 <= label < len(CLASSES)):
            raise ValueError(f"label must be an int in [0, {len(CLASSES)}), got {label!r}")
        lab = int(label)
    if scale is not None:
        if not (SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]):
            raise ValueError(f"scale must be in {list(SCALE_RANGE)}, got {scale!r}")
        s = float(scale)
    if distractor is not None:
        has_distractor = bool(distractor)
    candidates = [i for i, o in enumerate(OBJECTS) if o.label == CLASSES[lab]]
    obj = candidates[int(rng.integers(len(candidates)))]
    others = [i for i, o in enumerate(OBJECTS) if o.label != CLASSES[lab]]
    dis = others[int(rng.integers(len(others)))]

    # background: a square crop of the split's band, side 48..192 px, resized to SIZE
    b, region, canvas = _background_patch(split, rng, SIZE, 48, 192)
    canvas = _jitter(canvas, rng, strength=0.5)

    # clutter: 1..3 patches of other backgrounds (same split), 6..20 px, rectangles or discs
    for _ in range(int(rng.integers(1, 4))):
        side = int(rng.integers(6, 21))
        _, _, patch = _background_patch(split, rng, side, 16, 96)
        patch = _jitter(patch, rng)
        alpha = _mask("ellipse" if rng.random() < 0.5 else "rect", side, side)
        x, y = (int(v) for v in rng.integers(0, SIZE - side + 1, size=2))
        _paste(canvas, np.concatenate([patch, alpha[:, :, None]], axis=2), x, y)

    # the target
    target = _render_object(obj, round(BASE * s), rng)
    th, tw = target.shape[:2]
    tx = int(rng.integers(0, SIZE - tw + 1))
    ty = int(rng.integers(0, SIZE - th + 1))

    # the distractor, smaller, placed where it overlaps the target least (few tries)
    ratio = rng.uniform(*DISTRACTOR_RATIO)
    dis_rgba = _render_object(dis, max(4, round(BASE * s * ratio)), rng)
    dh, dw = dis_rgba.shape[:2]
    best = None
    for _ in range(8):
        dx = int(rng.integers(0, SIZE - dw + 1))
        dy = int(rng.integers(0, SIZE - dh + 1))
        ox = max(0, min(dx + dw, tx + tw) - max(dx, tx))
        oy = max(0, min(dy + dh, ty + th) - max(dy, ty))
        if best is None or ox * oy < best[0]:
            best = (ox * oy, dx, dy)
    if has_distractor:
        _paste(canvas, dis_rgba, best[1], best[2])
    _paste(canvas, target, tx, ty)

    image = (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)
    return Scene(image, lab, (tx, ty, tx + tw, ty + th), s, obj, dis if has_distractor else -1, b, region)


@dataclass
class SceneSet:
    """Many scenes as arrays: ``images`` (n, SIZE, SIZE, 3) uint8, ``labels`` (n,) int64,
    ``boxes`` (n, 4) int64 as ``(x0, y0, x1, y1)``, ``scales`` (n,) float32."""

    split: str
    seed: int
    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    scales: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self, index=slice(None), device="cpu"):
        """``(x, y)``: normalised images (B, 3, SIZE, SIZE) float32 and labels (B,) int64."""
        return normalise(self.images[index], device=device), torch.as_tensor(self.labels[index], device=device)


def make_scenes(split: str, n: int, seed: int = 0, *, start: int = 0, **overrides) -> SceneSet:
    """Render scenes ``start .. start + n - 1`` of ``split``; ``overrides`` go to :func:`render_scene`."""
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n must be a positive int, got {n!r}")
    scenes = [render_scene(split, start + i, seed, **overrides) for i in range(n)]
    return SceneSet(
        split, seed,
        np.stack([s.image for s in scenes]),
        np.array([s.label for s in scenes], np.int64),
        np.array([s.box for s in scenes], np.int64),
        np.array([s.scale for s in scenes], np.float32),
    )


def normalise(imgs: np.ndarray | torch.Tensor, device="cpu") -> torch.Tensor:
    """uint8 images (B, H, W, 3) as float (B, 3, H, W), each image and channel standardised to mean 0 and
    std 1 (the convention of :func:`attnlib.images.to_tensor`)."""
    x = torch.as_tensor(np.asarray(imgs), device=device)
    if x.ndim == 3:
        x = x[None]
    x = x.permute(0, 3, 1, 2).float().div(255)
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
