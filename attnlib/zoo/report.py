"""What the book shows of a zoo model: numbers read from the shipped cards, and figures on held-out scenes.

Every number these functions print comes from the cards (``weights/<name>[.seed<k>].json``) and from
``weights/observations.json``, which ``python -m attnlib.zoo score`` and ``observe`` measured on the
shipped weights, or is computed here on the held-out test scenes. A chapter's *Attention on real
images* calls :func:`section`; the zoo page and the "Which block?" page call the pieces.

    >>> from attnlib.zoo import report
    >>> report.OBSERVATION_OF["nonlocal"]
    'gcnet'
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from . import checkpoint, pipeline, scenes, scores
from .fashion import CLASSES

#: chapter model -> the paper observation its page re-tests (key of observations.json)
OBSERVATION_OF = {"se": "se", "sk": "sk", "nonlocal": "gcnet", "gc": "gcnet", "cbam": "cbam",
                  "coord": "coord", "dycaconv": "dycaconv", "dynamic_conv": "dynamic_conv", "dka": "dka",
                  "encoding": "encoding", "lvc": "lvc"}
#: the test scenes every figure shows (indices into the held-out test set), fixed before looking
FIGURE_SCENES = (0, 1, 2, 3, 4, 5)
#: what a model's own signal is called when it is not a spatial map
SIGNAL = {"sk": ("attention", "weight on the dilated (larger) kernel"),
          "dycaconv": ("pi", r"$\pi_0$ (weight on $g^w$)"),
          "dynamic_conv": ("attention", r"kernel attention $\pi_k$"),
          "dka": ("attention", r"kernel attention $\alpha_k$")}


@functools.lru_cache(maxsize=None)
def summaries() -> dict:
    """:func:`attnlib.zoo.pipeline.summarise` of every shipped model, from the cards (no re-measuring)."""
    return pipeline.evaluate_all(checkpoint.available(), fresh=False)


def summary(name: str) -> dict:
    s = summaries()
    if name not in s:
        raise ValueError(f"no shipped zoo model {name!r}; shipped: {checkpoint.available()}")
    return s[name]


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _pts(v: float) -> str:
    return f"{100 * v:+.1f}"


def difference_phrase(ci) -> str:
    lo, hi = ci
    if lo > 0:
        return "better than the baseline: the interval lies above zero"
    if hi < 0:
        return "worse than the baseline: the interval lies below zero"
    return "no difference from the baseline that three seeds can resolve: the interval contains zero"


def buys_markdown(name: str) -> str:
    """One paragraph: the model's test accuracy over seeds and its difference to the baseline."""
    r, b = summary(name), summary(checkpoint.BASELINE)
    a, ba = r["accuracy"], b["accuracy"]
    d = r["difference_to_baseline"]
    seeds = ", ".join(_pct(v) for v in a["per_seed"])
    return (f"**What `{name}` buys.** Over {len(r['seeds'])} seeds the `{name}` model classifies "
            f"{_pct(a['mean'])} of the {r['n_test']} held-out test scenes correctly (seeds: {seeds}; 95 % "
            f"interval over seeds {_pct(a['ci95_over_seeds'][0])} to {_pct(a['ci95_over_seeds'][1])}), the "
            f"baseline without attention {_pct(ba['mean'])}. Difference: {_pts(d['mean'])} points, 95 % "
            f"interval {_pts(d['ci95'][0])} to {_pts(d['ci95'][1])}: {difference_phrase(d['ci95'])}. "
            f"Parameters: {r['parameters']:,} (baseline {b['parameters']:,}).")


def _fmt(entry: dict | None, pct: bool = False) -> str:
    if not entry:
        return "–"
    f = (lambda v: f"{100 * v:.1f}") if pct else (lambda v: f"{v:.3f}")
    lo, hi = entry["seed_spread"]
    ci = entry["per_seed_ci95"][0]
    return f"{f(entry['mean'])} (seeds {f(lo)}–{f(hi)}; seed 0: [{f(ci[0])}, {f(ci[1])}])"


def localisation_rows(name: str) -> list[tuple[str, dict, dict | None]]:
    """``[(row label, AUROC/pointing summary, deletion summary or None)]`` for every stage of the block's
    map, of its model's Grad-CAM and of the baseline's Grad-CAM."""
    rows = []
    sources = []
    loc = summary(name).get("localisation", {})
    if "map" in loc:
        sources.append((f"`{name}` map", loc["map"]))
    if name != checkpoint.BASELINE and "grad_cam" in loc:
        sources.append((f"Grad-CAM of the `{name}` model", loc["grad_cam"]))
    sources.append(("Grad-CAM of the baseline", summary(checkpoint.BASELINE)["localisation"]["grad_cam"]))
    for label, e in sources:
        for st, by in e["by_stage"].items():
            side = "×".join(str(v) for v in by["map_size"])
            dele = e.get("deletion_map_minus_random") if int(st) == e["stage"] else None
            rows.append((f"{label}, stage {int(st) + 1} ({side})", by, dele))
    return rows


