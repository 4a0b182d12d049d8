"""Shape steppers: walk through a block's forward pass one operation at a time.

Both front ends show the same :class:`attnlib.trace.Trace`, recorded by running the real block:

- :func:`static_stepper` traces a registered block for every combination of a grid of settings and
  returns one HTML+JavaScript output (no external script, no CDN, unique element ids per output), so the
  rendered book, without a kernel, still lets a reader change the settings and step forward and back. It
  works the same in Jupyter, in Colab and on the static site. Its behaviour and look are two package files,
  ``attnlib/assets/attnlib-stepper.js`` and ``.css``: an output inlines them (Jupyter, Colab), or, with the
  environment variable ``ATTNLIB_STEPPER_ASSETS=linked`` (set by the book's build), leaves them to the one
  shared copy that every page of the site loads.
- :func:`live_stepper` builds ipywidgets controls (only widgets found in both ipywidgets 7 and 8) that
  re-trace the real block whenever a setting changes.

Each step shows its name and the book's equation label (read from the block's source comment), the
operation and the submodule it ran in, the source line, the input shapes and the output shape with every
axis named by its symbol (``(B=2, C=64, 1, 1)``), and a legend of what each symbol means.

Example:
    >>> from attnlib.stepper import static_stepper
    >>> page = static_stepper("se", {"C": [32, 64], "reduction": [4, 16]}, fixed={"H": 8, "W": 8})
    >>> "se-squeeze" in page.html and "<script src" not in page.html
    True
"""

from __future__ import annotations

import functools
import html as _html
import inspect
import itertools
import json
import os
import re
import uuid
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import torch

from .htmlout import HTMLOutput
from .registry import block_info, create_block
from .validation import describe
from .trace import SYMBOLS, Trace, _display_op, format_shape, trace_block

__all__ = ["StepperHTML", "live_stepper", "render_step_html", "render_trace_html", "static_stepper"]

INPUT_KEYS = ("B", "C", "H", "W")
_INPUT_DEFAULTS = {"C": 64, "H": 16, "W": 16}
_MAX_COMBINATIONS = 512
#: the largest input a stepper traces, in values (B·C·H·W): every step's output is kept for the page
MAX_INPUT_VALUES = 2**22
_PRIMED = {"H": "height", "W": "width", "T": "time", "L": "length", "N": "positions", "C": "channels"}


class StepperHTML(HTMLOutput):
    """A self-contained HTML output; Jupyter, Colab and myst-nb display it through ``_repr_html_``.

    Attributes:
        html: the HTML string (one ``<div>`` with the traces as JSON; in the default inline mode also a
            ``<style>`` and a ``<script>`` holding the package's stepper CSS and JavaScript).
        element_id: the id of the root ``<div>``; every other element is found inside it.
        errors: ``{setting description: error message}`` for the combinations that could not be built.
    """

    def __init__(self, html: str, element_id: str, errors: dict[str, str] | None = None, *, fresh_ids: bool = True):
        super().__init__(html, element_id, prefix="attnlib-stepper", fresh_ids=fresh_ids)
        self.errors = dict(errors or {})

    def __repr__(self) -> str:
        return f"StepperHTML(id={self.element_id!r}, {len(self.html)} characters)"


# ------------------------------------------------------------------------------------------- helpers


