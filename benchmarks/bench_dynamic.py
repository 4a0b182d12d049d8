"""Encoding layer and dynamic convolution: the library's formulations against the straightforward ones.

1. Encoding (Deep TEN), B = 8, C = 256, 32 x 32 (N = 1024), K = 64, forward + backward (gradients for the
   input, the codewords and the scale): ``attnlib``'s matmul formulation (distances as
   ‖x‖² − 2 x·d + ‖d‖², aggregation as aᵀx − (Σ_i a_ik) d_k, largest intermediate B·K·N) against the
   expanded formulation that builds (B, N, K, C) residuals (as in widely-copied code). Targets: >= 20x
   faster, >= 5x less peak memory.
2. Dynamic convolution (DY-CNN), B = 32, 64 -> 64 channels, 3 x 3, 28 x 28, K = 4, forward in inference
   mode: ``attnlib``'s single grouped convolution against a static ``nn.Conv2d`` of the same shape (target:
   at most 1.3x its time) and against running all K convolutions and mixing their outputs with the
   attention, y = Σ_k π_k (W_k * x + b_k), in two forms: a loop of K convolutions, and one convolution
   with the K kernels stacked into K·C_out output channels (target: the dynamic convolution at least 3x
   faster than the faster of the two).

Timings: variants interleaved round after round (``common.interleaved_times``); the time column is each
variant's median, ratios are medians of per-round ratios. Peak memory (encoding): each variant in a fresh
process (``common.cpu_peak_bytes``), or ``torch.cuda.max_memory_allocated`` on a GPU. Every variant is
first checked to compute the same result.

Threads: on a machine whose cores are shared with other work, several intra-op threads wait on each
other at every operation (OpenMP barriers), which inflates many small operations far more than one
large one; ``--threads 1`` then gives the stable comparison. Measured on the project's 2-core CPU
machine while other jobs loaded it (load average ~8), torch 2.13, 1 thread: the encoding 100x faster
with 53x less peak memory (49 MiB vs 2.5 GiB); the dynamic convolution 1.05x the time of the static
convolution and 3.7x faster than the stacked K convolutions. With 2 threads on the same loaded machine
the ratios dropped to 18x (encoding time) and 1.8x (dynamic / static): the small attention operations
stall on the busy cores.

Run from the repository root::

    .venv/bin/python benchmarks/bench_dynamic.py [--threads N] [--repeats R] [--encoding-repeats R]
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

# ----------------------------------------------------------------------------------------------- encoding
ENC_B, ENC_C, ENC_HW, ENC_K = 8, 256, 32, 64


def expanded_encoding(x, codewords, scale):
    """Deep TEN's encoding written with a (B, N, K, C) tensor of residuals x_i - d_k."""
    X = x.flatten(2).transpose(1, 2)                                  # (B, N, C)
    residuals = X[:, :, None, :] - codewords[None, None, :, :]        # (B, N, K, C)
    a = torch.softmax(scale * residuals.pow(2).sum(-1), dim=2)        # (B, N, K)
    return (a[..., None] * residuals).sum(1)                          # (B, K, C)


def build_encoding(device: str = "cpu"):
    torch.manual_seed(0)
    enc = attnlib.create_block("encoding", ENC_C, num_codes=ENC_K).to(device)
    x = torch.randn(ENC_B, ENC_C, ENC_HW, ENC_HW, device=device, requires_grad=True)
    return enc, x


def encoding_step(variant: str, enc, x):
    """One forward + backward pass of the chosen variant."""
    e = enc(x) if variant == "matmul" else expanded_encoding(x, enc.codewords, enc.scale)
    e.sum().backward()
    return e


ENC_LABELS = {"matmul": "attnlib Encoding (matmul, B·K·N)", "expanded": "expanded (B, N, K, C) residuals"}


def _encoding_setup(variant: str, threads: int) -> str:
    return f"""
        import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
        import torch
        from bench_dynamic import build_encoding, encoding_step
        torch.set_num_threads({threads})
        enc, x = build_encoding()
        variant = {variant!r}
    """


ENC_WARM = """
    import attnlib
    small = attnlib.create_block("encoding", 256, num_codes=64)
    xs = torch.randn(1, 256, 4, 4, requires_grad=True)
    encoding_step(variant, small, xs)
"""
ENC_CALL = """
    encoding_step(variant, enc, x)
"""


def encoding_cpu_memory(threads: int) -> dict[str, int]:
    """Peak memory of each variant, each in a fresh process. Must run before this process does any heavy
    work: on Linux a child process starts with its parent's peak RSS (``ru_maxrss`` survives fork + exec),
    so ``cpu_peak_bytes`` called from a process that has already peaked high reports 0."""
    return {k: cpu_peak_bytes(_encoding_setup(k, threads), ENC_CALL, warm=ENC_WARM) for k in ENC_LABELS}


