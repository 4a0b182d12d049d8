"""Reading the SE gates of a production network: PP-OCRv4's text detector on real photos.

The model is PaddleOCR's PP-OCRv4 text detector (``ch_PP-OCRv4_det_infer.onnx``, Apache-2.0, by the
PaddlePaddle authors), shipped as an ONNX file inside PyPI's ``rapidocr-onnxruntime`` (Apache-2.0). Its
PP-LCNetV3 backbone and its RSE-FPN neck hold squeeze-and-excitation blocks whose gates are HardSigmoid
outputs. This module finds those blocks in the ONNX graph (by structure: GlobalAveragePool → Conv → Relu →
Conv → HardSigmoid → Mul on the same feature map), adds each gate as an extra graph output, preprocesses a
photo the way rapidocr's detector does, runs the graph in ``onnxruntime``, and returns every block's gate
vector together with the detector's text-probability map. :func:`section` shows, for the SE chapter, how
the gates differ between photos with and without text at each depth.

The package is used for its model file only (``pip install --no-deps``): this module never imports
``rapidocr_onnxruntime`` (that would import OpenCV); it locates the package folder with
:func:`importlib.util.find_spec`.

    >>> from attnlib import ppocr
    >>> ppocr.input_size(300, 451)      # rapidocr: shorter side up to 736, both sides multiples of 32
    (736, 1120)
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .images import load_photo

MODEL_FILE = "ch_PP-OCRv4_det_infer.onnx"
PACKAGE = "rapidocr_onnxruntime"
#: the version the book's Makefile installs; its ``models/`` folder holds :data:`MODEL_FILE`
PACKAGE_VERSION = "1.4.4"
INSTALL = f"pip install --no-deps rapidocr-onnxruntime=={PACKAGE_VERSION} onnxruntime onnx"
CREDIT = ("The model is PaddleOCR's PP-OCRv4 text detector (PaddlePaddle authors, Apache-2.0), as the ONNX "
          f"file `{MODEL_FILE}` that PyPI's `rapidocr-onnxruntime` (Apache-2.0) ships.")

# The detector's preprocessing, as rapidocr-onnxruntime 1.4.4 configures it (config.yaml, Det section, and
# ch_ppocr_det/utils.py DetPreProcess; main.py's Global max_side_len): BGR input, x / 255, then
# (x - mean) / std with mean = std = 0.5 per channel; limit_type "min" with limit_side_len 736 (a shorter
# side below 736 is scaled up to 736), both sides rounded to multiples of 32; a longer side above 2000 is
# first scaled down to 2000. rapidocr letterboxes images wider than 8:1; we refuse those instead.
LIMIT_SIDE_LEN = 736
MAX_SIDE_LEN = 2000
MULTIPLE = 32
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
MAX_ASPECT = 8
MIN_SIDE = 32
#: the detector's own binarisation threshold for the probability map (config.yaml ``thresh``)
THRESH = 0.3

# Photos, grouped before looking at any gate. Text is the subject of two photos that ship offline
# (scikit-image's ``text``: digits chalked on a board, and ``page``: a photographed book page). Three
# photos carry small incidental lettering (a brand name on the tank, a mission patch and name tag, coin
# inscriptions) and are left out of both groups. The rest show no lettering.
TEXT_PHOTOS = ("page", "text")
INCIDENTAL_PHOTOS = ("motorcycle", "astronaut", "coins")
NO_TEXT_PHOTOS = ("cat", "coffee", "rocket", "hubble", "retina", "china", "flower", "grace_hopper",
                  "camera", "brick", "grass", "gravel")
#: grey photos (both text photos are grey; the control in :func:`compare` uses the grey ones without text)
GREY_PHOTOS = ("page", "text", "coins", "camera", "brick", "grass", "gravel")


# ----------------------------------------------------------------------------------------------------
# Locating and installing the model
# ----------------------------------------------------------------------------------------------------

def package_dir() -> Path | None:
    """The installed ``rapidocr_onnxruntime`` folder, found without importing it, or ``None``."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def model_path() -> Path:
    """Path of the detector's ONNX file; a ``FileNotFoundError`` that names the pip command when missing."""
    folder = package_dir()
    if folder is None:
        raise FileNotFoundError(f"rapidocr-onnxruntime is not installed, so PP-OCRv4's detector "
                                f"({MODEL_FILE}) is missing. Install it with: {INSTALL}")
    path = folder / "models" / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed rapidocr-onnxruntime; reinstall "
                                f"version {PACKAGE_VERSION}: {INSTALL}")
    return path


