"""Reading attention tensors out of any model, without changing the model's code.

Usage::

    with attnlib.capture(model) as maps:
        model(x)
    maps["layer2.0.se"]["gate"]        # (B, C, 1, 1)

``maps`` is ``{module name: {tensor name: tensor}}``. Module names are those of
``model.named_modules()``; the model itself, when it is a block, is named ``""``. Each block's
docstring lists the tensors it records (its "Captured:" section). When the model runs several times
inside one ``with``, each block keeps the tensors of its latest call.

Threads: a capture belongs to the thread that opened it and records the forward passes run by that
thread only. Two threads may capture the same model (or different ones) at the same time; each gets the
maps of its own forward passes, and neither sees nor removes the other's. Within one thread, a block
cannot be captured twice at once (a nested ``capture`` of it raises ``RuntimeError``).

While a context is open every attnlib block in the model holds a reference to a small sink, one per
capturing thread; on exit the thread's sink is removed, and with the last one the attribute itself, so
no hook or attribute remains and, outside a capture, the blocks keep nothing. A block copied
(``copy.deepcopy``) or saved (``torch.save``, ``pickle``) while it is being captured carries no sink:
the copy records nothing and can be captured on its own.
"""

from __future__ import annotations

import numbers
import threading
from typing import Sequence

import torch
from torch import nn

from .validation import describe

#: the attribute, in a block's ``__dict__``, that holds ``{thread id: CaptureSink}`` while it is captured
SINK_ATTRIBUTE = "_capture_sink"

# Guards every change of a block's sinks. Each change replaces the whole dict (copy on write), so a
# forward pass that reads the dict without the lock sees either the old or the new one, never a half.
_LOCK = threading.Lock()


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


def current_sink(module: nn.Module) -> CaptureSink | None:
    """The sink of ``module`` for the calling thread, or ``None`` when this thread is not capturing it."""
    sinks = module.__dict__.get(SINK_ATTRIBUTE)
    return None if not sinks else sinks.get(threading.get_ident())


def _check_queries(queries) -> list[tuple[float, float]] | None:
    """``None``, or a list of (row, col) pairs of real numbers in [0, 1]; else ``ValueError``."""
    if queries is None:
        return None
    form = "a list of (row, col) pairs with both in [0, 1], e.g. [(0.5, 0.5)], or None"
    if isinstance(queries, (str, bytes)) or not isinstance(queries, (list, tuple)) or not queries:
        raise ValueError(f"capture: queries must be {form}; got {describe(queries)}")
    out = []
    for q in queries:
        if isinstance(q, (str, bytes)) or not isinstance(q, (list, tuple)) or len(q) != 2:
            raise ValueError(f"capture: queries must be {form}; got the entry {describe(q)} in {describe(queries)}")
        pair = []
        for v in q:
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= v <= 1.0:
                raise ValueError(f"capture: each query must be (row, col) with both in [0, 1] ({form}); got "
                                 f"{describe(q)}")
            pair.append(float(v))
        out.append(tuple(pair))
    return out


class capture:  # noqa: N801  (used as a context manager, like torch.no_grad)
    """Context manager that records the attention tensors of every attnlib block inside ``model``.

    Args:
        model: any ``nn.Module``; the attnlib blocks found among ``model.modules()`` are captured.
        queries: for blocks whose map depends on a query position (Non-local), a non-empty list of query
            positions ``(row, col)``, fractions of the map in ``[0, 1]``; ``None`` means the centre
            ``(0.5, 0.5)``.
        detach: store detached tensors (default ``True``). ``False`` keeps the autograd graph, e.g. to
            differentiate a score through a map.

    Returns (from ``__enter__``): the dict ``{module name: {tensor name: tensor}}``, filled as the
    model runs in the thread that entered the context.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: malformed ``queries`` or a ``detach`` that is not a bool.
        RuntimeError (on entering): a block of ``model`` is already being captured by this thread.
    """

    def __init__(self, model: nn.Module, *, queries: Sequence[tuple[float, float]] | None = None,
                 detach: bool = True):
        if not isinstance(model, nn.Module):
            raise TypeError(f"capture(model): model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(detach, bool):
            raise ValueError(f"capture: detach must be True or False, got {describe(detach)}")
        self.model = model
        self.queries = _check_queries(queries)
        self.detach = detach
        self.maps: dict[str, dict[str, torch.Tensor]] = {}
        self._blocks: list[nn.Module] = []
        self._thread: int | None = None

    def __enter__(self) -> dict[str, dict[str, torch.Tensor]]:
        from .blocks.base import AttentionBlock

        if self._blocks:
            raise RuntimeError("capture: this capture object is already open; create a new one")
        self.maps = {}
        me = threading.get_ident()
        blocks = [(n, m) for n, m in self.model.named_modules() if isinstance(m, AttentionBlock)]
        with _LOCK:
            busy = [n for n, m in blocks if me in m.__dict__.get(SINK_ATTRIBUTE, {})]
            if busy:  # checked before attaching anything, so a refused capture leaves no sink behind
                raise RuntimeError(f"capture: module {busy[0]!r} is already being captured")
            for name, module in blocks:
                sinks = dict(module.__dict__.get(SINK_ATTRIBUTE, {}))
                sinks[me] = CaptureSink(self.maps, name, self.queries, self.detach)
                module.__dict__[SINK_ATTRIBUTE] = sinks
                self._blocks.append(module)
            self._thread = me
        return self.maps

    def __exit__(self, *exc) -> None:
        with _LOCK:
            for module in self._blocks:
                sinks = dict(module.__dict__.get(SINK_ATTRIBUTE, {}))
                sinks.pop(self._thread, None)
                if sinks:
                    module.__dict__[SINK_ATTRIBUTE] = sinks
                else:
                    module.__dict__.pop(SINK_ATTRIBUTE, None)
            self._blocks = []
            self._thread = None
