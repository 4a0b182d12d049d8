"""Saving and loading zoo weights: safetensors (never pickle) plus a JSON card per model.

``weights/<name>.safetensors`` holds the state dict in float16 (integer buffers unchanged) and the
model's configuration in its metadata; ``weights/<name>.json`` is the card: block, configuration, seed,
steps, device, training time, library version, test accuracy and scores. Every number on a card is
measured on the model *as loaded from the file*, so the float16 rounding is inside the measurement.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .model import ZooNet, config_json

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
BASELINE = "baseline"


class WeightsError(ValueError):
    """A weights file or card that cannot be used: missing, corrupted, or for another configuration."""


def model_name(block: str | None) -> str:
    return BASELINE if block is None else block


def paths(name: str, directory: str | Path | None = None) -> tuple[Path, Path]:
    d = Path(directory) if directory is not None else WEIGHTS_DIR
    return d / f"{name}.safetensors", d / f"{name}.json"


def save(model: ZooNet, card: dict, directory: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``model``'s weights and ``card`` (the configuration is added to it); returns both paths."""
    from safetensors.torch import save_file

    weights_path, card_path = paths(model_name(model.block), directory)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
               for k, v in model.state_dict().items()}
    save_file(tensors, str(weights_path), metadata={"config": config_json(model.config())})
    card = {"config": model.config(), **card}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return weights_path, card_path


def read_card(name: str, directory: str | Path | None = None) -> dict:
    _, card_path = paths(name, directory)
    if not card_path.exists():
        raise WeightsError(f"no card {card_path} for zoo model {name!r}; train it with "
                           f"`python -m attnlib.zoo train --block {name}`")
    try:
        return json.loads(card_path.read_text())
    except json.JSONDecodeError as e:
        raise WeightsError(f"card {card_path} is not valid JSON: {e}") from None


def load_state(model: ZooNet, weights_path: str | Path) -> ZooNet:
    """Load ``weights_path`` into ``model``, checking the stored configuration and every tensor's name
    and shape; raises :class:`WeightsError` naming the file and the mismatch."""
    from safetensors import safe_open

    weights_path = Path(weights_path)
    if not weights_path.exists():
        raise WeightsError(f"weights file {weights_path} does not exist")
    try:
        with safe_open(str(weights_path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for truncated or garbled files
        raise WeightsError(f"weights file {weights_path} is corrupted or not a safetensors file: {e}") from None
    stored = meta.get("config")
    if stored is None:
        raise WeightsError(f"weights file {weights_path} has no 'config' in its metadata")
    want = json.loads(config_json(model.config()))
    got = json.loads(stored)
    if got != want:
        diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
        raise WeightsError(f"weights file {weights_path} was saved for another configuration: "
                           + "; ".join(f"{k}: file has {a!r}, model has {b!r}" for k, (a, b) in sorted(diff.items())))
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(tensors)) if tensors[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:5]))
        raise WeightsError(f"weights file {weights_path} does not fit the model: " + ", ".join(parts))
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise WeightsError(f"weights file {weights_path} has non-finite values in {bad[:5]}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()})
    return model


def load_model(name: str | None = "baseline", directory: str | Path | None = None,
               device: str | torch.device = "cpu") -> ZooNet:
    """The zoo model for block ``name`` (``"baseline"`` or ``None`` for the model without attention),
    built from its card's configuration and loaded from its weights, in eval mode."""
    name = BASELINE if name is None else name
    card = read_card(name, directory)
    cfg = dict(card["config"])
    block = cfg.pop("block")
    if model_name(block) != name:
        raise WeightsError(f"card {paths(name, directory)[1]} is for block {block!r}, not {name!r}")
    model = ZooNet(block, **cfg)
    load_state(model, paths(name, directory)[0])
    return model.to(device).eval()


def available(directory: str | Path | None = None, *, scored: bool = True) -> list[str]:
    """Names of the models with weights and a card in ``directory`` (default: the shipped weights).
    With ``scored`` (default), only those whose card holds the test measurements (a model still being
    trained and scored is left out)."""
    d = Path(directory) if directory is not None else WEIGHTS_DIR
    names = sorted(p.stem for p in d.glob("*.json") if (d / f"{p.stem}.safetensors").exists())
    if scored:
        names = [n for n in names if "test" in read_card(n, d)]
    return names


def write_card(card: dict, name: str, directory: str | Path | None = None) -> Path:
    _, card_path = paths(name, directory)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card_path
