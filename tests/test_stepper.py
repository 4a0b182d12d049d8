"""Tests for attnlib.stepper: the static HTML+JS stepper and the live ipywidgets stepper."""

import html.parser
import json
import os
import re
import shutil
import subprocess

import pytest

import attnlib
from attnlib.stepper import live_stepper, render_step_html, render_trace_html, static_stepper
from attnlib.trace import trace_block
from cases import CASES

NAMES = attnlib.list_blocks()


class _Parser(html.parser.HTMLParser):
    """Collects element ids, script bodies (by type) and <script src=...> tags."""

    def __init__(self):
        super().__init__()
        self.ids, self.scripts, self.json, self.script_src = [], [], [], []
        self._in = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "script":
            if "src" in attrs:
                self.script_src.append(attrs["src"])
            self._in = "json" if attrs.get("type") == "application/json" else "js"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in = None

    def handle_data(self, data):
        if self._in == "json":
            self.json.append(data)
        elif self._in == "js":
            self.scripts.append(data)


def _parse(page_html):
    p = _Parser()
    p.feed(page_html)
    p.close()
    return p


def _data(page):
    p = _parse(page.html)
    assert len(p.json) == 1
    return json.loads(p.json[0])


def _decoded_steps(data, trace_index):
    """(display op, module, name, label, outputs) of each step of one embedded trace."""
    s, tp = data["s"], data["tp"]
    out = []
    for step in data["traces"][trace_index]["st"]:
        t = tp[step[0]]
        out.append((s[t[0]], s[t[1]], s[t[2]] or None, s[t[3]] or None, [tuple(o) for o in step[3]]))
    return out


def _case_setup(name):
    case = CASES.get(name)
    if case is None:
        return 64, (12, 10), {}, ()
    return case.channels, case.size, dict(case.kwargs), tuple(case.args)


# ---------------------------------------------------------------------------------------- static page


@pytest.mark.parametrize("name", NAMES)
def test_static_page_holds_every_step_of_every_setting(name):
    C, (H, W), kwargs, args = _case_setup(name)
    grid = {"H": [H, 7], "W": [W]}
    page = static_stepper(name, grid, fixed={"C": C, **kwargs}, args=args)
    data = _data(page)
    assert data["keys"] == ["H", "W"] and len(data["settings"]) == 2
    for key, entry in data["settings"].items():
        ih, iw = (int(i) for i in key.split("|"))
        block = attnlib.create_block(name, C, *args, **kwargs).eval()
        direct = trace_block(block, (2, C, grid["H"][ih], grid["W"][iw]))
        assert "t" in entry, f"{name}: setting {key} failed: {entry}"
        steps = _decoded_steps(data, entry["t"])
        assert len(steps) == len(direct.steps)
        for (op, module, step_name, label, outputs), st in zip(steps, direct.steps):
            assert op and module == (f"{st.module} ({st.module_type})" if st.module else "")
            assert (step_name, label) == (st.name, st.label)
            assert outputs == list(st.outputs)
        assert data["traces"][entry["t"]]["o"] == list(direct.output_shape)
    assert not _parse(page.html).script_src and "http" not in page.html
    for label in {st.label for st in direct.steps if st.label}:
        assert label in data["s"]


def test_static_page_records_invalid_settings():
    page = static_stepper("se", {"C": [16, 64], "reduction": [4, 32]}, fixed={"H": 6, "W": 5})
    data = _data(page)
    assert set(page.errors) == {"C=16, reduction=32"}
    bad = data["settings"]["0|1"]
    assert "t" not in bad and "reduction=32" in bad["e"] and "ValueError" in bad["e"]
    assert all("t" in data["settings"][k] for k in ("0|0", "1|0", "1|1"))
    assert data["init"] == {"C": 0, "reduction": 0}
    # the reduced width follows the setting
    fc1 = {k: _decoded_steps(data, data["settings"][k]["t"])[1][4][0] for k in ("0|0", "1|0", "1|1")}
    assert fc1 == {"0|0": (2, 4), "1|0": (2, 16), "1|1": (2, 2)}


