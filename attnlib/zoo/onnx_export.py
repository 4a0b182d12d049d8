"""The zoo models as ONNX graphs for the live pages: logits plus the block's maps, for onnxruntime-web.

Each exported graph takes one RGB image ``image`` ``(1, 3, H, W)`` with values in [0, 1] (H and W are
free; the pages feed 64 × 64) and standardises it itself (:func:`attnlib.zoo.scenes.normalise`), so a
page only scales pixels by 1/255. Its outputs:

- ``logits`` ``(1, num_classes)``;
- ``map<s>`` ``(1, h, w)`` for every stage ``s`` (0-based) whose block has a map, the tensor
  :func:`attnlib.zoo.scores.attention_maps` scores (:data:`attnlib.zoo.scores.SPATIAL`; a channel mean);
  for Encoding all K codeword maps ``(1, K, h, w)`` (the card names the one chosen on validation scenes);
- ``rows<s>`` ``(1, N, h, w)`` for Non-local: every query's attention row on the key grid (the page shows
  the row of the position the reader clicks; ``map<s>`` is absent);
- ``gate<s>`` ``(1, D)`` for every stage whose block has a channel or kernel gate
  (:data:`attnlib.zoo.scores.GATES`).

Exporter pitfalls handled here (``shared/reference/site.md``): ``AdaptiveAvgPool2d((None, 1))`` with a free
H and W exports as a fixed-kernel ``AveragePool`` (silently wrong at another size) or, with torch 2.13's
exporters, not at all; so whole-axis pools are swapped for means before export. The batch is fixed at 1
(dynamic convolution and DKA use one conv with ``groups = B·G``). The parity tests
(``tests/test_onnx.py``) run every graph at two input sizes.

Exported files are cached under ``$ATTNLIB_CACHE`` (default ``~/.cache/attnlib``) keyed on the weights'
SHA-256, the sources the graph is computed from (this file, the zoo model, the blocks, the capture hooks,
:mod:`attnlib.zoo.scores`) and the versions of torch and onnx, so a rebuild of the book re-exports
nothing unless one of them changed.

    python -m attnlib.zoo export-onnx --out DIR      # every zoo model (seed 0) + manifest.json
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from . import checkpoint, scores
from .fashion import CLASSES
from .model import ZooNet
from .scenes import standardise
from .train import cache_root

#: the exporter used by :func:`export_model`. Measured on the 2-core machine: the TorchScript exporter
#: (``dynamo=False``) writes 18 of the 21 zoo graphs in 3 s but cannot export Non-local (``aten::mT``),
#: dynamic convolution or DKA ("convolution for kernel of unknown shape"); ``dynamo=True`` exports all 21
#: in 72 s with 2 processes (2-17 s per model), once: the graphs are cached.
DYNAMO = True
OPSET = 18
#: no graph optimisation at export: it folds BatchNorm into the convolutions, whose folded weights are no
#: longer float16 numbers; unfolded, every weight is one (the shipped weights are float16), so storing the
#: initializers as float16 loses nothing. onnxruntime folds BatchNorm itself when it loads the graph.
OPTIMIZE = False
#: the side of the images the pages feed the graphs
SIZE = 64


class _AxisPool(nn.Module):
    """A whole-axis adaptive pool (``AdaptiveAvgPool2d((None, 1))``, ``((1, None))``, ``(1, 1)`` and their max
    twins) as a mean or max over ``dims``, which exports correctly at every input size."""

    def __init__(self, dims: tuple[int, ...], op: str):
        super().__init__()
        self.dims, self.op = dims, op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "max":
            return x.amax(self.dims, keepdim=True)
        return x.mean(self.dims, keepdim=True)


#: the adaptive pools' output sizes that pool whole axes, and the axes they pool
_POOLED_AXES = {(None, 1): (3,), (1, None): (2,), (1, 1): (2, 3)}


def _swap_axis_pools(model: nn.Module) -> int:
    """Replace whole-axis adaptive pools by :class:`_AxisPool`; returns how many were swapped."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                size = child.output_size
                size = (size, size) if isinstance(size, int) else tuple(size)
                if size in _POOLED_AXES:
                    op = "max" if isinstance(child, nn.AdaptiveMaxPool2d) else "avg"
                    setattr(parent, name, _AxisPool(_POOLED_AXES[size], op))
                    swapped += 1
    return swapped


def _stage(module_name: str, model: ZooNet) -> int:
    s = scores._stage_of(module_name)
    return s if s >= 0 else len(model.widths) - 1


