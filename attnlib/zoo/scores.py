"""Scores of zoo models on test scenes: localisation of spatial maps, Grad-CAM reference, class selectivity.

Localisation (for blocks with a spatial map): the map is upsampled bilinearly to the scene's size and
clamped at 0; the score of one scene is the share of the map's mass inside the target's box divided by
the box's share of the image, so a uniform map scores exactly 1.0 (chance) and a map entirely inside the
box scores ``1 / box share``. The score of a model is the mean over test scenes, with a percentile
bootstrap 95 % interval (2,000 resamples, fixed seed). References on the same scenes: a uniform map and
Grad-CAM on the baseline model at the same stage.

Class selectivity (for blocks with a channel or kernel gate): for each stage, the mean gate vector per
class :math:`\\bar g_c` and their mean over classes :math:`\\bar g`; selectivity is
:math:`\\frac{1}{K D}\\sum_c \\lVert \\bar g_c - \\bar g \\rVert_1`, the mean absolute departure of a
class's mean gate from the mean over classes (in gate units; 0 means class-blind gates).

Which captured tensor is a block's map is written down in :data:`SPATIAL` and :data:`GATES`; blocks not
listed fall back to a rule (tensors with a spatial extent are maps, averaged over their channel axis;
tensors without one are gates). Non-local maps are read for the object's centre as the query.
"""

from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F

import attnlib

from . import scenes
from .model import ZooNet


#: block -> {captured name: how to turn it into a (B, h, w) map}; "mean" averages the channel axis
#: ("query": the map of each scene's own object centre; "select": K maps, one chosen on validation scenes)
SPATIAL: dict[str, dict[str, str]] = {
    "cbam": {"spatial": "mean"},
    "cbam_spatial": {"gate": "mean"},
    "sse": {"gate": "mean"},
    "scse": {"spatial": "mean"},
    "nonlocal": {"attention": "query"},
    "gc": {"context_mask": "mean"},
    "coord": {"gate": "mean"},        # g_h ⊗ g_w, averaged over channels
    "dycaconv": {"gate": "mean"},     # π0 g_w + π1 g_h, averaged over channels
    "encoding": {"assignments": "select"},
}
#: block -> names of the captured channel / kernel gates used for class selectivity
GATES: dict[str, tuple[str, ...]] = {
    "sk": ("attention",),
    "lvc": ("gamma",),
    "evc": ("gamma",),
    "dycaconv": ("pi",),
    "coord": (),
    "gc": (),
    "nonlocal": (),
    "sse": (),
    "cbam_spatial": (),
    "encoding": (),
    "se": ("gate",),
    "eca": ("gate",),
    "cbam_channel": ("gate",),
    "cbam": ("channel",),
    "cse": ("gate",),
    "scse": ("channel",),
    "dynamic_conv": ("attention",),
    "dka": ("attention",),
}
#: the stage (0-based) whose map gives a block's headline localisation score, fixed before any test:
#: the finest map that carries a block (16x16)
HEADLINE_STAGE = 1


def _stage_of(module_name: str) -> int:
    # "stages.2.attn" / "stages.2.conv" -> 2; "encoding" -> last stage
    parts = module_name.split(".")
    return int(parts[1]) if parts[0] == "stages" else -1


def _is_spatial(t: torch.Tensor) -> bool:
    # (B, c, h, w) with h, w > 1
    return t.ndim == 4 and t.shape[-1] > 1 and t.shape[-2] > 1


def spatial_from_capture(block: str, captured: dict[str, torch.Tensor], query_index=None) -> torch.Tensor | None:
    """The (B, h, w) map of one block call from its captured tensors, or ``None`` if it has none."""
    rule = SPATIAL.get(block)
    if rule is None:
        for name, t in captured.items():
            if _is_spatial(t):
                return t.float().mean(1)
        return None
    for key, how in rule.items():
        if how == "mean":
            return captured[key].float().mean(1)
        if how == "select":
            return captured[key].float()  # (B, K, h, w): the caller picks one of the K maps
        if how == "query":
            a = captured[key].float()  # (B, Q, h, w): query q of scene b is scene q's object centre
            if query_index is None:
                return a[:, 0]
            return a[torch.arange(a.shape[0]), query_index]
    return None


