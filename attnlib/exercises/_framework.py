"""The exercise framework: an :class:`Exercise` runs a reader's function against the library on random
inputs and random weights, and names the mistake when the output matches a catalogued wrong variant.

A check never prints the expected values or the solution: its messages say what went wrong (which mistake,
which shape, which exception), never what the right numbers are.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

DTYPE = torch.float64


# ------------------------------------------------------------------------------------------ random data


def randn(gen: torch.Generator, *shape: int, std: float = 1.0) -> torch.Tensor:
    """Standard-normal float64 values (times ``std``) drawn from ``gen``."""
    return torch.randn(*shape, generator=gen, dtype=DTYPE) * std


def randint(gen: torch.Generator, low: int, high: int) -> int:
    """A random integer in ``[low, high]`` (both included)."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def uniform(gen: torch.Generator, low: float, high: float, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(tuple(shape), generator=gen, dtype=DTYPE)


def randomize(module: nn.Module, gen: torch.Generator, *, std: float = 1.0) -> nn.Module:
    """Cast ``module`` to float64, put it in eval mode and give every parameter random values.

    Weights with a fan-in (2-D and more) get std ``std / sqrt(fan_in)``; vectors (biases, norm shifts) get
    std ``0.5 * std``; norm scales are drawn in [0.5, 1.5]. BatchNorm running statistics are random too,
    so a reader's function that ignores the normalisation does not pass by accident.
    """
    module.double().eval()
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            owner = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
            is_norm = isinstance(owner, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm))
            if is_norm and leaf == "weight":
                p.copy_(uniform(gen, 0.5, 1.5, *p.shape))
            elif p.dim() >= 2:
                p.copy_(randn(gen, *p.shape, std=std / math.sqrt(p[0].numel())))
            else:
                p.copy_(randn(gen, *p.shape, std=0.5 * std))
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.running_mean is not None:
                m.running_mean.copy_(randn(gen, *m.running_mean.shape, std=0.3))
                m.running_var.copy_(uniform(gen, 0.5, 2.0, *m.running_var.shape))
    return module


# ------------------------------------------------------------------------------------------ data classes


@dataclass
class Case:
    """One trial: the arguments given to the reader's function and the library's answer."""

    args: tuple
    expected: Any
    #: what the arguments are, in words, for messages ("x of shape (2, 24, 5, 7)")
    describe: str = ""
    #: the largest number of elements one intermediate tensor may have (None: no limit)
    max_numel: int | None = None
    #: the most calls allowed per torch function name, e.g. ``{"conv2d": 1}`` (None: no limit)
    max_calls: dict | None = None


@dataclass
class Mistake:
    """A catalogued wrong variant of the solution and the message it earns."""

    key: str
    wrong: Callable
    message: str


class CheckResult:
    """What :meth:`Exercise.check` found. True when the function passed; shows its message in a notebook."""

    def __init__(self, exercise: "Exercise", passed: bool, message: str, mistake: str | None = None):
        self.exercise = exercise
        self.passed = passed
        self.message = message
        #: the key of the recognised mistake, one of the generic keys ("exception", "shape", "values",
        #: "dtype", "type", "in_place", "memory"), or None when the function passed
        self.mistake = mistake

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        head = "Correct" if self.passed else "Not yet"
        return f"{head} ({self.exercise.key}): {self.message}"

    __str__ = __repr__


class _LargestTensor(TorchFunctionMode):
    """Records the largest number of elements of any tensor a torch function returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0
        self.where = ""
        self.calls: dict[str, int] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        self.calls[name] = self.calls.get(name, 0) + 1
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.numel() > self.largest:
                self.largest = t.numel()
                self.where = f"{getattr(func, '__name__', str(func))} -> shape {tuple(t.shape)}"
        return out


def _as_tensors(value) -> tuple | None:
    """Normalise a function's return value to a tuple of tensors (numbers become 0-d float64 tensors)."""
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return (torch.tensor(float(value), dtype=DTYPE),)
    if isinstance(value, (tuple, list)) and value:
        out = []
        for v in value:
            t = _as_tensors(v)
            if t is None or len(t) != 1:
                return None
            out.append(t[0])
        return tuple(out)
    return None


def _clone(args: tuple) -> tuple:
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def _shapes(ts: Sequence[torch.Tensor]) -> str:
    return ", ".join(str(tuple(t.shape)) for t in ts)


