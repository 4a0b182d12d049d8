"""Reading attention tensors out of any model, without changing the model's code.

Usage::

    with attnlib.capture(model) as maps:
        model(x)
    maps["layer2.0.se"]["gate"]        # (B, C, 1, 1)

``maps`` is ``{module name: {tensor name: tensor}}``. Module names are those of
``model.named_modules()``; the model itself, when it is a block, is named ``""``. Each block's
docstring lists the tensors it records (its "Captured:" section). When the model runs several times
inside one ``with``, each block keeps the tensors of its latest call.

While the context is open every attnlib block in the model holds a reference to a small sink; on
exit the reference is deleted, so no hook or attribute remains and, outside a capture, the blocks keep
nothing.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class CaptureSink:
    """What a block sees while it is being captured: where to store tensors, and the options."""

    __slots__ = ("_maps", "_name", "queries", "detach")

    def __init__(self, maps: dict, name: str, queries: Sequence[tuple[float, float]] | None, detach: bool):
        self._maps = maps
        self._name = name
        self.queries = queries
        self.detach = detach

    def store(self, key: str, tensor: torch.Tensor) -> None:
        if self.detach:
            tensor = tensor.detach()
        self._maps.setdefault(self._name, {})[key] = tensor


class capture:  # noqa: N801  (used as a context manager, like torch.no_grad)
    """Context manager that records the attention tensors of every attnlib block inside ``model``.

    Args:
        model: any ``nn.Module``; the attnlib blocks found among ``model.modules()`` are captured.
        queries: for blocks whose map depends on a query position (Non-local), the query positions as
            ``(row, col)`` fractions of the map in ``[0, 1]``; ``None`` means the centre ``(0.5, 0.5)``.
        detach: store detached tensors (default). ``False`` keeps the autograd graph, e.g. to
            differentiate a score through a map.

    Returns (from ``__enter__``): the dict ``{module name: {tensor name: tensor}}``, filled as the
    model runs.
    """

    def __init__(self, model: nn.Module, *, queries: Sequence[tuple[float, float]] | None = None,
                 detach: bool = True):
        if not isinstance(model, nn.Module):
            raise TypeError(f"capture(model): model must be an nn.Module, got {type(model).__name__}")
        if queries is not None:
            queries = [tuple(float(v) for v in q) for q in queries]
            for q in queries:
                if len(q) != 2 or not all(0.0 <= v <= 1.0 for v in q):
                    raise ValueError(f"capture: each query must be (row, col) with both in [0, 1], got {q}")
        self.model = model
        self.queries = queries
        self.detach = detach
        self.maps: dict[str, dict[str, torch.Tensor]] = {}
        self._blocks: list[nn.Module] = []

    def __enter__(self) -> dict[str, dict[str, torch.Tensor]]:
        from .blocks.base import AttentionBlock

        self.maps = {}
        blocks = [(n, m) for n, m in self.model.named_modules() if isinstance(m, AttentionBlock)]
        busy = [n for n, m in blocks if "_capture_sink" in m.__dict__]
        if busy:  # checked before attaching anything, so a refused capture leaves no sink behind
            raise RuntimeError(f"capture: module {busy[0]!r} is already being captured")
        for name, module in blocks:
            module.__dict__["_capture_sink"] = CaptureSink(self.maps, name, self.queries, self.detach)
            self._blocks.append(module)
        return self.maps

    def __exit__(self, *exc) -> None:
        for module in self._blocks:
            module.__dict__.pop("_capture_sink", None)
        self._blocks = []
