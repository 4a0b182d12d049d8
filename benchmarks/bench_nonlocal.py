"""Non-local block: the fast path (SDPA) against the explicit N x N attention matrix.

Configuration (issue 3): 2-D, embedded Gaussian, C = 64, B = 2, no sub-sampling, forward in inference mode.
At 64 x 64 (N = 4096) both paths run, side by side in interleaved rounds (time: median; ratio: median of
per-round ratios) and each in a fresh process for its peak memory. A third row shows the pitfall of calling
SDPA with 3-D (B, N, d) inputs, which on CPU falls back to the math kernel that builds the matrix. At
128 x 128 (N = 16384) the fast path runs; the explicit path's matrix alone would take B·N²·4 bytes (computed,
not run, unless ``--explicit-128``). On a machine with CUDA the same rows are measured on the GPU.

Run from the repository root::

    .venv/bin/python benchmarks/bench_nonlocal.py [--threads N] [--repeats R] [--explicit-128]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import attnlib  # noqa: E402
from common import (cpu_peak_bytes, cuda_peak_bytes, fmt_bytes, interleaved_times, median,  # noqa: E402
                    median_ratio, print_table)

C, B = 64, 2


def build(implementation: str, device: str = "cpu"):
    torch.manual_seed(0)
    block = attnlib.create_block("nonlocal", C, sub_sample=False, implementation=implementation)
    with torch.no_grad():
        block.bn.weight.fill_(1.0)  # make the non-local branch count in the output (cost is unchanged)
    return block.to(device).eval()


def sdpa_3d_forward(block, x):
    """The non-local block with SDPA called on 3-D (B, N, d) inputs: the CPU pitfall."""
    q, k, v, _ = block.embed(x)
    y = F.scaled_dot_product_attention(q[:, 0], k[:, 0], v[:, 0], scale=1.0)  # 3-D: math fallback on CPU
    y = y.transpose(1, 2).reshape(x.shape[0], block.inner_channels, *x.shape[2:])
    return block.bn(block.out_conv(y)) + x


def _setup_code(implementation: str, size: int, threads: int) -> str:
    return f"""
        import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
        import torch, attnlib
        from bench_nonlocal import build, sdpa_3d_forward
        torch.set_num_threads({threads})
        block = build({'explicit' if implementation == 'explicit' else 'fast'!r})
        x = torch.randn({B}, {C}, {size}, {size})
        run = (lambda t: sdpa_3d_forward(block, t)) if {implementation == 'sdpa_3d'} else block
    """


WARM = """
    with torch.inference_mode():
        run(torch.randn(1, 64, 8, 8))
"""
CALL = """
    with torch.inference_mode():
        run(x)