def gates_from_capture(block: str, captured: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The (B, D) channel or kernel gate of one block call, or ``None``."""
    names = GATES.get(block)
    if names is None:
        names = tuple(n for n, t in captured.items() if not _is_spatial(t) and t.ndim >= 2)
    for n in names:
        if n in captured:
            return captured[n].float().reshape(captured[n].shape[0], -1)
    return None


def box_centres(boxes: np.ndarray) -> list[tuple[float, float]]:
    """(row, col) fractions of each box's centre, as capture queries."""
    b = np.asarray(boxes, np.float64)
    return [(float((y0 + y1) / 2 / scenes.SIZE), float((x0 + x1) / 2 / scenes.SIZE)) for x0, y0, x1, y1 in b]


@torch.no_grad()
def attention_maps(model: ZooNet, data: scenes.SceneSet | np.ndarray | torch.Tensor, *, boxes=None,
                   batch_size: int = 100) -> dict[str, dict[int, torch.Tensor]]:
    """Maps and gates of every block of ``model`` on ``data``.

    Args:
        model: a zoo model.
        data: a :class:`~attnlib.zoo.scenes.SceneSet`, uint8 images (n, H, W, 3), or normalised
            images (n, 3, H, W).
        boxes: target boxes (n, 4) for query-dependent maps (Non-local: the box centre is the query);
            default: those of ``data`` if it is a SceneSet, else the image centre.

    Returns:
        ``{"spatial": {stage: (n, h, w)}, "gates": {stage: (n, D)}}``; stages are 0-based.
    """
    if isinstance(data, scenes.SceneSet):
        imgs = data.images
        boxes = data.boxes if boxes is None else boxes
    else:
        imgs = data
    n = len(imgs)
    device = next(model.parameters()).device
    out: dict[str, dict[int, list]] = {"spatial": {}, "gates": {}}
    block = model.block
    for i in range(0, n, batch_size):
        chunk = imgs[i:i + batch_size]
        x = scenes.normalise(chunk, device) if (isinstance(chunk, np.ndarray) and chunk.dtype == np.uint8) \
            else torch.as_tensor(chunk, device=device)
        queries = box_centres(boxes[i:i + batch_size]) if boxes is not None else None
        with attnlib.capture(model, queries=queries) as maps:
            model(x)
        qi = torch.arange(x.shape[0]) if queries is not None else None
        for name in model.block_modules():
            cap = maps.get(name, {})
            stage = _stage_of(name)
            if stage < 0:
                stage = len(model.widths) - 1
            s = spatial_from_capture(block, cap, qi)
            if s is not None:
                out["spatial"].setdefault(stage, []).append(s.cpu())
            g = gates_from_capture(block, cap)
            if g is not None:
                out["gates"].setdefault(stage, []).append(g.cpu())
    return {k: {s: torch.cat(v) for s, v in d.items()} for k, d in out.items()}


def localisation(maps: torch.Tensor, boxes: np.ndarray, size: int = scenes.SIZE) -> torch.Tensor:
    """Per-scene localisation score (n,): (mass inside the box / total mass) / (box area / image area)."""
    m = maps.float()
    if m.ndim == 3:
        m = m[:, None]
    m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)[:, 0].clamp_min(0)
    inside = scenes.box_mask(boxes, size).to(m.device)
    total = m.sum(dim=(1, 2)).clamp_min(1e-12)
    share = (m * inside).sum(dim=(1, 2)) / total
    area = inside.float().mean(dim=(1, 2))
    return (share / area).cpu()