def localisation_markdown(name: str) -> str:
    """A Markdown table: AUROC and pointing game at every stage, and the deletion test (top 10 % of the
    map's pixels against 10 % random ones) at the headline stage, for the block's map, its model's Grad-CAM
    and the baseline's Grad-CAM, next to the centre prior and the pointing game's chance level."""
    refs = summaries()["_references"]
    head = ("| map | AUROC | pointing game (%) | deletion: extra accuracy drop over random (points) |\n"
            "|---|---|---|---|\n")
    body = ""
    for label, e, dele in localisation_rows(name):
        body += f"| {label} | {_fmt(e['auroc'])} | {_fmt(e['pointing'], True)} | {_fmt(dele, True)} |\n"
    cp = refs["centre_prior"]
    body += (f"| centre prior (knows nothing of the scene) | {cp['auroc']['mean']:.3f} | "
             f"{100 * cp['pointing']['mean']:.1f} | – |\n"
             f"| chance | 0.500 | {100 * refs['pointing_chance']:.1f} | 0 |\n")
    n = summary(name).get("n_localisation_scenes", pipeline.N_LOC)
    note = (f"\n\nMeasured on the first {n} held-out test scenes; the mean over seeds, the range over seeds, "
            "and seed 0's bootstrap 95 % interval over scenes. AUROC ranks the map's pixels against the "
            "target's pixel mask (0.5 chance, 1 perfect, below 0.5 pointing away; no offset or scale of the map "
            "changes it). The pointing game asks whether the map's maximum lies on the target.")
    if "map" not in summary(name).get("localisation", {}) and name != checkpoint.BASELINE:
        note += (f" `{name}` has no map of its own: its gate has one value per channel (or per kernel), the same "
                 "at every position, so only its model's Grad-CAM can be scored.")
    return head + body + note


@functools.lru_cache(maxsize=1)
def figure_scenes() -> scenes.SceneSet:
    return pipeline.test_set().subset(np.array(FIGURE_SCENES))


def _contour(ax, mask):
    ax.contour(mask.astype(float), levels=[0.5], colors="cyan", linewidths=0.8)


def show_maps(name: str):
    """The held-out figure scenes with the target's outline; the block's map (when it has one), its model's
    Grad-CAM and the baseline's Grad-CAM (seed 0 weights), in the book-wide overlay. Returns the figure."""
    import matplotlib.pyplot as plt

    from .. import plotting

    data = figure_scenes()
    rows = [("scene (target outlined)", None)]
    if "map" in summary(name).get("localisation", {}):
        rows.append((f"{name}: map", scores.headline_maps(name, data)))
    model = checkpoint.load_model(name)
    if name != checkpoint.BASELINE:
        rows.append((f"{name}: Grad-CAM", scores.grad_cam(model, data, scores.HEADLINE_STAGE)))
    base = model if name == checkpoint.BASELINE else checkpoint.load_model(checkpoint.BASELINE)
    rows.append(("baseline: Grad-CAM", scores.grad_cam(base, data, scores.HEADLINE_STAGE)))
    with torch.no_grad():
        pred = model(data.tensors()[0]).argmax(1).numpy()
    n = len(data)
    fig, axes = plt.subplots(len(rows), n, figsize=(2.1 * n, 2.2 * len(rows)), layout="constrained", squeeze=False)
    for r, (label, maps) in enumerate(rows):
        for j in range(n):
            ax = axes[r, j]
            if maps is None:
                ax.imshow(data.images[j])
                _contour(ax, data.masks[j])
                ok = "✓" if pred[j] == data.labels[j] else "✗"
                ax.set_title(f"{CLASSES[data.labels[j]]}\n{name}: {CLASSES[pred[j]]} {ok}", fontsize=8)
                ax.set_axis_off()
            else:
                plotting.overlay(ax, data.images[j], maps[j], colorbar=j == n - 1)
                _contour(ax, data.masks[j])
                if j == 0:
                    ax.set_title(label, fontsize=8, loc="left")
    return fig


