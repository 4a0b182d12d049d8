"""The papers' observations, re-tested on the zoo's trained models and held-out test scenes.

Each function measures one observation on one model and returns the numbers with bootstrap 95 %
intervals over scenes, the paper's expected direction and a verdict computed from the numbers by a
rule fixed here, before any model was looked at:

* ``"reproduced"`` when the interval of the tested difference lies entirely on the paper's side of 0,
* ``"not reproduced"`` when it lies entirely on the other side,
* ``"mixed"`` when it contains 0 (or, over several stages or seeds, the stages/seeds disagree).

:func:`verdict_over` combines the verdicts of several seeds: the same verdict everywhere, else mixed.

The observations (paper, what it reports, what is measured here):

* SE (Hu et al. 2018, Fig. 6): excitation is class-agnostic in early layers and class-specific in
  later ones. :func:`se_specificity`: per stage, the class selectivity of the gates
  (:func:`attnlib.zoo.scores.selectivity`) minus the same with labels shuffled (what chance alone
  gives); tested: last stage minus first stage.
* SK (Li et al. 2019, Sec. 4.3): larger objects shift attention to the larger kernel.
  :func:`sk_scale_shift`: the same test scenes at target scales 1x, 1.5x and 2x; the mean weight on
  the larger-kernel branch; tested: 2x minus 1x.
* GCNet (Cao et al. 2019, Sec. 3): Non-local attention maps of different query positions are nearly
  the same. :func:`query_independence`: cosine distance between the maps of two queries in one image
  against the distance between the maps of one query in two images; tested: the ratio is below 0.5.
* CBAM (Woo et al. 2018, Sec. 4.3, Grad-CAM figure): with CBAM the network covers the target better.
  :func:`cbam_coverage`: per scene, AUROC of CBAM's spatial map and of CBAM's model's Grad-CAM against
  the baseline's Grad-CAM; tested: the difference of the spatial map.
* Coordinate attention / DyCAConv: the directional gates and pi respond to orientation.
  :func:`orientation_response`: the same scenes with every garment turned a quarter; tested: the change
  of pi_0 (DyCAConv) or of the share of the gate's variation along the height (coordinate attention).
* Dynamic convolution / DKA: kernel attention differs by class; annealing the temperature changes how
  peaked it is. :func:`kernel_attention`: class selectivity minus its shuffled-label value, and (for
  blocks with a temperature) the entropy of pi at several temperatures.
* Encoding / LVC: the codeword assignments stay spread. :func:`codeword_spread`: the effective number
  of codewords, ``exp`` of the entropy of a scene's mean assignment (tested: above K / 10 in every
  layer), and the signs of the smoothing factors s_k.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


from . import metrics, scenes
from .model import ZooNet
from .scores import _captured, bootstrap_ci, selectivity


def _summary(values) -> dict:
    v = np.asarray(values, np.float64)
    lo, hi = bootstrap_ci(v)
    return {"mean": round(float(v.mean()), 4), "ci95": [round(lo, 4), round(hi, 4)]}


def verdict(ci95, expected_sign: int = 1) -> str:
    """``ci95`` of a difference whose sign the paper predicts as ``expected_sign`` (+1 or -1)."""
    lo, hi = ci95
    if expected_sign * lo > 0 and expected_sign * hi > 0:
        return "reproduced"
    if expected_sign * lo < 0 and expected_sign * hi < 0:
        return "not reproduced"
    return "mixed"


def verdict_over(verdicts: list[str]) -> str:
    """One verdict from several (seeds, stages): the common one, else ``"mixed"``."""
    return verdicts[0] if verdicts and len(set(verdicts)) == 1 else "mixed"


def _shuffled_selectivity(g: torch.Tensor, labels: np.ndarray, num_classes: int, repeats: int = 3) -> float:
    rng = np.random.default_rng(0)
    return float(np.mean([selectivity(g, rng.permutation(labels), num_classes) for _ in range(repeats)]))


def _bootstrap_stat(fn, n: int, n_boot: int = 300, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval over scenes of a statistic ``fn(indices)``."""
    rng = np.random.default_rng(seed)
    vals = [fn(rng.integers(0, n, n)) for _ in range(n_boot)]
    return float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))


