"""Values you can move: four interactives that compute in the page, from trained zoo models, without a kernel.

Each front end returns one self-contained HTML+JavaScript output (:class:`InteractiveHTML`): the numbers it
needs are computed here, at call time, from a trained zoo model (:mod:`attnlib.zoo`) on held-out test scenes
(split ``"test"``, the zoo's data seed) and embedded as JSON; plain JavaScript recomputes what the reader
moves (no external script, no module script, no request: it works from ``file://``, in Jupyter, in Colab
and on the static site). The page's behaviour and look are two package files,
``attnlib/assets/attnlib-interactive.js`` and ``.css``, inlined into every output.

=============================  =========================================================================
front end                      what the reader moves, and what the page recomputes
=============================  =========================================================================
:func:`eca_nudge`              one channel's descriptor :math:`y_c`; the gates
                               :math:`\\omega = \\sigma(\\mathrm{C1D}_k(y))` with the model's real kernel
                               (only the k gates around channel c change)
:func:`coord_vs_dycaconv`      the mixing weight :math:`\\pi_0`; the product :math:`g^h g^w` (coordinate
                               attention) beside the convex sum :math:`\\pi_0 g^w + \\pi_1 g^h` (DyCAConv)
:func:`sk_scale`               the target's scale; SK's mean branch weights per stage (precomputed at
                               every scale of the slider) and the scene at that scale
:func:`dynamic_conv_temperature`  the temperature :math:`\\tau`; :math:`\\pi = \\mathrm{softmax}(z / \\tau)`
                               from the model's real logits z, and its entropy
=============================  =========================================================================

Each has a data function (:func:`eca_data`, :func:`coord_data`, :func:`sk_data`, :func:`dynamic_conv_data`)
returning the embedded JSON as a dict, and the page's formulas have Python twins (:func:`eca_gates`,
:func:`plaid`, :func:`convex_sum`, :func:`softmax_temperature`, :func:`entropy`), so tests check the data
against the modules and the page against the data.

Example:
    >>> from attnlib import interactive
    >>> page = interactive.dynamic_conv_temperature()
    >>> page.data["K"], "<script src" in page.html
    (4, False)
"""

from __future__ import annotations

import functools
import html as _html
import json
import uuid
from importlib import resources
from typing import Any, Sequence

import numpy as np
import torch

from . import plotting
from .htmlout import HTMLOutput, png_data_url

__all__ = [
    "InteractiveHTML", "convex_sum", "coord_data", "coord_vs_dycaconv", "dynamic_conv_data",
    "dynamic_conv_temperature", "eca_data", "eca_gates", "eca_nudge", "entropy", "plaid", "sk_data", "sk_scale",
    "softmax_temperature",
]

ASSET_FILES = ("attnlib-interactive.js", "attnlib-interactive.css")
#: significant digits of every number embedded in a page (float32 carries about 7)
DIGITS = 7
#: SK's default scales of the target (1.0: a longest side of 24 px); training drew 1.0 to 1.6
SK_SCALES = tuple(float(s) for s in np.round(np.geomspace(0.5, 2.0, 9), 4))


class InteractiveHTML(HTMLOutput):
    """A self-contained HTML output; Jupyter, Colab and myst-nb display it through ``_repr_html_``.

    Attributes:
        html: one ``<div>`` holding a ``<style>``, the data as JSON and a ``<script>``.
        element_id: the id of the root ``<div>``; every other element is found inside it.
        data: the embedded data (a dict, as returned by the front end's data function).
    """

    def __init__(self, html: str, element_id: str, data: dict, *, fresh_ids: bool = True):
        super().__init__(html, element_id, prefix="attnlib-interactive", fresh_ids=fresh_ids)
        self.data = data

    def __repr__(self) -> str:
        return f"InteractiveHTML({self.data.get('kind')!r}, id={self.element_id!r}, {len(self.html)} characters)"


# ----------------------------------------------------------------------------- the page's formulas