def show_signal(name: str):
    """For blocks whose signal is not a map (SK, DyCAConv, dynamic convolution, DKA): the signal of
    every figure scene at every stage, seed 0. Returns the figure, or ``None`` for other blocks."""
    import matplotlib.pyplot as plt

    if name not in SIGNAL:
        return None
    key, label = SIGNAL[name]
    model = checkpoint.load_model(name)
    data = figure_scenes()
    got = scores._captured(model, data.images, key)
    fig, axes = plt.subplots(1, len(got), figsize=(4.2 * len(got), 3), layout="constrained", squeeze=False)
    for ax, (stage, t) in zip(axes[0], sorted(got.items())):
        if name == "sk":
            v = t[:, -1].flatten(1).mean(1)                     # mean over channels of the last branch
            ax.bar(range(len(v)), v.numpy(), color="#4c72b0")
            ax.set_ylim(0, 1)
            ax.set_xticks(range(len(v)), [CLASSES[c] for c in data.labels], rotation=60, fontsize=7)
        elif name == "dycaconv":
            v = t[:, 0]
            ax.bar(range(len(v)), v.numpy(), color="#4c72b0")
            ax.set_ylim(0, 1)
            ax.set_xticks(range(len(v)), [CLASSES[c] for c in data.labels], rotation=60, fontsize=7)
        else:
            im = ax.imshow(t.numpy(), cmap="inferno", vmin=0, vmax=1, aspect="auto")
            ax.set_yticks(range(len(t)), [CLASSES[c] for c in data.labels], fontsize=7)
            ax.set_xlabel("kernel k")
            fig.colorbar(im, ax=ax, fraction=0.05)
        ax.set_title(f"stage {stage + 1}: {label}", fontsize=9)
    return fig


def _ci(e: dict, pct: bool = False) -> str:
    f = (lambda v: f"{100 * v:+.1f}") if pct else (lambda v: f"{v:+.3f}")
    return f"{f(e['mean'])} [{f(e['ci95'][0])}, {f(e['ci95'][1])}]"


def observation_markdown(key: str) -> str:
    """The paper's observation, its expected direction, the numbers measured on every seed, the verdict."""
    from . import observations

    obs = observations.load_all()[key]
    lines = [f"**The paper's observation** ({obs['paper']}): expected: {obs['expected']}. "
             f"**Verdict over {len(obs['per_seed'])} seeds: {obs['verdict']}.**", ""]
    for seed, r in obs["per_seed"].items():
        lines.append(f"- seed {seed}: " + _observation_numbers(key, r))
    return "\n".join(lines)


def _excess_by_stage(r: dict) -> str:
    """The class selectivity above shuffled labels of every stage (:func:`observations.class_specificity`)."""
    return "; ".join(f"stage {int(s) + 1} excess selectivity {e['excess']:+.4f} [{e['excess_ci95'][0]:+.4f}, "
                     f"{e['excess_ci95'][1]:+.4f}]" for s, e in r["stages"].items())


def _observation_numbers(key: str, r: dict) -> str:
    if key == "se":
        d = r["last_minus_first"]
        return _excess_by_stage(r) + f"; last minus first {d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] ({r['verdict']})"
    if key in ("dynamic_conv", "dka"):
        out = _excess_by_stage(r) + f" (by class: {r['class_verdict']})"
        if "entropy_by_temperature" in r:
            ent = r["entropy_by_temperature"]
            out += "; mean entropy of π at stage 2 for τ = " + ", ".join(
                f"{t}: {v['1']:.3f}" for t, v in ent.items()) + f" (maximum {r['max_entropy']:.3f})"
        return out
    if key == "sk":
        return "; ".join(f"stage {int(s) + 1}: weight on the larger kernel at 1×/1.5×/2× "
                         f"{'/'.join(f'{v:.3f}' for v in e['large_kernel_weight'])}, 2× minus 1× "
                         f"{_ci(e['largest_minus_smallest'])} ({e['verdict']})" for s, e in r["stages"].items())
    if key == "gcnet":
        return "; ".join(f"stage {int(s) + 1}: distance between queries {e['between_queries']['mean']:.4f}, between "
                         f"images {e['between_images']['mean']:.4f}, ratio {e['ratio']['mean']:.3f} "
                         f"[{e['ratio']['ci95'][0]:.3f}, {e['ratio']['ci95'][1]:.3f}] ({e['verdict']})"
                         for s, e in r["stages"].items())
    if key == "cbam":
        return (f"AUROC at stage {r['stage'] + 1}: CBAM's spatial map {r['cbam_spatial_map']['mean']:.3f}, CBAM "
                f"model's Grad-CAM {r['cbam_grad_cam']['mean']:.3f}, baseline's Grad-CAM "
                f"{r['baseline_grad_cam']['mean']:.3f}; spatial map minus baseline "
                f"{_ci(r['spatial_minus_baseline'])} ({r['verdict']})")
    if key in ("coord", "dycaconv"):
        parts = []
        for s, e in r["stages"].items():
            p = f"stage {int(s) + 1}: height share of the gate's variation {e['height_share'][0]:.3f} → " \
                f"{e['height_share'][1]:.3f}, change {_ci(e['height_share_change'])}"
            if "pi0" in e:
                p += f"; π0 {e['pi0'][0]:.3f} → {e['pi0'][1]:.3f}, change {_ci(e['pi0_change'])}"
            parts.append(p + f" ({e['verdict']})")
        return "; ".join(parts)
    if key in ("encoding", "lvc"):
        return "; ".join(f"{n or 'encoding'}: {e['effective_codewords']['mean']:.2f} effective codewords of "
                         f"{e['K']} [{e['effective_codewords']['ci95'][0]:.2f}, {e['effective_codewords']['ci95'][1]:.2f}],"
                         f" {e['negative_scales']} of {e['K']} smoothing factors s_k negative; the busiest codeword "
                         f"takes {100 * e['top_codeword_share']:.0f} % of the mass, its s_k = {e['top_codeword_scale']:+.3f}"
                         f" ({e['verdict']})" for n, e in r["layers"].items())
    return str(r)