def bootstrap_ci(values, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``."""
    v = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def summary(values) -> dict:
    """Mean and bootstrap 95 % interval of ``values``, rounded for a card."""
    values = np.asarray(values, np.float64)
    lo, hi = bootstrap_ci(values)
    return {"mean": round(float(np.mean(values)), 4), "ci95": [round(lo, 4), round(hi, 4)]}


def grad_cam(model: ZooNet, data: scenes.SceneSet, stage: int, batch_size: int = 100) -> torch.Tensor:
    """Grad-CAM (n, h, w) at the output of ``stage`` for the true class of each scene:
    ReLU(Σ_k α_k A_k) with α_k the spatial mean of ∂ logit_y / ∂ A_k."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(data), batch_size):
        x, y = data.tensors(slice(i, i + batch_size), device=device)
        feats = {}
        h = model.stages[stage].register_forward_hook(lambda m, a, o: feats.__setitem__("a", o))
        try:
            logits = model(x)
        finally:
            h.remove()
        a = feats["a"]
        grads, = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), a)
        alpha = grads.mean(dim=(2, 3), keepdim=True)
        out.append(torch.relu((alpha * a).sum(1)).detach().cpu())
    return torch.cat(out)


def selectivity(gates: torch.Tensor, labels: np.ndarray, num_classes: int) -> float:
    """Mean absolute departure of the per-class mean gate from the mean over classes."""
    g = gates.float()
    lab = torch.as_tensor(np.asarray(labels))
    per_class = torch.stack([g[lab == c].mean(0) for c in range(num_classes) if (lab == c).any()])
    return float((per_class - per_class.mean(0)).abs().mean())


def selectivity_from_means(per_class: torch.Tensor) -> float:
    """Selectivity from the per-class mean gates (num_classes, D)."""
    return float((per_class - per_class.mean(0)).abs().mean())


