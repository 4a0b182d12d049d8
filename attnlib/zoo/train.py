"""Training a zoo model: fixed seeds, AdamW with warm-up and cosine decay, AMP (bfloat16) on CUDA, and the
temperature schedule of dynamic convolution.

Recipe (the same for every block): batch 64, ``steps`` steps (default 500) over a fixed set of
12,000 training scenes, AdamW (lr 3e-3, weight decay 5e-4), 50 warm-up steps then cosine decay to 0,
cross-entropy. Blocks with a softmax temperature (``set_temperature``: dynamic convolution) start at
their constructor's temperature (paper: 30) and are annealed linearly to 1 over the first 30 % of the
steps (the paper anneals over its first 10 epochs of a longer schedule), then kept at 1.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import objects, scenes
from .model import ZooNet

N_TRAIN = 12000
N_VAL = 1000
N_TEST = 1000
SEED = 0
STEPS = 500
BATCH = 64
LR = 3e-3
WEIGHT_DECAY = 5e-4
WARMUP = 50
ANNEAL_FRACTION = 0.3


def _generator_version() -> str:
    """A hash of the scene generator's source, so cached scenes never outlive a change to it."""
    h = hashlib.sha256()
    for mod in (objects, scenes):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:12]


_MEMORY: dict = {}


def scene_set(split: str, n: int, seed: int = SEED, cache_dir: str | Path | None = None) -> scenes.SceneSet:
    """Scenes ``0 .. n-1`` of ``split``, kept in memory and (with ``cache_dir``) in an ``.npz`` file."""
    key = (split, n, seed, _generator_version())
    if key in _MEMORY:
        return _MEMORY[key]
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"scenes-{split}-{n}-{seed}-{key[3]}.npz"
        if path.exists():
            z = np.load(path)
            s = scenes.SceneSet(split, seed, z["images"], z["labels"], z["boxes"], z["scales"])
            _MEMORY[key] = s
            return s
    s = scenes.make_scenes(split, n, seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, images=s.images, labels=s.labels, boxes=s.boxes, scales=s.scales)
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


def train(block: str | None, *, steps: int = STEPS, batch_size: int = BATCH, lr: float = LR,
          weight_decay: float = WEIGHT_DECAY, n_train: int = N_TRAIN, seed: int = SEED,
          device: str | torch.device | None = None, progress: bool = True, cache_dir=None,
          model_kwargs: dict | None = None) -> tuple[ZooNet, dict]:
    """Train the zoo model for ``block`` (``None``: the baseline). Returns ``(model, info)`` with
    ``info`` = steps, batch size, seconds, device, final training loss (mean of the last 50 steps)."""
    for name, v in (("steps", steps), ("batch_size", batch_size), ("n_train", n_train)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"train: {name} must be a positive int, got {v!r}")
    from .. import devices

    device = torch.device(device) if device is not None else devices.device()
    data = scene_set("train", n_train, seed, cache_dir)
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
    losses = []
    t0 = time.perf_counter()
    bar = range(steps)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc=f"train {block or 'baseline'}", leave=False)
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
        if progress and step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    info = {"steps": steps, "batch_size": batch_size, "n_train": n_train, "seed": seed,
            "lr": lr, "weight_decay": weight_decay, "seconds": round(seconds, 1),
            "device": _device_name(device), "final_train_loss": round(float(np.mean(losses[-50:])), 4),
            "threads": torch.get_num_threads()}
    return model.eval(), info


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s))"
