"""attnlib.interactive: the data are the trained modules' own numbers, and each page, opened from disk in a real
browser, recomputes what the Python twins of its formulas predict when a control moves.

The browser tests write each interactive's HTML to a temporary file, open it from ``file://`` in Debian's
Chromium (``/usr/bin/chromium``, driven by Playwright, as in ``tests/test_site.py``; never
``playwright install``), move its controls and read the numbers the page displays (each displayed number
carries its full value in a ``data-v`` attribute). No console error, no uncaught exception, no request other
than ``file:`` and ``data:``.
"""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pytest
import torch

import browser as browser_support
from attnlib import interactive as I



# ------------------------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def eca():
    return I.eca_data()


@pytest.fixture(scope="module")
def coord():
    return I.coord_data(include_gates=True)


@pytest.fixture(scope="module")
def sk():
    return I.sk_data()


@pytest.fixture(scope="module")
def dyconv():
    return I.dynamic_conv_data()


def _eca_block(stage=3):
    from attnlib.zoo import load_model

    return dict(load_model("eca").named_modules())[f"stages.{stage}.attn"]


def test_eca_gates_from_the_page_formula_equal_the_module(eca):
    block = _eca_block(eca["stage"])
    y = torch.tensor(eca["y"], dtype=torch.float32)
    assert eca["k"] == block.kernel_size == 5 and len(eca["weight"]) == 5 and eca["C"] == 128
    assert np.allclose(eca["weight"], block.conv.weight.detach().flatten().numpy(), atol=1e-6)
    # the captured gates on the scene, and the formula on the embedded descriptor
    assert np.allclose(I.eca_gates(eca["weight"], eca["y"]), eca["gate"], atol=1e-5)
    # nudged descriptors: the module's gate on an input whose global average is the nudged descriptor
    rng = np.random.default_rng(0)
    for c in (0, 1, eca["channel"], eca["C"] - 1):
        d = float(rng.uniform(-eca["nudge_range"], eca["nudge_range"]))
        yn = y.clone()
        yn[c] += d
        with torch.no_grad():
            module = block.gate(yn.view(1, -1, 1, 1).expand(1, -1, 2, 3)).flatten().numpy()
        assert np.allclose(I.eca_gates(eca["weight"], yn.numpy()), module, atol=1e-5)


def test_eca_nudge_moves_only_the_band_of_k_gates(eca):
    C, p, w = eca["C"], eca["k"] // 2, np.asarray(eca["weight"])
    g0 = I.eca_gates(w, eca["y"])
    for c in (0, 1, 64, C - 2, C - 1):
        y = np.array(eca["y"])
        y[c] += 1.0
        moved = set(np.flatnonzero(I.eca_gates(w, y) != g0).tolist())
        # gate c' sees y_c through weight w[c - c' + p]: it moves iff that weight is non-zero
        band = {c2 for c2 in range(max(0, c - p), min(C, c + p + 1)) if w[c - c2 + p] != 0}
        assert moved == band and len(band) >= min(p + 1, C)


def test_eca_descriptor_is_the_scenes_own(eca):
    from attnlib.zoo import fashion

    s = eca["scene"]
    assert s["split"] == "test" and s["garment"] in set(fashion.garments("test")[2].tolist())
    assert max(abs(v) for v in eca["y"]) > 0 and 0 <= eca["channel"] < eca["C"]


def test_coord_plaid_and_convex_sum_equal_the_captured_gates(coord):
    src = {s["model"]: s for s in coord["sources"]}
    assert set(src) == {"coord", "dycaconv"} and src["coord"]["pi"] is None
    pi = src["dycaconv"]["pi"]
    assert abs(sum(pi) - 1) < 1e-6 and all(0 < v < 1 for v in pi)
    C, H, W = coord["C"], coord["H"], coord["W"]
    assert (H, W) == (16, 16) and C == 32
    for c in range(C):
        s = src["coord"]
        assert np.allclose(I.plaid(s["g_h"][c], s["g_w"][c]), s["gate"][c], atol=1e-5)
        s = src["dycaconv"]
        assert np.allclose(I.convex_sum(s["g_h"][c], s["g_w"][c], pi[0]), s["gate"][c], atol=1e-5)
        # π at its extremes: the sum is one directional gate, constant along the other axis
        assert np.allclose(I.convex_sum(s["g_h"][c], s["g_w"][c], 1.0), np.tile(s["g_w"][c], (H, 1)))
        assert np.allclose(I.convex_sum(s["g_h"][c], s["g_w"][c], 0.0), np.tile(np.c_[s["g_h"][c]], (1, W)))
    # the plaid is rank one, the sum is not (on a channel whose gates vary)
    s = src["coord"]
    c = coord["channel"]
    assert np.linalg.matrix_rank(I.plaid(s["g_h"][c], s["g_w"][c]), tol=1e-6) == 1
    assert np.linalg.matrix_rank(I.convex_sum(s["g_h"][c], s["g_w"][c], 0.5), tol=1e-6) == 2


