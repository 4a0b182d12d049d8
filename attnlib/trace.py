"""Tracing a block: every intermediate tensor of a real forward pass, in order, with its equation label.

:func:`trace_block` runs the module under a :class:`torch.overrides.TorchFunctionMode` and records each
torch function or tensor method that returns tensors: the operation, the submodule it ran in, its input
shapes and its output shapes. Shapes always come from running the module, never from a hand-written
list. For each operation it finds the block's own source line (the innermost Python frame whose file lies
under ``attnlib/blocks/``) and reads that line's trailing comment, which by house convention reads::

    z = x.mean(dim=(2, 3))  # squeeze, eq. se-squeeze: (B, C)
                            #   ^ step    ^ label      ^ symbolic shape of the line's result

so each recorded step knows which equation of the book it implements and what each axis means.

What is recorded and what is not:

- recorded: every call returning one or more tensors, reshapes, permutes, views and indexing included
  (students need them), and the transpose properties ``.T``/``.mT``/``.H``/``.mH``;
- skipped: calls that return no tensor (``size``, ``dim``, ``is_floating_point``, ``shape``), other
  property reads (``.data``, ``.grad_fn``), and in-place updates of a parameter or buffer (e.g. BatchNorm's
  ``num_batches_tracked += 1`` in training), which are bookkeeping rather than data flow.

A statement with several operations, such as ``s = torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))``,
gives one step per operation; all share the line's step name and label, and the comment's symbolic
shape belongs to the last of them (the line's result). A line that runs several times (a loop) gives
one such group per run; ops in a comprehension on the line belong to the line's run. The other steps
get axis symbols inferred from sizes (marked ``"inferred"``): from the same axis of an input of the
same rank, else from the one input axis of that size (never from a coincidence with some other bound
symbol), backwards through shape-preserving ops (the input of ``sigmoid`` gets the names of its
output), and, for reshapes, from the adjacent input axes that were merged (``N`` for ``H·W``).
A size that no rule identifies stays unnamed.

Symbols: the input binds ``B, C, H, W`` (``B, C, L`` for 3-D, ``B, C, T, H, W`` for 5-D inputs) and
``N`` (the number of positions). Every other symbol in a comment (``C_r``, ``K``, ``G``, ...) is bound
the first time it appears; later appearances and expressions (``H*W``, ``C/2``, ``H+W``) are checked
against the real sizes, and disagreements are listed in :attr:`Trace.mismatches`.

Example:
    >>> import torch, attnlib
    >>> from attnlib.trace import trace_block
    >>> t = trace_block(attnlib.create_block("se", 64), torch.randn(2, 64, 8, 8))
    >>> [(s.op, s.label, s.output_shape) for s in t.steps][:2]
    [('mean', 'se-squeeze', (2, 64)), ('linear', 'se-excite', (2, 4))]
    >>> t.format_output(0)
    '(B=2, C=64)'
"""

from __future__ import annotations

import ast
import dis
import io
import linecache
import os
import re
import sys
import tokenize
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

__all__ = ["SYMBOLS", "Step", "StepInput", "Trace", "format_shape", "parse_comment", "parse_symbolic",
           "trace_block"]

#: meaning of each project symbol (shown in the steppers' legends)
SYMBOLS: dict[str, str] = {
    "B": "batch: samples in the mini-batch",
    "C": "channels of the input",
    "H": "height of the input feature map",
    "W": "width of the input feature map",
    "N": "positions: N = H·W",
    "L": "length of a 1-D input",
    "T": "time (frames) of a 3-D input",
    "C_r": "reduced width of a bottleneck, C_r = C / r",
    "K": "kernels / experts / codewords",
    "G": "groups",
    "M": "branches",
    "d": "width of a fused descriptor",
    "mip": "intermediate width of coordinate attention",
    "C_in": "input channels",
    "C_out": "output channels",
    "k": "kernel size",
}

_BLOCKS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "blocks") + os.sep
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_THIS_FILE = os.path.abspath(__file__)
_TRANSPOSE_PROPERTIES = {"T", "mT", "H", "mH"}
_RESHAPING = {"view", "reshape", "flatten", "unflatten", "view_as", "reshape_as", "contiguous"}
#: ops that may keep the shape while moving axes: their output's axis names say nothing about the input's
_REORDERING = {"transpose", "transpose_", "permute", "t", "T", "mT", "H", "mH", "swapaxes", "swapdims", "movedim",
               "moveaxis", "view", "reshape", "view_as", "reshape_as", "flatten", "unflatten", "rot90", "as_strided"}
