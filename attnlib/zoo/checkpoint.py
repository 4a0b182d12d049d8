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

from .fashion import sha256
from .model import ZooNet, config_json

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
BASELINE = "baseline"


class WeightsError(ValueError):
    """A weights file or card that cannot be used: missing, corrupted, or for another configuration."""


def model_name(block: str | None, variant: str | None = None) -> str:
    return variant or (BASELINE if block is None else block)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return seed


def stem(name: str, seed: int = 0) -> str:
    """File stem of zoo model ``name`` trained with ``seed``: ``name`` for seed 0, ``name.seed<k>`` else."""
    return name if _check_seed(seed) == 0 else f"{name}.seed{seed}"


def paths(name: str, directory: str | Path | None = None, seed: int = 0) -> tuple[Path, Path]:
    d = Path(directory) if directory is not None else WEIGHTS_DIR
    return d / f"{stem(name, seed)}.safetensors", d / f"{stem(name, seed)}.json"


def save(model: ZooNet, card: dict, directory: str | Path | None = None, seed: int = 0) -> tuple[Path, Path]:
    """Write ``model``'s weights and ``card`` (the configuration is added to it); returns both paths."""
    from safetensors.torch import save_file

    weights_path, card_path = paths(model_name(model.block, card.get("name")), directory, seed)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
               for k, v in model.state_dict().items()}
    save_file(tensors, str(weights_path), metadata={"config": config_json(model.config())})
    card = {"config": model.config(), **card, "weights_sha256": sha256(weights_path)}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return weights_path, card_path


def read_card(name: str, directory: str | Path | None = None, seed: int = 0) -> dict:
    _, card_path = paths(name, directory, seed)
    if not card_path.exists():
        raise WeightsError(f"no card {card_path} for zoo model {name!r}; train it with "
                           f"`python -m attnlib.zoo train --block {name}`")
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"card {card_path} is not valid JSON: {e}") from None
    if not isinstance(card, dict):
        raise WeightsError(f"card {card_path} holds a JSON {type(card).__name__}, expected an object")
    return card


#: the configuration fields a card and a weights file must hold, and their JSON types
_CONFIG_FIELDS = {"block": (str, type(None)), "widths": list, "stages": list, "num_classes": int,
                  "block_kwargs": dict}


def check_config(config, where: str) -> dict:
    """``config`` if it is a well-formed model configuration; else :class:`WeightsError` naming ``where``
    and the field."""
    if not isinstance(config, dict):
        raise WeightsError(f"{where}: 'config' must be an object, got {type(config).__name__}")
    for field, kinds in _CONFIG_FIELDS.items():
        if field not in config:
            raise WeightsError(f"{where}: 'config' has no field {field!r}")
        value = config[field]
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise WeightsError(f"{where}: 'config.{field}' has the wrong type ({type(value).__name__})")
    for field in ("widths", "stages"):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in config[field]):
            raise WeightsError(f"{where}: 'config.{field}' must be a list of ints, got {config[field]!r}")
    return config