def test_sk_weights_sum_to_one_and_match_the_observation_code(sk):
    from attnlib.zoo import load_model, observations

    assert len(sk["scales"]) == 9 and sk["scales"][0] == 0.5 and sk["scales"][-1] == 2.0
    assert sk["kernels"] == [3, 5] and len(sk["pngs"]) == 9 and len(set(sk["pngs"])) == 9
    for st in sk["stages"]:
        w = np.asarray(st["weights"])
        assert w.shape == (9, 2) and np.allclose(w.sum(1), 1, atol=1e-5) and ((w > 0) & (w < 1)).all()
    # independently: attnlib.zoo.observations measures the largest kernel's weight on the same scenes
    ref = observations.sk_scale_shift(load_model("sk"), n=sk["n"], scales=(sk["scales"][0], sk["scales"][-1]))
    for st in sk["stages"]:
        got = [st["weights"][0][-1], st["weights"][-1][-1]]
        assert np.allclose(got, ref["stages"][str(st["stage"])]["large_kernel_weight"], atol=1e-4)


def test_dynamic_conv_pi_is_the_softmax_of_the_logits_over_tau(dyconv):
    from attnlib.zoo import CLASSES

    K = dyconv["K"]
    assert K == 4 and dyconv["tau_trained"] == 1.0 and dyconv["stages"] == [1, 2, 3]
    assert sorted(s["label"] for s in dyconv["scenes"]) == list(range(len(CLASSES)))
    for s in dyconv["scenes"]:
        assert s["split"] == "test"
        for z, pi in zip(s["z"], s["pi"]):
            assert np.allclose(I.softmax_temperature(z, dyconv["tau_trained"]), pi, atol=1e-5)
            big = I.softmax_temperature(z, 1e6)
            assert np.allclose(big, 1 / K, atol=1e-5) and abs(I.entropy(big) - math.log(K)) < 1e-6
            # τ -> 0: all the mass on the largest logit (on the logits within a few τ of it: two kernels'
            # logits can lie closer than 1e-3)
            small = I.softmax_temperature(z, 1e-3)
            near = np.asarray(z) >= max(z) - 0.02
            assert small[near].sum() > 0.999
            # sharpening never raises the entropy
            ents = [I.entropy(I.softmax_temperature(z, t)) for t in (0.03, 0.3, 1, 3, 30)]
            assert all(a <= b + 1e-12 for a, b in zip(ents, ents[1:]))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="stage"):
        I.eca_data(stage=0)
    with pytest.raises(ValueError, match="channel"):
        I.eca_data(channel=128)
    with pytest.raises(ValueError, match="scene"):
        I.coord_data(scene=-1)
    with pytest.raises(ValueError, match="scales"):
        I.sk_data(scales=(0.1, 1.0))
    with pytest.raises(ValueError, match="scene"):
        I.sk_data(n=2, scene=5)
    with pytest.raises(ValueError, match="classes"):
        I.dynamic_conv_data(classes=[42])
    with pytest.raises(ValueError, match="element_id"):
        I.dynamic_conv_temperature(element_id="a b")
    with pytest.raises(ValueError, match="odd"):
        I.eca_gates([1.0, 2.0], [0.0])


# ------------------------------------------------------------------------------------------ pages


@pytest.fixture(scope="module")
def pages():
    """Each interactive once, with the time its function took (data computed at call time)."""
    out, seconds = {}, {}
    for name, fn in (("eca", I.eca_nudge), ("coord", I.coord_vs_dycaconv), ("sk", I.sk_scale),
                     ("dyconv", I.dynamic_conv_temperature)):
        t = time.perf_counter()
        out[name] = fn()
        seconds[name] = time.perf_counter() - t
    return out, seconds


def test_pages_are_self_contained_and_quick(pages):
    out, seconds = pages
    for name, page in out.items():
        h = page.html
        assert page.data["kind"] == name and h.count("<script") == 2
        assert "<script src" not in h and 'type="module"' not in h and "import(" not in h
        assert not re.search(r'(src|href)="(https?:)?//', h)
        assert h.count(f'id="{page.element_id}"') == 1
        # the embedded JSON is the data the Python function returned
        blob = re.search(r'<script type="application/json">(.*?)</script>', h, re.S).group(1)
        assert json.loads(blob.replace("<\\/", "</")) == json.loads(json.dumps(page.data))
        # a second display of the same output gets a fresh root id
        first, second = page._repr_html_(), page._repr_html_()
        assert first == h and page.element_id not in second
        assert seconds[name] < 15, f"{name} took {seconds[name]:.1f} s"