def section(name: str, models: tuple[str, ...] | None = None) -> None:
    """A chapter's *Attention on real images*: for ``name`` (and ``models`` shown beside it), what the
    block buys, the maps on held-out test scenes, the localisation table, the block's own signal where it
    is not a map, the live component (:func:`attnlib.zoo.live.component`: the same maps computed in the
    reader's browser on a test scene or their own photo) and the paper's observation with its verdict."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    for m in (models or (name,)):
        display(Markdown(buys_markdown(m)))
        show_maps(m)
        plt.show()
        display(Markdown(localisation_markdown(m)))
        fig = show_signal(m)
        if fig is not None:
            plt.show()
    # the same maps computed live in the reader's browser (onnxruntime-web), on a test scene or their photo
    from . import live

    display(live.component(name, models))
    key = OBSERVATION_OF.get(name)
    if key is not None:
        display(Markdown(observation_markdown(key)))


def collapse_fix_markdown(block: str) -> str:
    """Before and after for the codeword collapse of ``block`` (``"encoding"`` or ``"lvc"``): the
    reference parametrisation against ``positive_scale=True`` (zoo model ``block + "+positive_s"``), each
    over its seeds: test accuracy, and per Encoding layer the effective number of codewords and the count
    of negative smoothing factors."""
    from . import observations

    fixed = f"{block}+positive_s"
    obs = observations.load_all()
    rows = ["| model | test accuracy (%) | per Encoding layer: effective codewords of K (seed 0, seed 1, seed 2) | negative $s_k$ (per seed) |",
            "|---|---|---|---|"]
    for name in (block, fixed):
        a = summary(name)["accuracy"]
        per_seed = obs[name]["per_seed"]
        layers = next(iter(per_seed.values()))["layers"]
        eff = "; ".join(f"{k or 'head'}: " + ", ".join(f"{per_seed[sd]['layers'][k]['effective_codewords']['mean']:.1f}"
                                                       for sd in per_seed) + f" of {layers[k]['K']}" for k in layers)
        neg = "; ".join(", ".join(str(per_seed[sd]["layers"][k]["negative_scales"]) for sd in per_seed) for k in layers)
        label = f"`{name}`" + (" (reference: scale = −s)" if name == block else " (s = softplus(ρ))")
        rows.append(f"| {label} | {100 * a['mean']:.1f} [{100 * a['ci95_over_seeds'][0]:.1f}, "
                    f"{100 * a['ci95_over_seeds'][1]:.1f}] | {eff} | {neg} |")
    d = pipeline.welch_interval(summary(fixed)["accuracy"]["per_seed"], summary(block)["accuracy"]["per_seed"])
    diff = summary(fixed)["accuracy"]["mean"] - summary(block)["accuracy"]["mean"]
    rows.append("")
    rows.append(f"Accuracy with the fix minus without: {_pts(diff)} points (95 % Welch interval over seeds "
                f"{_pts(d[0])} to {_pts(d[1])}). Verdict on spread: reference {obs[block]['verdict']}, "
                f"with the fix {obs[fixed]['verdict']}.")
    return "\n".join(rows)