def encoding_rows(device: str, threads: int, repeats: int, cpu_memory: dict[str, int] | None = None) -> list[dict]:
    enc, x = build_encoding(device)
    e = enc(x)
    torch.testing.assert_close(e, expanded_encoding(x, enc.codewords, enc.scale), rtol=1e-4, atol=1e-3)
    fns = {k: (lambda k=k: encoding_step(k, enc, x)) for k in ENC_LABELS}
    times = interleaved_times(fns, repeats=repeats, warmup=1, device=device)
    if device == "cuda":
        mem = {k: cuda_peak_bytes(fn) for k, fn in fns.items()}
    else:
        mem = cpu_memory
    dev = torch.cuda.get_device_name() if device == "cuda" else f"CPU ({threads} thr)"
    rows = []
    for k in fns:
        rows.append({
            "device": dev, "variant": ENC_LABELS[k], "time": f"{median(times[k]) * 1e3:.1f} ms",
            "peak memory": fmt_bytes(mem[k]),
            "expanded / this (time)": f"{median_ratio(times['expanded'], times[k]):.1f}x",
            "expanded / this (memory)": f"{mem['expanded'] / max(mem[k], 1):.1f}x",
        })
    return rows


# ------------------------------------------------------------------------------------ dynamic convolution
DY_B, DY_C, DY_HW, DY_K = 32, 64, 28, 4


def build_dynamic(device: str = "cpu"):
    torch.manual_seed(0)
    dynamic = attnlib.create_block("dynamic_conv", DY_C, DY_C, 3, num_kernels=DY_K, temperature=1.0)
    static = torch.nn.Conv2d(DY_C, DY_C, 3, padding=1)
    x = torch.randn(DY_B, DY_C, DY_HW, DY_HW)
    return dynamic.to(device).eval(), static.to(device).eval(), x.to(device)


def mix_loop(block, x):
    """All K convolutions, one after the other, mixed with the attention: Σ_k π_k (W_k * x + b_k)."""
    pi = block.kernel_attention(x)                                    # (B, K)
    y = 0
    for k in range(block.num_kernels):
        y_k = F.conv2d(x, block.weight[k], block.bias[k], padding=block.padding)  # (B, C_out, H, W)
        y = y + pi[:, k, None, None, None] * y_k
    return y


def mix_stacked(block, x):
    """All K convolutions as one convolution with K·C_out outputs, mixed with the attention."""
    pi = block.kernel_attention(x)                                    # (B, K)
    K, C_out = block.num_kernels, block.out_channels
    y = F.conv2d(x, block.weight.flatten(0, 1), block.bias.flatten(), padding=block.padding)  # (B, K·C_out, H, W)
    y = y.view(x.shape[0], K, C_out, *y.shape[2:])                    # (B, K, C_out, H, W)
    return torch.einsum("bk,bkchw->bchw", pi, y)                      # (B, C_out, H, W)


DY_LABELS = {"static": "static nn.Conv2d (reference)", "dynamic": "attnlib DynamicConv2d (one grouped conv)",
             "mix_loop": "K convs in a loop, outputs mixed", "mix_stacked": "K convs stacked in one conv, mixed"}


def dynamic_rows(device: str, threads: int, repeats: int) -> list[dict]:
    dynamic, static, x = build_dynamic(device)
    with torch.inference_mode():
        ref = dynamic(x)
        torch.testing.assert_close(mix_loop(dynamic, x), ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(mix_stacked(dynamic, x), ref, rtol=1e-4, atol=1e-4)
        fns = {"static": lambda: static(x), "dynamic": lambda: dynamic(x),
               "mix_loop": lambda: mix_loop(dynamic, x), "mix_stacked": lambda: mix_stacked(dynamic, x)}
        times = interleaved_times(fns, repeats=repeats, warmup=2, device=device)
    dev = torch.cuda.get_device_name() if device == "cuda" else f"CPU ({threads} thr)"
    rows = []
    for k in fns:
        rows.append({
            "device": dev, "variant": DY_LABELS[k], "time": f"{median(times[k]) * 1e3:.2f} ms",
            "this / static (time)": f"{median_ratio(times[k], times['static']):.2f}x",
            "this / dynamic (time)": f"{median_ratio(times[k], times['dynamic']):.2f}x",
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds (dynamic convolution)")
    parser.add_argument("--encoding-repeats", type=int, default=3, help="interleaved rounds (encoding)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    cpu_memory = encoding_cpu_memory(args.threads)  # first: see encoding_cpu_memory
    print(f"torch {torch.__version__}\n")
    print(f"Encoding: B={ENC_B}, C={ENC_C}, {ENC_HW}x{ENC_HW}, K={ENC_K}, forward + backward "
          "(targets: expanded / attnlib >= 20x in time, >= 5x in peak memory)\n")
    rows = []
    for device in devices:
        rows += encoding_rows(device, args.threads, args.encoding_repeats, cpu_memory)
    print_table(rows, ["device", "variant", "time", "peak memory", "expanded / this (time)",
                       "expanded / this (memory)"])
    print(f"\nDynamic convolution: B={DY_B}, {DY_C}->{DY_C}, 3x3, {DY_HW}x{DY_HW}, K={DY_K}, forward, "
          "inference mode (targets: dynamic / static <= 1.3x; K-conv variants / dynamic >= 3x)\n")
    rows = []
    for device in devices:
        rows += dynamic_rows(device, args.threads, args.repeats)
    print_table(rows, ["device", "variant", "time", "this / static (time)", "this / dynamic (time)"])


if __name__ == "__main__":
    main()