_FULL_COMMENT = re.compile(r"^(?:(?P<step>.*?)\s*,\s*)?eq\.\s*(?P<label>[\w.:\-]+)\s*(?::\s*(?P<shape>.*?))?\s*$")
_NAMED_SHAPE = re.compile(r"^(?P<step>[^:()#]+?)\s*:\s*(?P<shape>\(.*\))\s*$")
_SHAPE_ONLY = re.compile(r"^(?P<shape>\(.*\))\s*$")


# ----------------------------------------------------------------------------------------- comments


def parse_comment(comment: str | None) -> tuple[str | None, str | None, str | None]:
    """Split a house-style comment into ``(step name, label, symbolic shape)``; missing parts are None.

    Accepted forms: ``"squeeze, eq. se-squeeze: (B, C)"``, ``"squeeze, eq. se-squeeze"``,
    ``"squeeze: (B, C)"`` and ``"(B, C, 1, 1)"``.

    >>> parse_comment("squeeze, eq. se-squeeze: (B, C)")
    ('squeeze', 'se-squeeze', '(B, C)')
    >>> parse_comment("(B, C, 1, 1)")
    (None, None, '(B, C, 1, 1)')
    """
    if not comment:
        return None, None, None
    text = comment.lstrip("#").strip()
    m = _FULL_COMMENT.match(text)
    if m:
        return m["step"] or None, m["label"], (m["shape"] or None)
    m = _NAMED_SHAPE.match(text)
    if m:
        return m["step"], None, m["shape"]
    m = _SHAPE_ONLY.match(text)
    if m:
        return None, None, m["shape"]
    return None, None, None


def _split_top(text: str, sep: str = ",") -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_symbolic(symbolic: str | None) -> list[list[str]]:
    """The axis symbols of a symbolic shape, one list per tensor.

    >>> parse_symbolic("(B, C, 1, 1)")
    [['B', 'C', '1', '1']]
    >>> parse_symbolic("(B, C, H, 1), (B, C, 1, W)")
    [['B', 'C', 'H', '1'], ['B', 'C', '1', 'W']]
    """
    if not symbolic:
        return []
    groups = []
    for part in _split_top(symbolic):
        part = part.strip()
        if part.startswith("(") and part.endswith(")"):
            axes = [a for a in _split_top(part[1:-1]) if a]
            groups.append(axes)
    return groups


class _SourceFile:
    """Comments and statement ranges of one source file (cached)."""

    def __init__(self, filename: str):
        self.lines = linecache.getlines(filename)
        self.comments: dict[int, str] = {}
        self.statements: list[tuple[int, int]] = []
        text = "".join(self.lines)
        try:
            for tok in tokenize.generate_tokens(io.StringIO(text).readline):
                if tok.type == tokenize.COMMENT:
                    self.comments[tok.start[0]] = tok.string
        except (tokenize.TokenError, IndentationError, SyntaxError):
            for i, line in enumerate(self.lines, 1):
                if "#" in line:
                    self.comments[i] = line[line.index("#"):].rstrip()
        try:
            tree = ast.parse(text)
        except SyntaxError:
            tree = None
        if tree is not None:
            compound = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor,
                        ast.While, ast.With, ast.AsyncWith, ast.Try)
            for node in ast.walk(tree):
                if isinstance(node, ast.stmt) and not isinstance(node, compound):
                    self.statements.append((node.lineno, node.end_lineno or node.lineno))

    def statement(self, line: int) -> tuple[int, int]:
        best = (line, line)
        for start, end in self.statements:
            if start <= line <= end and (best == (line, line) or end - start < best[1] - best[0]):
                best = (start, end)
        return best

    def comment_for(self, line: int) -> tuple[str | None, str]:
        """The comment describing the statement that contains ``line``, and the statement's text."""
        start, end = self.statement(line)
        text = " ".join(self.lines[i - 1].split("#")[0].strip() for i in range(start, end + 1)
                        if 0 < i <= len(self.lines)).strip()
        if line in self.comments and any(parse_comment(self.comments[line])):
            return self.comments[line], text
        for i in range(end, start - 1, -1):  # the statement's last comment describes its result
            if i in self.comments and any(parse_comment(self.comments[i])):
                return self.comments[i], text
        return self.comments.get(line), text


_FILES: dict[str, _SourceFile] = {}


def _source_file(filename: str) -> _SourceFile:
    sf = _FILES.get(filename)
    if sf is None or not sf.lines:
        sf = _FILES[filename] = _SourceFile(filename)
    return sf


