"""Train, save, reload, score and summarise zoo models: what ``python -m attnlib.zoo`` runs."""

from __future__ import annotations

import time

import numpy as np
import torch

import attnlib

from . import checkpoint, evaluate, scores, train
from .checkpoint import BASELINE

#: test scenes that localisation is scored on (the first N_LOC of the test set)
N_LOC = 500


def all_models() -> list[str]:
    """The baseline, then every registered block, in registration order."""
    return [BASELINE, *attnlib.list_blocks()]


def test_set(n: int | None = None):
    """The fixed held-out test scenes (the first ``n``; default all :data:`train.N_TEST`)."""
    data = train.scene_set("test", train.N_TEST, train.DATA_SEED)
    return data if n is None else data.subset(slice(0, n))


def val_set():
    return train.scene_set("val", train.N_VAL, train.DATA_SEED)


def git_commit() -> str | None:
    """The commit of the library's checkout (with ``-dirty`` when it has changes), or ``None``."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "attnlib"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def test_accuracy(model, data=None) -> dict:
    """Accuracy of ``model`` on the fixed test scenes, with a bootstrap 95 % interval over scenes."""
    data = test_set() if data is None else data
    correct = (evaluate.predict(model, data) == torch.from_numpy(data.labels)).double().numpy()
    lo, hi = scores.bootstrap_ci(correct)
    return {"split": "test", "n": len(data), "data_seed": train.DATA_SEED,
            "accuracy": round(float(correct.mean()), 4), "accuracy_ci95": [round(lo, 4), round(hi, 4)]}


def train_and_save(name: str, *, seed: int = 0, steps: int = train.STEPS, device=None, directory=None,
                   progress: bool = True, n_train: int = train.N_TRAIN, batch_size: int = train.BATCH) -> dict:
    """Train zoo model ``name`` (a block or ``"baseline"``) with ``seed``, save weights and card, reload
    the file and measure its test accuracy into the card. Returns the card."""
    from . import fashion
    from .model import model_spec

    block, kwargs = model_spec(name)
    model, info = train.train(block, seed=seed, steps=steps, device=device, progress=progress,
                              n_train=n_train, batch_size=batch_size,
                              model_kwargs={"block_kwargs": kwargs} if kwargs is not None else None)
    card = {
        "name": name,
        "block": block,
        "seed": seed,
        "training": {**info, "recipe": "see attnlib/zoo/train.py"},
        "data": {"checksum": train.data_checksum(), "scenes_version": train.SCENES_VERSION,
                 "fashion_mnist_sha256": dict(fashion.CHECKSUMS), "n_train_scenes": n_train,
                 "validation_garments": fashion.N_VAL},
        "git_commit": git_commit(),
        "library_version": attnlib.__version__,
        "torch_version": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    checkpoint.save(model.cpu(), card, directory, seed)
    loaded = checkpoint.load_model(name, directory, seed=seed)
    card = checkpoint.read_card(name, directory, seed)
    card["test"] = test_accuracy(loaded)
    card["file_bytes"] = checkpoint.paths(name, directory, seed)[0].stat().st_size
    checkpoint.write_card(card, name, directory, seed)
    return card


#: rough cost order (slowest first) so that parallel workers finish together
_SLOW = ("dka", "dynamic_conv", "lvc", "evc", "sk", "scse", "cse", "sse", "nonlocal")


def _job(name: str, seed: int, steps: int, directory, threads: int, device) -> tuple[str, int, float, float]:
    torch.set_num_threads(threads)
    card = train_and_save(name, seed=seed, steps=steps, directory=directory, progress=False, device=device)
    return name, seed, card["test"]["accuracy"], card["training"]["seconds"]


def train_many(names: list[str], seeds=train.SEEDS, *, steps: int = train.STEPS, jobs: int = 1,
               threads: int = 1, directory=None, device=None, skip_existing: bool = False, log=print) -> list:
    """Train every ``(name, seed)`` pair, ``jobs`` processes at a time, seed by seed (all models at seed 0
    first, so one complete zoo exists early). Returns ``[(name, seed, test accuracy, seconds)]``."""
    import concurrent.futures as cf
    import multiprocessing as mp

    for split, n in (("train", train.N_TRAIN), ("val", train.N_VAL), ("test", train.N_TEST)):
        train.scene_set(split, n)  # render once into the cache, before the workers start
    # the baseline first (its validation curve is the first to look at), then the slowest blocks
    order = sorted(names, key=lambda n: (n != BASELINE, n not in _SLOW, _SLOW.index(n) if n in _SLOW else 0))
    todo = [(n, s) for s in seeds for n in order
            if not (skip_existing and checkpoint.paths(n, directory, s)[1].exists())]
    done = []
    if jobs == 1:
        for n, s in todo:
            done.append(_job(n, s, steps, directory, threads, device))
            log(f"{n} seed {s}: test accuracy {done[-1][2]:.4f}, {done[-1][3]:.0f} s")
        return done
    with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_job, n, s, steps, directory, threads, device) for n, s in todo]
        for f in cf.as_completed(futures):
            done.append(f.result())
            log(f"{done[-1][0]} seed {done[-1][1]}: test accuracy {done[-1][2]:.4f}, {done[-1][3]:.0f} s")
    return done


def score_saved(name: str, directory=None, seed: int = 0) -> dict:
    """Reload the saved model ``name`` (``seed``), measure its test accuracy and localisation scores on
    the held-out test scenes and write them into its card. Returns the card."""
    loaded = checkpoint.load_model(name, directory, seed=seed)
    card = checkpoint.read_card(name, directory, seed)
    card["test"] = test_accuracy(loaded)
    data = test_set(N_LOC)
    card["scores"] = {"n_scenes": len(data), **scores.model_scores(loaded, data, val_set())}
    card["references"] = scores.reference_scores(data)
    checkpoint.write_card(card, name, directory, seed)
    return card


def _score_job(name: str, seed: int, directory, threads: int) -> tuple[str, int]:
    torch.set_num_threads(threads)
    score_saved(name, directory, seed)
    return name, seed


def score_many(pairs: list[tuple[str, int]], *, jobs: int = 1, threads: int = 1, directory=None, log=print) -> None:
    """:func:`score_saved` for every ``(name, seed)``, ``jobs`` processes at a time."""
    import concurrent.futures as cf
    import multiprocessing as mp

    test_set(), val_set()
    if jobs == 1:
        for n, s in pairs:
            _score_job(n, s, directory, threads)
            log(f"{n} seed {s}: scored")
        return
    with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        for f in cf.as_completed([pool.submit(_score_job, n, s, directory, threads) for n, s in pairs]):
            log(f"{f.result()[0]} seed {f.result()[1]}: scored")


def t_interval(values, level: float = 0.95) -> list[float]:
    """Student-t interval of the mean of ``values`` (one value per seed): ``[low, high]``."""
    from scipy import stats

    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return [round(float(v.mean()), 4)] * 2
    h = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return [round(float(v.mean() - h), 4), round(float(v.mean() + h), 4)]


def welch_interval(a, b, level: float = 0.95) -> list[float]:
    """Welch-t interval of ``mean(a) - mean(b)`` (one value per seed): ``[low, high]``."""
    from scipy import stats

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return [round(d, 4)] * 2
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    if se == 0:
        return [round(d, 4)] * 2
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    h = stats.t.ppf(0.5 + level / 2, df) * se
    return [round(d - h, 4), round(d + h, 4)]


def _over_seeds(entries: list[dict]) -> dict:
    """Per-seed ``{"mean", "ci95"}`` summaries -> the mean over seeds, each seed's mean and interval."""
    means = [e["mean"] for e in entries]
    return {"mean": round(float(np.mean(means)), 4), "per_seed": means,
            "per_seed_ci95": [e["ci95"] for e in entries],
            "seed_spread": [round(float(min(means)), 4), round(float(max(means)), 4)]}


