"""attnlib blocks against timm's blocks configured to the same math: time and peak memory.

For every registered attnlib block (``attnlib.list_blocks()``, so new blocks join automatically) this
script times the forward pass (eval mode, ``torch.no_grad``) and the forward + backward pass (train mode,
gradients to the input and to every parameter) at ``B=8, C=64, 56x56`` and ``B=8, C=256, 28x28``, on CPU
and on CUDA when present. Where timm has the same block, timm's module is built with the arguments that
give the same function, the attnlib block's (randomised) weights are copied into it, and both outputs are
compared before anything is timed ("same math" column). Both modules then run in interleaved rounds
(``benchmarks/common.py``); the table gives median times, the median of the per-round ratios
attnlib / timm with their interquartile range, and the peak memory of each call. A ratio above 1.05
(attnlib more than 5 % slower) is flagged.

An A/A control row times SE against an identical copy of itself: its ratio shows the noise of the
machine during the run (it should be 1.00; its interquartile range is the typical per-round jitter).

Run (from the repository root, in the benchmark environment, see ``benchmarks/README.md``)::

    .venv-bench/bin/python benchmarks/bench_timm.py               # full run
    .venv-bench/bin/python benchmarks/bench_timm.py --quick       # fewer rounds, for a first look
    .venv-bench/bin/python benchmarks/bench_timm.py --blocks se,eca --no-memory
    .venv-bench/bin/python benchmarks/bench_timm.py --threads 1 --clock process   # on a busy machine

``--clock process`` times with ``time.process_time`` (this process's CPU seconds) instead of the wall
clock: on a machine shared with other jobs it does not count the time they hold the cores.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (cpu_peak_bytes, cuda_peak_bytes, fmt_bytes, interleaved_times, median,  # noqa: E402
                    median_ratio, print_table)

import attnlib  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
#: (B, C, H, W) of the issue's two configurations
SIZES = {"c64": (8, 64, 56, 56), "c256": (8, 256, 28, 28)}
TARGET = 1.05


# ------------------------------------------------------------------------------------------- the pairs
@dataclass
class Pair:
    """How to build an attnlib block and its timm counterpart computing the same function.

    ``attnlib(C)`` builds the attnlib block; ``timm(block)`` builds timm's module for it (reading the widths
    the attnlib block chose); ``keymap`` maps each timm state_dict key to the attnlib key whose tensor it
    takes (``None``: set to zero, for a timm parameter the attnlib block does not have because it cannot
    change the output); without a keymap the tensors are matched in order. ``prepare(timm_module)`` sets
    anything that is not a tensor (e.g. a LayerNorm's eps). ``config`` describes both configurations.
    A callable ``keymap`` is given the attnlib block and returns the mapping.
    """

    timm_name: str
    attnlib: Callable[[int], nn.Module]
    timm: Callable[[nn.Module], nn.Module]
    config: str
    keymap: dict[str, str | None] | Callable[[nn.Module], dict[str, str | None]] | None = None
    prepare: Callable[[nn.Module], None] | None = None


def _timm(module: str, cls: str):
    """timm's class ``cls`` from ``timm.layers.<module>`` (imported lazily: attnlib-only rows and the
    memory subprocesses of attnlib blocks do not need timm)."""
    import importlib
    return getattr(importlib.import_module(f"timm.layers.{module}"), cls)


def _se_timm(block):
    return _timm("squeeze_excite", "SEModule")(block.channels, rd_channels=block.reduced_channels, bias=True)


def _eca_timm(block):
    # channels=None: timm would otherwise recompute k from C with its own rounding and ignore kernel_size
    return _timm("eca", "EcaModule")(channels=None, kernel_size=block.kernel_size)


def _cbam_channel_timm(block):
    return _timm("cbam", "ChannelAttn")(block.channels, rd_channels=block.reduced_channels, mlp_bias=True)


def _cbam_spatial_timm(block):
    return _timm("cbam", "SpatialAttn")(block.kernel_size)


def _cbam_timm(block):
    return _timm("cbam", "CbamModule")(block.channels, rd_channels=block.channel.reduced_channels,
                                     spatial_kernel_size=block.spatial.kernel_size, mlp_bias=True)


def _nonlocal_timm(block):
    return _timm("non_local_attn", "NonLocalAttn")(block.channels, use_scale=False, rd_channels=block.inner_channels)


def _gc_timm(block):
    return _timm("global_context", "GlobalContext")(block.channels, fuse_add=True, fuse_scale=False,
                                        rd_channels=block.reduced_channels)


def _gc_prepare(module):
    module.mlp_add.norm.eps = 1e-5  # timm's LayerNorm2d defaults to 1e-6, nn.LayerNorm (attnlib, paper code) to 1e-5


def _sk_timm(block):
    # split_input=False: every branch sees all C input channels (paper); timm's default splits them.
    return _timm("selective_kernel", "SelectiveKernel")(
        block.in_channels, block.out_channels, kernel_size=[3, 5], keep_3x3=True, groups=block.groups,
        rd_channels=block.width, split_input=False)


class RoutedCondConv(nn.Module):
    """timm's ``CondConv2d`` driven by the attnlib block's own kernel attention.

    timm's ``CondConv2d`` takes the routing weights as an argument (its routing lives in the network), so the
    timm side of the dynamic-convolution pairs is attnlib's ``kernel_attention`` (a copy of the block, of
    which only that method runs) followed by timm's kernel aggregation and grouped convolution: the ratio
    measures the aggregation + convolution, the part where the two implementations differ.
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        self.router = copy.deepcopy(block)
        self.conv = _timm("cond_conv2d", "CondConv2d")(
            block.in_channels, block.out_channels, block.kernel_size, stride=block.stride, padding=block.padding,
            dilation=block.dilation, groups=block.groups, bias=block.bias is not None,
            num_experts=block.num_kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.router.kernel_attention(x))


