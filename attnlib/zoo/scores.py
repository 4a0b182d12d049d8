"""Scores of zoo models on held-out test scenes: localisation of maps, Grad-CAM references, class selectivity.

Localisation (:mod:`attnlib.zoo.metrics`): AUROC of the map against the target's pixel mask, the
pointing game and a deletion test, for every stage that carries a block and has a map, with bootstrap
95 % intervals over scenes. Every model, the baseline included, is also scored with its own Grad-CAM at
the stages that carry blocks, so a block whose gate has no spatial extent (SE, ECA, cSE, SK, dynamic
convolution, DKA, LVC/EVC's channel gates) still has a map of what its model looks at; such blocks
report no map of their own. References on the same scenes: a centre prior (:func:`metrics.centre_prior`).

Class selectivity (for blocks with a channel or kernel gate): for each stage, the mean gate vector per
class :math:`\\bar g_c` and their mean over classes :math:`\\bar g`; selectivity is
:math:`\\frac{1}{K D}\\sum_c \\lVert \\bar g_c - \\bar g \\rVert_1`, the mean absolute departure of a
class's mean gate from the mean over classes (in gate units; 0 means class-blind gates).

Which captured tensor is a block's map is written down in :data:`SPATIAL` and :data:`GATES`; blocks not
listed fall back to a rule (tensors with a spatial extent are maps, averaged over their channel axis;
tensors without one are gates). Non-local maps are read for the target's centre as the query.
"""

from __future__ import annotations


import numpy as np
import torch

import attnlib

from . import metrics, scenes
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


def mask_points(masks: np.ndarray) -> list[tuple[float, float]]:
    """(row, col) fractions of the target pixel nearest to each mask's centroid, as capture queries:
    a point on the garment itself (a box's centre can fall between a sandal's straps)."""
    out = []
    for m in np.asarray(masks, bool):
        ys, xs = np.nonzero(m)
        i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
        out.append((float((ys[i] + 0.5) / m.shape[0]), float((xs[i] + 0.5) / m.shape[1])))
    return out


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
            default for a SceneSet: the target pixel nearest its mask's centroid; else the image centre.

    Returns:
        ``{"spatial": {stage: (n, h, w)}, "gates": {stage: (n, D)}}``; stages are 0-based.
    """
    if isinstance(data, scenes.SceneSet):
        imgs = data.images
        points = mask_points(data.masks) if boxes is None else box_centres(boxes)
    else:
        imgs = data
        points = box_centres(boxes) if boxes is not None else None
    n = len(imgs)
    device = next(model.parameters()).device
    out: dict[str, dict[int, list]] = {"spatial": {}, "gates": {}}
    block = model.block
    for i in range(0, n, batch_size):
        chunk = imgs[i:i + batch_size]
        x = scenes.normalise(chunk, device) if (isinstance(chunk, np.ndarray) and chunk.dtype == np.uint8) \
            else torch.as_tensor(chunk, device=device)
        queries = points[i:i + batch_size] if points is not None else None
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


def class_means(gates: torch.Tensor, labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """The mean gate per class, (num_classes, D)."""
    lab = torch.as_tensor(np.asarray(labels))
    return torch.stack([gates[lab == c].float().mean(0) for c in range(num_classes)])


def select_map(maps: torch.Tensor, masks) -> int:
    """For K candidate maps (n, K, h, w), the index k whose map has the highest mean AUROC on these
    scenes (call it on validation scenes only)."""
    return int(np.argmax([metrics.auroc(maps[:, k], masks).mean() for k in range(maps.shape[1])]))


def map_scores(model: ZooNet, data: scenes.SceneSet, maps: torch.Tensor, x: torch.Tensor | None = None,
               deletion: bool = True) -> dict:
    """AUROC and pointing game of ``maps`` on ``data`` and, with ``deletion``, the deletion test (top 10 %
    of pixels against 10 % random), each with its mean and bootstrap 95 % interval over scenes."""
    out = {"auroc": summary(metrics.auroc(maps, data.masks)),
           "pointing": summary(metrics.pointing_game(maps, data.masks)), "map_size": list(maps.shape[1:])}
    if deletion:
        x = scenes.normalise(data.images) if x is None else x
        d = metrics.deletion(model, x, data.labels, maps)
        out.update({"deletion_drop_map": summary(d["intact"] - d["map"]),
                    "deletion_drop_random": summary(d["intact"] - d["random"]),
                    "deletion_map_minus_random": summary(d["random"] - d["map"])})
    return out


def reference_scores(data: scenes.SceneSet) -> dict:
    """What a map gets for free on ``data``: the centre prior's AUROC and pointing game, and the
    pointing game's chance level (the mean target share of the image)."""
    prior = metrics.centre_prior(len(data), scenes.SIZE)
    return {"centre_prior": {"auroc": summary(metrics.auroc(prior, data.masks)),
                             "pointing": summary(metrics.pointing_game(prior, data.masks))},
            "pointing_chance": round(float(metrics.mask_share(data.masks).mean()), 4)}