def _stages_over_seeds(per_seed: list[dict], headline: int) -> dict:
    """Per-seed ``{stage: map_scores}`` -> the headline stage's numbers over seeds (every key), and every
    stage's AUROC and pointing game over seeds under ``"by_stage"``."""
    h = str(headline)
    out = {"stage": headline, **{k: _over_seeds([c[h][k] for c in per_seed]) for k in _MAP_KEYS if k in per_seed[0][h]}}
    out["by_stage"] = {st: {"map_size": per_seed[0][st]["map_size"],
                            **{k: _over_seeds([c[st][k] for c in per_seed]) for k in ("auroc", "pointing")}}
                       for st in sorted(per_seed[0], key=int)}
    return out


_MAP_KEYS = ("auroc", "pointing", "deletion_drop_map", "deletion_drop_random", "deletion_map_minus_random")


def summarise(name: str, cards: dict[int, dict], baseline_cards: dict[int, dict] | None = None) -> dict:
    """One model's numbers over its seeds (``{seed: card}``): accuracy (mean, t-interval over seeds, each
    seed's accuracy and bootstrap interval over scenes), the difference to the baseline (Welch interval
    over seeds), and the headline localisation of its own map and of its Grad-CAM, per seed and averaged."""
    if not cards:
        raise ValueError(f"zoo model {name!r} has no cards")
    seeds = sorted(cards)
    accs = [cards[s]["test"]["accuracy"] for s in seeds]
    first = cards[seeds[0]]
    out = {"name": name, "block": first.get("block"), "parameters": first.get("parameters"), "seeds": seeds,
           "accuracy": {"mean": round(float(np.mean(accs)), 4), "ci95_over_seeds": t_interval(accs),
                        "per_seed": accs, "per_seed_ci95": [cards[s]["test"]["accuracy_ci95"] for s in seeds]},
           "n_test": first["test"]["n"],
           "training_seconds": [cards[s]["training"]["seconds"] for s in seeds],
           "kept_steps": [cards[s]["training"]["kept_step"] for s in seeds]}
    if baseline_cards:
        base = [baseline_cards[s]["test"]["accuracy"] for s in sorted(baseline_cards)]
        out["difference_to_baseline"] = {"mean": round(float(np.mean(accs) - np.mean(base)), 4),
                                         "ci95": welch_interval(accs, base)}
    sc = [cards[s].get("scores") for s in seeds]
    if all(sc):
        out["n_localisation_scenes"] = sc[0]["n_scenes"]
        loc = {}
        if all("map" in c for c in sc):
            loc["map"] = _stages_over_seeds([c["map"] for c in sc], sc[0]["headline_stage"])
        loc["grad_cam"] = _stages_over_seeds([c["grad_cam"] for c in sc], max(int(k) for k in sc[0]["grad_cam"]))
        out["localisation"] = loc
        if all("selectivity" in c for c in sc):
            out["selectivity"] = {st: round(float(np.mean([c["selectivity"][st] for c in sc])), 5)
                                  for st in sc[0]["selectivity"]}
    return out


