"""The background photographs of the zoo's scenes, and the disjoint band of each that a split may use.

Backgrounds are photos that ship inside installed packages (:mod:`attnlib.images`) and hold no garment:
textures, a temple, the Hubble deep field, a retina, the grass behind the cameraman. Each is split into
three vertical bands, train (the left 60 %), validation (the next 14 %) and test (the right 18 %), with a
gap of 4 % between bands: a scene of one split draws its background from that split's band only.
"""

from __future__ import annotations

#: background photos and the part of each that holds no object: (photo, (x0, y0, x1, y1))
BACKGROUNDS: tuple[tuple[str, tuple[int, int, int, int]], ...] = (
    ("china", (0, 0, 640, 427)),
    ("hubble", (0, 0, 1000, 872)),
    ("retina", (0, 0, 1411, 1411)),
    ("brick", (0, 0, 512, 512)),
    ("grass", (0, 0, 512, 512)),
    ("gravel", (0, 0, 512, 512)),
    ("camera", (0, 280, 512, 512)),  # the lawn below the horizon; the tripod's legs are clutter
)

#: the splits and their bands, as fractions of a background's width: split -> (start, stop)
SPLIT_BANDS: dict[str, tuple[float, float]] = {
    "train": (0.0, 0.60),
    "val": (0.64, 0.78),
    "test": (0.82, 1.0),
}
SPLITS: tuple[str, ...] = tuple(SPLIT_BANDS)


def split_region(background: tuple[str, tuple[int, int, int, int]], split: str) -> tuple[int, int, int, int]:
    """The box ``(x0, y0, x1, y1)`` of ``background`` that scenes of ``split`` may draw from."""
    if split not in SPLIT_BANDS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    _, (x0, y0, x1, y1) = background
    a, b = SPLIT_BANDS[split]
    return (x0 + round(a * (x1 - x0)), y0, x0 + round(b * (x1 - x0)), y1)
