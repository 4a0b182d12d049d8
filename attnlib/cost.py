"""Cost measurements shared by the book's "Cost" sections: parameters, FLOPs, forward time, created memory.

    >>> import attnlib
    >>> from attnlib import cost
    >>> se = attnlib.create_block("se", 64)
    >>> cost.parameters(se)
    580
    >>> cost.flops(se, (2, 64, 8, 8))       # matrix products only: 4 * B * C * C_r
    2048
    >>> cost.created_bytes(se, (2, 64, 8, 8))
    34368
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torch import nn

#: traced operations that only re-view an existing tensor: they create no new data
VIEW_OPS = frozenset({"__getitem__", "view", "reshape", "unsqueeze", "squeeze", "flatten", "permute",
                      "transpose", "mT", "expand", "unflatten", "chunk", "split", "unbind", "narrow", "movedim"})


def _as_input(x_or_shape, device=None) -> torch.Tensor:
    if isinstance(x_or_shape, torch.Tensor):
        return x_or_shape if device is None else x_or_shape.to(device)
    g = torch.Generator().manual_seed(0)
    return torch.randn(*x_or_shape, generator=g).to(device or "cpu")


def parameters(module: nn.Module) -> int:
    """Number of parameters (every element of every ``nn.Parameter``)."""
    return sum(p.numel() for p in module.parameters())


def flops(module: nn.Module, x_or_shape) -> int:
    """FLOPs of one forward pass as counted by ``torch.utils.flop_counter.FlopCounterMode``.

    The counter sees matrix products and convolutions (a multiply-add counts as 2 FLOPs), not
    element-wise operations, poolings or softmaxes: the book's formulas state which terms it covers.
    """
    from torch.utils.flop_counter import FlopCounterMode

    x = _as_input(x_or_shape, next((p.device for p in module.parameters()), None))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(x)
    return int(counter.get_total_flops())


def created_bytes(module: nn.Module, x_or_shape) -> int:
    """Bytes of every tensor a forward pass creates, from the trace of a real pass on CPU.

    An accounting, not an allocator reading: every traced operation's outputs count at their element
    size, except operations that only re-view data (:data:`VIEW_OPS`); the input and the parameters are
    not counted.
    """
    from .trace import trace_block

    x = _as_input(x_or_shape).cpu()
    if any(t.device.type != "cpu" for t in module.state_dict().values()):
        module = copy.deepcopy(module).cpu()  # trace a CPU copy; the caller's module stays where it is
    size = x.element_size()
    t = trace_block(module, x)
    return sum(size * torch.Size(out).numel() for s in t.steps if s.op not in VIEW_OPS for out in s.outputs)


def forward_ms(module: nn.Module, x: torch.Tensor, *, repeats: int = 15, warmup: int = 2,
               threads: int | None = 1) -> float:
    """Median wall time of ``module(x)`` in milliseconds, without autograd.

    On CPU it runs with ``threads`` intra-op threads (default 1: steadier on a shared machine; ``None``
    keeps the current setting); on CUDA it synchronises around every call.
    """
    cuda = x.device.type == "cuda"
    previous = torch.get_num_threads()
    if threads is not None and not cuda:
        torch.set_num_threads(threads)
    try:
        samples = []
        with torch.no_grad():
            for i in range(warmup + repeats):
                if cuda:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                module(x)
                if cuda:
                    torch.cuda.synchronize()
                if i >= warmup:
                    samples.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(samples) * 1e3