def test_page_reads_without_javascript():
    """Untrusted notebooks strip scripts: the first setting's first step and step list are in the HTML."""
    page = static_stepper("se", {"C": [16, 64]}, fixed={"H": 6, "W": 5})
    static = re.sub(r"<script.*?</script>", "", page.html, flags=re.S)
    assert "eq. se-squeeze" in static and "z = x.mean(dim=(2, 3))" in static
    assert static.count("<li data-i=") == 7 and static.count('class="ats-current"') == 1
    assert "(B=2, C=16)" in static and "step 1 / 7" in static
    assert '<option value="0" selected>16</option>' in static


def test_static_page_is_small_enough():
    page = static_stepper("nonlocal", {"C": [16, 32, 64], "H": [8, 16], "W": [8, 12],
                                       "mode": ["embedded_gaussian", "gaussian", "dot_product", "concatenation"]})
    assert len(_data(page)["traces"]) == 48
    assert len(page.html) < 300_000, len(page.html)


def test_two_steppers_do_not_share_ids_or_state():
    a = static_stepper("se", {"C": [16, 32]}, fixed={"H": 4, "W": 4})
    b = static_stepper("se", {"C": [16, 32]}, fixed={"H": 4, "W": 4})
    pa, pb = _parse(a.html), _parse(b.html)
    assert pa.ids == [a.element_id] and pb.ids == [b.element_id] and a.element_id != b.element_id
    ref = re.compile(r"attnlib-stepper-[0-9a-f]{32}")
    for page, p in ((a, pa), (b, pb)):
        assert len(p.scripts) == 1
        assert set(ref.findall(p.scripts[0])) == {page.element_id}
        assert "getElementById(\"" + page.element_id + "\")" in p.scripts[0]
        # no global state: nothing assigned to window or document properties, no ids looked up but the root
        assert "window." not in p.scripts[0] and p.scripts[0].count("getElementById(") == 3  # root + equation link
    # the CSS is scoped to the stepper class
    css = re.search(r"<style>(.*?)</style>", a.html, re.S).group(1)
    assert all(rule.strip().startswith(".attnlib-stepper") for rule in css.split("}") if rule.strip())


def test_displaying_twice_gives_fresh_ids():
    page = static_stepper("se", {"C": [16]}, fixed={"H": 4, "W": 4})
    first, second = page._repr_html_(), page._repr_html_()
    assert first == page.html and _parse(first).ids == [page.element_id]
    (other,) = _parse(second).ids
    assert other != page.element_id and page.element_id not in second
    assert second == page.html.replace(page.element_id, other)


def test_reproducible_with_an_explicit_id():
    a = static_stepper("se", {"C": [16, 32]}, fixed={"H": 4, "W": 4}, element_id="se-demo")
    b = static_stepper("se", {"C": [16, 32]}, fixed={"H": 4, "W": 4}, element_id="se-demo")
    assert a.html == b.html and a._repr_html_() == a.html and a._repr_html_() == a.html
    with pytest.raises(ValueError, match="element_id"):
        static_stepper("se", {"C": [16]}, element_id='x" onload="alert(1)')


def test_static_stepper_rejects_bad_grids():
    with pytest.raises(ValueError, match="unknown block"):
        static_stepper("nope", {"C": [16]})
    with pytest.raises(ValueError, match="'ratio' is neither an input size"):
        static_stepper("se", {"ratio": [4]})
    with pytest.raises(ValueError, match="both grid and fixed"):
        static_stepper("se", {"C": [16]}, fixed={"C": 32})
    with pytest.raises(ValueError, match="non-empty list"):
        static_stepper("se", {"C": []})
    with pytest.raises(ValueError, match="non-empty list"):
        static_stepper("se", {"C": 16})
    with pytest.raises(ValueError, match="combinations"):
        static_stepper("se", {"C": list(range(1, 30)), "H": list(range(1, 30))})
    with pytest.raises(ValueError, match="no combination"):
        static_stepper("se", {"reduction": [100, 200]}, fixed={"C": 8})


def test_render_trace_html_single():
    t = trace_block(attnlib.create_block("se", 16, reduction=4), (2, 16, 4, 4))
    page = render_trace_html(t)
    data = _data(page)
    assert data["keys"] == [] and list(data["settings"]) == [""]
    assert [s[3] for s in _decoded_steps(data, 0)] == [s.label for s in t.steps]
    with pytest.raises(TypeError):
        render_trace_html("se")