# ------------------------------------------------------------------------------------------ symbols


class _Unknown(Exception):
    pass


def _eval_axis(expr: str, env: dict[str, int]) -> tuple[str, Any]:
    """``("num", value)``, ``("name", symbol)`` for an unbound lone symbol, or ``("opaque", None)``."""
    expr = expr.replace("·", "*").replace("×", "*").strip()
    try:
        node = ast.parse(expr, mode="eval").body
    except SyntaxError:
        return "opaque", None
    if isinstance(node, ast.Name) and node.id not in env:
        return "name", node.id

    def ev(n):
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool):
            return n.value
        if isinstance(n, ast.Name):
            if n.id in env:
                return env[n.id]
            raise _Unknown
        if isinstance(n, ast.BinOp):
            a, b = ev(n.left), ev(n.right)
            if isinstance(n.op, ast.Add):
                return a + b
            if isinstance(n.op, ast.Sub):
                return a - b
            if isinstance(n.op, ast.Mult):
                return a * b
            if isinstance(n.op, (ast.Div, ast.FloorDiv)):
                return a / b if b else float("nan")
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        raise _Unknown

    try:
        return "num", ev(node)
    except (_Unknown, ZeroDivisionError, TypeError):
        return "opaque", None


def _matches(value: float, size: int) -> bool:
    # "/" in a symbolic shape means the integer width the code computes: floor or ceil both accepted
    return value == size or (value != int(value) and size in (int(value), int(value) + 1))


def _input_env(shape: Sequence[int]) -> dict[str, int]:
    names = {2: "BC", 3: ("B", "C", "L"), 4: "BCHW", 5: "BCTHW"}.get(len(shape))
    env: dict[str, int] = {}
    if names is None:
        return env
    env.update(zip(names, shape))
    if len(shape) >= 3:
        n = 1
        for s in shape[2:]:
            n *= s
        env["N"] = n
    return env


def _axis_symbols(names: Sequence[str], shape: Sequence[int]) -> tuple[str | None, ...]:
    return tuple(names)[: len(shape)] + (None,) * (len(shape) - len(names))


def format_shape(shape: Sequence[int], symbols: Sequence[str | None] | None = None) -> str:
    """``(B=2, C=64, 1, 1)``: each size with the symbol it stands for, where one is known.

    >>> format_shape((2, 64, 1, 1), ("B", "C", "1", None))
    '(B=2, C=64, 1, 1)'
    """
    parts = []
    for i, size in enumerate(shape):
        sym = symbols[i] if symbols is not None and i < len(symbols) else None
        if sym is None or sym == str(size):
            parts.append(str(size))
        else:
            parts.append(f"{sym}={size}")
    return "(" + ", ".join(parts) + (",)" if len(parts) == 1 else ")")


# -------------------------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class StepInput:
    """One tensor argument of a step.

    Attributes:
        shape: its shape.
        name: ``"x"`` for the block's input, a parameter or buffer name (``"fc1.weight"``), else None.
        from_step: index of the step that produced it, or None (block input, parameter, constant).
        symbols: axis symbols (from the producing step or the input), None where unknown.
    """

    shape: tuple[int, ...]
    name: str | None = None
    from_step: int | None = None
    symbols: tuple[str | None, ...] = ()

    def describe(self) -> str:
        where = self.name or (f"step {self.from_step + 1}" if self.from_step is not None else "tensor")
        return f"{where} {format_shape(self.shape, self.symbols)}"