def test_colormap_and_style_come_from_the_book_convention(coord):
    import matplotlib

    from attnlib import plotting

    cmap = matplotlib.colormaps[plotting.CMAP]
    assert coord["cmap"][0] == matplotlib.colors.to_hex(cmap(0.0))
    assert coord["cmap"][-1] == matplotlib.colors.to_hex(cmap(1.0))
    assert coord["style"]["bar"] == plotting.BAR_COLOUR


# ---------------------------------------------------------------------------------------- browser


_REASON = browser_support.reason()
browser_only = pytest.mark.skipif(_REASON is not None, reason=str(_REASON))


@pytest.fixture(scope="module")
def browser():
    with browser_support.chromium() as b:
        yield b


class _Opened:
    def __init__(self, page, root, problems):
        self.page, self.root, self.problems = page, root, problems

    def set(self, role, value):
        """Move a control (range or select) as a reader would: set its value, fire its event; the value it took."""
        return self.root.locator(f'[data-role="{role}"]').first.evaluate(
            "(e, v) => { e.value = v; e.dispatchEvent(new Event(e.tagName === 'SELECT' ? 'change' : 'input',"
            " {bubbles: true})); return e.value; }", str(value))

    def values(self, selector):
        return [float(v) for v in self.root.locator(selector).evaluate_all(
            "es => es.map(e => e.getAttribute('data-v'))")]

    def value(self, selector):
        (v,) = self.values(selector)
        return v


@pytest.fixture
def open_page(browser, tmp_path):
    contexts = []

    def opener(output):
        path = tmp_path / f"{output.data['kind']}.html"
        path.write_text("<!doctype html><html><head><meta charset='utf-8'><title>interactive</title></head><body>"
                        + output.html + "</body></html>", encoding="utf-8")
        ctx = browser.new_context(viewport={"width": 1000, "height": 900})
        contexts.append(ctx)
        page = ctx.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
        page.on("request", lambda r: None if r.url.split(":", 1)[0] in ("file", "data", "about")
                else problems.append(f"request: {r.url}"))
        page.goto(path.as_uri())
        root = page.locator(f"#{output.element_id}")
        assert root.get_attribute("data-started") == "1"
        assert root.locator('[data-role="nojs"]').count() == 0
        return _Opened(page, root, problems)

    yield opener
    for ctx in contexts:
        ctx.close()


@browser_only
def test_browser_eca_nudge(open_page, pages):
    page_out = pages[0]["eca"]
    d = page_out.data
    o = open_page(page_out)
    C, p, c = d["C"], d["k"] // 2, d["channel"]
    g0 = I.eca_gates(d["weight"], d["y"])
    assert o.root.locator('[data-role="changed"]').get_attribute("data-channels") == ""
    for channel in (c, 0, C - 1):
        o.set("channel", channel)
        delta = float(o.set("nudge", d["nudge_range"] * 0.6))
        y = np.array(d["y"])
        y[channel] += delta
        want = I.eca_gates(d["weight"], y)
        rows = o.root.locator('table[data-role="band"] tr[data-channel]')
        shown = [int(x) for x in rows.evaluate_all("rs => rs.map(r => r.getAttribute('data-channel'))")]
        assert shown == list(range(max(0, channel - p - 1), min(C - 1, channel + p + 1) + 1))
        assert np.allclose(o.values('table[data-role="band"] [data-role="gate"]'), want[shown], atol=1e-9)
        assert np.allclose(o.values('table[data-role="band"] [data-role="delta"]'), (want - g0)[shown], atol=1e-9)
        assert abs(o.value('[data-role="yc"]') - y[channel]) < 1e-9
        moved = o.root.locator('[data-role="changed"]')
        expected = [i for i in range(C) if want[i] != g0[i]]
        assert moved.get_attribute("data-channels") == ",".join(map(str, expected))
        assert set(expected) <= set(range(channel - p, channel + p + 1)) and len(expected) >= p + 1
        assert float(moved.get_attribute("data-outside")) == 0.0
    # drag: press on a bar of the descriptor chart and move up: that channel is picked and nudged upwards
    chart = o.root.locator("svg").first
    box = chart.bounding_box()
    x = box["x"] + box["width"] * (50 + (64.5) * (700 - 60) / C) / 700
    o.page.mouse.move(x, box["y"] + box["height"] * 0.5)
    o.page.mouse.down()
    o.page.mouse.move(x, box["y"] + box["height"] * 0.1, steps=4)
    o.page.mouse.up()
    assert o.root.locator('[data-role="channel"]').input_value() == "64"
    assert float(o.root.locator('[data-role="nudge"]').input_value()) > 0
    assert o.value('[data-role="yc"]') > d["y"][64]
    assert o.problems == []