def _half_sample_interval(fn, n: int, repeats: int = 40, seed: int = 0) -> tuple[float, float]:
    """95 % interval of ``fn(all scenes)`` from half-samples without replacement: for half-samples the
    spread of ``fn(half) - fn(all)`` estimates the sampling error of ``fn(all)`` (the variance of a
    mean over n/2 of n items, around the full mean, is that of a mean over n items). Used where a
    bootstrap's duplicated scenes would bias the statistic (class selectivity counts duplicates of a
    scene as agreement within its class)."""
    rng = np.random.default_rng(seed)
    full = fn(np.arange(n))
    diffs = [fn(np.sort(rng.permutation(n)[: n // 2])) - full for _ in range(repeats)]
    h = 1.96 * float(np.std(diffs, ddof=1))
    return full - h, full + h


@torch.no_grad()
def class_specificity(model: ZooNet, data: scenes.SceneSet, key: str) -> dict:
    """Per stage: selectivity of the captured gate ``key``, its shuffled-label value and their difference
    (the excess over chance) with a bootstrap interval over scenes; and the last-minus-first difference."""
    gates = {s: g.flatten(1) for s, g in _captured(model, data.images, key).items()}
    labels = np.asarray(data.labels)
    k = model.num_classes
    out: dict = {"stages": {}}
    excess = {}
    for s, g in sorted(gates.items()):
        def ex(idx, g=g):
            return selectivity(g[idx], labels[idx], k) - _shuffled_selectivity(g[idx], labels[idx], k)
        sel = selectivity(g, labels, k)
        null = _shuffled_selectivity(g, labels, k)
        excess[s] = ex
        lo, hi = _half_sample_interval(ex, len(labels))
        out["stages"][str(s)] = {"selectivity": round(sel, 5), "shuffled": round(null, 5),
                                 "excess": round(sel - null, 5), "excess_ci95": [round(lo, 5), round(hi, 5)]}
    first, last = min(gates), max(gates)
    if first != last:
        diff = lambda idx: excess[last](idx) - excess[first](idx)  # noqa: E731
        lo, hi = _half_sample_interval(diff, len(labels), seed=1)
        d = out["stages"][str(last)]["excess"] - out["stages"][str(first)]["excess"]
        out["last_minus_first"] = {"mean": round(d, 5), "ci95": [round(lo, 5), round(hi, 5)]}
        out["verdict"] = verdict([lo, hi], +1)
    return out


def se_specificity(model: ZooNet, data: scenes.SceneSet) -> dict:
    """SE's observation: gates class-agnostic early, class-specific late (see the module docstring)."""
    out = class_specificity(model, data, "gate")
    out["expected"] = "class selectivity above chance grows from the first to the last stage"
    return out


@torch.no_grad()
def sk_scale_shift(model: ZooNet, n: int = 400, scales=(0.7, 1.05, 1.4), split: str = "test", seed: int = 0) -> dict:
    """SK's observation: the same ``n`` scenes with the target at ``scales`` (1x, 1.5x, 2x of the
    smallest); per stage, the mean weight on the last (largest-kernel) branch at each scale, and the
    paired difference largest minus smallest scale with a bootstrap interval over scenes."""
    per_scale = []
    for s in scales:
        data = scenes.make_scenes(split, n, seed, scale=float(s))
        a = _captured(model, data.images, "attention")            # {stage: (n, M, C, 1, 1)}
        per_scale.append({st: t[:, -1].flatten(1).mean(1).numpy() for st, t in a.items()})
    out: dict = {"scales": list(scales), "stages": {}}
    verdicts = []
    for st in sorted(per_scale[0]):
        d = per_scale[-1][st] - per_scale[0][st]
        entry = {"large_kernel_weight": [round(float(p[st].mean()), 4) for p in per_scale],
                 "largest_minus_smallest": _summary(d)}
        entry["verdict"] = verdict(entry["largest_minus_smallest"]["ci95"], +1)
        verdicts.append(entry["verdict"])
        out["stages"][str(st)] = entry
    out["verdict"] = verdict_over(verdicts)
    out["expected"] = "weight on the larger kernel grows with the object's size"
    return out


@torch.no_grad()
def query_independence(model: ZooNet, data: scenes.SceneSet) -> dict:
    """GCNet's observation on a Non-local model: per stage, the mean cosine distance between the
    attention maps of 9 query positions within an image, against the distance between the maps of one
    query (the centre) over pairs of images; the ratio with a bootstrap interval over images."""
    queries = [(r, c) for r in (0.2, 0.5, 0.8) for c in (0.2, 0.5, 0.8)]
    maps = _captured(model, data.images, "attention", queries=queries)
    out: dict = {"stages": {}}
    verdicts = []
    for st, a in sorted(maps.items()):                          # (n, Q, h, w)
        v = F.normalize(a.flatten(2).double(), dim=2)
        cos = v @ v.transpose(1, 2)
        q = cos.shape[1]
        off = ~torch.eye(q, dtype=torch.bool)
        within = (1 - cos[:, off]).mean(1).numpy()               # per image
        centre = v[:, 4]
        perm = np.random.default_rng(0).permutation(len(centre))
        across = (1 - (centre * centre[perm]).sum(1)).numpy()    # each image against another image
        ratio = lambda idx: within[idx].mean() / max(across[idx].mean(), 1e-12)  # noqa: E731
        lo, hi = _bootstrap_stat(ratio, len(within))
        entry = {"between_queries": _summary(within), "between_images": _summary(across),
                 "ratio": {"mean": round(float(within.mean() / max(across.mean(), 1e-12)), 4),
                           "ci95": [round(lo, 4), round(hi, 4)]}}
        entry["verdict"] = verdict([0.5 - hi, 0.5 - lo], +1)   # reproduced: the ratio is below 0.5
        verdicts.append(entry["verdict"])
        out["stages"][str(st)] = entry
    out["verdict"] = verdict_over(verdicts)
    out["expected"] = "maps of different queries nearly identical (ratio well below 1; tested: below 0.5)"
    return out


def cbam_coverage(model: ZooNet, baseline: ZooNet, data: scenes.SceneSet, stage: int = 1) -> dict:
    """CBAM's observation: per scene, AUROC of CBAM's spatial map (``stage``) and of the CBAM model's
    Grad-CAM, each minus the baseline's Grad-CAM AUROC at the same stage, with bootstrap intervals."""
    from .scores import attention_maps, grad_cam

    base = metrics.auroc(grad_cam(baseline, data, stage), data.masks)
    spatial = metrics.auroc(attention_maps(model, data)["spatial"][stage], data.masks)
    own = metrics.auroc(grad_cam(model, data, stage), data.masks)
    out = {"stage": stage, "baseline_grad_cam": _summary(base), "cbam_spatial_map": _summary(spatial),
           "cbam_grad_cam": _summary(own), "spatial_minus_baseline": _summary(spatial - base),
           "grad_cam_minus_baseline": _summary(own - base)}
    out["verdict"] = verdict(out["spatial_minus_baseline"]["ci95"], +1)
    out["expected"] = "CBAM's maps cover the target better than the baseline's Grad-CAM"
    return out


@torch.no_grad()
def orientation_response(model: ZooNet, n: int = 400, split: str = "test", seed: int = 0) -> dict:
    """Coordinate attention / DyCAConv: the same ``n`` scenes upright and with every garment turned a
    quarter. Per stage: for DyCAConv, pi_0 (the weight on g^w) upright and turned and the paired change;
    for both, the share of the gate's variation that lies along the height,
    ``var_h / (var_h + var_w)`` of ``g^h`` and ``g^w`` over positions (mean over channels), and its
    paired change. Garments are mostly taller than wide, so a quarter turn should move weight between
    the two directions."""
    up = scenes.make_scenes(split, n, seed)
    turned = scenes.make_scenes(split, n, seed, rotate=1)
    out: dict = {"stages": {}}
    verdicts = []
    has_pi = model.block == "dycaconv"
    caps = {}
    for name, data in (("upright", up), ("turned", turned)):
        gh = _captured(model, data.images, "g_h")
        gw = _captured(model, data.images, "g_w")
        share = {st: (gh[st].flatten(2).var(2).mean(1) /
                      (gh[st].flatten(2).var(2).mean(1) + gw[st].flatten(2).var(2).mean(1)).clamp_min(1e-12)).numpy()
                 for st in gh}
        caps[name] = {"share": share}
        if has_pi:
            caps[name]["pi0"] = {st: p[:, 0].numpy() for st, p in _captured(model, data.images, "pi").items()}
    for st in sorted(caps["upright"]["share"]):
        entry = {"height_share": [round(float(caps[k]["share"][st].mean()), 4) for k in ("upright", "turned")],
                 "height_share_change": _summary(caps["turned"]["share"][st] - caps["upright"]["share"][st])}
        test = entry["height_share_change"]["ci95"]
        if has_pi:
            entry["pi0"] = [round(float(caps[k]["pi0"][st].mean()), 4) for k in ("upright", "turned")]
            entry["pi0_change"] = _summary(caps["turned"]["pi0"][st] - caps["upright"]["pi0"][st])
            test = entry["pi0_change"]["ci95"]
        # the paper predicts a response, not its sign: reproduced when the change's interval excludes 0
        entry["verdict"] = "reproduced" if test[0] > 0 or test[1] < 0 else "not reproduced"
        verdicts.append(entry["verdict"])
        out["stages"][str(st)] = entry
    out["verdict"] = verdict_over(verdicts)
    out["expected"] = ("pi and the directional gates change when the garments turn a quarter "
                       "(tested: the paired change's interval excludes 0)")
    return out


def _entropy(p: torch.Tensor) -> np.ndarray:
    p = p.double().clamp_min(1e-12)
    return (-(p * p.log()).sum(1)).numpy()


@torch.no_grad()
def kernel_attention(model: ZooNet, data: scenes.SceneSet, temperatures=(1.0, 5.0, 30.0)) -> dict:
    """Dynamic convolution / DKA: class selectivity of the kernel attention (as
    :func:`class_specificity`), and for blocks with a softmax temperature the mean entropy of pi at each
    of ``temperatures`` (the trained temperature is restored afterwards)."""
    out = class_specificity(model, data, "attention")
    verdicts = [verdict(e["excess_ci95"], +1) for e in out["stages"].values()]
    out["class_verdict"] = verdict_over(verdicts)
    out.pop("verdict", None)
    mods = [m for m in model.modules() if hasattr(m, "set_temperature")]
    if mods:
        trained = [float(m.temperature) for m in mods]
        ent = {}
        try:
            for t in temperatures:
                for m in mods:
                    m.set_temperature(t)
                a = _captured(model, data.images, "attention")
                ent[str(t)] = {str(st): round(float(_entropy(p).mean()), 4) for st, p in sorted(a.items())}
        finally:
            for m, t in zip(mods, trained):
                m.set_temperature(t)
        out["entropy_by_temperature"] = ent
        k = next(iter(a.values())).shape[1]
        out["max_entropy"] = round(float(np.log(k)), 4)
    out["expected"] = "kernel attention differs by class (selectivity above the shuffled-label value)"
    return out


@torch.no_grad()
def codeword_spread(model: ZooNet, data: scenes.SceneSet) -> dict:
    """Encoding / LVC: for every Encoding layer in ``model``, the effective number of codewords a scene
    uses (``exp`` of the entropy of its mean soft assignment over positions), out of K, and how many of
    the smoothing factors s_k are negative (a negative s_k turns the softmax over codewords into one
    that favours the *farthest* codeword)."""
    from attnlib.blocks.encoding import Encoding

    layers = {n: m for n, m in model.named_modules() if isinstance(m, Encoding)}
    out: dict = {"layers": {}}
    for name, layer in layers.items():
        got = []
        plain = layer.encode                                   # used by LVC; Encoding's forward calls it too

        def recording(v, plain=plain, got=got):
            e, assign = plain(v)
            got.append(assign.detach().float())                # (B, K, N)
            return e, assign

        layer.encode = recording
        try:
            for i in range(0, len(data), 200):
                model(scenes.normalise(data.images[i:i + 200]))
        finally:
            del layer.encode                                   # back to the class's method
        a = torch.cat(got)                                        # (n, K, N)
        mean_a = a.mean(2)                                        # (n, K)
        eff = np.exp(_entropy(mean_a))
        s = layer.smoothing().detach().float()                    # s_k
        top = mean_a.mean(0).argmax()                              # the codeword with the most mass
        entry = {"K": int(a.shape[1]), "effective_codewords": _summary(eff),
                 "negative_scales": int((s < 0).sum()),
                 "scale_range": [round(float(s.min()), 4), round(float(s.max()), 4)],
                 "top_codeword_share": round(float(mean_a.mean(0)[top]), 4),
                 "top_codeword_scale": round(float(s[top]), 4)}
        # spread: at least a tenth of the K codewords in effect (interval above K / 10); collapsed: below
        lo, hi = entry["effective_codewords"]["ci95"]
        entry["verdict"] = ("reproduced" if lo > a.shape[1] / 10 else
                            "not reproduced" if hi < a.shape[1] / 10 else "mixed")
        out["layers"][name] = entry
    out["verdict"] = verdict_over([e["verdict"] for e in out["layers"].values()])
    out["expected"] = "assignments spread over the codewords (tested: at least K / 10 codewords in effect)"
    return out


#: observation -> (zoo model, paper, function of (model, seed, directory) -> result)
def _spec():
    from . import checkpoint, pipeline

    test = pipeline.test_set

    def baseline(seed, directory):
        return checkpoint.load_model("baseline", directory, seed=seed)

    return {
        "se": ("se", "Hu et al. 2018 (SENet), Fig. 6", lambda m, s, d: se_specificity(m, test(500))),
        "sk": ("sk", "Li et al. 2019 (SKNet), Sec. 4.3", lambda m, s, d: sk_scale_shift(m, n=400)),
        "gcnet": ("nonlocal", "Cao et al. 2019 (GCNet), Sec. 3", lambda m, s, d: query_independence(m, test(500))),
        "cbam": ("cbam", "Woo et al. 2018 (CBAM), Sec. 4.3",
                 lambda m, s, d: cbam_coverage(m, baseline(s, d), test(500))),
        "coord": ("coord", "Hou et al. 2021 (coordinate attention)", lambda m, s, d: orientation_response(m, n=400)),
        "dycaconv": ("dycaconv", "DyCAConv", lambda m, s, d: orientation_response(m, n=400)),
        "dynamic_conv": ("dynamic_conv", "Chen et al. 2020 (DY-CNN), Sec. 4",
                         lambda m, s, d: kernel_attention(m, test(500))),
        "dka": ("dka", "Yu et al. 2022 (Dite-HRNet)", lambda m, s, d: kernel_attention(m, test(500))),
        "encoding": ("encoding", "Zhang et al. 2017 (Deep TEN)", lambda m, s, d: codeword_spread(m, test(500))),
        "lvc": ("lvc", "Quan et al. 2023 (CFPNet)", lambda m, s, d: codeword_spread(m, test(500))),
        # the same measure on the models trained with the fix (s_k kept positive)
        "encoding+positive_s": ("encoding+positive_s", "Zhang et al. 2017 (Deep TEN), with s = softplus(rho)",
                                lambda m, s, d: codeword_spread(m, test(500))),
        "lvc+positive_s": ("lvc+positive_s", "Quan et al. 2023 (CFPNet), with s = softplus(rho)",
                           lambda m, s, d: codeword_spread(m, test(500))),
    }


def _seed_verdict(result: dict) -> str | None:
    return result.get("verdict", result.get("class_verdict"))


def run_all(directory=None, names=None, log=None, seeds=None) -> dict:
    """Every observation on every seed of its zoo model whose weights ship (or on ``seeds`` of them);
    the verdict over seeds."""
    from . import checkpoint

    spec = _spec()
    names = list(spec) if names is None else names
    unknown = sorted(set(names) - set(spec))
    if unknown:
        raise ValueError(f"unknown observation(s) {unknown}; known: {sorted(spec)}")
    out = {}
    for key in names:
        model_name, paper, fn = spec[key]
        per_seed = {}
        for seed in checkpoint.seeds(model_name, directory):
            if seeds is not None and seed not in seeds:
                continue
            if not checkpoint.paths(model_name, directory, seed)[0].exists():
                continue
            model = checkpoint.load_model(model_name, directory, seed=seed)
            per_seed[str(seed)] = fn(model, seed, directory)
            if log:
                log(f"{key} seed {seed}: {_seed_verdict(per_seed[str(seed)])}")
        verdicts = [_seed_verdict(r) for r in per_seed.values()]
        out[key] = {"model": model_name, "paper": paper, "expected": next(iter(per_seed.values()))["expected"]
                    if per_seed else None, "per_seed": per_seed,
                    "verdict": verdict_over([v for v in verdicts if v]) if any(verdicts) else None}
    return out


def merge(old: dict, new: dict) -> dict:
    """``old`` with the seeds (and observations) of ``new`` added or replaced; verdicts recomputed over
    all seeds."""
    out = {k: {**v, "per_seed": dict(v["per_seed"])} for k, v in old.items()}
    for key, entry in new.items():
        if key not in out:
            out[key] = {**entry, "per_seed": dict(entry["per_seed"])}
        else:
            out[key]["per_seed"].update(entry["per_seed"])
        verdicts = [_seed_verdict(r) for r in out[key]["per_seed"].values()]
        out[key]["per_seed"] = dict(sorted(out[key]["per_seed"].items(), key=lambda kv: int(kv[0])))
        out[key]["verdict"] = verdict_over([v for v in verdicts if v]) if any(verdicts) else None
    return out


def _file(directory=None):
    from pathlib import Path

    from . import checkpoint

    return Path(checkpoint.WEIGHTS_DIR if directory is None else directory) / "observations.json"


def save_all(results: dict, directory=None):
    """Write ``results`` (from :func:`run_all`) as ``observations.json`` next to the weights."""
    import json

    path = _file(directory)
    path.write_text(json.dumps(results, indent=1) + "\n")
    return path


def load_all(directory=None) -> dict:
    """The shipped observations (``observations.json``)."""
    import json

    from . import checkpoint

    path = _file(directory)
    if not path.exists():
        raise checkpoint.WeightsError(f"no {path}; compute it with `python -m attnlib.zoo observe`")
    return json.loads(path.read_text())