@dataclass(frozen=True)
class Step:
    """One operation of a traced forward pass.

    Attributes:
        index: position in the trace (0-based).
        op: the torch function or tensor method (``"mean"``, ``"linear"``, ``"__getitem__"``, ``"view"``).
        module: qualified name of the submodule the op ran in (``"fc1"``), ``""`` for the block itself.
        module_type: that submodule's class name (``"Linear"``).
        name: step name from the source comment (``"squeeze"``), or None.
        label: equation label from the source comment (``"se-squeeze"``), or None.
        symbolic: the comment's symbolic shape, on the step that produces the line's result; else None.
        inputs: the tensor arguments (:class:`StepInput`).
        outputs: the output shapes (one per returned tensor).
        output_symbols: axis symbols of each output, None where unknown.
        symbols_from: ``"comment"`` when the symbols come from the source comment, ``"inferred"`` when
            guessed from sizes, ``None`` when no axis got a symbol.
        source: the text of the source statement (comment removed).
        location: ``"attnlib/blocks/se.py:78"``.
        function: the Python function holding that line (``"SqueezeExcitation.gate"``).
        comment: the raw trailing comment of that line, or None.
        mismatch: why the comment's symbolic shape disagrees with the real output, or None.
    """

    index: int
    op: str
    module: str
    module_type: str
    name: str | None
    label: str | None
    symbolic: str | None
    inputs: tuple[StepInput, ...]
    outputs: tuple[tuple[int, ...], ...]
    output_symbols: tuple[tuple[str | None, ...], ...]
    symbols_from: str | None
    source: str
    location: str
    function: str
    comment: str | None
    mismatch: str | None = None

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The shape of the (first) output."""
        return self.outputs[0]

    @property
    def op_display(self) -> str:
        """``"linear in fc1 (Linear)"``, or just the op for the block's own code."""
        op = _display_op(self.op)
        return f"{op} in {self.module} ({self.module_type})" if self.module else op

    def format_output(self, k: int = 0) -> str:
        return format_shape(self.outputs[k], self.output_symbols[k] if k < len(self.output_symbols) else None)

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "op": self.op,
            "module": self.module,
            "module_type": self.module_type,
            "name": self.name,
            "label": self.label,
            "symbolic": self.symbolic,
            "inputs": [
                {"shape": list(i.shape), "name": i.name, "from_step": i.from_step, "symbols": list(i.symbols)}
                for i in self.inputs
            ],
            "outputs": [list(o) for o in self.outputs],
            "output_symbols": [list(s) for s in self.output_symbols],
            "symbols_from": self.symbols_from,
            "source": self.source,
            "location": self.location,
            "function": self.function,
            "comment": self.comment,
            "mismatch": self.mismatch,
        }


_OP_NAMES = {"__getitem__": "getitem [ ]", "__setitem__": "setitem [ ]=", "__matmul__": "matmul @",
             "__rmatmul__": "matmul @", "__truediv__": "div /", "__rtruediv__": "div /", "__pow__": "pow **",
             "__rsub__": "sub -", "__radd__": "add +", "__rmul__": "mul *", "__neg__": "neg -"}


def _display_op(op: str) -> str:
    return _OP_NAMES.get(op, op.strip("_") if op.startswith("__") else op)


