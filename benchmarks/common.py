"""Measurement helpers shared by the benchmark scripts: interleaved timing and peak memory.

Timings: the variants run in turn, round after round (interleaved), so a slow period of the machine
hits every variant alike; each variant's median over the rounds is reported, and ratios are medians of
the per-round ratios.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` around the call. On CPU PyTorch keeps no
allocator statistics, so the call runs in a fresh Python process: after imports, set-up and the optional
warm-up, the process's resident-set high-water mark (``VmHWM`` in ``/proc/self/status``) is reset to the
current resident size (writing ``5`` to ``/proc/self/clear_refs``), the call runs, and the high-water
mark minus the resident size before the call is the memory the call added. (``ru_maxrss`` is not used:
Linux carries it over from the parent process across fork and exec, so a child of a process that had
already used more memory would report nothing.)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
import time
from typing import Callable

import torch


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def interleaved_times(fns: dict[str, Callable[[], object]], *, repeats: int = 15, warmup: int = 2,
                      device: str = "cpu", clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in interleaved rounds. Returns all samples.

    ``clock`` reads the time: the wall clock by default; ``time.process_time`` counts only this process's
    CPU time, which on a loaded machine leaves out the time other processes hold the cores.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = clock()
            fn()
            _sync(device)
            samples[name].append(clock() - t0)
    return samples


def median(xs) -> float:
    return statistics.median(xs)


def median_ratio(num: list[float], den: list[float]) -> float:
    """Median over rounds of num[i] / den[i] (the samples come from the same interleaved rounds)."""
    return statistics.median(a / b for a, b in zip(num, den))


def cuda_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak CUDA memory allocated during ``fn()`` beyond what was allocated before it."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def cpu_peak_bytes(setup: str, call: str, *, warm: str | None = None) -> int:
    """Peak resident memory that ``call`` adds, measured in a fresh Python process.

    ``setup`` builds everything ``call`` needs (modules, inputs); ``warm`` (optional) runs once before
    the measurement on a small input, so one-time costs (kernels, thread pools) are not counted.
    """
    code = "\n".join([
        "import json, torch",
        "def _status(key):",
        "    with open('/proc/self/status') as f:",
        "        for line in f:",
        "            if line.startswith(key + ':'):",
        "                return int(line.split()[1]) * 1024",
        "    raise RuntimeError(key + ' not found in /proc/self/status')",
        textwrap.dedent(setup),
        textwrap.dedent(warm or ""),
        "with open('/proc/self/clear_refs', 'w') as f:",
        "    f.write('5')  # reset the high-water mark VmHWM to the current resident size",
        "before = _status('VmRSS')",
        textwrap.dedent(call),
        "after = _status('VmHWM')",
        "print(json.dumps({'bytes': after - before}))",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory measurement failed:\n{out.stderr[-2000:]}")
    return int(json.loads(out.stdout.strip().splitlines()[-1])["bytes"])


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def print_table(rows: list[dict], columns: list[str]) -> None:
    """Print rows (dicts) as a Markdown table with the given columns."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
