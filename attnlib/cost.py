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


def scaling(blocks: dict, input_shape, sizes, *, device=None, repeats: int = 15) -> dict:
    """Forward time and created memory of each block as the input grows: the book's time/memory figures.

    ``blocks`` maps a label to a module; ``input_shape(size)`` gives the input shape for each of ``sizes``.
    Returns ``{label: {"sizes", "N" (positions H*W), "ms" (:func:`forward_ms`), "bytes"
    (:func:`created_bytes`)}}``; the method is described on the book's page "How cost is measured".
    """
    if not blocks:
        raise ValueError("cost.scaling needs at least one block, as {label: module}")
    sizes = list(sizes)
    if not sizes:
        raise ValueError("cost.scaling needs at least one size")
    out = {}
    for label, block in blocks.items():
        dev = device or next((p.device for p in block.parameters()), torch.device("cpu"))
        block = block.to(dev).eval()
        rec = {"sizes": sizes, "N": [], "ms": [], "bytes": []}
        for size in sizes:
            shape = tuple(input_shape(size))
            x = torch.randn(*shape, device=dev)
            rec["N"].append(int(torch.Size(shape[2:]).numel()))
            rec["ms"].append(forward_ms(block, x, repeats=repeats))
            rec["bytes"].append(created_bytes(block, x))
        out[label] = rec
    return out


def plot_scaling(results: dict, *, device=None, reference: dict | None = None, title: str | None = None):
    """Two log-log panels from :func:`scaling`'s results: time and created MiB against positions N.

    ``reference`` maps a label to a list of byte counts (one per size), drawn dashed (a formula's terms).
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    on_gpu = device is not None and torch.device(device).type == "cuda"
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
    for label, r in results.items():
        ax_t.loglog(r["N"], r["ms"], "o-", label=label)
        ax_m.loglog(r["N"], [b / 2**20 for b in r["bytes"]], "o-", label=label)
    first = next(iter(results.values()))
    for label, values in (reference or {}).items():
        ax_m.loglog(first["N"], [b / 2**20 for b in values], "--", label=label)
    ax_t.set(xlabel="positions $N$", ylabel="forward time (ms, median)",
             title="time on " + ("GPU" if on_gpu else "CPU, 1 thread"))
    ax_m.set(xlabel="positions $N$", ylabel="MiB created in forward", title="memory created by the forward pass")
    for ax in (ax_t, ax_m):
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