def missing() -> list[str]:
    """What :func:`section` needs and is not installed: pip names of the missing packages."""
    out = []
    if package_dir() is None:
        out.append("rapidocr-onnxruntime")
    for mod, pip in (("onnx", "onnx"), ("onnxruntime", "onnxruntime")):
        if importlib.util.find_spec(mod) is None:
            out.append(pip)
    return out


def ensure_installed(quiet: bool = True) -> Path:
    """Install what is missing (in Colab, say) and return :func:`model_path`. rapidocr-onnxruntime goes in
    with ``--no-deps`` (only its model files are used; its dependencies include OpenCV), ``onnx`` and
    ``onnxruntime`` with their dependencies."""
    need = missing()
    if "rapidocr-onnxruntime" in need:
        _pip(["--no-deps", f"rapidocr-onnxruntime=={PACKAGE_VERSION}"], quiet)
    rest = [p for p in need if p != "rapidocr-onnxruntime"]
    if rest:
        _pip(rest, quiet)
    importlib.invalidate_caches()
    return model_path()


def _pip(args: list[str], quiet: bool) -> None:
    cmd = [sys.executable, "-m", "pip", "install", *(["-q"] if quiet else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed:\n{done.stderr[-2000:]}")


def _require_runtime() -> None:
    need = [p for p in missing() if p != "rapidocr-onnxruntime"]
    if need:
        raise ModuleNotFoundError(f"{', '.join(need)} not installed. Install with: {INSTALL} "
                                  "(or call attnlib.ppocr.ensure_installed())")


# ----------------------------------------------------------------------------------------------------
# Finding the SE blocks in the graph
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SEBlock:
    """One squeeze-and-excitation block of the graph, found and described by graph structure alone."""
    index: int            #: order in the graph (execution order)
    part: str             #: "backbone" (plain SE: x·s feeds the next conv) or "neck" (residual SE: x + x·s)
    role: str             #: what the block sits on, from the conv that produces its input
    channels: int         #: C, the length of the gate vector
    hidden: int           #: width of the excitation's bottleneck (C / reduction)
    stride: int           #: input pixels per feature-map pixel of the block's input
    depth: int            #: trunk convolutions on the longest path from the image to the block's input
    slope: float          #: HardSigmoid: gate = clip(slope · z + offset, 0, 1)
    offset: float
    feature: str          #: tensor names in the graph: the block's input x,
    gate: str             #: the gate s (HardSigmoid output, shape (1, C, 1, 1)),
    output: str           #: and x·s (the Mul output)
    weights: tuple[str, str, str, str]  #: squeeze conv weight and bias, excitation conv weight and bias

    @property
    def label(self) -> str:
        return f"{self.part} {self.role}, /{self.stride}, C={self.channels}"

    @property
    def short(self) -> str:
        tag = {"backbone": "B", "neck": "N"}[self.part]
        return f"{tag}{self.index}"


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


@functools.lru_cache(maxsize=4)
def _graph(path: str):
    import onnx

    return onnx.load(path)


@functools.lru_cache(maxsize=4)
def _constants(path: str) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    g = _graph(path).graph
    out = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and _attr(n, "value") is not None:
            out[n.output[0]] = numpy_helper.to_array(_attr(n, "value"))
    return out


@functools.lru_cache(maxsize=4)
def _blocks(path: str) -> tuple[SEBlock, ...]:
    from onnx import shape_inference

    model = _graph(path)
    g = model.graph
    consts = _constants(path)
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def made_by(name, op):
        n = producer.get(name)
        return n if n is not None and n.op_type == op else None

    found = []
    for hs in g.node:
        if hs.op_type != "HardSigmoid":
            continue
        c2 = made_by(hs.input[0], "Conv")
        relu = c2 and made_by(c2.input[0], "Relu")
        c1 = relu and made_by(relu.input[0], "Conv")
        gap = c1 and made_by(c1.input[0], "GlobalAveragePool")
        if not gap:
            continue
        x = gap.input[0]
        muls = [m for m in consumers.get(hs.output[0], []) if m.op_type == "Mul" and x in m.input]
        if len(muls) != 1:
            continue
        found.append((gap, c1, relu, c2, hs, muls[0]))
    se_convs = {id(t[1]) for t in found} | {id(t[3]) for t in found}

    # depth: convolutions of the trunk (not the SE branches' own 1×1 convs) on the longest path from the image
    depth = {i.name: 0 for i in g.input}
    for n in g.node:  # ONNX nodes are stored in topological order
        d = max((depth.get(i, 0) for i in n.input), default=0)
        d += int(n.op_type in ("Conv", "ConvTranspose") and id(n) not in se_convs)
        for o in n.output:
            depth[o] = d

    # stride: shape inference at a fixed input size
    probe = type(model)()
    probe.CopyFrom(model)
    side = 640
    dims = probe.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, (1, 3, side, side)):
        d.ClearField("dim_param")
        d.dim_value = v
    inferred = shape_inference.infer_shapes(probe).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.value_info}

    blocks = []
    for k, (gap, c1, relu, c2, hs, mul) in enumerate(found):
        x = gap.input[0]
        w1, w2 = consts[c1.input[1]], consts[c2.input[1]]
        residual = any(a.op_type == "Add" and x in a.input for a in consumers.get(mul.output[0], []))
        src = producer.get(x)
        if residual:
            part = "neck"
            ks = tuple(_attr(src, "kernel_shape", ())) if src is not None and src.op_type == "Conv" else ()
            role = {(1, 1): "lateral 1×1", (3, 3): "output 3×3"}.get(ks, f"after {src.op_type if src else '?'}")
        else:
            part, role = "backbone", "block"
        hw = shapes.get(x)
        stride = side // hw[2] if hw and len(hw) == 4 and hw[2] else 0
        blocks.append(SEBlock(
            index=k, part=part, role=role, channels=int(w2.shape[0]), hidden=int(w1.shape[0]), stride=stride,
            depth=depth[x], slope=float(_attr(hs, "alpha", 0.2)), offset=float(_attr(hs, "beta", 0.5)),
            feature=x, gate=hs.output[0], output=mul.output[0],
            weights=(c1.input[1], c1.input[2] if len(c1.input) > 2 else "",
                     c2.input[1], c2.input[2] if len(c2.input) > 2 else "")))
    # number the backbone blocks in order and name them by stage position
    nb = [b for b in blocks if b.part == "backbone"]
    out = []
    for b in blocks:
        if b.part == "backbone":
            b = SEBlock(**{**b.__dict__, "role": f"block {nb.index(b) + 1} of {len(nb)} with SE"})
        out.append(b)
    return tuple(out)