def eca_gates(weight: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """ECA's gates from a descriptor, as the page computes them: ``ω_c = σ(Σ_j w_j y_{c+j-p})``,
    ``p = (k - 1) / 2``, zero padding (a 1-D cross-correlation, as ``nn.Conv1d``)."""
    w = np.asarray(weight, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    k = len(w)
    if k % 2 == 0:
        raise ValueError(f"eca_gates: the kernel must have an odd length, got {k}")
    p = (k - 1) // 2
    padded = np.concatenate([np.zeros(p), y, np.zeros(p)])
    s = np.array([padded[c:c + k] @ w for c in range(len(y))])
    return 1.0 / (1.0 + np.exp(-s))


def plaid(g_h: Sequence[float], g_w: Sequence[float]) -> np.ndarray:
    """Coordinate attention's gate of one channel: the outer product ``g^h g^w`` (H, W), rank one."""
    return np.outer(np.asarray(g_h, np.float64), np.asarray(g_w, np.float64))


def convex_sum(g_h: Sequence[float], g_w: Sequence[float], pi0: float) -> np.ndarray:
    """DyCAConv's gate of one channel: ``π0 g^w_j + π1 g^h_i`` with ``π1 = 1 - π0`` (H, W)."""
    g_h = np.asarray(g_h, np.float64)
    g_w = np.asarray(g_w, np.float64)
    return pi0 * g_w[None, :] + (1.0 - pi0) * g_h[:, None]


def softmax_temperature(z: Sequence[float], tau: float) -> np.ndarray:
    """``softmax(z / τ)``, the largest logit subtracted first (as the block and the page do)."""
    z = np.asarray(z, np.float64)
    e = np.exp((z - z.max()) / tau)
    return e / e.sum()


def entropy(p: Sequence[float]) -> float:
    """Entropy in nats, ``-Σ p log p`` (0 log 0 = 0)."""
    p = np.asarray(p, np.float64)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


# --------------------------------------------------------------------------------------- helpers


def _num(v) -> float:
    return float(f"{float(v):.{DIGITS}g}")


def _nums(a) -> Any:
    """A tensor or array as nested lists of rounded floats."""
    a = np.asarray(a.detach().cpu().double() if isinstance(a, torch.Tensor) else a, np.float64)
    if a.ndim == 0:
        return _num(a)
    return [_nums(x) for x in a] if a.ndim > 1 else [_num(x) for x in a]


def _style() -> dict:
    from . import plotting

    return {"bar": plotting.BAR_COLOUR, "highlight": list(plotting.HIGHLIGHT_COLOURS)}


def _check_stage(model, stage: int, name: str) -> str:
    """The module name of the block at ``stage`` of zoo ``model``."""
    blocks = model.block_modules()
    for n in blocks:
        if n.split(".")[:2] == ["stages", str(stage)]:
            return n
    stages = sorted({int(n.split(".")[1]) for n in blocks})
    raise ValueError(f"{name}: stage must be one of {stages} (the stages that carry the block), got {stage!r}")


def _check_index(index, name: str) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"{name}: scene must be a non-negative int (a test scene's index), got {index!r}")
    return int(index)


def _scene(index: int, **overrides):
    from .zoo import scenes, train

    return scenes.render_scene("test", index, train.DATA_SEED, **overrides)


def _scene_info(scene, index: int) -> dict:
    from .zoo import CLASSES

    return {"split": "test", "index": index, "label": int(scene.label), "class": CLASSES[scene.label],
            "scale": _num(scene.scale), "garment": int(scene.garment), "png": png_data_url(scene.image)}


@torch.no_grad()
def _run(model, images: np.ndarray, module_names: Sequence[str]):
    """Run ``model`` on ``images``; return the captured maps, the input of each named block and the logits."""
    import attnlib

    from .zoo import scenes

    inputs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, a, o, n=n: inputs.__setitem__(n, a[0].detach()))
               for n in module_names]
    try:
        with attnlib.capture(model) as maps:
            logits = model(scenes.normalise(images))
    finally:
        for h in handles:
            h.remove()
    return maps, inputs, logits


# ------------------------------------------------------------------------------------------ data