def _routed_keymap(block: nn.Module) -> dict[str, str | None]:
    keys = [k for k in _tensors(block)]
    keymap = {f"router.{k}": k for k in keys}
    keymap["conv.weight"] = "weight"
    if "bias" in keys:
        keymap["conv.bias"] = "bias"
    return keymap


def _coord_timm(block):
    return _timm("coord_attn", "CoordAttn")(block.channels, rd_channels=block.reduced_channels, bias=True)


PAIRS: dict[str, Pair] = {
    "se": Pair("SEModule", lambda C: attnlib.create_block("se", C), _se_timm,
               "attnlib se(C, reduction=16) vs timm SEModule(C, rd_channels=C//16, bias=True)"),
    "cse": Pair("SEModule", lambda C: attnlib.create_block("cse", C), _se_timm,
                "attnlib cse(C, reduction=2) vs timm SEModule(C, rd_channels=C//2, bias=True)"),
    "eca": Pair("EcaModule", lambda C: attnlib.create_block("eca", C), _eca_timm,
                "attnlib eca(C) (adaptive k) vs timm EcaModule(channels=None, kernel_size=k)"),
    "cbam_channel": Pair("ChannelAttn", lambda C: attnlib.create_block("cbam_channel", C), _cbam_channel_timm,
                         "attnlib cbam_channel(C, reduction=16) vs timm ChannelAttn(C, rd_channels=C//16, "
                         "mlp_bias=True)"),
    # timm's spatial gate always has a BatchNorm after its 7x7 conv (the official code's), so attnlib's
    # spatial gate is configured with batch_norm=True (its default is the paper's printed equation, no BN)
    "cbam_spatial": Pair("SpatialAttn", lambda C: attnlib.create_block("cbam_spatial", C, batch_norm=True),
                         _cbam_spatial_timm,
                         "attnlib cbam_spatial(C, batch_norm=True) (7x7, BN, [avg; max]) vs timm SpatialAttn(7) "
                         "(7x7 conv + BN, [mean; max])"),
    "cbam": Pair("CbamModule", lambda C: attnlib.create_block("cbam", C, batch_norm=True), _cbam_timm,
                 "attnlib cbam(C, batch_norm=True) vs timm CbamModule(C, rd_channels=C//16, mlp_bias=True)"),
    "nonlocal": Pair(
        "NonLocalAttn", lambda C: attnlib.create_block("nonlocal", C, sub_sample=False), _nonlocal_timm,
        "attnlib nonlocal(C, sub_sample=False) (embedded Gaussian, C/2, no scale) vs timm NonLocalAttn(C, "
        "use_scale=False, rd_channels=C//2) (φ bias set to 0: a softmax cancels it)",
        keymap={"t.weight": "theta.weight", "t.bias": "theta.bias", "p.weight": "phi.weight", "p.bias": None,
                "g.weight": "g.weight", "g.bias": "g.bias", "z.weight": "out_conv.weight",
                "z.bias": "out_conv.bias", "norm.weight": "bn.weight", "norm.bias": "bn.bias",
                "norm.running_mean": "bn.running_mean", "norm.running_var": "bn.running_var"}),
    "gc": Pair(
        "GlobalContext", lambda C: attnlib.create_block("gc", C), _gc_timm,
        "attnlib gc(C, reduction=16, fusion add) vs timm GlobalContext(C, fuse_add=True, fuse_scale=False, "
        "rd_channels=C//16), LayerNorm eps set to 1e-5, mask-conv bias set to 0 (softmax cancels it)",
        keymap={"conv_attn.weight": "conv_mask.weight", "conv_attn.bias": None,
                "mlp_add.fc1.weight": "channel_add_conv.0.weight", "mlp_add.fc1.bias": "channel_add_conv.0.bias",
                "mlp_add.norm.weight": "channel_add_conv.1.weight", "mlp_add.norm.bias": "channel_add_conv.1.bias",
                "mlp_add.fc2.weight": "channel_add_conv.3.weight", "mlp_add.fc2.bias": "channel_add_conv.3.bias"},
        prepare=_gc_prepare),
    "sk": Pair("SelectiveKernel", lambda C: attnlib.create_block("sk", C), _sk_timm,
               "attnlib sk(C) vs timm SelectiveKernel(C, C, [3, 5] as 3x3 dil 1 and 2, groups=G, rd_channels=d, "
               "split_input=False)"),
    "dynamic_conv": Pair("CondConv2d", lambda C: attnlib.create_block("dynamic_conv", C), RoutedCondConv,
                         "attnlib dynamic_conv(C) (K=4, 3x3) vs attnlib's kernel attention + timm CondConv2d(C, C, 3, "
                         "padding=1, num_experts=4, bias)", keymap=_routed_keymap),
    "dka": Pair("CondConv2d", lambda C: attnlib.create_block("dka", C), RoutedCondConv,
                "attnlib dka(C) (K=4, 3x3, sigmoid routing) vs attnlib's kernel attention + timm CondConv2d(C, C, 3, "
                "padding=1, num_experts=4)", keymap=_routed_keymap),
    "coord": Pair("CoordAttn", lambda C: attnlib.create_block("coord", C), _coord_timm,
                  "attnlib coord(C) vs timm CoordAttn(C, rd_channels=mip, bias=True) (BN, h-swish)"),
}