@browser_only
def test_browser_coord_plaid_against_convex_sum(open_page, pages, coord):
    page_out = pages[0]["coord"]
    o = open_page(page_out)
    H, W = coord["H"], coord["W"]
    src = {s["model"]: s for s in coord["sources"]}
    for i, name in enumerate(s["model"] for s in page_out.data["sources"]):
        o.set("source", i)
        for c in (0, coord["channel"], coord["C"] - 1):
            o.set("channel", c)
            s = src[name]
            plaid = np.array(o.values('[data-role="plaid"] rect')).reshape(H, W)
            assert np.allclose(plaid, I.plaid(s["g_h"][c], s["g_w"][c]), atol=1e-9)
            if name == "coord":
                assert np.allclose(plaid, s["gate"][c], atol=1e-5)   # the module's own captured gate
            for pi0 in (0.0, 0.3, 1.0):
                o.set("pi", pi0)
                got = np.array(o.values('[data-role="sum"] rect')).reshape(H, W)
                assert np.allclose(got, I.convex_sum(s["g_h"][c], s["g_w"][c], pi0), atol=1e-9)
                assert abs(o.value('[data-role="pi1"]') - (1 - pi0)) < 1e-9
            # at π0 = 1 the sum is g^w in every row
            assert np.allclose(got, np.tile(s["g_w"][c], (H, 1)), atol=1e-9)
            if name == "dycaconv":
                o.root.locator('[data-role="trained"]').click()
                got = np.array(o.values('[data-role="sum"] rect')).reshape(H, W)
                assert np.allclose(got, s["gate"][c], atol=1e-5)   # DyCAConv's captured gate at its own π
    o.set("norm", "minmax")
    assert "min-max" in o.root.locator("svg").first.inner_html()
    assert o.problems == []


@browser_only
def test_browser_sk_scale(open_page, pages):
    page_out = pages[0]["sk"]
    d = page_out.data
    o = open_page(page_out)
    img = o.root.locator('[data-role="scene-image"]')
    for i in (0, 4, len(d["scales"]) - 1):
        o.set("scale", i)
        assert abs(float(o.root.locator('[data-role="scale-value"]').get_attribute("data-v")) - d["scales"][i]) < 1e-12
        for st in d["stages"]:
            row = f'tr[data-stage="{st["stage"]}"]'
            got = [o.value(f'{row} [data-role="branch-{m}"]') for m in range(len(d["kernels"]))]
            assert np.allclose(got, st["weights"][i], atol=1e-12)
            assert abs(o.value(f'{row} [data-role="sum"]') - 1) < 1e-5
        assert img.get_attribute("src") == d["pngs"][i]
    assert o.problems == []


@browser_only
def test_browser_dynamic_conv_temperature(open_page, pages):
    page_out = pages[0]["dyconv"]
    d = page_out.data
    o = open_page(page_out)
    K = d["K"]
    for s_index in (0, len(d["scenes"]) - 1):
        o.set("scene", s_index)
        sc = d["scenes"][s_index]
        o.root.locator('[data-role="trained"]').click()
        for n, stage in enumerate(d["stages"]):
            assert np.allclose(o.values(f'[data-role="pi"][data-stage="{stage}"] rect'), sc["pi"][n], atol=1e-5)
        for log_tau in (2.0, 0.0, -1.5):
            o.set("tau", log_tau)
            tau = 10 ** log_tau
            assert abs(o.value('[data-role="tau-now"]') - tau) < 1e-9 * tau
            for n, stage in enumerate(d["stages"]):
                pi = np.array(o.values(f'[data-role="pi"][data-stage="{stage}"] rect'))
                want = I.softmax_temperature(sc["z"][n], tau)
                assert np.allclose(pi, want, atol=1e-9) and abs(pi.sum() - 1) < 1e-9
                ent = o.value(f'[data-role="entropy"][data-stage="{stage}"]')
                assert abs(ent - I.entropy(want)) < 1e-9
                if log_tau == 2.0:   # τ = 100: nearly uniform
                    assert np.allclose(pi, 1 / K, atol=0.01) and abs(ent - math.log(K)) < 1e-3
    assert o.problems == []