def _with_new_defaults(stored: dict, want: dict) -> dict:
    """``stored`` with the block options that the library added after the file was saved, at their
    defaults: an option the file does not name is one its weights were trained without, and a new option
    keeps the old behaviour at its default. Only options absent from the file are filled in; every value
    the file records must still match."""
    from .model import resolved_kwargs

    block = stored.get("block")
    if block is None or not isinstance(stored.get("block_kwargs"), dict):
        return stored
    defaults = resolved_kwargs(block, {})
    filled = dict(stored["block_kwargs"])
    for k, v in defaults.items():
        if k not in filled and k in want.get("block_kwargs", {}):
            filled[k] = v
    return {**stored, "block_kwargs": filled}


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
    try:
        stored = json.loads(stored)
    except json.JSONDecodeError as e:
        raise WeightsError(f"weights file {weights_path}: metadata 'config' is not valid JSON: {e}") from None
    check_config(stored, f"weights file {weights_path} (metadata)")
    want = json.loads(config_json(model.config()))
    got = _with_new_defaults(stored, want)
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
    # floating tensors are stored in float16 (see save); integer buffers keep the model's dtype
    wrong = [f"{k}: {v.dtype} (expected {torch.float16 if own[k].is_floating_point() else own[k].dtype})"
             for k, v in tensors.items()
             if (own[k].is_floating_point() and v.dtype != torch.float16)
             or (not own[k].is_floating_point() and v.dtype != own[k].dtype)]
    if wrong:
        raise WeightsError(f"weights file {weights_path} has tensors of the wrong dtype: " + "; ".join(wrong[:5]))
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise WeightsError(f"weights file {weights_path} has non-finite values in {bad[:5]}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()})
    return model


def load_model(name: str | None = "baseline", directory: str | Path | None = None,
               device: str | torch.device = "cpu", seed: int = 0) -> ZooNet:
    """The zoo model for block ``name`` (``"baseline"`` or ``None`` for the model without attention)
    trained with ``seed``, built from its card's configuration and loaded from its weights, in eval mode.

    Raises :class:`WeightsError` when the card records other data (another data checksum: other
    garments, splits or scene generator) than this library renders, or the file does not fit."""
    from .train import data_checksum

    name = BASELINE if name is None else name
    card = read_card(name, directory, seed)
    weights_path, card_path = paths(name, directory, seed)
    cfg = dict(check_config(card.get("config"), f"card {card_path}"))
    block = cfg.pop("block")
    for field in ("training", "data"):
        if not isinstance(card.get(field, {}), dict):
            raise WeightsError(f"card {card_path}: '{field}' must be an object, got {type(card[field]).__name__}")
    recorded_sha = card.get("weights_sha256")
    if not isinstance(recorded_sha, str):
        raise WeightsError(f"card {card_path} has no 'weights_sha256' (the checksum of its weights file)")
    if weights_path.exists() and sha256(weights_path) != recorded_sha:
        raise WeightsError(f"weights file {weights_path} does not match the checksum its card {card_path} "
                           f"records (weights_sha256): the file was changed or corrupted")
    from .model import VARIANTS

    if model_name(block) != name and VARIANTS.get(name, (None,))[0] != block:
        raise WeightsError(f"card {card_path} is for block {block!r}, not {name!r}")
    recorded = card.get("data", {}).get("checksum")
    if recorded != data_checksum():
        raise WeightsError(f"card {card_path} records data checksum {recorded!r}, but this library's data "
                           f"and scene generator give {data_checksum()!r}: the weights were trained on other "
                           f"scenes; retrain with `python -m attnlib.zoo train --block {name}`")
    if card.get("training", {}).get("seed", seed) != seed:
        raise WeightsError(f"card {card_path} records seed {card['training']['seed']}, not {seed}")
    model = ZooNet(block, **cfg)
    load_state(model, paths(name, directory, seed)[0])
    return model.to(device).eval()


def available(directory: str | Path | None = None, *, scored: bool = True) -> list[str]:
    """Names of the models with weights and a card in ``directory`` (default: the shipped weights).
    With ``scored`` (default), only those whose card holds the test measurements (a model still being
    trained and scored is left out)."""
    d = Path(directory) if directory is not None else WEIGHTS_DIR
    names = sorted(p.stem for p in d.glob("*.json")
                   if (d / f"{p.stem}.safetensors").exists() and ".seed" not in p.stem)
    if scored:
        names = [n for n in names if "test" in read_card(n, d)]
    return names


def seeds(name: str, directory: str | Path | None = None) -> list[int]:
    """The seeds of zoo model ``name`` that have a card in ``directory`` (weights may be left out of the
    shipped set for seeds other than 0: their card still records the numbers measured on them)."""
    d = Path(directory) if directory is not None else WEIGHTS_DIR
    found = [0] if (d / f"{name}.json").exists() else []
    for p in d.glob(f"{name}.seed*.json"):
        tail = p.stem[len(name) + len(".seed"):]
        if tail.isdigit():
            found.append(int(tail))
    return sorted(found)


def write_card(card: dict, name: str, directory: str | Path | None = None, seed: int = 0) -> Path:
    _, card_path = paths(name, directory, seed)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card_path