# --------------------------------------------------------------------------------------- weight mapping
def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}


@torch.no_grad()
def randomise(module: nn.Module, seed: int = 0) -> None:
    """Give every parameter and buffer random values (running variances positive), so that the same-math
    check cannot pass by accident on zero-initialised layers."""
    g = torch.Generator().manual_seed(seed)
    for name, t in _tensors(module).items():
        if not t.is_floating_point():
            continue
        if name.endswith("running_var"):
            t.copy_(0.5 + torch.rand(t.shape, generator=g))
        else:
            t.copy_(0.2 * torch.randn(t.shape, generator=g))


@torch.no_grad()
def copy_weights(src: nn.Module, dst: nn.Module, keymap: dict[str, str | None] | None) -> None:
    """Copy ``src``'s (attnlib) tensors into ``dst`` (timm), by ``keymap`` or, without one, in order."""
    s, d = _tensors(src), _tensors(dst)
    if callable(keymap):
        keymap = keymap(src)
    if keymap is None:
        if len(s) != len(d):
            raise ValueError(f"cannot map weights in order: attnlib has {len(s)} tensors {list(s)}, "
                             f"timm has {len(d)} {list(d)}")
        pairs = list(zip(d.keys(), s.keys()))
    else:
        missing = set(d) - set(keymap)
        if missing:
            raise ValueError(f"keymap misses timm tensors {sorted(missing)}")
        pairs = list(keymap.items())
    for dk, sk in pairs:
        target = d[dk]
        if sk is None:
            target.zero_()
            continue
        source = s[sk]
        if source.numel() != target.numel():
            raise ValueError(f"cannot map attnlib {sk} {tuple(source.shape)} to timm {dk} {tuple(target.shape)}")
        target.copy_(source.reshape(target.shape))