def _constructor_keys(name: str) -> tuple[str, list[str]]:
    """The block's first parameter (the channel count) and the names of its other parameters."""
    cls = block_info(name).cls
    params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
    if not params:
        raise ValueError(f"block {name!r} takes no channel argument; the stepper cannot build it")
    return params[0].name, [p.name for p in params[1:] if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _build_and_trace(name: str, setting: dict[str, Any], args: Sequence[Any]) -> Trace:
    """Build the registered block for ``setting`` (B/C/H/W plus constructor keywords) and trace it."""
    hyper = {k: v for k, v in setting.items() if k not in INPUT_KEYS}
    for k in INPUT_KEYS:
        v = setting[k]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_INPUT_VALUES:
            raise ValueError(f"{k} must be an integer >= 1 and <= {MAX_INPUT_VALUES}, got {describe(v)}")
    values = setting["B"] * setting["C"] * setting["H"] * setting["W"]
    if values > MAX_INPUT_VALUES:
        raise ValueError(f"the input (B, C, H, W) = ({setting['B']}, {setting['C']}, {setting['H']}, {setting['W']}) "
                         f"has {values} values; a stepper traces at most {MAX_INPUT_VALUES}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        block = create_block(name, setting["C"], *args, **hyper)
    block.eval()
    return trace_block(block, (setting["B"], setting["C"], setting["H"], setting["W"]))


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _legend(traces: Sequence[Trace]) -> dict[str, str]:
    used: list[str] = ["B", "C", "H", "W"]
    for t in traces:
        used.extend(t.env)
        for s in t.steps:
            for syms in s.output_symbols:
                used.extend(x for x in syms if x)
    legend = {}
    for sym in dict.fromkeys(used):
        if sym in SYMBOLS:
            legend[sym] = SYMBOLS[sym]
        elif sym.endswith("'") and sym.rstrip("'") in _PRIMED:
            legend[sym] = f"{_PRIMED[sym.rstrip(chr(39))]} after pooling or a stride"
    return legend


# -------------------------------------------------------------------------------- compact encoding


class _Strings:
    def __init__(self):
        self.table: list[str] = [""]
        self.index: dict[str, int] = {"": 0}

    def __call__(self, text: str | None) -> int:
        if text is None or text == "":
            return 0
        text = str(text)
        i = self.index.get(text)
        if i is None:
            i = self.index[text] = len(self.table)
            self.table.append(text)
        return i


def _encode_trace(trace: Trace, s: _Strings, templates: dict[tuple, int]) -> dict:
    """Compact JSON of a trace. Each step is ``[template, symbols_from, inputs, outputs, output symbols,
    mismatch]``; a template holds what does not depend on the sizes (op, module, name, label, symbolic
    shape, source, location, comment) and is shared by every setting. An input is ``-1`` for the block
    input ``x``, ``[step, k]`` for output ``k`` of an earlier step, or ``[shape, name]`` otherwise."""
    steps = []
    for st in trace.steps:
        module = f"{st.module} ({st.module_type})" if st.module else ""
        where = f"{st.location} · {st.function}" if st.location else ""
        tpl = (s(_display_op(st.op)), s(module), s(st.name), s(st.label), s(st.symbolic), s(st.source), s(where), s(st.comment))
        t = templates.setdefault(tpl, len(templates))
        inputs = []
        for i in st.inputs:
            if i.name == "x" and i.from_step is None and i.shape == tuple(trace.input_shape):
                inputs.append(-1)
            elif i.from_step is not None and i.shape in trace.steps[i.from_step].outputs:
                inputs.append([i.from_step, trace.steps[i.from_step].outputs.index(i.shape)])
            else:
                inputs.append([list(i.shape), s(i.name)])
        steps.append([t, {"comment": 1, "inferred": 2}.get(st.symbols_from or "", 0), inputs,
                      [list(o) for o in st.outputs], [[s(x) for x in syms] for syms in st.output_symbols],
                      s(st.mismatch)])
    env_syms = list(trace.env)[: len(trace.input_shape)]
    return {"m": s(trace.module), "i": list(trace.input_shape), "is": [s(x) for x in env_syms],
            "o": list(trace.output_shape), "u": trace.unlabelled, "st": steps}


# ---------------------------------------------------------------------------------------- the page

# The stepper's behaviour and look live in two package files, attnlib/assets/attnlib-stepper.{js,css}.
# The book's site loads them once per page (book/_ext/site_assets.py, which sets ATTNLIB_STEPPER_ASSETS=linked
# for the kernels that execute the chapters); everywhere else (Jupyter, Colab) each output inlines them.
ASSET_MODE_ENV = "ATTNLIB_STEPPER_ASSETS"
_ASSET_MODES = ("inline", "linked")
ASSET_FILES = ("attnlib-stepper.js", "attnlib-stepper.css")


def asset_dir() -> Path:
    """The folder that holds the stepper's shared JavaScript and CSS files (``ASSET_FILES``)."""
    return Path(__file__).resolve().parent / "assets"


@functools.lru_cache(maxsize=None)
def _asset_text(name: str) -> str:
    return resources.files("attnlib").joinpath("assets", name).read_text(encoding="utf-8")


def _asset_mode() -> str:
    mode = os.environ.get(ASSET_MODE_ENV, "inline") or "inline"
    if mode not in _ASSET_MODES:
        raise ValueError(f"environment variable {ASSET_MODE_ENV} must be one of {_ASSET_MODES}, got {mode!r}")
    return mode


def _inline_css() -> str:
    """The stepper's CSS for an output that must stand alone ('' when the page loads the shared file)."""
    if _asset_mode() == "linked":
        return ""
    css = re.sub(r"/\*.*?\*/", "", _asset_text("attnlib-stepper.css"), flags=re.S).strip()
    return f"<style>{css}</style>"


def _inline_script(rid: str) -> str:
    """The stepper's JavaScript, started on the root ``rid`` ('' when the page loads the shared file)."""
    if _asset_mode() == "linked":
        return ""
    js = _asset_text("attnlib-stepper.js")
    return f'<script>(function () {{\n{js}\nattnlibStepper(document.getElementById("{rid}"));\n}})();</script>'


def _json_for_script(data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _page(title: str, keys: list[str], values: dict[str, list], settings: dict[str, dict], traces: list[dict],
          strings: _Strings, templates: dict[tuple, int], legend: dict[str, str], init: dict[str, int],
          element_id: str | None, first: Trace) -> StepperHTML:
    rid = element_id or f"attnlib-stepper-{uuid.uuid4().hex}"
    if not all(ch.isalnum() or ch in "-_" for ch in rid):
        raise ValueError(f"element_id must contain only letters, digits, '-' and '_', got {rid!r}")
    data = {"keys": keys, "init": init, "settings": settings, "traces": traces, "s": strings.table,
            "tp": [list(t) for t in templates], "legend": legend}
    esc = _html.escape
    controls = []
    for k in keys:
        opts = "".join(f'<option value="{i}"{" selected" if i == init.get(k) else ""}>{esc(_value_text(v))}</option>'
                       for i, v in enumerate(values[k]))
        what = {"B": "batch B", "C": "channels C", "H": "height H", "W": "width W"}.get(k, k)
        controls.append(f'<label>{esc(what)} <select data-role="sel-{esc(k)}">{opts}</select></label>')
    if first.steps:
        summary, view, items = _step_parts(first, 0, legend)
    else:
        summary, view, items = "", "no tensor operation was recorded", ""
    html = (
        f'<div class="attnlib-stepper" id="{rid}" tabindex="0" role="region" aria-label="shape stepper">'
        f"{_inline_css()}"
        f'<div class="ats-title">Shape stepper: {esc(title)}</div>'
        + (f'<div class="ats-controls">{"".join(controls)}</div>' if controls else "")
        + f'<div class="ats-muted" data-role="summary">{summary}</div>'
        '<div class="ats-nav"><button type="button" data-role="prev" disabled>\u25c0 Prev</button>'
        f'<input type="range" min="0" max="{max(len(first.steps) - 1, 0)}" value="0" step="1" data-role="range" '
        'aria-label="step"><button type="button" data-role="next">Next \u25b6</button>'
        f'<span data-role="pos">step 1 / {len(first.steps)}</span></div>'
        # filled in Python for the first setting, so the page reads without JavaScript (an untrusted
        # notebook); the script re-renders it on load
        f'<div class="ats-view" data-role="view" aria-live="polite">{view}</div>'
        f'<ol class="ats-list" data-role="list">{items}</ol>'
        f'<div class="ats-legend">{_legend_html(legend)}</div>'
        f'<script type="application/json">{_json_for_script(data)}</script>'
        f"{_inline_script(rid)}"
        "</div>"
    )
    return StepperHTML(html, rid, fresh_ids=element_id is None)


def _value_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v)) if abs(v) < 1e15 else repr(v)
    if isinstance(v, str):
        return v
    return describe(v)  # never fails, and shortens enormous values (str(10**5000) raises)


# ---------------------------------------------------------------------------------------- front ends


def static_stepper(name: str, grid: dict[str, Sequence[Any]], *, fixed: dict[str, Any] | None = None,
                   batch: int = 2, args: Sequence[Any] = (), element_id: str | None = None) -> StepperHTML:
    """A self-contained HTML+JavaScript stepper over a precomputed grid of settings.

    The real block is built (seed 0) and traced in eval mode (:func:`attnlib.trace.trace_block`) for
    every combination of the grid; combinations the block rejects (e.g. a reduction that leaves a
    width of 0) are kept with the error message, which the page shows when a reader selects them.

    Args:
        name: a registered block name (``attnlib.list_blocks()``).
        grid: ``{setting: [values]}``. Keys ``B``, ``C``, ``H``, ``W`` are input sizes; any other key
            is a keyword argument of the block's constructor (e.g. ``reduction``). Each key becomes a
            ``<select>``; the first value that gives a valid block is shown first.
        fixed: settings that stay constant (same keys as ``grid``, one value each). Unset input sizes
            default to ``C=64, H=16, W=16``.
        batch: the batch size ``B`` when neither ``grid`` nor ``fixed`` sets it.
        args: further positional constructor arguments after the channel count (rarely needed).
        element_id: id of the root element; default a fresh ``attnlib-stepper-<uuid>`` (give one only
            for reproducible output, and never the same twice on a page).

    Returns:
        :class:`StepperHTML` (displayed as HTML by Jupyter, Colab and myst-nb).

    Raises:
        ValueError: unknown block, a grid key that is neither an input size nor a constructor argument,
            an empty value list, a key in both ``grid`` and ``fixed``, more than 512 combinations, or a
            grid in which no combination can be built.

    Example:
        >>> page = static_stepper("se", {"C": [16, 64], "reduction": [4, 16, 32]}, fixed={"H": 8, "W": 8})
        >>> sorted(page.errors)  # C=16 with r=32 leaves a reduced width of 0
        ['C=16, reduction=32']
    """
    first, ctor = _constructor_keys(name)
    fixed = dict(fixed or {})
    if not isinstance(grid, dict):
        raise ValueError(f"static_stepper(grid): grid must be a dict of value lists, got {type(grid).__name__}")
    for where, mapping in (("grid", grid), ("fixed", fixed)):
        for key in mapping:
            if key not in INPUT_KEYS and key not in ctor:
                raise ValueError(
                    f"static_stepper({name!r}): {where} key {key!r} is neither an input size {INPUT_KEYS} nor an "
                    f"argument of {block_info(name).cls.__name__} (arguments: {ctor}; the channel count "
                    f"{first!r} is set by 'C')")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ValueError(f"static_stepper({name!r}): keys {both} are in both grid and fixed")
    keys = list(grid)
    values = {}
    for k in keys:
        v = grid[k]
        if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or len(v) == 0:
            raise ValueError(f"static_stepper({name!r}): grid[{k!r}] must be a non-empty list of values, got {v!r}")
        values[k] = list(v)
    total = 1
    for k in keys:
        total *= len(values[k])
    if total > _MAX_COMBINATIONS:
        raise ValueError(f"static_stepper({name!r}): the grid has {total} combinations; at most "
                         f"{_MAX_COMBINATIONS} are allowed (the page embeds one trace per combination)")
    base = {"B": batch, **_INPUT_DEFAULTS, **fixed}

    strings = _Strings()
    templates: dict[tuple, int] = {}
    settings: dict[str, dict] = {}
    traces: list[dict] = []
    kept: list[Trace] = []
    errors: dict[str, str] = {}
    init: dict[str, int] | None = None
    for idx in itertools.product(*(range(len(values[k])) for k in keys)):
        setting = dict(base)
        setting.update({k: values[k][i] for k, i in zip(keys, idx)})
        key = "|".join(str(i) for i in idx)
        try:
            t = _build_and_trace(name, setting, args)
        except Exception as exc:  # any failure of one setting is that setting's error, never the page's
            desc = ", ".join(f"{k}={_value_text(setting[k])}" for k in keys)
            errors[desc] = _error_text(exc)
            settings[key] = {"e": _error_text(exc)}
            continue
        settings[key] = {"t": len(traces)}
        traces.append(_encode_trace(t, strings, templates))
        kept.append(t)
        if init is None:
            init = dict(zip(keys, idx))
    if not traces:
        raise ValueError(f"static_stepper({name!r}): no combination of the grid can be built; first error: "
                         f"{next(iter(errors.values()))}")
    title = f"{name} ({block_info(name).cls.__name__})"
    if fixed:
        title += ", " + ", ".join(f"{k}={_value_text(v)}" for k, v in fixed.items())
    page = _page(title, keys, values, settings, traces, strings, templates, _legend(kept), init or {},
                 element_id, kept[0])
    page.errors = errors
    return page


def render_trace_html(trace: Trace, *, element_id: str | None = None) -> StepperHTML:
    """A self-contained HTML stepper for one trace (no setting controls).

    Example:
        >>> import attnlib
        >>> from attnlib.trace import trace_block
        >>> page = render_trace_html(trace_block(attnlib.create_block("se", 32), (2, 32, 8, 8)))
        >>> page.html.count("<script>")
        1
    """
    if not isinstance(trace, Trace):
        raise TypeError(f"render_trace_html(trace): expected an attnlib.trace.Trace, got {type(trace).__name__}")
    strings = _Strings()
    templates: dict[tuple, int] = {}
    encoded = _encode_trace(trace, strings, templates)
    return _page(trace.module, [], {}, {"": {"t": 0}}, [encoded], strings, templates, _legend([trace]), {},
                 element_id, trace)


def render_step_html(trace: Trace, index: int) -> str:
    """The view of one step as plain HTML (no script): what :func:`live_stepper` shows.

    Same content as a step of the static stepper: step name and equation label, the operation and its
    submodule, the source line, the inputs and the output with named axes, and the list of all steps
    with the current one highlighted.
    """
    n = len(trace.steps)
    if not 0 <= index < n:
        raise ValueError(f"render_step_html(index): index must be in [0, {n - 1}], got {index}")
    legend = _legend([trace])
    summary, view, items = _step_parts(trace, index, legend)
    return (f'<div class="attnlib-stepper">{_inline_css()}<div class="ats-muted">{summary}</div>'
            f'<div class="ats-view">{view}</div><ol class="ats-list">{items}</ol>'
            f'<div class="ats-legend">{_legend_html(legend)}</div></div>')


def _legend_html(legend: dict[str, str]) -> str:
    esc = _html.escape
    return "".join(f"<span><b>{esc(k)}</b>: {esc(v)}</span>" for k, v in legend.items()) + \
        "<span>\u00b7: a size with no symbol</span>"


def _step_parts(trace: Trace, index: int, legend: dict[str, str]) -> tuple[str, str, str]:
    """HTML of the summary line, of the view of step ``index`` and of the items of the step list
    (the same markup the page's script writes)."""
    esc = _html.escape
    st = trace.steps[index]

    def axes(shape, syms, inferred):
        if not syms or not any(syms):
            return ""
        cells = []
        for a, size in enumerate(shape):
            sym = syms[a] if a < len(syms) else None
            cls = "ats-axis" + (" ats-inferred" if inferred and sym else "")
            title = (f"{sym}: {legend[sym]}" if sym in legend else (sym or f"axis {a}"))
            title += " (inferred from the sizes)" if inferred and sym else ""
            cells.append(f'<span class="{cls}" title="{esc(title)}"><b>{esc(sym or chr(183))}</b><i>{size}</i></span>')
        return '<span class="ats-axes">' + "".join(cells) + "</span>"

    summary = (f"<code>{esc(trace.module)}</code>: input "
               f"{esc(format_shape(trace.input_shape, tuple(trace.env)[:len(trace.input_shape)]))} \u2192 output "
               f"{esc(format_shape(trace.output_shape, _final_symbols(trace)))}, {len(trace.steps)} steps")
    if trace.unlabelled:
        summary += f' <span class="ats-muted">({trace.unlabelled} without an equation label)</span>'
    name = st.name or st.label or _display_op(st.op)
    label = (f'<span class="ats-eq">eq. {esc(st.label)}</span>' if st.label
             else '<span class="ats-muted">no equation label</span>')
    op = f"<code>{esc(_display_op(st.op))}</code>"
    if st.module:
        op += f" in <code>{esc(st.module)} ({esc(st.module_type)})</code>"
    where = f' <span class="ats-muted">at {esc(st.location)} \u00b7 {esc(st.function)}</span>' if st.location else ""
    parts = [f'<div class="ats-head">{index + 1}. {esc(name)} &nbsp;{label}</div>',
             f"<div>operation {op}{where}</div>"]
    if st.source:
        parts.append(f"<pre>{esc(st.source)}{'  ' + esc(st.comment) if st.comment else ''}</pre>")
    items = []
    for inp in st.inputs:
        who = inp.name or (f"output of step {inp.from_step + 1}" if inp.from_step is not None else "tensor")
        items.append(f"<li>{esc(who)} {axes(inp.shape, inp.symbols, False)} "
                     f"<code>{esc(format_shape(inp.shape, inp.symbols))}</code></li>")
    parts.append(f"<div>inputs:<ul>{''.join(items)}</ul></div>")
    outs = " &nbsp; ".join(f"{axes(o, st.output_symbols[k], st.symbols_from == 'inferred')} "
                           f"<code>{esc(st.format_output(k))}</code>" for k, o in enumerate(st.outputs))
    parts.append(f'<div>output{"s" if len(st.outputs) > 1 else ""}: {outs}</div>')
    if st.symbols_from == "comment" and st.symbolic:
        parts.append(f'<div class="ats-muted">symbolic shape from the source comment: <code>{esc(st.symbolic)}</code></div>')
    elif st.symbols_from == "inferred":
        parts.append('<div class="ats-muted">axis names in italics are inferred from the sizes</div>')
    if st.mismatch:
        parts.append(f'<div class="ats-warn">comment and real shape disagree: {esc(st.mismatch)}</div>')
    rows = []
    for s in trace.steps:
        cur = ' class="ats-current"' if s.index == index else ""
        lab = f'<span class="ats-muted">[{esc(s.label)}]</span> ' if s.label else ""
        named = s.name or s.label
        rows.append(f'<li data-i="{s.index}"{cur}>{esc(named) + " " if named else ""}{lab}'
                    f"<code>{esc(_display_op(s.op))}</code> \u2192 <code>{esc(s.format_output())}</code></li>")
    return summary, "".join(parts), "".join(rows)


def _final_symbols(trace: Trace):
    last = trace.steps[-1] if trace.steps else None
    return last.output_symbols[0] if last is not None and last.outputs[0] == trace.output_shape else None


class _LiveStepper:
    """The state behind :func:`live_stepper`: controls, the current trace and the step shown."""

    def __init__(self, name: str, sizes: dict[str, int], hyper: dict[str, Any], args: Sequence[Any]):
        import ipywidgets as w

        self.name = name
        self.args = tuple(args)
        self.trace: Trace | None = None
        self.error: str | None = None
        self.index = 0
        self.controls: dict[str, Any] = {}
        self.fixed: dict[str, Any] = {}
        limits = {"B": (1, max(8, sizes["B"])), "C": (1, max(512, sizes["C"])), "H": (1, max(64, sizes["H"])),
                  "W": (1, max(64, sizes["W"]))}
        for k in INPUT_KEYS:
            lo, hi = limits[k]
            self.controls[k] = w.IntSlider(value=sizes[k], min=lo, max=hi, step=1, description=k,
                                           continuous_update=False)
        for k, spec in hyper.items():
            control = self._control(w, k, spec)
            if control is None:
                self.fixed[k] = spec
            else:
                self.controls[k] = control
        self.prev_button = w.Button(description="\u25c0 Prev")
        self.next_button = w.Button(description="Next \u25b6")
        self.step_slider = w.IntSlider(value=0, min=0, max=0, step=1, description="step")
        self.position = w.Label(value="")
        self.view = w.HTML(value="")
        for c in self.controls.values():
            c.observe(self._on_setting, names="value")
        self.prev_button.on_click(lambda _b: self.go(self.index - 1))
        self.next_button.on_click(lambda _b: self.go(self.index + 1))
        self.step_slider.observe(lambda ch: self.go(ch["new"]), names="value")
        title = w.HTML(value=f"<b>Shape stepper: {_html.escape(name)} ({_html.escape(block_info(name).cls.__name__)})</b>"
                       + (" " + _html.escape(", ".join(f"{k}={v}" for k, v in self.fixed.items())) if self.fixed else ""))
        inputs = w.HBox([self.controls[k] for k in INPUT_KEYS])
        extra = [c for k, c in self.controls.items() if k not in INPUT_KEYS]
        rows = [title, inputs] + ([w.HBox(extra)] if extra else [])
        rows += [w.HBox([self.prev_button, self.next_button, self.step_slider, self.position]), self.view]
        self.widget = w.VBox(rows)
        self.widget.stepper = self
        self.retrace()

    @staticmethod
    def _control(w, key: str, spec: Any):
        if isinstance(spec, list):
            if not spec:
                raise ValueError(f"live_stepper: the value list of {key!r} is empty")
            return w.Dropdown(options=[(_value_text(v), v) for v in spec], value=spec[0], description=key)
        if isinstance(spec, tuple) and len(spec) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec):
            lo, hi = spec
            if lo > hi:
                raise ValueError(f"live_stepper: range of {key!r} must be (min, max) with min <= max, got {spec}")
            if all(isinstance(v, int) for v in spec):
                return w.IntSlider(value=lo, min=lo, max=hi, step=1, description=key, continuous_update=False)
            return w.FloatSlider(value=float(lo), min=float(lo), max=float(hi), description=key,
                                 continuous_update=False)
        if isinstance(spec, bool):
            return w.Checkbox(value=spec, description=key)
        if isinstance(spec, int):
            return w.IntText(value=spec, description=key)
        if isinstance(spec, float):
            return w.FloatText(value=spec, description=key)
        return None

    @property
    def setting(self) -> dict[str, Any]:
        out = {k: c.value for k, c in self.controls.items()}
        out.update(self.fixed)
        return out

    def _on_setting(self, _change) -> None:
        self.retrace()

    def retrace(self) -> None:
        """Build and trace the block for the current settings; on failure show the error instead."""
        old = self.trace.steps[self.index] if self.trace is not None and self.trace.steps else None
        try:
            self.trace = _build_and_trace(self.name, self.setting, self.args)
            self.error = None
        except Exception as exc:  # any failure of one setting is shown in the view, never raised
            self.trace = None
            self.error = _error_text(exc)
        if self.trace is not None and old is not None:
            same = [s.index for s in self.trace.steps if (s.op, s.label, s.source) == (old.op, old.label, old.source)]
            if same:
                self.index = min(same, key=lambda i: abs(i - self.index))
        self.render()

    def go(self, index: int) -> None:
        if self.trace is None:
            return
        self.index = max(0, min(int(index), len(self.trace.steps) - 1))
        self.render()

    def render(self) -> None:
        esc = _html.escape
        if self.trace is None:
            self.view.value = (f'<div class="attnlib-stepper">{_inline_css()}<div class="ats-error">'
                               f"This setting cannot be built:</div><pre>{esc(self.error or '')}</pre></div>")
            self.position.value = "-"
            for b in (self.prev_button, self.next_button):
                b.disabled = True
            self.step_slider.disabled = True
            return
        n = len(self.trace.steps)
        self.index = max(0, min(self.index, n - 1))
        self.step_slider.disabled = False
        if self.step_slider.max != n - 1 or self.step_slider.value != self.index:
            # set max before value, and value without re-entering go()
            if self.index > self.step_slider.max:
                self.step_slider.max = n - 1
                self.step_slider.value = self.index
            else:
                self.step_slider.value = self.index
                self.step_slider.max = n - 1
        self.prev_button.disabled = self.index == 0
        self.next_button.disabled = self.index == n - 1
        self.position.value = f"step {self.index + 1} / {n}"
        self.view.value = render_step_html(self.trace, self.index)


