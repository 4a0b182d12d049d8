"""Training a zoo model: one recipe for every block, seeds, validation curves, checkpoint selection.

Recipe (the same for every block and seed): batch 64, :data:`STEPS` steps over a fixed set of
:data:`N_TRAIN` training scenes (rendered once from the training garments with data seed
:data:`DATA_SEED`), AdamW (lr 4e-3, weight decay 5e-4), 50 warm-up steps then cosine decay to 0,
cross-entropy. Every :data:`EVAL_EVERY` steps the model is scored on :data:`N_VAL` validation scenes
(held-out garments, validation background bands); the weights kept are those of the best validation
point, so the number of steps a model effectively trains comes from its own validation curve, which the
card records. The model's seed sets its initialisation and batch order.

Blocks with a softmax temperature (``set_temperature``: dynamic convolution) start at their
constructor's temperature (paper: 30) and are annealed linearly to 1 over the first 30 % of the steps
(the paper anneals over its first 10 epochs of a longer schedule), then kept at 1.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import backgrounds, fashion, scenes
from .model import ZooNet

N_TRAIN = 30000
N_VAL = 1000
N_TEST = 2000
DATA_SEED = 0
SEED = 0
SEEDS = (0, 1, 2)
STEPS = 1200
EVAL_EVERY = 100
BATCH = 64
LR = 4e-3
WEIGHT_DECAY = 5e-4
WARMUP = 50
ANNEAL_FRACTION = 0.3
def cache_root() -> Path:
    """``$ATTNLIB_CACHE`` or ``~/.cache/attnlib``: the zoo's caches (scenes here, ONNX graphs in
    :mod:`attnlib.zoo.onnx_export`) live below it."""
    return Path(os.environ.get("ATTNLIB_CACHE") or Path.home() / ".cache" / "attnlib")


CACHE_DIR = cache_root() / "scenes"


def _source_hash() -> str:
    h = hashlib.sha256()
    for mod in (fashion, backgrounds, scenes):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:12]


#: a hash of the scene generator's source as this process imported it, so cached scenes never outlive
#: a change to it (read once: a process that imported older code must not file its scenes under the
#: newer code's name)
_GENERATOR_VERSION = _source_hash()


def generator_version() -> str:
    """The hash of the scene generator's source that this process runs."""
    return _GENERATOR_VERSION


#: the scene recipe's version: raise it with any change to what a scene looks like
SCENES_VERSION = "fashion-clutter-3"


def data_checksum() -> str:
    """One hash of the data set's released checksums, the validation split and the scene recipe's
    version: what a card records, so weights trained on other data are refused
    (:func:`attnlib.zoo.checkpoint.load_model`)."""
    h = hashlib.sha256("".join(f"{k}:{v};" for k, v in sorted(fashion.CHECKSUMS.items())).encode())
    h.update(f"{fashion.N_VAL}:{fashion.VAL_SEED}:{SCENES_VERSION}".encode())
    return h.hexdigest()[:16]


_MEMORY: dict = {}


def scene_set(split: str, n: int, seed: int = DATA_SEED, cache_dir: str | Path | None = CACHE_DIR) -> scenes.SceneSet:
    """Scenes ``0 .. n-1`` of ``split``, kept in memory and (with ``cache_dir``) in an ``.npz`` file."""
    key = (split, n, seed, generator_version())
    if key in _MEMORY:
        return _MEMORY[key]
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"scenes-{split}-{n}-{seed}-{key[3]}.npz"
        if path.exists():
            try:
                z = np.load(path)
                s = scenes.SceneSet(split, seed, *(z[f] for f in scenes._ARRAYS))
                _MEMORY[key] = s
                return s
            except Exception:  # a truncated cache file is rendered again
                pass
    s = scenes.make_scenes(split, n, seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **{f: getattr(s, f) for f in scenes._ARRAYS})
        tmp.replace(path)
    _MEMORY[key] = s
    return s


def _temperature_modules(model: torch.nn.Module):
    return [m for m in model.modules() if hasattr(m, "set_temperature") and hasattr(m, "temperature")]