def same_math(a: nn.Module, t: nn.Module, C: int, H: int, W: int, device: str) -> tuple[bool, float]:
    """Outputs of both modules on the same input, in eval mode and in train mode (batch statistics).
    Returns (match, max abs difference / max(1, max |y|))."""
    x = torch.randn(2, C, H, W, generator=torch.Generator().manual_seed(1)).to(device)
    worst = 0.0
    for train in (False, True):
        a2, t2 = copy.deepcopy(a).train(train), copy.deepcopy(t).train(train)
        with torch.no_grad():
            ya, yt = a2(x), t2(x)
        if ya.shape != yt.shape:
            return False, float("inf")
        scale = max(1.0, ya.abs().max().item())
        worst = max(worst, (ya - yt).abs().max().item() / scale)
    return worst <= 1e-4, worst


# ------------------------------------------------------------------------------------------- the calls
def make_call(module: nn.Module, x: torch.Tensor, mode: str, seed: int = 2) -> Callable[[], None]:
    """A no-argument function that runs one forward (``mode="fwd"``: eval, no_grad) or one forward and
    backward (``mode="fwdbwd"``: train, gradient to the input and every parameter)."""
    if mode == "fwd":
        module.eval()

        def call():
            with torch.no_grad():
                module(x)
        return call
    module.train()
    xg = x.detach().clone().requires_grad_(True)
    params = [p for p in module.parameters() if p.requires_grad]
    with torch.no_grad():
        shape = module(xg).shape
    gy = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(x.device)

    def call():
        for p in params:
            p.grad = None
        xg.grad = None
        module(xg).backward(gy)
    return call


def build(name: str, impl: str, C: int, device: str, *, with_timm: bool = True):
    """The module of ``impl`` ("attnlib" or "timm") for block ``name`` with C channels, randomised weights
    (timm's copied from attnlib's), on ``device``."""
    torch.manual_seed(0)
    pair = PAIRS.get(name) if with_timm else None
    a = pair.attnlib(C) if pair else attnlib.create_block(name, C)
    randomise(a)
    if impl == "attnlib":
        return a.to(device)
    t = pair.timm(a)
    if pair.prepare:
        pair.prepare(t)
    copy_weights(a, t, pair.keymap)
    return t.to(device)


def memory_calls(name: str, impl: str, mode: str, B: int, C: int, H: int, W: int, with_timm: bool):
    """(big call, small warm-up call) on one module, for ``cpu_peak_bytes`` in a fresh process."""
    m = build(name, impl, C, "cpu", with_timm=with_timm)
    x = torch.randn(B, C, H, W)
    small = torch.randn(2, C, min(H, 8), min(W, 8))  # batch 2: BatchNorm on pooled features needs > 1 value
    return make_call(m, x, mode), make_call(m, small, mode)