class LiveNet(nn.Module):
    """A zoo model with its maps as extra outputs (see the module docstring); batch 1."""

    def __init__(self, model: ZooNet):
        super().__init__()
        self.model = model
        self.block = model.block
        self.names = list(model.block_modules())
        self.output_names = ["logits"] + self._map_names()

    def _map_names(self) -> list[str]:
        with torch.no_grad():
            out = self._outputs(torch.rand(1, 3, SIZE, SIZE))
        return [k for k in out if k != "logits"]

    def _outputs(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        import attnlib

        x = standardise(image)
        out: dict[str, torch.Tensor] = {}
        if self.block == "nonlocal":
            rows: dict[str, torch.Tensor] = {}
            blocks = self.model.block_modules()

            def hook(name):
                def f(module, args):
                    q, k, _, grid = module.embed(args[0])         # (1, 1, N, d), (1, 1, N', d)
                    a = module.attention_weights(q, k)           # every query's row: (1, 1, N, N')
                    rows[name] = a.reshape(a.shape[0], q.shape[2], grid[0], grid[1])  # (1, N, h', w')
                return f

            handles = [m.register_forward_pre_hook(hook(n)) for n, m in blocks.items()]
            try:
                out["logits"] = self.model(x)
            finally:
                for h in handles:
                    h.remove()
            for n in self.names:
                out[f"rows{_stage(n, self.model)}"] = rows[n]
            return out
        if self.block is None:
            out["logits"] = self.model(x)
            return out
        with attnlib.capture(self.model) as maps:
            out["logits"] = self.model(x)
        for n in self.names:
            s = _stage(n, self.model)
            m = scores.spatial_from_capture(self.block, maps.get(n, {}))
            if m is not None:
                out[f"map{s}"] = m
            g = scores.gates_from_capture(self.block, maps.get(n, {}))
            if g is not None:
                out[f"gate{s}"] = g
        return out

    def forward(self, image: torch.Tensor):
        out = self._outputs(image)
        return tuple(out[k] for k in self.output_names)


def models() -> list[str]:
    """Every zoo model with shipped seed-0 weights (the baseline, the blocks and their variants)."""
    return checkpoint.available()


def _graph_sources() -> list[Path]:
    """The source files a graph is computed from: this exporter, the zoo model, the blocks, the capture
    hooks, the map/gate extraction (:mod:`attnlib.zoo.scores`) and the input standardisation
    (:func:`attnlib.zoo.scenes.standardise`). A change in any of them (a fixed block, another map) changes
    the graph with the same weights, so it is part of the cache key."""
    pkg = Path(__file__).resolve().parent.parent
    files = [Path(__file__).resolve(), pkg / "zoo" / "model.py", pkg / "zoo" / "scores.py", pkg / "zoo" / "scenes.py",
             pkg / "zoo" / "checkpoint.py", pkg / "capture.py", pkg / "registry.py"]
    return files + sorted((pkg / "blocks").glob("*.py"))


def _source_digest() -> str:
    h = hashlib.sha256()
    for f in _graph_sources():
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    import onnx

    h.update(f"torch {torch.__version__} onnx {onnx.__version__} dynamo {DYNAMO} opset {OPSET}".encode())
    return h.hexdigest()[:16]


def cache_key(name: str, directory=None) -> str:
    """The cache key of model ``name``'s graph: its weights' SHA-256 and the digest of the sources the graph
    is computed from (:func:`_graph_sources`) and of the exporter's versions."""
    weights = checkpoint.read_card(name, directory)["weights_sha256"]
    return hashlib.sha256(f"{name}|{weights}|{_source_digest()}".encode()).hexdigest()[:24]


def _shrink_fp16(path: Path) -> None:
    """Store the graph's float32 initializers that are float16 numbers (every weight of a zoo model: the
    shipped weights are float16) as float16, each followed by a Cast to float32: lossless, half the size.
    Inputs, outputs and arithmetic stay float32; other initializers stay as they are."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(path))
    g = m.graph
    new_inits, casts = [], []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size >= 16 and np.array_equal(arr.astype(np.float16).astype(np.float32), arr):
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "__fp16")
            new_inits.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                          name=init.name + "__cast"))
        else:
            new_inits.append(init)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.save(m, str(path))


def export_model(name: str, path: str | Path, directory=None, *, dynamo: bool | None = None,
                 fp16: bool = False) -> dict:
    """Export zoo model ``name`` (seed 0) to ``path``; returns its manifest entry (outputs, sizes)."""
    import logging

    dynamo = DYNAMO if dynamo is None else dynamo
    # the exporter logs one warning per torchvision operator it cannot register (torchvision is not needed)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = checkpoint.load_model(name, directory)
    _swap_axis_pools(model)
    net = LiveNet(model).eval()
    example = torch.rand(1, 3, SIZE, SIZE)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = {"image": {2: torch.export.Dim("H", min=32, max=512), 3: torch.export.Dim("W", min=32, max=512)}}
            torch.onnx.export(net, (example,), str(path), dynamo=True, opset_version=OPSET,
                              input_names=["image"], output_names=net.output_names, dynamic_shapes=dims,
                              external_data=False, verbose=False, optimize=OPTIMIZE)
        else:
            axes = {"image": {2: "H", 3: "W"}}
            for o in net.output_names[1:]:
                axes[o] = {i: f"{o}_{i}" for i in range(1, 4)}
            torch.onnx.export(net, (example,), str(path), dynamo=False, opset_version=OPSET,
                              input_names=["image"], output_names=net.output_names, dynamic_axes=axes,
                              do_constant_folding=True)
    if fp16:
        _shrink_fp16(path)
    seconds = time.perf_counter() - t0
    entry = {"name": name, "block": model.block, "file": path.name, "bytes": path.stat().st_size,
             "outputs": net.output_names, "export_seconds": round(seconds, 2)}
    return _with_card(entry, name, directory)


def _with_card(entry: dict, name: str, directory=None) -> dict:
    """``entry`` with what the page reads from model ``name``'s card (the headline stage, Encoding's codeword
    chosen on validation scenes), read from the card now: the cache key holds the weights' SHA-256, not the
    card's scores, so a cached entry's copy of them could be stale."""
    entry = {k: v for k, v in entry.items() if k not in ("headline_stage", "codeword")}
    sc = checkpoint.read_card(name, directory).get("scores", {})
    if "headline_stage" in sc:
        entry["headline_stage"] = sc["headline_stage"]
        chosen = sc.get("map", {}).get(str(sc["headline_stage"]), {}).get("map_chosen_on_validation")
        if chosen is not None:
            entry["codeword"] = chosen
    return entry


def _cached(name: str, directory, fp16: bool) -> Path:
    return cache_root() / "onnx" / (cache_key(name, directory) + ("-fp16" if fp16 else ""))


def _export_into_cache(name: str, directory, fp16: bool) -> dict:
    """Export ``name`` into its cache folder (written under a temporary name, then renamed)."""
    cached = _cached(name, directory, fp16)
    tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    entry = export_model(name, tmp / f"{name}.onnx", directory, fp16=fp16)
    (tmp / "entry.json").write_text(json.dumps(entry))
    if cached.exists() and not (cached / "entry.json").exists():
        shutil.rmtree(cached, ignore_errors=True)  # an export that was interrupted
    try:
        tmp.rename(cached)
    except OSError:
        if not (cached / "entry.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another process (a second test worker) cached it first
    return entry


def _worker(name: str, directory, fp16: bool) -> dict:
    torch.set_num_threads(1)  # one export per core
    return _export_into_cache(name, directory, fp16)


def export_all(out: str | Path, names: list[str] | None = None, directory=None, *, fp16: bool = True,
               use_cache: bool = True, jobs: int = 1, log=None) -> dict:
    """Export ``names`` (default: every zoo model) into ``out`` with ``manifest.json``; a graph whose cache
    key matches is copied from the cache, the others are exported (``jobs`` processes) and cached.
    Returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = models() if names is None else list(names)
    todo = [n for n in names if not (use_cache and (_cached(n, directory, fp16) / "entry.json").exists())]
    t0 = time.perf_counter()
    if todo and jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=mp.get_context("spawn")) as pool:
            for entry in pool.map(_worker, todo, [directory] * len(todo), [fp16] * len(todo)):
                if log:
                    log(f"exported {entry['name']}: {entry['bytes'] / 1e6:.2f} MB in {entry['export_seconds']:.1f} s")
    else:
        for n in todo:
            entry = _export_into_cache(n, directory, fp16)
            if log:
                log(f"exported {n}: {entry['bytes'] / 1e6:.2f} MB in {entry['export_seconds']:.1f} s")
    entries = []
    for name in names:
        cached = _cached(name, directory, fp16)
        entry = _with_card(json.loads((cached / "entry.json").read_text()), name, directory)
        shutil.copyfile(cached / entry["file"], out / entry["file"])
        entries.append(entry)
    manifest = {"classes": list(CLASSES), "size": SIZE, "opset": OPSET, "fp16_weights": fp16,
                "models": {e["name"]: e for e in entries}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if log:
        total = sum(e["bytes"] for e in entries)
        log(f"{len(entries)} graphs ({len(todo)} exported, {len(entries) - len(todo)} from the cache "
            f"{cache_root() / 'onnx'}), {total / 1e6:.1f} MB, in {time.perf_counter() - t0:.1f} s")
    return manifest


def cached_graph(name: str, directory=None, *, fp16: bool = True) -> Path:
    """The path of model ``name``'s graph in the cache, exporting it first when the cache lacks it."""
    cached = _cached(name, directory, fp16)
    if not (cached / "entry.json").exists():
        _export_into_cache(name, directory, fp16)
    return cached / f"{name}.onnx"