def model_scores(model: ZooNet, data: scenes.SceneSet, val: scenes.SceneSet | None = None) -> dict:
    """Every score of ``model`` on ``data``: for each stage that carries a block, its own Grad-CAM and
    (when the block has one) its map, scored by :func:`map_scores`; selectivity of its gates per stage.
    Blocks with K candidate maps (Encoding's codeword assignments) use the codeword chosen on ``val``."""
    from .model import BLOCK_STAGES

    x = scenes.normalise(data.images)
    stages = list(model.stages_with_block) if model.block is not None else list(BLOCK_STAGES)
    # the deletion test (three forward passes over the scenes) only at the stage the summaries lead with:
    # for Grad-CAM the last stage that carries a block (Grad-CAM's own choice: the last convolutional maps)
    head_cam = max(stages)
    result: dict = {"grad_cam": {str(s): map_scores(model, data, grad_cam(model, data, s), x, deletion=s == head_cam)
                                 for s in stages}}
    if model.block is None:
        return result
    maps = attention_maps(model, data)
    if maps["spatial"]:
        loc = {}
        val_maps = None
        head_map = HEADLINE_STAGE if HEADLINE_STAGE in maps["spatial"] else min(maps["spatial"])
        for stage, m in sorted(maps["spatial"].items()):
            chosen = None
            if m.ndim == 4:
                if val is None:
                    raise ValueError(f"{model.block}: choosing one of its {m.shape[1]} maps needs validation scenes")
                val_maps = val_maps or attention_maps(model, val)
                chosen = select_map(val_maps["spatial"][stage], val.masks)
                m = m[:, chosen]
            entry = map_scores(model, data, m, x, deletion=stage == head_map)
            if chosen is not None:
                entry["map_chosen_on_validation"] = chosen
            loc[str(stage)] = entry
        result["map"] = loc
        # the headline: HEADLINE_STAGE, or the finest stage the block has a map at (fixed rule, not tuned)
        result["headline_stage"] = int(head_map)
    if maps["gates"]:
        result["selectivity"] = {str(s): round(selectivity(g, data.labels, model.num_classes), 5)
                                 for s, g in sorted(maps["gates"].items())}
    return result


# ---------------------------------------------------------------- captured tensors by stage

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
def class_excitation(model: ZooNet, data: scenes.SceneSet, key: str = "gate") -> dict[int, torch.Tensor]:
    """SE's per-class excitation: ``{stage: (num_classes, C)}`` mean gate per class on ``data``."""
    gates = _captured(model, data.images, key)
    return {stage: class_means(g.flatten(1), data.labels, model.num_classes) for stage, g in gates.items()}


def headline_maps(name: str, data: scenes.SceneSet, directory=None, seed: int = 0) -> torch.Tensor:
    """The maps (n, h, w) that the card of zoo model ``name`` scores as its headline (its finest stage
    with a map; for Encoding the codeword chosen on validation scenes), on ``data``; for a chapter's
    'Attention on real images'. The baseline, and blocks without a map, give their Grad-CAM at
    :data:`HEADLINE_STAGE`."""
    from . import checkpoint

    model = checkpoint.load_model(name, directory, seed=seed)
    card = checkpoint.read_card(name, directory, seed)
    sc = card.get("scores", {})
    if model.block is None or "map" not in sc:
        return grad_cam(model, data, HEADLINE_STAGE)
    stage = sc["headline_stage"]
    m = attention_maps(model, data)["spatial"][stage]
    if m.ndim == 4:
        m = m[:, sc["map"][str(stage)]["map_chosen_on_validation"]]
    return m