def load_cards(name: str, directory=None) -> dict[int, dict]:
    """``{seed: card}`` of zoo model ``name``."""
    return {s: checkpoint.read_card(name, directory, s) for s in checkpoint.seeds(name, directory)}


def evaluate_all(names: list[str], directory=None, fresh: bool = True, jobs: int = 1, log=None) -> dict:
    """Per model, the numbers of :func:`summarise`. With ``fresh`` (default), every seed whose weights
    ship is first re-measured from its file (:func:`score_saved`); a seed whose weights are left out of
    the shipped set keeps the numbers its card recorded when it was trained and scored."""
    from .model import VARIANTS

    unknown = sorted(set(names) - set(all_models()) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown zoo model(s) {unknown}; known: {all_models() + list(VARIANTS)}")
    if fresh:
        pairs = [(n, s) for n in names for s in checkpoint.seeds(n, directory)
                 if checkpoint.paths(n, directory, s)[0].exists()]
        score_many(pairs, jobs=jobs, directory=directory, log=log or (lambda m: None))
    base = load_cards(BASELINE, directory) or None
    out = {n: summarise(n, load_cards(n, directory), base if n != BASELINE else None) for n in names}
    refs = [c["references"] for c in (base or {}).values() if "references" in c]
    if refs:
        out["_references"] = refs[0]
    return out


def format_table(results: dict) -> str:
    rows = [f"{'model':<14}{'accuracy [95% CI, seeds]':>27}{'vs baseline':>24}{'AUROC map':>11}"
            f"{'AUROC Grad-CAM':>16}{'pointing':>10}"]
    for n, r in results.items():
        if n.startswith("_"):
            continue
        a = r["accuracy"]
        d = r.get("difference_to_baseline")
        loc = r.get("localisation", {})
        m = loc.get("map", {}).get("auroc", {}).get("mean")
        g = loc.get("grad_cam", {}).get("auroc", {}).get("mean")
        p = loc.get("map", loc.get("grad_cam", {})).get("pointing", {}).get("mean")
        lo, hi = a["ci95_over_seeds"]
        row = f"{n:<14}{a['mean']:>9.3f} [{lo:.3f}, {hi:.3f}]"
        row += f"  {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d else f"{'-':>24}"
        row += f"{m:>11.3f}" if m is not None else f"{'-':>11}"
        row += f"{g:>16.3f}" if g is not None else f"{'-':>16}"
        row += f"{p:>10.3f}" if p is not None else f"{'-':>10}"
        rows.append(row)
    return "\n".join(rows)
