"""The objects of the zoo's scenes: where each one sits in a real photograph, written down as data.

Every object is a crop of a photo from :mod:`attnlib.images`, given by its box ``(x0, y0, x1, y1)`` in
the photo's pixels (x to the right, y down, ``x1``/``y1`` exclusive) and a cheap mask: ``"rect"`` keeps
the whole box, ``"ellipse"`` keeps the ellipse inscribed in it (coins, a flower, a face), with a soft
edge so the paste leaves no sharp rectangle. Boxes were read off gridded plots of the photos; the coin
boxes come from an Otsu threshold of ``coins`` followed by connected components.

Backgrounds are photos without any of the classes in them (textures, a temple, the Hubble deep field, a
retina, the grass behind the cameraman). Each background is split into three vertical bands, train
(the left 60 %), validation (the next 20 %) and test (the right 20 %), with a gap of 4 % between bands:
a scene of one split draws its background and its clutter from that split's band only.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the class names, in label order
CLASSES: tuple[str, ...] = ("cat", "cup", "rocket", "face", "coin", "flower", "motorcycle")


@dataclass(frozen=True)
class ObjectCrop:
    """One object instance: class, source photo, box ``(x0, y0, x1, y1)`` in photo pixels, mask kind."""

    label: str
    photo: str
    box: tuple[int, int, int, int]
    mask: str = "rect"

    def __post_init__(self):
        if self.label not in CLASSES:
            raise ValueError(f"ObjectCrop: label must be one of {CLASSES}, got {self.label!r}")
        if self.mask not in ("rect", "ellipse"):
            raise ValueError(f"ObjectCrop: mask must be 'rect' or 'ellipse', got {self.mask!r}")
        x0, y0, x1, y1 = self.box
        if not (0 <= x0 < x1 and 0 <= y0 < y1):
            raise ValueError(f"ObjectCrop: box must satisfy 0 <= x0 < x1 and 0 <= y0 < y1, got {self.box}")


OBJECTS: tuple[ObjectCrop, ...] = (
    # the head of Chelsea the cat (fills most of the photo)
    ObjectCrop("cat", "cat", (30, 0, 440, 300), "ellipse"),
    # the cup on its saucer, with the spoon
    ObjectCrop("cup", "coffee", (80, 50, 485, 390), "ellipse"),
    ObjectCrop("cup", "coffee", (185, 15, 425, 300), "rect"),
    # the launcher on its pad, and the shuttle model behind the astronaut
    ObjectCrop("rocket", "rocket", (285, 120, 345, 400), "rect"),
    ObjectCrop("rocket", "astronaut", (380, 0, 470, 300), "rect"),
    # three faces: Eileen Collins, Grace Hopper (with her cap), the cameraman (grey)
    ObjectCrop("face", "astronaut", (165, 20, 305, 195), "ellipse"),
    ObjectCrop("face", "grace_hopper", (165, 40, 385, 345), "ellipse"),
    ObjectCrop("face", "camera", (165, 75, 300, 225), "ellipse"),
    # ten Greek coins (grey photo)
    ObjectCrop("coin", "coins", (305, 16, 365, 72), "ellipse"),
    ObjectCrop("coin", "coins", (192, 30, 243, 73), "ellipse"),
    ObjectCrop("coin", "coins", (245, 96, 296, 144), "ellipse"),
    ObjectCrop("coin", "coins", (25, 104, 67, 146), "ellipse"),
    ObjectCrop("coin", "coins", (315, 156, 380, 218), "ellipse"),
    ObjectCrop("coin", "coins", (189, 170, 237, 216), "ellipse"),
    ObjectCrop("coin", "coins", (80, 175, 124, 217), "ellipse"),
    ObjectCrop("coin", "coins", (18, 233, 75, 288), "ellipse"),
    ObjectCrop("coin", "coins", (144, 236, 201, 288), "ellipse"),
    ObjectCrop("coin", "coins", (276, 240, 326, 288), "ellipse"),
    # the dahlia
    ObjectCrop("flower", "flower", (170, 85, 430, 360), "ellipse"),
    # the motorcycle in its workshop
    ObjectCrop("motorcycle", "motorcycle", (90, 95, 700, 455), "rect"),
)

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