def se_blocks() -> tuple[SEBlock, ...]:
    """Every SE block of the detector, in graph order."""
    _require_runtime()
    return _blocks(str(model_path()))


def se_weights(block: SEBlock) -> dict[str, np.ndarray]:
    """The block's own weights from the graph: ``w1 (C/r, C, 1, 1)``, ``b1``, ``w2 (C, C/r, 1, 1)``, ``b2``."""
    consts = _constants(str(model_path()))
    names = dict(zip(("w1", "b1", "w2", "b2"), block.weights))
    return {k: (consts[v] if v else np.zeros(1, np.float32)) for k, v in names.items()}


def gate_numpy(x: np.ndarray, block: SEBlock) -> np.ndarray:
    """The gate recomputed in numpy from the block's input ``x (1, C, H, W)`` and the graph's weights:
    global average pool → 1×1 conv → ReLU → 1×1 conv → HardSigmoid. Shape ``(1, C, 1, 1)``."""
    w = se_weights(block)
    z = x.astype(np.float64).mean(axis=(2, 3))                         # (1, C)
    h = np.maximum(z @ w["w1"][:, :, 0, 0].T + w["b1"], 0)            # (1, C/r)
    e = h @ w["w2"][:, :, 0, 0].T + w["b2"]                           # (1, C)
    return np.clip(block.slope * e + block.offset, 0, 1)[:, :, None, None]