def _cpu_setup(name: str, impl: str, mode: str, size: tuple[int, int, int, int], with_timm: bool) -> str:
    B, C, H, W = size
    return (f"import sys; sys.path.insert(0, {BENCH_DIR!r})\n"
            f"import bench_timm\n"
            f"big, small = bench_timm.memory_calls({name!r}, {impl!r}, {mode!r}, {B}, {C}, {H}, {W}, "
            f"{with_timm!r})")


def cpu_peaks(jobs: list[dict]) -> list[int | str]:
    """CPU peak memory of each job: ``common.cpu_peak_bytes``, one fresh process per job."""
    results: list[int | str] = []
    for job in jobs:
        try:
            setup = _cpu_setup(job["name"], job["impl"], job["mode"], tuple(job["size"]), job["with_timm"])
            results.append(cpu_peak_bytes(setup, "big()", warm="small()"))
        except Exception as e:  # noqa: BLE001 (reported in the table)
            lines = str(e).strip().splitlines()
            results.append(f"failed: {lines[-1] if lines else type(e).__name__}")
    return results


# --------------------------------------------------------------------------------------------- timing
def quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


#: the clock ``alternating_times`` passes to ``common.interleaved_times`` (set by ``use_clock``)
CLOCK = time.perf_counter


def use_clock(kind: str) -> None:
    """``"wall"``: ``time.perf_counter``. ``"process"``: ``time.process_time``, CPU time of this process,
    which does not count the time other processes hold the cores (with one torch thread it is the cost of
    the call itself; with more it also counts threads spinning while they wait)."""
    global CLOCK
    CLOCK = time.perf_counter if kind == "wall" else time.process_time


def alternating_times(fns: dict[str, Callable[[], None]], rounds: int, device: str) -> dict[str, list[float]]:
    """Interleaved rounds (``common.interleaved_times``, one round per call) whose order alternates
    (A B, B A, A B, ...), so that a cost of going first or second in a round falls on both alike."""
    names = list(fns)
    samples: dict[str, list[float]] = {k: [] for k in names}
    for i in range(rounds):
        order = names if i % 2 == 0 else names[::-1]
        one = interleaved_times({k: fns[k] for k in order}, repeats=1, warmup=0, device=device, clock=CLOCK)
        for k in names:
            samples[k].append(one[k][0])
    return samples


def timed(fns: dict[str, Callable[[], None]], device: str, repeats: int, min_repeats: int,
          budget_s: float) -> dict[str, list[float]]:
    """Samples of alternating interleaved rounds after two warm-up rounds; the number of rounds is cut to
    fit ``budget_s`` (but is at least ``min_repeats``)."""
    probe = alternating_times(fns, 2, device)
    round_s = sum(v[-1] for v in probe.values())
    n = max(min_repeats, min(repeats, int(budget_s / max(round_s, 1e-9))))
    return alternating_times(fns, n + n % 2, device)


def ms(s: float) -> str:
    return f"{s * 1e3:.2f}"


def ratio_cell(a: list[float], t: list[float]) -> tuple[str, float, float]:
    """"median [p25–p75] min": the median of the per-round ratios attnlib / timm with their interquartile
    range, then the ratio of the fastest calls (a preempted call only ever gets slower, so on a busy
    machine the minima are the least disturbed estimate of the intrinsic cost)."""
    per_round = [x / y for x, y in zip(a, t)]
    r = median_ratio(a, t)
    lo, hi = quartiles(per_round)
    flag = " **>1.05**" if r > TARGET else ""
    rmin = min(a) / min(t)
    return f"{r:.3f} [{lo:.2f}–{hi:.2f}] min {rmin:.2f}{flag}", r, rmin