def test_legend_names_every_symbol_shown():
    page = static_stepper("nonlocal", {"C": [16]}, fixed={"H": 8, "W": 8})
    legend = _data(page)["legend"]
    for sym in ("B", "C", "H", "W", "N", "C_r"):
        assert sym in legend and legend[sym]
    import torch.nn as nn
    from attnlib.stepper import _legend

    class Pool(nn.Module):
        def forward(self, x):
            return nn.functional.max_pool2d(x, 2)  # pool, eq. p-pool: (B, C, H', W')

    legend = _legend([trace_block(Pool(), (2, 3, 8, 6))])
    assert legend["H'"] == "height after pooling or a stride" and legend["W'"] == "width after pooling or a stride"


# ------------------------------------------------------------------------------------- headless browser

_HARNESS = """<script>
window.addEventListener("load", function () {
  var A = document.getElementById("%(a)s").attnlibStepper, B = document.getElementById("%(b)s").attnlibStepper;
  var r = {};
  r.a0 = A.state(); r.b0 = B.state();
  A.next(); A.next();
  r.a1 = A.state(); r.b1 = B.state();
  A.choose("C", 1);
  r.a2 = A.state();
  A.prev();
  r.a3 = A.state(); r.b3 = B.state();
  A.choose("reduction", 1);
  r.a4 = A.state();
  r.a4view = document.getElementById("%(a)s").querySelector("[data-role=view]").textContent;
  B.go(6);
  r.b5 = B.state(); r.a5 = A.state();
  r.b5current = document.getElementById("%(b)s").querySelector("li.ats-current").textContent;
  r.b5view = document.getElementById("%(b)s").querySelector("[data-role=view]").textContent;
  var link = document.getElementById("%(b)s").querySelector("[data-role=view] a.ats-eq");
  r.b5link = link ? link.getAttribute("href") : null;
  var out = document.createElement("pre");
  out.id = "result";
  out.textContent = JSON.stringify(r);
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(shutil.which("chromium") is None and not os.environ.get("CI"),
                    reason="chromium not installed (CI installs it and runs these tests)")
def test_two_steppers_in_a_browser(tmp_path):
    grid = {"C": [16, 64], "reduction": [4, 32]}
    a = static_stepper("se", grid, fixed={"H": 6, "W": 5})
    b = static_stepper("se", grid, fixed={"H": 6, "W": 5})
    page = tmp_path / "two.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'></head><body>"
                    + '<div id="equation-se-scale">y = s x</div>' + a.html + b.html + _HARNESS % {"a": a.element_id, "b": b.element_id} + "</body></html>")
    proc = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-2000:]
    import html as _html
    r = json.loads(_html.unescape(m.group(1)))
    assert r["a0"] == r["b0"] == {"step": 0, "steps": 7, "settings": {"C": 0, "reduction": 0},
                                  "output": "(B=2, C=16)", "label": "se-squeeze"}
    assert r["a1"]["step"] == 2 and r["a1"]["label"] == "se-excite" and r["b1"] == r["b0"]
    # changing C keeps the same operation in view and shows the new shapes
    assert r["a2"]["settings"] == {"C": 1, "reduction": 0} and r["a2"]["step"] == 2
    assert r["a2"]["output"] == "(B=2, 16)"  # relu of fc1: (B, C/r) = (2, 64/4)
    assert r["a3"]["step"] == 1 and r["b3"] == r["b0"]
    # C=64, r=32 is valid; C=16, r=32 is not (checked below through B)
    assert r["a4"]["settings"] == {"C": 1, "reduction": 1} and r["a4"]["output"] == "(B=2, 2)"
    assert r["b5"]["step"] == 6 and r["b5"]["output"] == "(B=2, C=16, H=6, W=5)" and r["a5"] == r["a4"]
    assert "scale" in r["b5current"] and "eq. se-scale" in r["b5view"] and "x * s" in r["b5view"]
    assert r["b5link"] == "#equation-se-scale"  # a labelled equation on the page becomes a link


@pytest.mark.skipif(shutil.which("chromium") is None and not os.environ.get("CI"),
                    reason="chromium not installed (CI installs it and runs these tests)")
def test_invalid_setting_shows_the_error_in_a_browser(tmp_path):
    a = static_stepper("se", {"C": [16], "reduction": [4, 32]}, fixed={"H": 6, "W": 5})
    harness = """<script>window.addEventListener("load", function () {
      var root = document.getElementById("%s"), A = root.attnlibStepper;
      A.choose("reduction", 1);
      var out = document.createElement("pre"); out.id = "result";
      out.textContent = JSON.stringify({s: A.state(), view: root.querySelector("[data-role=view]").textContent,
        next: root.querySelector("[data-role=next]").disabled});
      document.body.appendChild(out);
    });</script>""" % a.element_id
    page = tmp_path / "one.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'></head><body>" + a.html + harness + "</body></html>")
    proc = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-2000:]
    import html as _html
    r = json.loads(_html.unescape(m.group(1)))
    assert r["s"]["steps"] == 0 and r["s"]["output"] is None and r["next"] is True
    assert "cannot be built" in r["view"] and "reduction=32" in r["view"]


# --------------------------------------------------------------------------------- shared asset files


def test_the_script_and_style_are_package_files():
    from importlib import resources

    from attnlib.stepper import ASSET_FILES, asset_dir

    js_text, css_text = (resources.files("attnlib").joinpath("assets", f).read_text() for f in ASSET_FILES)
    assert all((asset_dir() / f).is_file() for f in ASSET_FILES)
    page = static_stepper("se", {"C": [16, 32]}, fixed={"H": 4, "W": 4})
    (script,) = _parse(page.html).scripts
    assert js_text in script and script.rstrip().endswith(f'attnlibStepper(document.getElementById("{page.element_id}"));\n}})();')
    style = re.search(r"<style>(.*?)</style>", page.html, re.S).group(1)
    assert "/*" not in style and style.split("{")[0].strip() == ".attnlib-stepper"
    # every rule of the file is in the inlined style, comments dropped
    rules = [r.strip() for r in re.sub(r"/\*.*?\*/", "", css_text, flags=re.S).split("}") if r.strip()]
    assert rules and all(r in style for r in rules)
    # the live stepper's view carries the same style
    view = render_step_html(trace_block(attnlib.create_block("se", 16, reduction=4), (2, 16, 4, 4)), 0)
    assert f"<style>{style}</style>" in view
    # the package ships the folder
    import tomllib
    from pathlib import Path
    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "assets/*" in meta["tool"]["setuptools"]["package-data"]["attnlib"]


def test_linked_mode_leaves_script_and_style_to_the_page(monkeypatch):
    monkeypatch.setenv("ATTNLIB_STEPPER_ASSETS", "linked")
    page = static_stepper("se", {"C": [16, 32]}, fixed={"H": 4, "W": 4})
    p = _parse(page.html)
    assert p.scripts == [] and p.script_src == [] and "<style>" not in page.html
    assert len(p.json) == 1 and p.ids == [page.element_id] and _data(page)["keys"] == ["C"]
    assert "<style>" not in render_step_html(trace_block(attnlib.create_block("se", 16, reduction=4), (2, 16, 4, 4)), 0)
    monkeypatch.setenv("ATTNLIB_STEPPER_ASSETS", "cdn")
    with pytest.raises(ValueError, match="ATTNLIB_STEPPER_ASSETS must be one of \\('inline', 'linked'\\), got 'cdn'"):
        static_stepper("se", {"C": [16]}, fixed={"H": 4, "W": 4})


@pytest.mark.skipif(shutil.which("chromium") is None and not os.environ.get("CI"),
                    reason="chromium not installed (CI installs it and runs these tests)")
def test_linked_steppers_start_from_the_shared_file_in_a_browser(tmp_path, monkeypatch):
    """As on the site: two steppers without inline script or style, one shared <script src> in the head."""
    from attnlib.stepper import ASSET_FILES, asset_dir

    monkeypatch.setenv("ATTNLIB_STEPPER_ASSETS", "linked")
    grid = {"C": [16, 64], "reduction": [4, 32]}
    a = static_stepper("se", grid, fixed={"H": 6, "W": 5})
    b = static_stepper("se", grid, fixed={"H": 6, "W": 5})
    for f in ASSET_FILES:
        shutil.copy(asset_dir() / f, tmp_path / f)
    page = tmp_path / "linked.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'>"
                    f'<script src="{ASSET_FILES[0]}"></script><link rel="stylesheet" href="{ASSET_FILES[1]}">'
                    "</head><body>" + a.html + b.html + _HARNESS % {"a": a.element_id, "b": b.element_id}
                    + "</body></html>")
    proc = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-2000:]
    import html as _html
    r = json.loads(_html.unescape(m.group(1)))
    assert r["a0"] == r["b0"] == {"step": 0, "steps": 7, "settings": {"C": 0, "reduction": 0},
                                  "output": "(B=2, C=16)", "label": "se-squeeze"}
    assert r["a1"]["step"] == 2 and r["b1"] == r["b0"]
    assert r["a4"]["settings"] == {"C": 1, "reduction": 1} and r["a4"]["output"] == "(B=2, 2)"
    assert r["b5"]["step"] == 6 and r["a5"] == r["a4"]


# ---------------------------------------------------------------------------------------- live widget

_COMMON_WIDGETS = {"IntSlider", "FloatSlider", "Dropdown", "Checkbox", "IntText", "FloatText", "Button", "HTML",
                   "Label", "HBox", "VBox"}


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_live_stepper_retraces_on_change():
    box = live_stepper("se", C=32, H=8, W=6, reduction=[4, 16, 64])
    st = box.stepper
    assert {type(w).__name__ for w in _walk(box)} <= _COMMON_WIDGETS
    assert set(st.controls) == {"B", "C", "H", "W", "reduction"}
    assert type(st.controls["reduction"]).__name__ == "Dropdown"
    assert st.trace.output_shape == (2, 32, 8, 6) and st.position.value == "step 1 / 7"
    assert "(B=2, C=32)" in st.view.value and "eq. se-squeeze" in st.view.value
    st.next_button.click()
    assert st.index == 1 and st.step_slider.value == 1 and "eq. se-excite" in st.view.value
    assert "(B=2, 8)" in st.view.value  # fc1: (B, C/r) = (2, 32/4)
    st.controls["C"].value = 48
    assert st.trace.output_shape == (2, 48, 8, 6)
    assert st.index == 1 and "(B=2, 12)" in st.view.value  # same step, new shapes: 48/4
    st.step_slider.value = 6
    assert "(B=2, C=48, H=8, W=6)" in st.view.value and st.next_button.disabled
    st.controls["H"].value = 3
    assert st.trace.output_shape == (2, 48, 3, 6) and "(B=2, C=48, H=3, W=6)" in st.view.value


def test_live_stepper_shows_errors_instead_of_raising():
    box = live_stepper("se", C=16, reduction=[4, 32])
    st = box.stepper
    st.controls["reduction"].value = 32
    assert st.trace is None and "reduction=32" in st.error
    assert "cannot be built" in st.view.value and "reduction=32" in st.view.value
    assert st.prev_button.disabled and st.next_button.disabled
    st.next_button.click()  # disabled in the browser; a stray call does nothing
    st.controls["reduction"].value = 4
    assert st.error is None and st.trace.output_shape == (2, 16, 16, 16)


def test_live_stepper_hyper_parameter_kinds():
    box = live_stepper("cbam", C=32, H=8, W=8, reduction=(2, 8), kernel_size=[3, 7], batch_norm=True,
                       pool_order="max_avg")
    st = box.stepper
    kinds = {k: type(w).__name__ for k, w in st.controls.items()}
    assert kinds == {"B": "IntSlider", "C": "IntSlider", "H": "IntSlider", "W": "IntSlider",
                     "reduction": "IntSlider", "kernel_size": "Dropdown", "batch_norm": "Checkbox"}
    assert st.fixed == {"pool_order": "max_avg"} and st.setting["reduction"] == 2
    n = len(st.trace.steps)
    st.controls["batch_norm"].value = False
    assert len(st.trace.steps) == n - 1  # the BatchNorm step is gone
    with pytest.raises(ValueError, match="not arguments"):
        live_stepper("se", ratio=[4])
    with pytest.raises(ValueError, match="C must be an integer"):
        live_stepper("se", C=0)
    with pytest.raises(ValueError, match="empty"):
        live_stepper("se", reduction=[])


def test_render_step_html_matches_the_trace():
    t = trace_block(attnlib.create_block("se", 16, reduction=4), (2, 16, 4, 4))
    for i, s in enumerate(t.steps):
        view = render_step_html(t, i)
        assert f"{i + 1}. " in view and s.format_output() in view
        assert view.count('class="ats-current"') == 1
        if s.label:
            assert f"eq. {s.label}" in view
    with pytest.raises(ValueError, match="index"):
        render_step_html(t, len(t.steps))