# ----------------------------------------------------------------------------------------------------
# Preprocessing and running
# ----------------------------------------------------------------------------------------------------

def input_size(h: int, w: int) -> tuple[int, int]:
    """The network's input size for an ``h × w`` photo, by rapidocr's rules: a longer side above 2000 is
    scaled to 2000 first; a shorter side below 736 is scaled up to 736; both sides rounded to multiples of 32."""
    def fit(h, w, ratio):
        return (int(round(int(h * ratio) / MULTIPLE) * MULTIPLE), int(round(int(w * ratio) / MULTIPLE) * MULTIPLE))

    if max(h, w) > MAX_SIDE_LEN:
        h, w = fit(h, w, MAX_SIDE_LEN / max(h, w))
    ratio = LIMIT_SIDE_LEN / min(h, w) if min(h, w) < LIMIT_SIDE_LEN else 1.0
    return fit(h, w, ratio)


def check_image(img) -> np.ndarray:
    """``img`` as an ``(H, W, 3)`` uint8 RGB array; a ``ValueError`` saying what is wrong otherwise."""
    if not isinstance(img, np.ndarray):
        raise ValueError(f"expected an (H, W, 3) RGB numpy array, got {type(img).__name__}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {img.shape}; repeat a grey image to 3 "
                         "channels (attnlib.images.load_photo does) and drop an alpha channel")
    if img.dtype == np.uint8:
        pass
    elif np.issubdtype(img.dtype, np.floating):
        if not np.isfinite(img).all() or img.min() < 0 or img.max() > 1:
            raise ValueError("a float image must hold finite values in [0, 1]")
        img = (img * 255).round().astype(np.uint8)
    else:
        raise ValueError(f"expected uint8 (0-255) or float (0-1) pixels, got dtype {img.dtype}")
    h, w = img.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"image of {h}×{w} pixels is too small: each side needs at least {MIN_SIDE} pixels "
                         f"(the detector's coarsest feature map is 1/{MULTIPLE} of the input)")
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise ValueError(f"image of {h}×{w} pixels is more elongated than {MAX_ASPECT}:1, which rapidocr "
                         "letterboxes before detection; crop it first")
    return img