"""

LABELS = {"fast": "fast (SDPA, 4-D contiguous)", "explicit": "explicit N x N matrix",
          "sdpa_3d": "SDPA on 3-D inputs (pitfall)"}


def cpu_memory(threads: int, explicit_128: bool) -> dict:
    """Peak memory of each CPU variant, each in a fresh process.

    Runs before this process allocates anything large: ``ru_maxrss`` is a high-water mark that a child
    process inherits from its parent's resident size at fork time, so measuring after the timings (which
    leave this process large) would hide the child's own peak.
    """
    mem = {(k, 64): cpu_peak_bytes(_setup_code(k, 64, threads), CALL, warm=WARM) for k in LABELS}
    mem[("fast", 128)] = cpu_peak_bytes(_setup_code("fast", 128, threads), CALL, warm=WARM)
    if explicit_128:
        mem[("explicit", 128)] = cpu_peak_bytes(_setup_code("explicit", 128, threads), CALL, warm=WARM)
    return mem


def cpu_rows(threads: int, repeats: int, explicit_128: bool) -> list[dict]:
    torch.set_num_threads(threads)
    all_mem = cpu_memory(threads, explicit_128)
    rows = []
    size = 64
    N = size * size
    blocks = {"fast": build("fast"), "explicit": build("explicit")}
    x = torch.randn(B, C, size, size)
    with torch.inference_mode():
        ref = blocks["explicit"](x)
        torch.testing.assert_close(blocks["fast"](x), ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(sdpa_3d_forward(blocks["fast"], x), ref, rtol=1e-4, atol=1e-4)
        fns = {"fast": lambda: blocks["fast"](x), "explicit": lambda: blocks["explicit"](x),
               "sdpa_3d": lambda: sdpa_3d_forward(blocks["fast"], x)}
        times = interleaved_times(fns, repeats=repeats, warmup=2)
    mem = {k: all_mem[(k, 64)] for k in fns}
    for k in fns:
        rows.append({
            "device": f"CPU ({threads} thr)", "input": f"{size}x{size} (N={N})", "path": LABELS[k],
            "time": f"{median(times[k]) * 1e3:.1f} ms", "peak memory": fmt_bytes(mem[k]),
            "explicit / this (time)": f"{median_ratio(times['explicit'], times[k]):.2f}x",
            "explicit / this (memory)": f"{mem['explicit'] / max(mem[k], 1):.1f}x",
        })
    # 128 x 128: the fast path runs; the explicit path's matrix is computed (or measured on request)
    size = 128
    N = size * size
    x = torch.randn(B, C, size, size)
    with torch.inference_mode():
        t = interleaved_times({"fast": lambda: blocks["fast"](x)}, repeats=max(3, repeats // 3), warmup=1)
    fast_mem = all_mem[("fast", 128)]
    matrix = B * N * N * 4
    rows.append({"device": f"CPU ({threads} thr)", "input": f"{size}x{size} (N={N})", "path": LABELS["fast"],
                 "time": f"{median(t['fast']) * 1e3:.1f} ms", "peak memory": fmt_bytes(fast_mem),
                 "explicit / this (memory)": f"{matrix / max(fast_mem, 1):.0f}x (matrix alone)"})
    if explicit_128:
        exp_mem = all_mem[("explicit", 128)]
        rows.append({"device": f"CPU ({threads} thr)", "input": f"{size}x{size} (N={N})",
                     "path": LABELS["explicit"] + " (measured)", "peak memory": fmt_bytes(exp_mem),
                     "explicit / this (memory)": f"{exp_mem / max(fast_mem, 1):.0f}x (vs fast)"})
    else:
        rows.append({"device": f"CPU ({threads} thr)", "input": f"{size}x{size} (N={N})",
                     "path": LABELS["explicit"] + " (computed, not run)",
                     "peak memory": f">= {fmt_bytes(matrix)} (B·N²·4 for the matrix)"})
    return rows


def cuda_rows(repeats: int) -> list[dict]:
    rows = []
    for size in (64, 128):
        N = size * size
        blocks = {"fast": build("fast", "cuda"), "explicit": build("explicit", "cuda")}
        x = torch.randn(B, C, size, size, device="cuda")
        with torch.inference_mode():
            fns = {k: (lambda b=b: b(x)) for k, b in blocks.items()}
            times = interleaved_times(fns, repeats=repeats, warmup=3, device="cuda")
            mem = {k: cuda_peak_bytes(fn) for k, fn in fns.items()}
        for k in fns:
            rows.append({
                "device": torch.cuda.get_device_name(), "input": f"{size}x{size} (N={N})", "path": LABELS[k],
                "time": f"{median(times[k]) * 1e3:.2f} ms", "peak memory": fmt_bytes(mem[k]),
                "explicit / this (time)": f"{median_ratio(times['explicit'], times[k]):.2f}x",
                "explicit / this (memory)": f"{mem['explicit'] / max(mem[k], 1):.1f}x",
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved rounds at 64x64")
    parser.add_argument("--explicit-128", action="store_true", help="also measure the explicit path at 128x128")
    args = parser.parse_args()
    print(f"Non-local 2-D, embedded Gaussian, C={C}, B={B}, no sub-sampling, forward (inference mode); "
          f"torch {torch.__version__}")
    rows = cpu_rows(args.threads, args.repeats, args.explicit_128)
    if torch.cuda.is_available():
        rows += cuda_rows(args.repeats)
    print_table(rows, ["device", "input", "path", "time", "peak memory", "explicit / this (time)",
                       "explicit / this (memory)"])


if __name__ == "__main__":
    main()