# ------------------------------------------------------------------------------------------ the exercise


@dataclass
class Exercise:
    """A coding exercise of a chapter.

    Args:
        key: ``"<chapter>.<name>"``, e.g. ``"se.gate"``.
        title: one line.
        signature: the function the reader writes, e.g. ``"se_gate(x, W1, b1, W2, b2)"``.
        task: what the function must return, with the shapes of its arguments.
        make_case: ``make_case(gen) -> Case``, random sizes, inputs and weights from ``gen``; the expected
            output comes from the library's block on those weights.
        solution: the reference solution (the one printed in the chapter's hidden dropdown).
        mistakes: the catalogue of wrong variants, checked in order.
        hints: nudges, from gentle to specific; none gives the code away.
        trials: random cases per check.
    """

    key: str
    title: str
    signature: str
    task: str
    make_case: Callable[[torch.Generator], Case]
    solution: Callable
    mistakes: list[Mistake] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    trials: int = 5
    rtol: float = 1e-6
    atol: float = 1e-8

    # ---------------------------------------------------------------------------------------- display

    @property
    def chapter(self) -> str:
        return self.key.split(".", 1)[0]

    def __repr__(self) -> str:
        task = textwrap.fill(" ".join(self.task.split()), 100)
        return (f"Exercise {self.key}: {self.title}\n\nWrite  {self.signature}\n\n{task}\n\n"
                f"Check it with  attnlib.exercises.check({self.key!r}, your_function)  or  .check(your_function);"
                f" ask for a hint with  .hint().")

    def hint(self, level: int = 1) -> str:
        """The ``level``-th hint (1 = the gentlest), printed and returned."""
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= len(self.hints):
            raise ValueError(f"level must be an integer from 1 to {len(self.hints)}, got {level!r}")
        text = f"Hint {level}/{len(self.hints)} ({self.key}): {self.hints[level - 1]}"
        print(text)
        return text

    # ---------------------------------------------------------------------------------------- checking

    def cases(self, trials: int | None = None, seed: int = 0) -> list[Case]:
        gen = torch.Generator().manual_seed(seed)
        return [self.make_case(gen) for _ in range(self.trials if trials is None else trials)]

    def _close(self, got: tuple, want: tuple) -> bool:
        return (len(got) == len(want) and all(g.shape == w.shape for g, w in zip(got, want))
                and all(torch.allclose(g.to(DTYPE), w.to(DTYPE), rtol=self.rtol, atol=self.atol, equal_nan=False)
                        for g, w in zip(got, want)))

    def _matching_mistakes(self, case: Case, got: tuple) -> set[str]:
        found = set()
        for m in self.mistakes:
            try:
                with torch.no_grad():
                    wrong = _as_tensors(m.wrong(*_clone(case.args)))
            except Exception:
                continue
            if wrong is not None and self._close(got, wrong):
                found.add(m.key)
        return found

    def check(self, fn, *, trials: int | None = None, seed: int = 0) -> CheckResult:
        """Run ``fn`` on ``trials`` random cases and compare it with the library.

        Returns a :class:`CheckResult` (true when ``fn`` passed) whose message names the mistake: a
        catalogued one of this exercise, or an exception, a wrong type, shape or dtype, an input changed
        in place, or an intermediate tensor too large for the exercise's memory budget.
        """
        if not callable(fn):
            raise ValueError(f"check() needs the function you wrote (a callable), got {type(fn).__name__}: {fn!r}")
        if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
            raise ValueError(f"trials must be an integer >= 1, got {trials!r}")
        failed: list[tuple[Case, tuple]] = []
        largest = (0, "", None)
        too_many = None
        cases = self.cases(trials, seed)
        for case in cases:
            args = _clone(case.args)
            mode = _LargestTensor()
            try:
                with torch.no_grad(), mode:
                    out = fn(*args)
            except Exception as e:  # the reader's code may raise anything
                return CheckResult(self, False, f"your function raised {type(e).__name__}: {e} (called with "
                                   f"{case.describe}).", "exception")
            for a, b in zip(args, case.args):
                if isinstance(a, torch.Tensor) and not torch.equal(a, b):
                    return CheckResult(self, False, "your function changed one of its input tensors in place "
                                       "(an in-place operation such as x.mul_ or x[...] = ...); "
                                       "compute a new tensor instead.", "in_place")
            if out is None:
                return CheckResult(self, False, "your function returned None: did you forget `return`?", "type")
            got = _as_tensors(out)
            want = _as_tensors(case.expected)
            if got is None:
                return CheckResult(self, False, f"your function returned a {type(out).__name__}; it should return "
                                   f"{self._kind(want)}.", "type")
            if len(got) != len(want):
                return CheckResult(self, False, f"your function returned {len(got)} value(s); it should return "
                                   f"{self._kind(want)}.", "type")
            if case.max_numel is not None and mode.largest > case.max_numel:
                largest = max(largest, (mode.largest / case.max_numel, mode.where, case), key=lambda t: t[0])
            for name, limit in (case.max_calls or {}).items():
                if mode.calls.get(name, 0) > limit and too_many is None:
                    too_many = (name, mode.calls[name], limit, case)
            if not self._close(got, want):
                failed.append((case, got))
        if failed:
            return self._diagnose(failed)
        if too_many is not None:
            name, n, limit, case = too_many
            return CheckResult(self, False, f"the values are right, but your function calls {name} {n} times "
                               f"(with {case.describe}); the exercise asks for {limit} call(s) whatever the batch "
                               f"size: one call must serve every sample.", "calls")
        if largest[2] is not None:
            case = largest[2]
            return CheckResult(self, False, f"the values are right, but one intermediate tensor is too large "
                               f"({largest[1]}, with {case.describe}): the exercise asks you to stay within "
                               f"{case.max_numel} elements per tensor. Rewrite it so that no tensor grows with "
                               f"the product of all the sizes.", "memory")
        return CheckResult(self, True, f"your function matches the library on {len(cases)} "
                           f"random inputs and weights.")

    @staticmethod
    def _kind(want: tuple) -> str:
        if len(want) == 1:
            return "one tensor" if want[0].dim() else "one number"
        return f"a tuple of {len(want)} tensors"

    def _diagnose(self, failed: list[tuple[Case, tuple]]) -> CheckResult:
        common = None
        for case, got in failed:
            found = self._matching_mistakes(case, got)
            common = found if common is None else common & found
        for m in self.mistakes:  # catalogue order decides between equally good explanations
            if m.key in common:
                return CheckResult(self, False, m.message, m.key)
        case, got = failed[0]
        want = _as_tensors(case.expected)
        if any(g.shape != w.shape for g, w in zip(got, want)):
            return CheckResult(self, False, f"your function returned shape(s) {_shapes(got)} but should return "
                               f"{_shapes(want)} (called with {case.describe}).", "shape")
        bad = [i for i, (g, w) in enumerate(zip(got, want)) if g.dtype != w.dtype]
        if bad and got[bad[0]].is_floating_point():
            return CheckResult(self, False, f"your function returned {got[bad[0]].dtype} where the inputs are "
                               f"{DTYPE}: keep the inputs' dtype (the check compares in double precision).", "dtype")
        if any(not torch.isfinite(g.to(DTYPE)).all() for g in got):
            return CheckResult(self, False, "your function returned NaN or infinite values (called with "
                               f"{case.describe}).", "values")
        errs = [float((g.to(DTYPE) - w).abs().max()) if g.numel() else 0.0 for g, w in zip(got, want)]
        which = "" if len(got) == 1 else f"output {max(range(len(errs)), key=errs.__getitem__)}: "
        return CheckResult(self, False, f"the shape is right but the values differ ({which}largest difference "
                           f"{max(errs):.3g}, with {case.describe}) in {len(failed)} of the trials. This is not "
                           f"one of the mistakes the checker knows; try .hint().", "values")


def describe(**tensors) -> str:
    """``describe(x=x, W=W)`` -> "x of shape (2, 3, 4, 5), W of shape (6, 3)" (numbers are shown as is)."""
    parts = []
    for name, t in tensors.items():
        parts.append(f"{name} of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else f"{name}={t!r}")
    return ", ".join(parts)


def make_block(name: str, *args, gen: torch.Generator, std: float = 1.0, **kwargs) -> nn.Module:
    """A registered block with random float64 weights, in eval mode (see :func:`randomize`)."""
    from ..registry import create_block

    return randomize(create_block(name, *args, **kwargs), gen, std=std)