def class_means(gates: torch.Tensor, labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """The mean gate per class, (num_classes, D)."""
    lab = torch.as_tensor(np.asarray(labels))
    return torch.stack([gates[lab == c].float().mean(0) for c in range(num_classes)])


def select_map(maps: torch.Tensor, boxes: np.ndarray) -> int:
    """For K candidate maps (n, K, h, w), the index k whose map localises best on these scenes (call it on
    validation scenes only)."""
    return int(torch.stack([localisation(maps[:, k], boxes).mean() for k in range(maps.shape[1])]).argmax())


def model_scores(model: ZooNet, data: scenes.SceneSet, references: dict | None = None,
                 val: scenes.SceneSet | None = None) -> dict:
    """Every score of ``model`` on ``data``: localisation per stage (with bootstrap intervals) next to
    the uniform map and, when ``references`` (``baseline_scores(baseline, data)["grad_cam"]``) is given,
    Grad-CAM of the baseline; selectivity per stage. Blocks with K candidate maps (Encoding's codeword
    assignments) use the codeword that localises best on ``val``."""
    maps = attention_maps(model, data)
    result: dict = {}
    if maps["spatial"]:
        loc = {}
        val_maps = None
        for stage, m in sorted(maps["spatial"].items()):
            chosen = None
            if m.ndim == 4:
                if val is None:
                    raise ValueError(f"{model.block}: choosing one of its {m.shape[1]} maps needs validation scenes")
                val_maps = val_maps or attention_maps(model, val)
                chosen = select_map(val_maps["spatial"][stage], val.boxes)
                m = m[:, chosen]
            entry = {"block": summary(localisation(m, data.boxes)), "map_size": list(m.shape[1:])}
            if chosen is not None:
                entry["map_chosen_on_validation"] = chosen
            if references is not None and str(stage) in references:
                entry["grad_cam_baseline"] = references[str(stage)]
            entry["uniform"] = 1.0
            loc[str(stage)] = entry
        result["localisation"] = loc
        # the headline: HEADLINE_STAGE, or the finest stage the block has a map at (fixed rule, not tuned)
        head = str(HEADLINE_STAGE) if str(HEADLINE_STAGE) in loc else min(loc, key=int)
        result["localisation_headline"] = {"stage": int(head), **loc[head]["block"]}
    if maps["gates"]:
        result["selectivity"] = {str(s): round(selectivity(g, data.labels, model.num_classes), 5)
                                 for s, g in sorted(maps["gates"].items())}
    return result


def baseline_scores(model: ZooNet, data: scenes.SceneSet) -> dict:
    """The references of the baseline: Grad-CAM localisation at each stage that carries blocks."""
    from .model import BLOCK_STAGES

    return {"grad_cam": {str(s): summary(localisation(grad_cam(model, data, s), data.boxes))
                         for s in BLOCK_STAGES}}


# ---------------------------------------------------------------- analyses reproduced from the papers

@torch.no_grad()
def sk_scale_shift(model: ZooNet, scales=(1.0, 1.5, 2.0), n: int = 300, split: str = "test",
                   seed: int = 0) -> dict[int, list[float]]:
    """SKNet's observation: as objects grow, attention shifts to the branch with the larger kernel.

    Renders the same ``n`` scenes (same objects, backgrounds, positions drawn) at each forced scale and
    returns ``{stage: [mean attention on the last (largest) branch at each scale]}``."""
    out: dict[int, list[float]] = {}
    for s in scales:
        data = scenes.make_scenes(split, n, seed, scale=float(s))
        gates = _captured(model, data.images, "attention")
        for stage, a in gates.items():  # (n, M, C, 1, 1)
            out.setdefault(stage, []).append(float(a[:, -1].mean()))
    return out


@torch.no_grad()
def _captured(model: ZooNet, imgs, key: str, queries=None, batch_size: int = 100) -> dict[int, torch.Tensor]:
    device = next(model.parameters()).device
    got: dict[int, list] = {}
    for i in range(0, len(imgs), batch_size):
        x = scenes.normalise(imgs[i:i + batch_size], device)
        with attnlib.capture(model, queries=queries) as maps:
            model(x)
        for name in model.block_modules():
            stage = _stage_of(name) if _stage_of(name) >= 0 else len(model.widths) - 1
            got.setdefault(stage, []).append(maps[name][key].float().cpu())
    return {k: torch.cat(v) for k, v in got.items()}


@torch.no_grad()
def query_map_distance(model: ZooNet, imgs, queries=None) -> dict[int, dict[str, float]]:
    """GCNet's observation on Non-local blocks: the attention maps of different query positions are
    nearly the same. For each stage, the mean cosine distance ``1 - cos(a_p, a_q)`` over pairs of query
    maps of the same image (0: identical maps), next to the mean cosine distance between the maps of one
    query on different images (the scale of a real difference)."""
    if queries is None:
        queries = [(r, c) for r in (0.2, 0.5, 0.8) for c in (0.2, 0.5, 0.8)]
    maps = _captured(model, imgs, "attention", queries=queries)
    out = {}
    for stage, a in maps.items():  # (n, Q, h, w)
        v = F.normalize(a.flatten(2), dim=2)                 # (n, Q, N)
        cos = v @ v.transpose(1, 2)                           # (n, Q, Q)
        q = cos.shape[1]
        off = ~torch.eye(q, dtype=torch.bool)
        within = float((1 - cos[:, off]).mean())
        w = v[:, 0]                                           # query 0 on every image
        cross = w @ w.T
        offn = ~torch.eye(len(w), dtype=torch.bool)
        out[stage] = {"between_queries": within, "between_images": float((1 - cross[offn]).mean())}
    return out


@torch.no_grad()
def class_excitation(model: ZooNet, data: scenes.SceneSet, key: str = "gate") -> dict[int, torch.Tensor]:
    """SE's per-class excitation: ``{stage: (num_classes, C)}`` mean gate per class on ``data``."""
    gates = _captured(model, data.images, key)
    return {stage: class_means(g.flatten(1), data.labels, model.num_classes) for stage, g in gates.items()}


def headline_maps(name: str, data: scenes.SceneSet, directory=None) -> torch.Tensor:
    """The maps (n, h, w) that the card of zoo model ``name`` scores (its headline stage; for Encoding
    the codeword chosen on validation scenes), on ``data``; for a chapter's 'Attention on real images'.
    The baseline gives its Grad-CAM at :data:`HEADLINE_STAGE`."""
    from . import checkpoint

    model = checkpoint.load_model(name, directory)
    if model.block is None:
        return grad_cam(model, data, HEADLINE_STAGE)
    card = checkpoint.read_card(name, directory)
    head = card.get("scores", {}).get("localisation_headline")
    if head is None:
        raise ValueError(f"zoo model {name!r} has no spatial map (its card has no localisation score)")
    stage = head["stage"]
    m = attention_maps(model, data)["spatial"][stage]
    if m.ndim == 4:
        m = m[:, card["scores"]["localisation"][str(stage)]["map_chosen_on_validation"]]
    return m