def preprocess(img: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB photo as the detector's input ``(1, 3, H', W')`` float32: resized
    (bilinear, as OpenCV's default) to :func:`input_size`, channels in BGR order, ``(x/255 - 0.5) / 0.5``."""
    import torch

    img = check_image(img)
    size = input_size(*img.shape[:2])
    x = torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1)[None].float()
    if size != tuple(img.shape[:2]):
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = x.round().clamp(0, 255)  # OpenCV returns uint8 for a uint8 image
    x = x[:, [2, 1, 0]] / 255.0      # RGB -> BGR: PaddleOCR reads images with OpenCV
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return ((x - mean) / std).numpy().astype(np.float32)


@functools.lru_cache(maxsize=2)
def _session(path: str, with_features: bool, threads: int):
    import onnx
    import onnxruntime as ort

    model = type(_graph(path))()
    model.CopyFrom(_graph(path))
    names = [b.gate for b in _blocks(path)] + ([b.feature for b in _blocks(path)] if with_features else [])
    for name in names:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@dataclass
class Reading:
    """What one run of the detector gives: the preprocessed photo, the text-probability map (same size),
    one gate vector per SE block (graph order) and, on request, each block's input feature map."""
    image: np.ndarray                 #: (H', W', 3) uint8 RGB, the photo at the network's input size
    probability: np.ndarray           #: (H', W') the detector's text probability per pixel
    gates: list[np.ndarray]           #: per block, (C,) in [0, 1]
    raw_gates: list[np.ndarray]       #: per block, the graph's output as it is: (1, C, 1, 1)
    features: list[np.ndarray] | None = None


def read(img: np.ndarray, with_features: bool = False, threads: int | None = None) -> Reading:
    """Run the detector on an ``(H, W, 3)`` uint8 RGB photo and read every SE block's gate."""
    _require_runtime()
    path = str(model_path())
    blocks = _blocks(path)
    x = preprocess(img)
    threads = threads or max(1, min(2, os.cpu_count() or 1))
    sess = _session(path, with_features, threads)
    out = sess.run(None, {sess.get_inputs()[0].name: x})
    n = len(blocks)
    raw = out[1:1 + n]
    shown = ((x[0, ::-1].transpose(1, 2, 0) * 0.5 + 0.5) * 255).round().clip(0, 255).astype(np.uint8)
    return Reading(image=shown, probability=out[0][0, 0], gates=[g.reshape(-1) for g in raw], raw_gates=raw,
                   features=out[1 + n:] if with_features else None)


@functools.lru_cache(maxsize=None)
def read_photo(name: str) -> Reading:
    """:func:`read` of the photo ``name`` (cached)."""
    return read(load_photo(name))


# ----------------------------------------------------------------------------------------------------
# Analysis: text against no text, block by block
# ----------------------------------------------------------------------------------------------------

def _separation(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Distance between the two groups' mean gate vectors over the pooled within-group spread (RMS
    distance of a photo's gate vector to its own group's mean)."""
    a, b = vectors[labels], vectors[~labels]
    ma, mb = a.mean(0), b.mean(0)
    within = np.sqrt((((a - ma) ** 2).sum(1).sum() + ((b - mb) ** 2).sum(1).sum()) / len(vectors))
    return float(np.linalg.norm(ma - mb) / max(within, 1e-12))


def _permutation_p(vectors: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
    """Exact permutation test: the share of all relabellings (same group sizes) whose separation is at
    least the observed one, and how many relabellings there are."""
    n, k = len(labels), int(labels.sum())
    obs = _separation(vectors, labels)
    hits = total = 0
    for idx in itertools.combinations(range(n), k):
        lab = np.zeros(n, bool)
        lab[list(idx)] = True
        total += 1
        hits += _separation(vectors, lab) >= obs - 1e-12
    return hits / total, total


def _spearman(a, b) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


@functools.lru_cache(maxsize=None)
def compare(text: tuple[str, ...] = TEXT_PHOTOS, plain: tuple[str, ...] = NO_TEXT_PHOTOS) -> dict:
    """Per SE block, photos with text against photos without: mean gate of each group, spread of the
    gates across channels (std over channels, averaged over photos), the separation of the two groups'
    mean gate vectors relative to the within-group spread with its exact permutation p-value, and a
    control: the median (and largest) separation when a pair of grey photos without text stands in for the
    text photos, against the same others (every pair of them)."""
    blocks = se_blocks()
    names = list(text) + list(plain)
    readings = {n: read_photo(n) for n in names}
    is_text = np.array([n in text for n in names])
    # control: the same statistic when two grey photos *without* text play the text group's part (both
    # text photos are grey; if grey pairs separate as well, greyness, not text, moves the gates)
    grey_plain = [i for i, n in enumerate(names) if n in GREY_PHOTOS and n not in text]
    control_labels = []
    for pair in itertools.combinations(grey_plain, int(is_text.sum())):
        lab = np.zeros(len(names), bool)
        lab[list(pair)] = True
        control_labels.append(lab)
    rows = []
    for b in blocks:
        v = np.stack([readings[n].gates[b.index] for n in names])
        sep = _separation(v, is_text)
        p, perms = _permutation_p(v, is_text)
        ctrl = [_separation(v, lab) for lab in control_labels]
        rows.append(dict(
            block=b, mean_text=float(v[is_text].mean()), mean_plain=float(v[~is_text].mean()),
            spread_text=float(v[is_text].std(1).mean()), spread_plain=float(v[~is_text].std(1).mean()),
            saturated=float(((v == 0) | (v == 1)).mean()),
            constant=bool(np.all(v == v[0])),
            distance=float(np.linalg.norm(v[is_text].mean(0) - v[~is_text].mean(0)) / np.sqrt(b.channels)),
            separation=sep, p=p, permutations=perms,
            control=float(np.median(ctrl)) if ctrl else float("nan"),
            control_max=float(np.max(ctrl)) if ctrl else float("nan"), vectors=v, is_text=is_text))
    depths = [r["block"].depth for r in rows]
    seps = [r["separation"] for r in rows]
    return dict(rows=rows, names=names, text=tuple(text), plain=tuple(plain),
                grey_plain=tuple(names[i] for i in grey_plain), n_control=len(control_labels),
                spearman_depth_separation=_spearman(depths, seps))


def scale(names: tuple[str, ...]) -> str:
    """The range of enlargement factors (network input side over photo side) of the photos ``names``."""
    shapes = [load_photo(n).shape[:2] for n in names]
    f = [input_size(*hw)[0] / hw[0] for hw in shapes]
    return f"{min(f):.1f}×" if max(f) - min(f) < 0.05 else f"{min(f):.1f}× to {max(f):.1f}×"


def detection_stats(names: tuple[str, ...]) -> list[dict]:
    """Per photo: the detector's maximum text probability and the share of pixels above its threshold."""
    return [dict(name=n, max=float(read_photo(n).probability.max()),
                 above=float((read_photo(n).probability > THRESH).mean())) for n in names]


def verdict(result: dict) -> tuple[str, float, float]:
    """The SE paper's observation (excitation class-agnostic early, class-specific late) on these numbers."""
    rows = sorted(result["rows"], key=lambda r: r["block"].depth)
    half = len(rows) // 2
    early = float(np.mean([r["separation"] for r in rows[:half]]))
    late = float(np.mean([r["separation"] for r in rows[half:]]))
    rho = result["spearman_depth_separation"]
    if rho >= 0.5 and late > early:
        word = "reproduced: separation grows with depth"
    elif rho > 0 and late > early:
        word = "mixed: a weak rise with depth"
    else:
        word = "not reproduced: separation does not grow with depth"
    return word, early, late


# ----------------------------------------------------------------------------------------------------
# Figures and the chapter's section
# ----------------------------------------------------------------------------------------------------

def figure_probability(names: tuple[str, ...] = ("page", "text", "cat")):
    """The detector's text probability over each photo (at the network's input size)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for ax, n in zip(axes[0], names):
        r = read_photo(n)
        ax.imshow(r.image)
        im = ax.imshow(r.probability, cmap="magma", vmin=0, vmax=1, alpha=0.55)
        ax.set_title(f"{n}: {100 * (r.probability > THRESH).mean():.1f} % of pixels > {THRESH}", fontsize=9)
        ax.axis("off")
    fig.colorbar(im, ax=list(axes[0]), fraction=0.02, label="text probability")
    return fig


def figure_gates(result: dict | None = None):
    """Per SE block (ordered by depth): every photo's gate vector (thin) and each group's mean (thick),
    channels sorted by the no-text mean so that the two curves can be compared."""
    import matplotlib.pyplot as plt

    result = result or compare()
    rows = sorted(result["rows"], key=lambda r: r["block"].depth)
    fig, axes = plt.subplots(2, (len(rows) + 1) // 2, figsize=(17, 6.2), squeeze=False)
    for ax, r in zip(axes.flat, rows):
        b, v, t = r["block"], r["vectors"], r["is_text"]
        order = np.argsort(v[~t].mean(0))
        ch = np.arange(b.channels)
        for row in v[~t]:
            ax.plot(ch, row[order], color="tab:blue", lw=0.4, alpha=0.35)
        for row in v[t]:
            ax.plot(ch, row[order], color="tab:red", lw=0.4, alpha=0.6)
        ax.plot(ch, v[~t].mean(0)[order], color="tab:blue", lw=2, label="no text (mean)")
        ax.plot(ch, v[t].mean(0)[order], color="tab:red", lw=2, label="text (mean)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{b.short}: {b.part} {b.role}\n/{b.stride}, C={b.channels}, depth {b.depth}: "
                     f"sep. {r['separation']:.2f}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("gate")
    axes[1, 0].set_ylabel("gate")
    axes[1, 0].set_xlabel("channel (sorted by no-text mean)", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def figure_separation(result: dict | None = None):
    """Separation of the text and no-text groups per SE block against depth, beside the control."""
    import matplotlib.pyplot as plt

    result = result or compare()
    rows = sorted(result["rows"], key=lambda r: r["block"].depth)
    fig, ax = plt.subplots(figsize=(9, 3.4))
    xs = np.arange(len(rows))
    ax.bar(xs - 0.2, [r["separation"] for r in rows], 0.4, color="tab:red", label="text vs no text")
    ax.bar(xs + 0.2, [r["control"] for r in rows], 0.4, color="tab:grey",
           label="control: a grey pair without text in the text group's place (median)")
    ax.set_xticks(xs, [f"{r['block'].short}\nd={r['block'].depth}" for r in rows], fontsize=8)
    ax.set_ylabel("‖mean difference‖ / within spread")
    ax.set_xlabel("SE block, by depth (trunk convolutions from the image)")
    top = max(max(r["separation"], r["control"]) for r in rows)
    ax.set_ylim(0, 1.4 * top)
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    fig.tight_layout()
    return fig


def blocks_markdown() -> str:
    rows = ["| block | part | position | stride | channels C | bottleneck | depth | HardSigmoid slope |",
            "|---|---|---|---|---|---|---|---|"]
    for b in se_blocks():
        rows.append(f"| {b.short} | {b.part} | {b.role} | {b.stride} | {b.channels} | {b.hidden} | {b.depth} | "
                    f"{b.slope:.3f} |")
    return "\n".join(rows)


def results_markdown(result: dict | None = None) -> str:
    result = result or compare()
    rows = ["| block (by depth) | mean gate: text / no text | spread across channels: text / no text | "
            "gates at exactly 0 or 1 | RMS gap of mean gates | separation | permutation p | "
            "control: grey pairs without text, median (max) |",
            "|---|---|---|---|---|---|---|---|"]
    for r in sorted(result["rows"], key=lambda r: r["block"].depth):
        b = r["block"]
        rows.append(f"| {b.short} ({b.part} {b.role}, /{b.stride}, depth {b.depth}) | {r['mean_text']:.3f} / "
                    f"{r['mean_plain']:.3f} | {r['spread_text']:.3f} / {r['spread_plain']:.3f} | "
                    f"{100 * r['saturated']:.0f} % | {r['distance']:.3f} | {r['separation']:.2f} | {r['p']:.3f} | {r['control']:.2f} ({r['control_max']:.2f}) |")
    return "\n".join(rows)


def section() -> None:
    """The SE chapter's part on a production network: the detector, its SE blocks, its text map, the gates
    for photos with and without text, and the SE paper's observation re-tested on them."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    blocks = se_blocks()
    nb = sum(b.part == "backbone" for b in blocks)
    result = compare()
    n_t, n_p = len(result["text"]), len(result["plain"])
    rows = result["rows"]
    perms = rows[0]["permutations"]
    display(Markdown(
        f"**SE in a production network.** {CREDIT} The graph holds {len(blocks)} SE blocks, found by their "
        "structure (global average pool → 1×1 conv → ReLU → 1×1 conv → HardSigmoid → multiply with the "
        f"pooled feature map): {nb} in the PP-LCNetV3 backbone (plain SE: x·s feeds the next convolution) and "
        f"{len(blocks) - nb} in the RSE-FPN neck (residual SE: x + x·s), on lateral 1×1 convolutions and "
        "on output 3×3 convolutions at four strides. *Depth* counts the trunk's convolutions on the longest "
        "path from the image to the block's input. We read each gate by adding its HardSigmoid output to the "
        "graph's outputs and running the graph in onnxruntime, with the photo preprocessed as rapidocr does "
        f"(shorter side up to {LIMIT_SIDE_LEN}, sides multiples of {MULTIPLE}, BGR, (x/255 − 0.5)/0.5).\n\n"
        + blocks_markdown()))
    figure_probability()
    plt.show()
    det = detection_stats(result["text"] + result["plain"] + INCIDENTAL_PHOTOS)
    fmt = lambda ds: ", ".join(f"{d['name']} {100 * d['above']:.1f} %" for d in ds)  # noqa: E731
    display(Markdown(
        f"The detector's map: share of pixels above its threshold {THRESH}. Photos with text: "
        f"{fmt(det[:n_t])}. Without text: {fmt(det[n_t:n_t + n_p])}. Small incidental lettering (left out "
        f"of both groups below): {fmt(det[n_t + n_p:])}. A non-zero share on a photo without text is a false "
        "detection (look at the cat's eyes above)."))
    figure_gates(result)
    plt.show()
    display(Markdown(
        f"Gate vectors of {n_t} photos with text ({', '.join(result['text'])}; red) and {n_p} without "
        f"({', '.join(result['plain'])}; blue). *Separation*: the distance between the two groups' mean gate "
        "vectors divided by the within-group spread (root-mean-square distance of a photo's vector to its "
        f"group's mean). *p*: the share of all {perms} ways to pick {n_t} of the {n_t + n_p} photos as "
        "'text' that separate at least as well (exact permutation test; with two text photos the smallest "
        f"possible p is 1/{perms} = {1 / perms:.3f}). *RMS gap*: the distance of the mean gate vectors divided by "
        "√C. *Gates at exactly 0 or 1*: HardSigmoid clips, so a gate can switch a channel fully off or pass it "
        "unchanged (share over all photos and channels). Both text photos are grey and small, so the network sees them enlarged "
        f"{scale(result['text'])}, the photos without text {scale(result['plain'])}. The *control* puts each "
        f"of the {result['n_control']} pairs of grey photos without text ({', '.join(result['grey_plain'])}) "
        "in the text group's place: where a grey pair separates as well as the text pair, greyness (or "
        "enlargement), not text, can explain the gap.\n\n" + results_markdown(result)))
    figure_separation(result)
    plt.show()
    word, early, late = verdict(result)
    by_depth = sorted(rows, key=lambda r: r["block"].depth)
    sig = [r["block"].short for r in by_depth if r["p"] < 0.05]
    beats = [r["block"].short for r in by_depth if r["separation"] > r["control"]]
    strong = [r["block"].short for r in by_depth if r["separation"] > r["control_max"]]
    const = [r["block"].short for r in by_depth if r["constant"]]
    display(Markdown(
        "**The SE paper's observation on a production network.** Hu et al. found excitation "
        "class-agnostic in early layers and class-specific in late ones. Here the 'classes' are text and no "
        f"text. Mean separation of the {len(rows) // 2} shallowest blocks: {early:.2f}; of the "
        f"{len(rows) - len(rows) // 2} deepest: {late:.2f}; Spearman correlation of separation with depth over "
        f"the {len(rows)} blocks: {result['spearman_depth_separation']:+.2f}. Blocks whose separation has "
        f"p < 0.05: {', '.join(sig) if sig else 'none'}. Blocks where text vs no text separates more than "
        f"the control's median: {', '.join(beats) if beats else 'none'}; more than every grey pair: "
        f"{', '.join(strong) if strong else 'none'}. Blocks whose gate vector is identical on "
        f"every photo (a fixed channel mask, not attention): {', '.join(const) if const else 'none'}. "
        f"Verdict: **{word}**. With {n_t} text photos "
        "this is a small sample: read it as what these photos show, not as a property of the network."))