@dataclass
class Trace:
    """The recorded forward pass of one block on one input (see :func:`trace_block`).

    Attributes:
        block: registry name of the block (or its class name when it is not registered).
        module: ``repr`` of the module (its hyper-parameters).
        input_shape: shape of the input.
        outputs: shapes of the tensors the module returned.
        steps: the recorded :class:`Step` list, in execution order.
        env: the symbols bound during the trace (``{"B": 2, "C": 64, ...}``).
    """

    block: str
    module: str
    input_shape: tuple[int, ...]
    outputs: tuple[tuple[int, ...], ...]
    steps: list[Step] = field(default_factory=list)
    env: dict[str, int] = field(default_factory=dict)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of the module's (first) output; ``()`` if it returned no tensor."""
        return self.outputs[0] if self.outputs else ()

    @property
    def unlabelled(self) -> int:
        """How many steps have no equation label (their source line has no ``eq.`` comment)."""
        return sum(1 for s in self.steps if s.label is None)

    @property
    def mismatches(self) -> list[str]:
        """Steps whose comment's symbolic shape disagrees with the shape the module really produced."""
        return [f"step {s.index + 1} ({s.location}): {s.mismatch}" for s in self.steps if s.mismatch]

    @property
    def labels(self) -> list[str]:
        """The equation labels in order of first use."""
        return list(dict.fromkeys(s.label for s in self.steps if s.label))

    def find(self, label: str) -> list[Step]:
        """The steps implementing equation ``label``."""
        return [s for s in self.steps if s.label == label]

    def format_output(self, index: int, k: int = 0) -> str:
        return self.steps[index].format_output(k)

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)

    def __getitem__(self, index: int) -> Step:
        return self.steps[index]

    def to_dict(self) -> dict:
        """A JSON-safe dict of the whole trace."""
        return {
            "block": self.block,
            "module": self.module,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "outputs": [list(o) for o in self.outputs],
            "env": dict(self.env),
            "unlabelled": self.unlabelled,
            "mismatches": self.mismatches,
            "steps": [s.to_dict() for s in self.steps],
        }

    def to_markdown(self) -> str:
        """A Markdown table: one row per step."""
        def cell(text) -> str:
            return str(text).replace("|", "\\|").replace("\n", " ")

        rows = [
            f"**{cell(self.module)}**, input {format_shape(self.input_shape, _axis_symbols(list(_input_env(self.input_shape))[:len(self.input_shape)], self.input_shape))}"
            f" → output {format_shape(self.output_shape)}",
            "",
            "| # | step | eq. | op | inputs | output | code |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in self.steps:
            ins = ", ".join(i.describe() for i in s.inputs)
            outs = ", ".join(s.format_output(k) for k in range(len(s.outputs)))
            rows.append(f"| {s.index + 1} | {cell(s.name or '')} | {cell(s.label or '')} | {cell(s.op_display)} | "
                        f"{cell(ins)} | {cell(outs)} | {'`' + cell(s.source) + '`' if s.source else ''} |")
        return "\n".join(rows)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        return (f"Trace({self.block}: {len(self.steps)} steps, input {tuple(self.input_shape)} -> "
                f"output {tuple(self.output_shape)}, unlabelled={self.unlabelled})")


# ------------------------------------------------------------------------------------------ tracing


@dataclass
class _Raw:
    op: str
    module: str
    module_type: str
    inputs: list[tuple[tuple[int, ...], str | None, int | None]]
    outputs: list[tuple[int, ...]]
    filename: str | None
    line: int
    function: str
    frame: int | None          # id of the source frame (frames are kept alive, so ids stay unique)
    code: Any                  # its code object
    ancestors: frozenset       # ids of the frames that called it, up to trace_block
    lasti: int                 # bytecode offset in the source frame
    call: int | None           # which submodule call (from the source line) the op ran in, if any


class _Recorder(TorchFunctionMode):
    def __init__(self, root: nn.Module, x: torch.Tensor, stop_code):
        super().__init__()
        self.raw: list[_Raw] = []
        self.module_stack: list[tuple[str, str, int, int]] = []  # (name, class, id(module), call number)
        self.calls = 0
        self.named = {id(t): n for n, t in list(root.named_parameters()) + list(root.named_buffers())}
        self.produced: dict[int, int] = {id(x): -1}
        self.keep: list[Any] = [x]  # keeps recorded tensors and frames alive so their ids stay unique
        self.stop_code = stop_code

    def _where(self):
        frame = sys._getframe(2)
        fallback = None
        while frame is not None and frame.f_code is not self.stop_code:
            fn = frame.f_code.co_filename
            if fn.startswith(_BLOCKS_DIR):
                return frame
            if fallback is None and not fn.startswith(_TORCH_DIR) and fn != _THIS_FILE:
                fallback = frame
            frame = frame.f_back
        return fallback

    def _call_from(self, frame) -> int | None:
        """The number of the submodule call made by ``frame``'s current line that the op runs in."""
        owner = frame.f_locals.get("self")
        depth = 0
        for i in range(len(self.module_stack) - 1, -1, -1):
            if self.module_stack[i][2] == id(owner):
                depth = i + 1
                break
        return self.module_stack[depth][3] if depth < len(self.module_stack) else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", None) or type(func).__name__
        if name == "__get__":
            name = getattr(getattr(func, "__self__", None), "__name__", "__get__")
            if name not in _TRANSPOSE_PROPERTIES:
                return out
        if name == "__setitem__" and args and isinstance(args[0], torch.Tensor):
            results = [args[0]]
        else:
            results = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        if not results:
            return out
        if (name.endswith("_") and not name.endswith("__") and args and isinstance(args[0], torch.Tensor)
                and id(args[0]) in self.named):
            return out  # in-place bookkeeping on a parameter or buffer (e.g. num_batches_tracked)
        inputs = []
        for t in tree_leaves((args, kwargs)):
            if isinstance(t, torch.Tensor):
                src = self.produced.get(id(t))
                inputs.append((tuple(t.shape), self.named.get(id(t)) or ("x" if src == -1 else None),
                               src if src is not None and src >= 0 else None))
        frame = self._where()
        if frame is not None:
            code = frame.f_code
            fn, line, lasti = code.co_filename, frame.f_lineno, frame.f_lasti
            func_name = getattr(code, "co_qualname", code.co_name)
            ancestors, f = set(), frame.f_back
            while f is not None and f.f_code is not self.stop_code:
                ancestors.add(id(f))
                f = f.f_back
            frame_id, call = id(frame), self._call_from(frame)
            self.keep.append(frame)
        else:
            fn, line, lasti, func_name, ancestors, frame_id, call, code = None, 0, 0, "", set(), None, None, None
        module, module_type = self.module_stack[-1][:2] if self.module_stack else ("", "")
        index = len(self.raw)
        self.raw.append(_Raw(name, module, module_type, inputs, [tuple(t.shape) for t in results], fn, line,
                             func_name, frame_id, code, frozenset(ancestors), lasti, call))
        for t in results:
            self.produced[id(t)] = index
            self.keep.append(t)
        return out


def _relpath(filename: str | None) -> str:
    if not filename:
        return ""
    pkg_root = os.path.dirname(os.path.dirname(_THIS_FILE)) + os.sep
    return filename[len(pkg_root):] if filename.startswith(pkg_root) else os.path.basename(filename)


_LOOPS: dict[Any, list[tuple[int, int, int | None]]] = {}


def _loop_line(code, lo: int, hi: int) -> int | None:
    """The source line of the innermost ``for`` loop (``FOR_ITER``) of ``code`` whose body holds the
    bytecode offsets ``lo..hi``, or None."""
    loops = _LOOPS.get(code)
    if loops is None:
        loops = []
        current = None
        for ins in dis.get_instructions(code):
            if getattr(ins, "positions", None) is not None and ins.positions.lineno is not None:
                current = ins.positions.lineno
            elif isinstance(ins.starts_line, int) and not isinstance(ins.starts_line, bool):
                current = ins.starts_line  # Python < 3.11: set on the first instruction of each line
            if ins.opname == "FOR_ITER" and isinstance(ins.argval, int):
                loops.append((ins.offset, ins.argval, current))
        _LOOPS[code] = loops
    inner = None
    for start, end, line in loops:
        if start <= lo and hi < end and (inner is None or start > inner[0]):
            inner = (start, line)
    return inner[1] if inner else None


def _same_statement_run(a: _Raw, b: _Raw) -> bool:
    """Whether op ``b`` continues the same execution of the source line as op ``a`` (which ran just before)."""
    if a.frame is None or b.frame is None or (a.filename, a.line) != (b.filename, b.line):
        return False
    if a.frame == b.frame:
        # later in the same line, or inside the same submodule call made by it
        if b.lasti > a.lasti or (b.lasti == a.lasti and a.call is not None and a.call == b.call):
            return True
        # the offset went back: a loop. Its iterations belong to one run when the loop is on this very
        # line (a comprehension; Python >= 3.12 inlines those into the frame), not for a `for` statement
        return _loop_line(a.code, b.lasti, a.lasti) == a.line
    # a comprehension or generator on the line runs in a frame of its own
    return a.frame in b.ancestors or b.frame in a.ancestors


def _inside(a: _Raw, parent: _Raw) -> bool:
    """Whether op ``a`` ran in a frame called from ``parent``'s frame on the same source line."""
    return (a.frame is not None and parent.frame is not None and parent.frame != a.frame
            and (a.filename, a.line) == (parent.filename, parent.line) and parent.frame in a.ancestors)


def _build_steps(raw: list[_Raw], input_shape: tuple[int, ...]) -> tuple[list[Step], dict[str, int]]:
    env = _input_env(input_shape)
    in_syms = _axis_symbols(list(env)[: len(input_shape)], input_shape)
    # A line's comment describes the line's result: the output of its last op, or, when the comment
    # lists k shapes and the line's last k ops each return one tensor (``return a[..], b.reshape(..)``),
    # one shape per op.
    runs: list[list[int]] = []
    for i in range(len(raw)):
        if runs and _same_statement_run(raw[runs[-1][-1]], raw[i]):
            runs[-1].append(i)
            # back in the line's own frame after a comprehension looped: the comprehension's
            # iterations (separate runs) belong to this execution of the line too
            while len(runs) > 1 and _inside(raw[runs[-2][-1]], raw[i]):
                runs[-2:] = [runs[-2] + runs[-1]]
        else:
            runs.append([i])
    comments = {}
    for i, r in enumerate(raw):
        comments[i] = _source_file(r.filename).comment_for(r.line) if r.filename else (None, "")
    assigned: dict[int, tuple[str, list[list[str]]]] = {}
    for run in runs:
        symbolic = parse_comment(comments[run[-1]][0])[2]
        shapes = parse_symbolic(symbolic)
        if not shapes:
            continue
        last = raw[run[-1]]
        if len(shapes) > 1 and len(last.outputs) == 1 and len(run) >= len(shapes) and all(
                len(raw[j].outputs) == 1 for j in run[-len(shapes):]):
            for j, axes in zip(run[-len(shapes):], shapes):
                assigned[j] = (symbolic, [axes])
        else:
            assigned[run[-1]] = (symbolic, shapes)

    n = len(raw)
    syms: list[list[tuple[str | None, ...]]] = [[] for _ in range(n)]
    fixed = [False] * n          # symbols taken from a comment are never changed
    mismatches: list[str | None] = [None] * n

    def input_symbols(i: int) -> list[StepInput]:
        out = []
        for shape, nm, src in raw[i].inputs:
            if src is not None:
                sy = next((syms[src][k] for k, o in enumerate(raw[src].outputs) if o == shape), (None,) * len(shape))
            elif nm == "x" and shape == tuple(input_shape):
                sy = in_syms
            else:
                sy = (None,) * len(shape)
            out.append(StepInput(shape, nm, src, tuple(sy)))
        return out

    # forward: symbols from the comments (binding new symbols in order), else inferred from the inputs
    for i, r in enumerate(raw):
        symbolic, groups = assigned.get(i, (None, []))
        if not groups:
            syms[i] = [_infer(shape, input_symbols(i), r.op) for shape in r.outputs]
            continue
        fixed[i] = True
        if len(groups) == 1 and len(r.outputs) > 1:
            groups = groups * len(r.outputs)
        problems = []
        if len(groups) != len(r.outputs):
            problems.append(f"comment gives {len(groups)} shapes for {len(r.outputs)} outputs")
        for k, shape in enumerate(r.outputs):
            axes = groups[k] if k < len(groups) else []
            if axes and len(axes) != len(shape):
                problems.append(f"comment {symbolic} has {len(axes)} axes, output has shape {shape}")
                axes = []
            for expr, size in zip(axes, shape):
                kind, value = _eval_axis(expr, env)
                if kind == "name":
                    env[value] = size
                elif kind == "num" and not _matches(value, size):
                    problems.append(f"axis {expr} should be {value:g} but is {size}")
            syms[i].append(tuple(axes) if axes else _infer(shape, input_symbols(i), r.op))
        mismatches[i] = "; ".join(problems) or None
    # backward: a shape-preserving op (sigmoid, relu, a scale) names its input's axes as its output's
    for i in range(n - 1, -1, -1):
        r = raw[i]
        if len(r.outputs) != 1 or r.op in _REORDERING:
            continue
        for shape, nm, src in r.inputs:
            if src is None or fixed[src] or shape != r.outputs[0]:
                continue
            for k, o in enumerate(raw[src].outputs):
                if o == shape:
                    syms[src][k] = tuple(a if a is not None else b for a, b in zip(syms[src][k], syms[i][0]))
    # forward again: later inferences see what the backward pass filled in
    for i in range(n):
        if not fixed[i]:
            fresh = [_infer(shape, input_symbols(i), r.op) for shape in raw[i].outputs]
            syms[i] = [tuple(a if a is not None else b for a, b in zip(old, new)) for old, new in zip(syms[i], fresh)]

    steps: list[Step] = []
    for i, r in enumerate(raw):
        comment, text = comments[i]
        step_name, label, _ = parse_comment(comment)
        symbolic = assigned.get(i, (None, []))[0]
        if fixed[i]:
            symbols_from = "comment"
        else:
            symbols_from = "inferred" if any(x is not None for sy in syms[i] for x in sy) else None
        steps.append(Step(
            index=i, op=r.op, module=r.module, module_type=r.module_type, name=step_name, label=label,
            symbolic=symbolic, inputs=tuple(input_symbols(i)), outputs=tuple(r.outputs),
            output_symbols=tuple(syms[i]), symbols_from=symbols_from, source=text,
            location=f"{_relpath(r.filename)}:{r.line}" if r.filename else "", function=r.function,
            comment=comment, mismatch=mismatches[i],
        ))
    return steps, env


def _infer(shape: tuple[int, ...], inputs: list[StepInput], op: str = "") -> tuple[str | None, ...]:
    """Axis symbols for an output without a comment. Each axis takes the symbol of the same axis of a
    data input (not a parameter) of the same rank and size; otherwise, its size is looked up among the
    data inputs' symbols and kept only where exactly one symbol has that size. Sizes are never matched
    against all bound symbols: a coincidence (N' = C) would name an axis wrongly. For reshapes, a size
    equal to the product of adjacent named input axes is named after them (``N`` for ``H·W``)."""
    data = [inp for inp in inputs if (inp.name is None or inp.name == "x") and any(inp.symbols)]
    local: dict[int, set[str]] = {}
    for inp in data:
        for sym, size in zip(inp.symbols, inp.shape):
            if sym is not None and not sym.isdigit():
                local.setdefault(size, set()).add(sym)
    out: list[str | None] = [None] * len(shape)
    for i, size in enumerate(shape):  # positional: same axis of an input of the same rank
        for inp in data:
            if len(inp.shape) == len(shape) and inp.shape[i] == size and inp.symbols[i] is not None:
                out[i] = inp.symbols[i]
                break
    for i, size in enumerate(shape):  # by size, where unambiguous
        cands = local.get(size, set())
        if out[i] is None and size != 1 and len(cands) == 1 and not cands & set(out):
            out[i] = next(iter(cands))
    if op in _RESHAPING:  # merged axes: a size that is the product of adjacent named input axes
        for i, size in enumerate(shape):
            if out[i] is not None or size == 1:
                continue
            for inp in data:
                run = _merged_run(inp, size)
                if run:
                    out[i] = "N" if run in (("H", "W"), ("T", "H", "W")) else "·".join(run)
                    break
    return tuple(out)


def _merged_run(inp: StepInput, size: int) -> tuple[str, ...] | None:
    for a in range(len(inp.shape)):
        prod = 1
        for b in range(a, len(inp.shape)):
            if inp.symbols[b] is None or inp.shape[b] == 1:
                break
            prod *= inp.shape[b]
            if prod == size and b > a:
                return tuple(inp.symbols[a:b + 1])
            if prod > size:
                break
    return None


def trace_block(module: nn.Module, x: torch.Tensor | Sequence[int], *, grad: bool = False) -> Trace:
    """Run ``module`` on ``x`` and record every intermediate tensor, in order.

    Args:
        module: any ``nn.Module``; for attnlib blocks, each step gets the equation label of the block's
            source line. The module runs as it is, in training or eval mode; no hook or attribute is
            left on it (a forward in training mode updates BatchNorm statistics, as any forward does).
        x: the input tensor, or a shape such as ``(2, 64, 16, 16)`` for a standard-normal input (seeded).
        grad: run with autograd enabled (default: under ``torch.no_grad()``, shapes do not depend on it).

    Returns:
        A :class:`Trace`.

    Raises:
        TypeError: if ``module`` is not an ``nn.Module`` or ``x`` is neither a tensor nor a shape.
        whatever the module raises for a bad input (attnlib blocks raise ``ValueError``).

    Example:
        >>> import attnlib
        >>> t = trace_block(attnlib.create_block("se", 32, reduction=4), (2, 32, 8, 8))
        >>> t.output_shape, t.find("se-scale")[0].format_output()
        ((2, 32, 8, 8), '(B=2, C=32, H=8, W=8)')
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"trace_block(module): module must be an nn.Module, got {type(module).__name__}")
    if not isinstance(x, torch.Tensor):
        if isinstance(x, (tuple, list, torch.Size)) and x and all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in x):
            gen = torch.Generator().manual_seed(0)
            param = next(module.parameters(), None)
            dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
            x = torch.randn(tuple(x), generator=gen, dtype=dtype)
            if param is not None:
                x = x.to(param.device)
        else:
            raise TypeError(f"trace_block(x): x must be a tensor or a shape tuple of ints, got {x!r}")

    name = getattr(module, "registry_name", "") or type(module).__name__
    handles = []

    def run(mod, inp):
        return mod(inp)

    recorder = _Recorder(module, x, run.__code__)

    def pre(mod, _args, qual):
        recorder.calls += 1
        recorder.module_stack.append((qual, type(mod).__name__, id(mod), recorder.calls))

    def post(_mod, _args, _out):
        if recorder.module_stack:
            recorder.module_stack.pop()

    for qual, sub in module.named_modules():
        if qual:
            handles.append(sub.register_forward_pre_hook(lambda m, a, q=qual: pre(m, a, q)))
            handles.append(sub.register_forward_hook(post, always_call=True))
    try:
        with torch.set_grad_enabled(grad), recorder:
            out = run(module, x)
    finally:
        for h in handles:
            h.remove()
    outputs = tuple(tuple(t.shape) for t in tree_leaves(out) if isinstance(t, torch.Tensor))
    steps, env = _build_steps(recorder.raw, tuple(x.shape))
    return Trace(block=name, module=f"{type(module).__name__}({module.extra_repr()})",
                 input_shape=tuple(x.shape), outputs=outputs, steps=steps, env=env)