@torch.no_grad()
def eca_data(stage: int = 3, scene: int = 0, *, channel: int | None = None) -> dict:
    """The ECA interactive's data: the trained zoo ``eca`` model's 1-D kernel at ``stage`` and the
    descriptor ``y = GAP(x)`` of its input on held-out test scene ``scene``, with the gates the module
    computed (``gate``). ``channel``: the channel selected first (default: the one with the largest |y|)."""
    from .zoo import load_model

    model = load_model("eca")
    name = _check_stage(model, stage, "eca_data")
    index = _check_index(scene, "eca_data")
    s = _scene(index)
    maps, inputs, logits = _run(model, s.image[None], [name])
    block = dict(model.named_modules())[name]
    y = inputs[name].mean(dim=(2, 3))[0]                          # squeeze, eq. eca-squeeze: (C,)
    gate = maps[name]["gate"].flatten()                           # ω: (C,)
    weight = block.conv.weight.flatten()                          # the k weights
    C, k = len(y), block.kernel_size
    if channel is None:
        channel = int(y.abs().argmax())
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < C:
        raise ValueError(f"eca_data: channel must be an int in [0, {C - 1}], got {channel!r}")
    ymax = float(y.abs().max())
    return {"kind": "eca", "model": "eca", "stage": stage, "module": name, "C": C, "k": k,
            "H": int(inputs[name].shape[2]), "weight": _nums(weight), "y": _nums(y), "gate": _nums(gate),
            "channel": int(channel), "nudge_range": _num(2.5 * ymax), "scene": _scene_info(s, index),
            "predicted": int(logits.argmax()), "style": _style()}


@torch.no_grad()
def coord_data(stage: int = 1, scene: int = 0, *, channel: int | None = None, include_gates: bool = False) -> dict:
    """The coordinate-attention / DyCAConv interactive's data: the row gate ``g^h`` (C, H) and column
    gate ``g^w`` (C, W) of the trained zoo ``coord`` and ``dycaconv`` models at ``stage`` on held-out test
    scene ``scene``, and DyCAConv's own π (``pi``: its weights of g^w and g^h); with ``include_gates``,
    also each model's captured ``gate`` (C, H, W), which the page recomputes and does not embed.
    ``channel``: the channel shown first (default: the coord model's channel whose gate varies most)."""
    from .zoo import load_model

    index = _check_index(scene, "coord_data")
    s = _scene(index)
    sources = []
    for model_name in ("coord", "dycaconv"):
        model = load_model(model_name)
        name = _check_stage(model, stage, "coord_data")
        maps, _inputs, logits = _run(model, s.image[None], [])
        m = maps[name]
        entry = {"model": model_name, "module": name, "g_h": _nums(m["g_h"][0, :, :, 0]),
                 "g_w": _nums(m["g_w"][0, :, 0, :]), "predicted": int(logits.argmax())}
        if include_gates:
            entry["gate"] = _nums(m["gate"][0])
        entry["pi"] = _nums(m["pi"][0]) if "pi" in m else None
        sources.append(entry)
    C, H = np.asarray(sources[0]["g_h"]).shape
    W = len(sources[0]["g_w"][0])
    if channel is None:
        g = np.einsum("ch,cw->chw", np.asarray(sources[0]["g_h"]), np.asarray(sources[0]["g_w"]))  # g^h g^w
        channel = int(g.reshape(C, -1).std(1).argmax())
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < C:
        raise ValueError(f"coord_data: channel must be an int in [0, {C - 1}], got {channel!r}")
    return {"kind": "coord", "stage": stage, "C": C, "H": H, "W": W, "channel": int(channel),
            "sources": sources, "scene": _scene_info(s, index), "cmap": plotting.colormap_hex(), "style": _style()}


