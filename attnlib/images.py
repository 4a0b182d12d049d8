"""Real photographs that ship inside installed packages, so every chapter runs offline and in Colab.

Sources: scikit-image's ``skimage.data`` (only the images bundled in its wheel), scikit-learn's
``load_sample_images`` and matplotlib's sample photo of Grace Hopper.

    >>> from attnlib import images
    >>> images.list_photos()[:3]
    ['astronaut', 'cat', 'coffee']
    >>> images.load_photo("cat").shape
    (300, 451, 3)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _stereo_left() -> np.ndarray:
    import skimage.data

    return skimage.data.stereo_motorcycle()[0]


def _sklearn(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_images

        return load_sample_images().images[index]

    return load


def _grace_hopper() -> np.ndarray:
    import matplotlib.cbook
    import matplotlib.image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return matplotlib.image.imread(f, format="jpg")


#: name -> (loader, description). Colour photos first, then grey textures.
PHOTOS: dict[str, tuple[Callable[[], np.ndarray], str]] = {
    "astronaut": (_skimage("astronaut"), "Eileen Collins in a spacesuit (scikit-image)"),
    "cat": (_skimage("chelsea"), "Chelsea the cat (scikit-image)"),
    "coffee": (_skimage("coffee"), "a cup of coffee on a saucer (scikit-image)"),
    "rocket": (_skimage("rocket"), "a rocket on its launch pad (scikit-image)"),
    "motorcycle": (_stereo_left, "a motorcycle in a workshop, left stereo view (scikit-image)"),
    "hubble": (_skimage("hubble_deep_field"), "the Hubble deep field (scikit-image)"),
    "retina": (_skimage("retina"), "a human retina (scikit-image)"),
    "china": (_sklearn(0), "a temple in China (scikit-learn)"),
    "flower": (_sklearn(1), "a flower (scikit-learn)"),
    "grace_hopper": (_grace_hopper, "Grace Hopper (matplotlib)"),
    "coins": (_skimage("coins"), "Greek coins, grey (scikit-image)"),
    "camera": (_skimage("camera"), "a cameraman, grey (scikit-image)"),
    "brick": (_skimage("brick"), "brick texture, grey (scikit-image)"),
    "grass": (_skimage("grass"), "grass texture, grey (scikit-image)"),
    "gravel": (_skimage("gravel"), "gravel texture, grey (scikit-image)"),
    "text": (_skimage("text"), "digits chalked on a board, grey (scikit-image)"),
    "page": (_skimage("page"), "a photographed book page, grey (scikit-image)"),
}


def list_photos() -> list[str]:
    """Names accepted by :func:`load_photo`."""
    return list(PHOTOS)


def load_photo(name: str) -> np.ndarray:
    """The photo ``name`` as an ``(H, W, 3)`` uint8 RGB array (grey photos are repeated to 3 channels)."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; available: {', '.join(PHOTOS)}")
    img = np.asarray(PHOTOS[name][0]())
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).round().astype(np.uint8) if img.max() <= 1 else img.astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def to_tensor(img: np.ndarray, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """An ``(H, W, 3)`` uint8 image as a normalised ``(1, 3, H, W)`` float tensor (per-image mean 0,
    std 1 per channel), optionally resized (bilinear) to ``size``."""
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255)[None]
    if size is not None:
        size = (size, size) if isinstance(size, int) else tuple(size)
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    return (x - mean) / std
