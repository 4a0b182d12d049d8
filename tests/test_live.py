"""The live component (attnlib/zoo/live.py) in the built site, in a real browser (tests/test_site.py's set-up).

- every page that holds the component starts it over HTTP, shows a first result, and logs no console error;
- onnxruntime-web in the page against torch: logits within 1e-3 and the same class, for every zoo model, on
  held-out test scenes at two input sizes (64 × 64 and 96 × 96); the logits the page shows for its first
  scene (decoded from the site's PNG) against torch on the same scene;
- bad uploads (not an image, a 1-pixel image, a transparent PNG, a fully transparent PNG, a huge photo): a
  clear message or note, and the component still works afterwards;
- Non-local: a click on the image picks the query and the attention row shown is that query's row (torch);
  GC: clicks move the query and the context map shown stays the same;
- opened from disk (file://): the one line saying how to serve the site, and no error.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import torch

from test_site import CHROMIUM, PAGES, SITE, _REASON, Recorder, _open, browser, server  # noqa: F401

LIVE_PAGES = [p for p in PAGES if 'class="attnlib-live"' in (SITE / p).read_text(encoding="utf-8")]
pytestmark = pytest.mark.skipif(_REASON is not None or not LIVE_PAGES,
                                reason=str(_REASON or "no page of the built site holds the live component"))

READY = ".attnlib-live[data-state=ready]"


def _page(name: str) -> str:
    """The site path of the live page ``name`` (e.g. ``"gc.html"`` -> ``"book/gc.html"``)."""
    found = [p for p in LIVE_PAGES if p == name or p.endswith("/" + name)]
    assert found, f"no live page {name} in {LIVE_PAGES}"
    return found[0]


def _ready(browser, server, name):
    page_path = _page(name)
    context, page, rec = _open(browser, server + page_path, page_path)
    page.wait_for_selector(READY, timeout=30_000)
    return context, page, rec


def _scenes(n):
    from attnlib.zoo import pipeline

    data = pipeline.test_set(n)
    return data, torch.as_tensor(data.images).permute(0, 3, 1, 2).float() / 255


def _resize(x, size):
    return x if x.shape[-1] == size else torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                                                         align_corners=False)


def test_the_component_is_on_the_zoo_which_block_and_chapter_pages():
    for page in ("zoo.html", "which_block.html", "nonlocal.html", "gc.html", "se.html"):
        assert any(p.endswith(page) for p in LIVE_PAGES), f"{page} does not hold the live component"
    assert len(LIVE_PAGES) >= 15, LIVE_PAGES
    # only pages that hold it import onnxruntime-web, and nothing loads from elsewhere
    for p in PAGES:
        text = (SITE / p).read_text(encoding="utf-8")
        assert ("attnlib-live" in text) == (p in LIVE_PAGES)
        assert "onnxruntime" not in text or p in LIVE_PAGES
    for f in ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"):
        assert (SITE / "vendor" / "onnxruntime-web" / f).is_file(), f
    data = json.loads((SITE / "live" / "data.json").read_text())
    assert sum((SITE / "live" / "models" / m["file"]).stat().st_size for m in data["models"].values()) <= 40e6


@pytest.mark.parametrize("page_path", LIVE_PAGES)
def test_live_page_starts_and_logs_no_error(browser, server, page_path):
    context, page, rec = _open(browser, server + page_path, page_path)
    try:
        page.wait_for_selector(READY, timeout=30_000)
        for el in page.locator(".attnlib-live").all():
            el.wait_for(state="attached")
            assert el.get_attribute("data-state") == "ready", f"{page_path}: a component did not start"
            assert el.get_attribute("data-results") and el.get_attribute("data-pred")
            assert el.locator(".al-status").is_hidden()
            assert el.locator("canvas.al-panel").count() >= 2
        page.wait_for_timeout(200)
        rec.assert_clean(page_path)
    finally:
        context.close()


def test_onnxruntime_web_matches_torch_at_two_sizes(browser, server):
    from attnlib.zoo import checkpoint, onnx_export

    data, img = _scenes(4)
    context, page, rec = _ready(browser, server, "zoo.html")
    try:
        el = page.locator(".attnlib-live").first
        names = json.loads(el.get_attribute("data-models"))
        assert set(names) == set(onnx_export.models())
        # the page's own first result: scene 0 decoded from the site's PNG, as the reader sees it
        first = el.get_attribute("data-model")
        with torch.no_grad():
            ref0 = checkpoint.load_model(first)(onnx_export.standardise(img[:1]))[0].numpy()
        shown = np.array(json.loads(el.get_attribute("data-logits")))
        assert np.abs(shown - ref0).max() <= 1e-3, f"{first}: the page's logits differ from torch"
        worst = {}
        for name in names:
            model = checkpoint.load_model(name)
            for size in (64, 96):
                x = _resize(img, size)
                with torch.no_grad():
                    ref = model(onnx_export.standardise(x)).numpy()
                got = np.array(el.evaluate(
                    """async (e, a) => { const out = [];
                         for (const im of a.images) { const r = await e.attnlibLive.infer(a.name, im, a.size, a.size);
                                                      out.push(r.logits.data); }
                         return out; }""",
                    {"name": name, "size": size, "images": [xi.flatten().tolist() for xi in x]}))
                err = float(np.abs(got - ref).max())
                worst[(name, size)] = err
                assert err <= 1e-3, f"{name} at {size}x{size}: onnxruntime-web differs from torch by {err:.2e}"
                assert (got.argmax(1) == ref.argmax(1)).all(), f"{name} at {size}x{size}: another class"
        rec.assert_clean("zoo.html (parity)")
    finally:
        context.close()


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_uploads_give_a_clear_message_and_break_nothing(browser, server):
    from PIL import Image

    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    rgba[:20, :, 3] = 0                                   # a transparent band
    empty = np.zeros((40, 40, 4), np.uint8)                # fully transparent
    translucent = rgba.copy()
    translucent[..., 3] = 128                              # translucent everywhere: content, not "fully transparent"
    huge = io.BytesIO()
    Image.new("RGB", (9000, 6000), (30, 120, 200)).save(huge, format="JPEG", quality=80)
    cases = [
        ("notes.txt", "text/plain", b"this is not an image", "message", r"is not an image this browser can read"),
        ("broken.png", "image/png", b"\x89PNG\r\n\x1a\n garbage", "message", r"is not an image this browser can read"),
        ("pixel.png", "image/png", _png(np.full((1, 1, 3), 128, np.uint8)), "message", r"1×1 pixels: too small"),
        ("empty.png", "image/png", _png(empty), "message", r"fully transparent"),
        ("alpha.png", "image/png", _png(rgba), "note", r"transparent pixels \(\d+ %\), shown over white"),
        ("translucent.png", "image/png", _png(translucent), "note", r"transparent pixels \(100 %\), shown over white"),
        ("huge.jpg", "image/jpeg", huge.getvalue(), "note", r"\(9000×6000\), cropped to its centre square and downscaled to 64×64"),
    ]
    context, page, rec = _ready(browser, server, "se.html")
    try:
        el = page.locator(".attnlib-live").first
        upload = el.locator("input[type=file]")
        for fname, mime, payload, where, pattern in cases:
            before = int(el.get_attribute("data-results"))
            upload.set_input_files(files=[{"name": fname, "mimeType": mime, "buffer": payload}])
            if where == "message":
                page.wait_for_function("e => e.querySelector('.al-message').textContent.length > 0",
                                       arg=el.element_handle(), timeout=20_000)
                text = el.locator(".al-message").inner_text()
                assert re.search(pattern, text), f"{fname}: message {text!r}"
                assert int(el.get_attribute("data-results")) == before, f"{fname}: a result was computed"
            else:
                page.wait_for_function(f"e => Number(e.dataset.results) > {before}", arg=el.element_handle(),
                                       timeout=30_000)
                text = el.locator(".al-note").inner_text()
                assert re.search(pattern, text), f"{fname}: note {text!r}"
                assert el.locator(".al-message").inner_text() == ""
            # the component still works: a test scene computes again
            n = int(el.get_attribute("data-results"))
            el.locator(".al-thumbs button").nth(3).click()
            page.wait_for_function(f"e => Number(e.dataset.results) > {n}", arg=el.element_handle(), timeout=20_000)
            assert el.locator(".al-message").inner_text() == ""
        rec.assert_clean("se.html (uploads)")
    finally:
        context.close()


def test_a_slow_upload_does_not_replace_a_scene_picked_after_it(browser, server):
    """The reader uploads a huge photo (seconds to decode) and picks a test scene before it is decoded: the
    scene stays (only the latest choice may set the image)."""
    from PIL import Image

    huge = io.BytesIO()
    Image.new("RGB", (9000, 6000), (30, 120, 200)).save(huge, format="JPEG", quality=80)
    context, page, rec = _ready(browser, server, "se.html")
    try:
        el = page.locator(".attnlib-live").first
        n = int(el.get_attribute("data-results"))
        el.locator("input[type=file]").set_input_files(
            files=[{"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": huge.getvalue()}])
        el.locator(".al-thumbs button").nth(5).click()
        page.wait_for_function(f"e => Number(e.dataset.results) > {n}", arg=el.element_handle(), timeout=20_000)
        page.wait_for_timeout(3000)  # time for the upload's decode to finish
        assert el.locator(".al-thumbs button").nth(5).get_attribute("aria-pressed") == "true"
        assert "test scene" in el.locator("figcaption").first.inner_text()
        assert el.locator(".al-note").inner_text() == ""
        rec.assert_clean("se.html (slow upload, then a scene)")
    finally:
        context.close()


def _click(page, el, row, col):
    base = el.locator("canvas.al-panel").first
    box = base.bounding_box()
    base.click(position={"x": col * box["width"], "y": row * box["height"]})
    page.wait_for_function("([e, r, c]) => e.attnlibLive.query && Math.abs(e.attnlibLive.query[0] - r) < 0.02 "
                           "&& Math.abs(e.attnlibLive.query[1] - c) < 0.02", arg=[el.element_handle(), row, col])
    return el.evaluate("e => e.attnlibLive.shown")


def test_nonlocal_click_picks_the_query_row(browser, server):
    from attnlib.zoo import checkpoint, onnx_export

    data, img = _scenes(1)
    net = onnx_export.LiveNet(checkpoint.load_model("nonlocal")).eval()
    with torch.no_grad():
        ref = net._outputs(img[:1])
    context, page, rec = _ready(browser, server, "nonlocal.html")
    try:
        el = page.locator(".attnlib-live").first
        shown = {}
        for row, col in ((0.2, 0.25), (0.7, 0.8)):
            got = _click(page, el, row, col)
            assert set(got) == {"rows1", "rows2", "rows3"}
            for k, v in got.items():
                r = ref[k][0]                                 # (N, h, w)
                h, w = r.shape[1:]
                q = min(int(row * h), h - 1) * w + min(int(col * w), w - 1)
                np.testing.assert_allclose(np.array(v["data"]), r[q].flatten().numpy(), atol=5e-3,
                                           err_msg=f"{k}: the row shown is not the clicked query's")
            shown[(row, col)] = np.array(got["rows1"]["data"])
        a, b = shown.values()
        assert np.abs(a - b).max() > 1e-3, "two queries far apart show the same Non-local row"
        rec.assert_clean("nonlocal.html (clicks)")
    finally:
        context.close()


def test_gc_clicks_show_the_one_context_map(browser, server):
    context, page, rec = _ready(browser, server, "gc.html")
    try:
        el = page.locator(".attnlib-live").first
        first = _click(page, el, 0.2, 0.25)
        second = _click(page, el, 0.75, 0.8)
        assert set(first) == {"map1", "map2", "map3"}
        for k in first:
            assert first[k]["data"] == second[k]["data"], f"{k}: GC's context map changed with the query"
        assert "whatever the query" in el.inner_text()
        rec.assert_clean("gc.html (clicks)")
    finally:
        context.close()


def test_from_disk_the_page_says_how_to_serve_the_site(browser):
    page_path = _page("gc.html")
    context, page, rec = _open(browser, (SITE / page_path).as_uri(), page_path,
                               allowed_schemes=("data", "blob", "about", "file"))
    try:
        page.wait_for_timeout(500)
        el = page.locator(".attnlib-live").first
        text = el.locator(".al-status").inner_text()
        assert "make serve" in text and "127.0.0.1:8000" in text
        assert el.locator(".al-ui").count() == 0 and el.get_attribute("data-state") is None
        # the precomputed figures are on the page
        assert page.locator("main img").count() >= 2
        assert not [u for u in rec.requests if "onnxruntime" in u or u.endswith(".onnx")]
        rec.assert_clean("file://" + page_path)
    finally:
        context.close()
