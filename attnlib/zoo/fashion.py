"""Fashion-MNIST, read from its four idx files and checked against their SHA-256 checksums.

Fashion-MNIST (Xiao, Rasul and Vollgraf 2017, arXiv:1708.07747; MIT licence) holds 70,000 labelled
28x28 greyscale photographs of Zalando products in 10 classes: 60,000 for training and 10,000 for
testing, disjoint instances. The zoo's garments come from here.

Where the files are looked for, in order:

1. the folder in the environment variable ``ATTNLIB_FASHION_MNIST``;
2. ``/usr/share/datasets/fashion-mnist`` (Debian's package ``dataset-fashion-mnist``, which the
   README's commands install);
3. ``~/.cache/attnlib/fashion-mnist`` (where a download goes).

When none holds the files, they are downloaded from the data set's public release only if asked
(``download=True``, or ``ATTNLIB_DOWNLOAD=1``) or when running in Google Colab; every file, found or
downloaded, must match its checksum. Nothing falls back to other data.

Splits of *instances* (the scenes of a split only ever contain its own garments):

* ``"train"``: Fashion-MNIST's training set minus :data:`N_VAL` instances held out;
* ``"val"``: those :data:`N_VAL` held-out training instances (a fixed, seeded choice, balanced over
  classes);
* ``"test"``: Fashion-MNIST's test set.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np

#: the class names, in label order (the data set's own)
CLASSES: tuple[str, ...] = ("T-shirt/top", "trouser", "pullover", "dress", "coat",
                            "sandal", "shirt", "sneaker", "bag", "ankle boot")
#: file name -> SHA-256 of the gzipped file as released
CHECKSUMS: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
#: the data set's public release (used only for a download)
RELEASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path.home() / ".cache" / "attnlib" / "fashion-mnist"
#: training instances held out for validation (500 per class)
N_VAL = 5000
VAL_SEED = 20170825
SPLITS: tuple[str, ...] = ("train", "val", "test")


class DataError(ValueError):
    """The data set's files are missing, corrupted or not the released ones."""


def _search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("ATTNLIB_FASHION_MNIST"):
        dirs.append(Path(os.environ["ATTNLIB_FASHION_MNIST"]))
    return dirs + [DEBIAN_DIR, CACHE_DIR]


def _in_colab() -> bool:
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def sha256(path: str | Path) -> str:
    """SHA-256 of a file, hex (the data files here; the zoo's weight files too)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, digest in CHECKSUMS.items():
        target = directory / name
        if target.exists() and sha256(target) == digest:
            continue
        tmp = target.with_suffix(".part")
        urllib.request.urlretrieve(RELEASE_URL + name, tmp)
        if sha256(tmp) != digest:
            tmp.unlink()
            raise DataError(f"downloaded {name} does not match its SHA-256 checksum {digest}")
        tmp.replace(target)


def data_dir(download: bool | None = None) -> Path:
    """The folder holding all four files, each verified against :data:`CHECKSUMS`.

    Raises :class:`DataError` naming the missing or corrupted file, the Debian package and the Colab
    route."""
    if download is None:
        download = os.environ.get("ATTNLIB_DOWNLOAD") == "1" or _in_colab()
    for d in _search_dirs():
        if all((d / n).exists() for n in CHECKSUMS):
            for n, digest in CHECKSUMS.items():
                if _verified(str(d / n)) != digest:
                    raise DataError(f"Fashion-MNIST file {d / n} is corrupted: its SHA-256 is not the "
                                    f"released {digest}. Reinstall it (apt-get install --reinstall "
                                    f"dataset-fashion-mnist) or delete it to download it again.")
            return d
    if download:
        _download(CACHE_DIR)
        return CACHE_DIR
    looked = ", ".join(str(d) for d in _search_dirs())
    raise DataError(f"Fashion-MNIST not found (looked in {looked}). Install Debian's package "
                    f"`dataset-fashion-mnist` (`make test` and `make book` do), set ATTNLIB_FASHION_MNIST "
                    f"to a folder with the four idx files, or download them once with "
                    f"`attnlib.zoo.fashion.data_dir(download=True)` (automatic in Google Colab).")


@functools.lru_cache(maxsize=None)
def _verified(path: str) -> str:
    return sha256(Path(path))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims}, file holds {data.size} values")
    return data.reshape(dims)


@functools.lru_cache(maxsize=2)
def _raw(part: str) -> tuple[np.ndarray, np.ndarray]:
    d = data_dir()
    prefix = "train" if part == "train" else "t10k"
    images = _read_idx(d / f"{prefix}-images-idx3-ubyte.gz")
    labels = _read_idx(d / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise DataError(f"Fashion-MNIST {part} files disagree: images {images.shape}, labels {labels.shape}")
    return images, labels


@functools.lru_cache(maxsize=1)
def val_indices() -> np.ndarray:
    """Indices into the training file of the held-out validation instances (sorted; 500 per class)."""
    _, labels = _raw("train")
    rng = np.random.default_rng(VAL_SEED)
    per = N_VAL // len(CLASSES)
    chosen = [rng.choice(np.flatnonzero(labels == c), per, replace=False) for c in range(len(CLASSES))]
    return np.sort(np.concatenate(chosen))


@functools.lru_cache(maxsize=3)
def garments(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images, labels, ids)`` of ``split``: ``images`` (n, 28, 28) uint8, ``labels`` (n,) int64 and
    ``ids`` (n,) int64, a garment's identity across splits (its index in the training file, or
    60,000 + its index in the test file)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "test":
        images, labels = _raw("test")
        return images, labels, 60000 + np.arange(len(labels))
    images, labels = _raw("train")
    val = val_indices()
    if split == "val":
        idx = val
    else:
        keep = np.ones(len(labels), bool)
        keep[val] = False
        idx = np.flatnonzero(keep)
    return images[idx], labels[idx], idx.astype(np.int64)