@torch.no_grad()
def sk_data(scales: Sequence[float] = SK_SCALES, n: int = 12, scene: int = 0) -> dict:
    """The SK interactive's data: the trained zoo ``sk`` model's branch weights on the same ``n`` held-out
    test scenes (``0 .. n-1``) rendered with the target at each of ``scales``; per stage and scale, the
    mean over scenes and channels of each branch's weight (the M means sum to 1), and the image of scene
    ``scene`` (among the n) at every scale."""
    from .zoo import load_model, scenes

    scales = [float(v) for v in scales]
    lo, hi = scenes.SCALE_LIMITS
    if len(scales) < 2 or any(not lo <= v <= hi for v in scales) or scales != sorted(set(scales)):
        raise ValueError(f"sk_data: scales must be at least two increasing numbers in [{lo}, {hi}], got {scales}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 500:
        raise ValueError(f"sk_data: n must be an int in [1, 500], got {n!r}")
    index = _check_index(scene, "sk_data")
    if index >= n:
        raise ValueError(f"sk_data: scene must be one of the n={n} scenes (0 .. {n - 1}), got {index}")
    model = load_model("sk")
    names = list(model.block_modules())
    blocks = dict(model.named_modules())
    weights: dict[str, list] = {name: [] for name in names}
    pngs = []
    for v in scales:
        imgs = [_scene(i, scale=v) for i in range(n)]
        maps, _inputs, _logits = _run(model, np.stack([s.image for s in imgs]), [])
        for name in names:
            a = maps[name]["attention"].flatten(2)                # (n, M, C)
            weights[name].append(_nums(a.mean(dim=(0, 2))))       # mean over scenes and channels: (M,)
        pngs.append(png_data_url(imgs[index].image))
    stages = []
    for name in names:
        b = blocks[name]
        stages.append({"module": name, "stage": int(name.split(".")[1]), "C": b.out_channels,
                       "weights": weights[name]})
    return {"kind": "sk", "model": "sk", "scales": [_num(v) for v in scales], "base_px": scenes.BASE,
            "train_range": list(scenes.SCALE_RANGE), "kernels": blocks[names[0]].kernel_sizes, "n": int(n), "indices": list(range(n)), "scene_index": index, "pngs": pngs,
            "stages": stages, "style": _style()}


@torch.no_grad()
def dynamic_conv_data(classes: Sequence[int] | None = None, *, max_scenes: int = 200) -> dict:
    """The dynamic-convolution interactive's data: the trained zoo ``dynamic_conv`` model's attention
    logits ``z`` (K per stage, the trained softmax's input) and the captured π on the first held-out test
    scene of each class in ``classes`` (default: every class), searching test scenes ``0 .. max_scenes-1``."""
    from .zoo import CLASSES, load_model

    classes = list(range(len(CLASSES))) if classes is None else [int(c) for c in classes]
    if not classes or any(not 0 <= c < len(CLASSES) for c in classes):
        raise ValueError(f"dynamic_conv_data: classes must be indices into the {len(CLASSES)} classes, got {classes}")
    model = load_model("dynamic_conv")
    names = list(model.block_modules())
    blocks = dict(model.named_modules())
    taus = {float(blocks[n].temperature) for n in names}
    found: dict[int, tuple[int, Any]] = {}
    for i in range(max_scenes):
        s = _scene(i)
        if s.label in classes and s.label not in found:
            found[s.label] = (i, s)
            if len(found) == len(classes):
                break
    missing = [CLASSES[c] for c in classes if c not in found]
    if missing:
        raise ValueError(f"dynamic_conv_data: no test scene of {missing} among the first {max_scenes}")
    chosen = [found[c] for c in classes]
    maps, inputs, logits = _run(model, np.stack([s.image for _, s in chosen]), names)
    out_scenes = []
    for j, (i, s) in enumerate(chosen):
        z, pi = [], []
        for name in names:
            b = blocks[name]
            zz = b.fc2(torch.relu(b.fc1(inputs[name][j:j + 1].mean(dim=(2, 3)))))[0]  # eq. dyconv-attention: (K,)
            z.append(_nums(zz))
            pi.append(_nums(maps[name]["attention"][j]))
        out_scenes.append({**_scene_info(s, i), "z": z, "pi": pi, "predicted": int(logits[j].argmax())})
    return {"kind": "dyconv", "model": "dynamic_conv", "K": blocks[names[0]].num_kernels,
            "stages": [int(n.split(".")[1]) for n in names], "modules": names,
            "tau_trained": _num(taus.pop()) if len(taus) == 1 else None, "log10_tau_range": [-1.5, 2.0],
            "scenes": out_scenes, "style": _style()}


# ------------------------------------------------------------------------------------------ pages


@functools.lru_cache(maxsize=None)
def _asset_text(name: str) -> str:
    return resources.files("attnlib").joinpath("assets", name).read_text(encoding="utf-8")


def _json_for_script(data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _page(data: dict, title: str, try_this: str, element_id: str | None) -> InteractiveHTML:
    rid = element_id or f"attnlib-interactive-{uuid.uuid4().hex}"
    if not all(ch.isalnum() or ch in "-_" for ch in rid):
        raise ValueError(f"element_id must contain only letters, digits, '-' and '_', got {rid!r}")
    css = _asset_text(ASSET_FILES[1])
    js = _asset_text(ASSET_FILES[0])
    esc = _html.escape
    html = (
        f'<div class="attnlib-interactive" id="{rid}" data-kind="{esc(data["kind"])}" role="region" '
        f'aria-label="{esc(title)}"><style>{css}</style>'
        f'<div class="ati-title">{esc(title)}</div>'
        f'<div class="ati-try"><b>Try this:</b> {esc(try_this)}</div>'
        '<div class="ati-body" data-role="body"><div class="ati-muted" data-role="nojs">This interactive runs '
        'in JavaScript; it has not started (in Jupyter: trust the notebook, File \u2192 Trust).</div></div>'
        f'<script type="application/json">{_json_for_script(data)}</script>'
        f'<script>(function () {{\n{js}\nattnlibInteractive(document.getElementById("{rid}"));\n}})();</script>'
        "</div>"
    )
    return InteractiveHTML(html, rid, data, fresh_ids=element_id is None)


def eca_nudge(stage: int = 3, scene: int = 0, *, channel: int | None = None,
              element_id: str | None = None) -> InteractiveHTML:
    """ECA: nudge one channel's descriptor and watch the band of k gates around it respond.

    The page holds the trained zoo ``eca`` model's kernel at ``stage`` (default 3: C = 128, k = 5) and the
    descriptor of held-out test scene ``scene`` (:func:`eca_data`); it recomputes every gate with
    :func:`eca_gates` as the reader moves the slider, and lists the channels whose gate changed.
    """
    data = eca_data(stage, scene, channel=channel)
    p = data["k"] // 2
    return _page(data, f"ECA: nudge one descriptor, watch k = {data['k']} gates move (stage {stage}, "
                 f"C = {data['C']}, trained zoo model, test scene {scene})",
                 f"drag the nudge slider, then pick another channel (click a bar): only the gates of channels "
                 f"c \u2212 {p} \u2026 c + {p} move, and a positive kernel weight pushes its gate the same way "
                 "as the nudge.", element_id)


def coord_vs_dycaconv(stage: int = 1, scene: int = 0, *, channel: int | None = None,
                      element_id: str | None = None) -> InteractiveHTML:
    """Coordinate attention's product ``g^h g^w`` against DyCAConv's convex sum ``π0 g^w + π1 g^h``.

    The page holds ``g^h`` and ``g^w`` of the trained zoo ``coord`` and ``dycaconv`` models at ``stage``
    (default 1: 16 x 16) on held-out test scene ``scene`` (:func:`coord_data`); the reader picks whose gates,
    the channel and π0, and the page redraws both 2-D gates in the book's colormap.
    """
    data = coord_data(stage, scene, channel=channel)
    return _page(data, f"Coordinate attention (g\u02b0\u00b7g\u02b7) against DyCAConv (\u03c0\u2080g\u02b7 + "
                 f"\u03c0\u2081g\u02b0): stage {stage}, {data['H']} \u00d7 {data['W']}, trained zoo models, "
                 f"test scene {scene}",
                 "move \u03c0\u2080 from 0 to 1: the sum slides from horizontal stripes (g\u02b0 only) to "
                 "vertical ones (g\u02b7 only) and is never the product's plaid, whose bright cells need a "
                 "bright row and a bright column at once.", element_id)


def sk_scale(scales: Sequence[float] = SK_SCALES, n: int = 12, scene: int = 0, *,
             element_id: str | None = None) -> InteractiveHTML:
    """SK: drag the target's scale and watch the mean branch weights of the trained zoo ``sk`` model.

    The weights are precomputed (:func:`sk_data`) on the same ``n`` held-out test scenes at every scale of
    the slider; the page shows them per stage with the scene ``scene`` at that scale.
    """
    data = sk_data(scales, n, scene)
    return _page(data, f"SK: the object's scale against the branch weights (trained zoo model, mean over "
                 f"{n} test scenes and all channels)",
                 "drag the scale from small to large: the paper expects more weight on the larger kernel "
                 "for larger objects; read whether each stage's line rises, and how far the scales outside "
                 "the training range (shaded) behave.", element_id)


def dynamic_conv_temperature(classes: Sequence[int] | None = None, *,
                             element_id: str | None = None) -> InteractiveHTML:
    """Dynamic convolution: a temperature slider sharpening π = softmax(z / τ).

    The page holds the trained zoo ``dynamic_conv`` model's attention logits z on one held-out test scene
    per class (:func:`dynamic_conv_data`) and recomputes π and its entropy at the reader's τ.
    """
    data = dynamic_conv_data(classes)
    return _page(data, f"Dynamic convolution: temperature \u03c4 against the kernel attention \u03c0 (K = "
                 f"{data['K']}, trained zoo model, one test scene per class)",
                 "slide \u03c4 up to 100 (\u03c0 flattens to 1/K, entropy to ln K, as in the paper's first "
                 "epochs) and down to 0.03 (\u03c0 becomes one-hot); then change the scene: does the argmax "
                 "kernel depend on the class?", element_id)
