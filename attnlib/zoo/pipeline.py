"""Train, save, reload and score zoo models: what ``python -m attnlib.zoo`` runs."""

from __future__ import annotations

import time

import torch

import attnlib

from . import checkpoint, evaluate, scores, train
from .checkpoint import BASELINE


def all_models() -> list[str]:
    """The baseline, then every registered block, in registration order."""
    return [BASELINE, *attnlib.list_blocks()]


def test_set():
    return train.scene_set("test", train.N_TEST, train.SEED)


def val_set():
    return train.scene_set("val", train.N_VAL, train.SEED)


_REFERENCES: dict = {}


def _grad_cam_references(directory, data) -> dict | None:
    """Grad-CAM localisation of the baseline per stage on ``data`` (computed once per baseline file)."""
    path = checkpoint.paths(BASELINE, directory)[0]
    if not path.exists():
        return None
    key = (str(path), path.stat().st_mtime_ns, id(data))
    if key not in _REFERENCES:
        try:
            baseline = checkpoint.load_model(BASELINE, directory)
        except checkpoint.WeightsError:
            return None
        _REFERENCES[key] = scores.baseline_scores(baseline, data)["grad_cam"]
    return _REFERENCES[key]


def measure(model, name: str, directory=None) -> dict:
    """Test accuracy and scores of ``model`` (as loaded from its file) on the fixed test scenes."""
    data = test_set()
    correct = (evaluate.predict(model, data) == torch.from_numpy(data.labels)).double().numpy()
    lo, hi = scores.bootstrap_ci(correct)
    result = {"test": {"split": "test", "n": len(data), "seed": train.SEED,
                       "accuracy": round(float(correct.mean()), 4), "accuracy_ci95": [round(lo, 4), round(hi, 4)]}}
    result["val_accuracy"] = round(evaluate.accuracy(model, val_set()), 4)
    if name != BASELINE:
        result["scores"] = scores.model_scores(model, data, _grad_cam_references(directory, data), val_set())
    else:
        result["scores"] = scores.baseline_scores(model, data)
    return result


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

    block = None if name == BASELINE else name
    model, info = train.train(block, seed=seed, steps=steps, device=device, progress=progress,
                              n_train=n_train, batch_size=batch_size)
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
    order = sorted(names, key=lambda n: (n not in _SLOW, _SLOW.index(n) if n in _SLOW else 0))
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


def score_saved(name: str, directory=None) -> dict:
    """Reload the saved model ``name``, measure it on the test scenes, write the numbers into its card."""
    loaded = checkpoint.load_model(name, directory)
    card = checkpoint.read_card(name, directory)
    card.update(measure(loaded, name, directory))
    card["file_bytes"] = checkpoint.paths(name, directory)[0].stat().st_size
    checkpoint.write_card(card, name, directory)
    return card


def evaluate_model(name: str, directory=None, device="cpu") -> dict:
    """Re-measure the shipped model ``name`` on freshly rendered test scenes, next to its card."""
    card = checkpoint.read_card(name, directory)
    model = checkpoint.load_model(name, directory, device=device)
    fresh = measure(model, name, directory)
    return {"name": name, "block": card.get("block"), "parameters": card.get("parameters"),
            "device": card.get("training", {}).get("device"),
            "training_seconds": card.get("training", {}).get("seconds"),
            "card_test_accuracy": card.get("test", {}).get("accuracy"), **fresh}


def format_table(results: dict) -> str:
    rows = [f"{'model':<14}{'acc':>7}{'card':>7}{'localisation (headline)':>26}  {'selectivity per stage':<24}"
            f"{'params':>9}"]
    for n, r in results.items():
        loc = r.get("scores", {}).get("localisation_headline")
        loc_s = f"{loc['mean']:.2f} [{loc['ci95'][0]:.2f}, {loc['ci95'][1]:.2f}]" if loc else "-"
        sel = r.get("scores", {}).get("selectivity")
        sel_s = " ".join(f"{v:.3f}" for v in sel.values()) if sel else "-"
        rows.append(f"{n:<14}{r['test']['accuracy']:>7.3f}{(r.get('card_test_accuracy') or 0):>7.3f}"
                    f"{loc_s:>26}  {sel_s:<24}{r.get('parameters') or 0:>9}")
    return "\n".join(rows)


def seed_study(names: list[str], seeds=(1, 2), path=None) -> dict:
    """Retrain ``names`` with other seeds (other training scenes, initialisation and batch order; same
    recipe) and measure each on the fixed test scenes, to show how much a single run's accuracy can
    move. Writes ``weights/seed_study.json`` (or ``path``) with the shipped seed-0 accuracy beside them."""
    import json

    data = test_set()
    out: dict = {"recipe": f"{train.STEPS} steps, batch {train.BATCH}, as the shipped weights", "models": {}}
    for name in names:
        row = {"0": checkpoint.read_card(name)["test"]["accuracy"]}
        for seed in seeds:
            model, _ = train.train(None if name == BASELINE else name, seed=seed, progress=False)
            row[str(seed)] = round(evaluate.accuracy(model, data), 4)
        out["models"][name] = row
    path = checkpoint.WEIGHTS_DIR / "seed_study.json" if path is None else path
    path.write_text(json.dumps(out, indent=2) + "\n")
    return out