def live_stepper(name: str, *, C: int = 64, H: int = 16, W: int = 16, B: int = 2, args: Sequence[Any] = (),
                 **hyper: Any):
    """An ipywidgets stepper that re-traces the real block whenever a control changes.

    The block is built (seed 0) and traced in eval mode, as in :func:`static_stepper`.
    Uses only widgets present in both ipywidgets 7 and 8 (``IntSlider``, ``FloatSlider``, ``Dropdown``,
    ``Checkbox``, ``IntText``, ``FloatText``, ``Button``, ``HTML``, ``Label``, ``HBox``, ``VBox``). An
    invalid setting (e.g. a reduction that leaves a width of 0) shows its error message in the view.

    Args:
        name: a registered block name.
        C, H, W, B: initial input sizes (each gets an ``IntSlider``).
        args: further positional constructor arguments after the channel count (rarely needed).
        **hyper: constructor keyword arguments of the block, each given as a list (a ``Dropdown``, the
            first value selected), a ``(min, max)`` pair (a slider starting at min), an int / float /
            bool (an editable ``IntText`` / ``FloatText`` / ``Checkbox``), or any other value (fixed).
            Names that are not arguments of the block raise ``ValueError``.

    Returns:
        An ``ipywidgets.VBox``; its attribute ``stepper`` holds the controls (``stepper.controls``), the
        current ``stepper.trace`` and the step view (``stepper.view``).

    Example:
        >>> box = live_stepper("se", C=32, reduction=[4, 16])   # doctest: +SKIP
        >>> box                                                  # doctest: +SKIP
    """
    first, ctor = _constructor_keys(name)
    unknown = sorted(k for k in hyper if k not in ctor)
    if unknown:
        raise ValueError(f"live_stepper({name!r}): {unknown} are not arguments of {block_info(name).cls.__name__} "
                         f"(arguments: {ctor}; the channel count {first!r} is set by 'C')")
    sizes = {"B": B, "C": C, "H": H, "W": W}
    for k, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"live_stepper({name!r}): {k} must be an integer >= 1, got {v!r}")
    return _LiveStepper(name, sizes, hyper, args).widget