def run(args) -> None:
    names = attnlib.list_blocks()
    if args.blocks:
        wanted = [b.strip() for b in args.blocks.split(",") if b.strip()]
        unknown = [b for b in wanted if b not in names and b != "control"]
        if unknown:
            raise SystemExit(f"--blocks: unknown {unknown}; registered: {names}")
        names = [n for n in names if n in wanted]
    control = not args.no_control
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and args.device in ("all", "cuda") else [])
    if args.device == "cuda":
        devices = [d for d in devices if d == "cuda"]
    sizes = {k: SIZES[k] for k in args.sizes.split(",")}

    import timm
    print(f"# attnlib vs timm, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"torch {torch.__version__}, timm {timm.__version__}, attnlib {attnlib.__version__}, "
          f"python {platform.python_version()}, torch threads {torch.get_num_threads()}, "
          f"CPU cores {os.cpu_count()}, clock {args.clock}, devices {devices}"
          + (f" ({torch.cuda.get_device_name()})" if "cuda" in devices else ""))
    print(f"rounds: up to {args.repeats} interleaved, alternating order (at least {args.min_repeats}, cut to "
          f"~{args.budget:.0f} s per measurement); ratio = median over rounds of attnlib/timm [interquartile "
          f"range] min (ratio of the fastest calls); flag: median ratio > {TARGET}. Load average at start: "
          f"{os.getloadavg()[0]:.1f}")
    print()

    math_rows, rows, mem_jobs = [], [], []
    noise: list[tuple[float, float, float, str]] = []
    worst: list[tuple[float, float, str]] = []
    for device in devices:
        use_clock(args.clock if device == "cpu" else "wall")  # CUDA kernels do not run on this process's CPU time
        for size_name, (B, C, H, W) in sizes.items():
            x = torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(3)).to(device)
            jobs = []
            if control:
                jobs.append(("se (A/A control)", "se", "control"))
            jobs += [(n, n, "pair" if n in PAIRS else "alone") for n in names]
            for label, name, kind in jobs:
                row = {"block": label, "device": device, "B,C,H,W": f"{B},{C},{H},{W}"}
                try:
                    a = build(name, "attnlib", C, device, with_timm=(kind == "pair"))
                except Exception as e:  # noqa: BLE001 (a block that cannot be built at this size is reported)
                    row["timm"] = f"attnlib build failed: {type(e).__name__}: {e}"[:120]
                    rows.append(row)
                    continue
                t = None
                if kind == "control":
                    t = copy.deepcopy(a)
                    row["timm"] = "copy of itself"
                elif kind == "pair":
                    pair = PAIRS[name]
                    try:
                        t = build(name, "timm", C, device)
                        ok, diff = same_math(a, t, C, H, W, device)
                        verdict = f"yes ({diff:.1e})" if ok else f"NO ({diff:.1e})"
                    except Exception as e:  # noqa: BLE001 (reported in the table instead of aborting the run)
                        t, verdict = None, f"not mapped: {type(e).__name__}: {e}"[:160]
                    row["timm"] = pair.timm_name
                    row["same math"] = verdict
                    if size_name == next(iter(sizes)) and device == devices[0]:
                        math_rows.append({"block": name, "timm": pair.timm_name, "configuration": pair.config,
                                          "same math": verdict})
                    if t is not None and not verdict.startswith("yes"):
                        t = None  # a different function is not timed against
                else:
                    row["timm"] = "—"
                for mode in ("fwd", "fwdbwd"):
                    fns = {"a": make_call(a, x, mode)}
                    if t is not None:
                        fns["t"] = make_call(t, x, mode)
                    samples = timed(fns, device, args.repeats, args.min_repeats, args.budget)
                    row[f"{mode} attnlib ms"] = ms(median(samples["a"]))
                    if t is not None:
                        row[f"{mode} timm ms"] = ms(median(samples["t"]))
                        cell, r, rmin = ratio_cell(samples["a"], samples["t"])
                        row[f"{mode} ratio"] = cell
                        per_round = [u / v for u, v in zip(samples["a"], samples["t"])]
                        if kind == "pair":
                            worst.append((r, rmin, f"{name} {mode} {device} {size_name}"))
                        else:
                            noise.append((r, *quartiles(per_round), f"{mode} {device} {size_name}"))
                    if args.memory and kind != "control":
                        key = f"{mode} peak (attnlib / timm)"
                        impls = ["attnlib"] + (["timm"] if kind == "pair" and t is not None else [])
                        if device == "cuda":
                            row[key] = " / ".join(fmt_bytes(cuda_peak_bytes(fns[i[0]])) for i in impls)
                        else:
                            for impl in impls:
                                mem_jobs.append({"name": name, "impl": impl, "mode": mode, "size": [B, C, H, W],
                                                 "with_timm": kind == "pair", "row": len(rows), "key": key})
                rows.append(row)
                print(f"  done: {label} {device} {size_name}", file=sys.stderr, flush=True)

    if mem_jobs:
        print(f"  measuring CPU peak memory ({len(mem_jobs)} processes)", file=sys.stderr, flush=True)
        for job, peak in zip(mem_jobs, cpu_peaks(mem_jobs)):
            cell = fmt_bytes(peak) if isinstance(peak, int) else peak[:80]
            row = rows[job["row"]]
            row[job["key"]] = f"{row[job['key']]} / {cell}" if job["key"] in row else cell

    print("## Same math: timm configured like attnlib, attnlib's random weights copied in, outputs compared "
          f"(first size and device; eval and train mode; max |difference| / max(1, max |y|), match if <= 1e-4)")
    print()
    print_table(math_rows, ["block", "timm", "configuration", "same math"])
    print()
    print("## Times (median ms) and ratios attnlib / timm")
    print()
    cols = ["block", "timm", "device", "B,C,H,W", "fwd attnlib ms", "fwd timm ms", "fwd ratio",
            "fwdbwd attnlib ms", "fwdbwd timm ms", "fwdbwd ratio"]
    if args.memory:
        cols += ["fwd peak (attnlib / timm)", "fwdbwd peak (attnlib / timm)"]
    print_table(rows, cols)
    print()
    if noise:
        print("A/A control (SE against a copy of itself; ideal 1.000): "
              + "; ".join(f"{d}: {r:.3f} [{lo:.2f}–{hi:.2f}]" for r, lo, hi, d in noise))
    slow = [w for w in worst if w[0] > TARGET]
    if worst:
        print(f"Pairs: {len(worst)} median ratios, {len(slow)} above {TARGET}"
              + (": " + ", ".join(f"{d} {r:.3f} (min ratio {m:.2f})" for r, m, d in sorted(slow, reverse=True))
                 if slow else "."))
    print(f"Load average at the end: {os.getloadavg()[0]:.1f} (the machine has {os.cpu_count()} cores)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer rounds (8 at most, 4 at least, ~4 s each)")
    p.add_argument("--blocks", default="", help="comma-separated registry names (default: every block); "
                                                "'control' alone runs only the A/A row")
    p.add_argument("--sizes", default="c64,c256", help="c64 = (8, 64, 56, 56), c256 = (8, 256, 28, 28)")
    p.add_argument("--device", default="all", choices=("all", "cpu", "cuda"))
    p.add_argument("--repeats", type=int, default=40, help="most interleaved rounds per measurement")
    p.add_argument("--min-repeats", type=int, default=10, help="fewest rounds, whatever the budget")
    p.add_argument("--budget", type=float, default=12.0, help="seconds aimed at per measurement")
    p.add_argument("--threads", type=int, default=0,
                   help="torch.set_num_threads for the whole run (default 0: leave torch's default)")
    p.add_argument("--clock", default="wall", choices=("wall", "process"),
                   help="wall: time.perf_counter (default); process: time.process_time, CPU time of this process "
                        "(robust to other processes on a shared machine; use with --threads 1)")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip peak-memory measurements")
    p.add_argument("--no-control", action="store_true", help="skip the A/A control row")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.min_repeats, args.budget = 8, 4, 4.0
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