def temperature_at(step: int, steps: int, start: float, fraction: float = ANNEAL_FRACTION) -> float:
    """Linear annealing from ``start`` to 1 over the first ``fraction`` of ``steps``, then 1."""
    end = max(1, round(fraction * steps))
    return 1.0 + (start - 1.0) * max(0.0, 1.0 - step / end)


def lr_factor(step: int, steps: int, warmup: int = WARMUP) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


@torch.no_grad()
def _val_accuracy(model, data: scenes.SceneSet, device, amp: bool) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(data), 250):
        x, y = data.tensors(slice(i, i + 250), device=device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
            correct += int((model(x).argmax(1) == y).sum())
    model.train()
    return correct / len(data)


def _check_int(name: str, v, minimum: int) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"train: {name} must be an int >= {minimum}, got {v!r}")


def train(block: str | None, *, steps: int = STEPS, batch_size: int = BATCH, lr: float = LR,
          weight_decay: float = WEIGHT_DECAY, n_train: int = N_TRAIN, seed: int = SEED,
          eval_every: int = EVAL_EVERY, n_val: int = N_VAL,
          device: str | torch.device | None = None, progress: bool = True, cache_dir=CACHE_DIR,
          model_kwargs: dict | None = None) -> tuple[ZooNet, dict]:
    """Train the zoo model for ``block`` (``None``: the baseline) with model seed ``seed``.

    Returns ``(model, info)``: the weights of the best validation point, and ``info`` with the recipe,
    the seconds, the device, the validation curve ``[[step, val accuracy, mean train loss], ...]`` and
    the step kept."""
    for name, v, lo in (("steps", steps, 1), ("batch_size", batch_size, 1), ("n_train", n_train, 1),
                        ("seed", seed, 0), ("eval_every", eval_every, 1), ("n_val", n_val, 1)):
        _check_int(name, v, lo)
    from .. import devices

    device = torch.device(device) if device is not None else devices.device()
    data = scene_set("train", n_train, DATA_SEED, cache_dir)
    val = scene_set("val", n_val, DATA_SEED, cache_dir)
    torch.manual_seed(seed)
    model = ZooNet(block, **(model_kwargs or {})).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps))
    temp_mods = _temperature_modules(model)
    temp_start = [float(m.temperature) for m in temp_mods]
    g = torch.Generator().manual_seed(seed)
    images = torch.from_numpy(data.images)
    labels = torch.from_numpy(data.labels)
    amp = device.type == "cuda"
    losses, curve = [], []
    best = (-1.0, 0, None)
    t0 = time.perf_counter()
    bar = range(steps)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc=f"train {block or 'baseline'} seed {seed}", leave=False)
    for step in bar:
        for m, t in zip(temp_mods, temp_start):
            m.set_temperature(temperature_at(step, steps, t))
        idx = torch.randint(len(labels), (batch_size,), generator=g)
        x = scenes.normalise(images[idx], device=device)
        y = labels[idx].to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            acc = _val_accuracy(model, val, device, amp)
            curve.append([step + 1, round(acc, 4), round(float(np.mean(losses[-eval_every:])), 4)])
            if acc > best[0]:
                best = (acc, step + 1, copy.deepcopy(model.state_dict()))
            if progress:
                bar.set_postfix(loss=f"{curve[-1][2]:.3f}", val=f"{acc:.3f}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    model.load_state_dict(best[2])
    info = {"steps": steps, "batch_size": batch_size, "n_train": n_train, "data_seed": DATA_SEED,
            "seed": seed, "lr": lr, "weight_decay": weight_decay, "eval_every": eval_every, "n_val": n_val,
            "seconds": round(seconds, 1), "device": _device_name(device), "amp": amp,
            "threads": torch.get_num_threads(), "val_curve": curve, "kept_step": best[1],
            "best_val_accuracy": round(best[0], 4), "final_train_loss": curve[-1][2]}
    return model.eval(), info


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s))"
