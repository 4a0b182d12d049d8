"""Every page of the built site, opened in a real browser (Playwright driving Debian's Chromium).

The site in ``_build/html`` (``make test`` builds it when it is missing) is served on 127.0.0.1 by a local
HTTP server; pages are discovered from the built site, so a new page is covered without editing this file.
For every page:

- no console error and no uncaught exception; no request for a local file fails (HTTP status >= 400);
- no request leaves 127.0.0.1: every other request is recorded and blocked;
- the math is rendered: MathJax output in every math element, no MathJax error, no raw TeX delimiters or
  commands in the visible text;
- every image loads (decodes, non-zero size);
- every shape stepper starts, steps forward and back, and every setting of every control renders;
- every hidden solution (a dropdown admonition or a ``<details>`` block) opens and shows its content;
- a full-page screenshot is kept under ``_build/screenshots/``.

Two more tests: the site opened from disk (``file://``) renders math and steps a stepper, and the vendored
widget scripts render widgets and a JavaScript link without a kernel and without a request off the machine.

Never ``playwright install``: it downloads a browser build of its own. ``/usr/bin/chromium`` is Debian's
(``make test`` installs it).
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

import browser as browser_support

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = browser_support.CHROMIUM
# folders of the built site that hold assets, not pages
NOT_PAGES = {"_static", "_sources", "_images", "_sphinx_design_static", "vendor"}


def site_pages() -> list[str]:
    """Every HTML page of the built site, relative to its root (``[]`` when the site is not built)."""
    if not (SITE / "index.html").is_file():
        return []
    pages = []
    for path in SITE.rglob("*.html"):
        rel = path.relative_to(SITE)
        if not NOT_PAGES.intersection(rel.parts[:-1]):
            pages.append(rel.as_posix())
    return sorted(pages)


PAGES = site_pages()


_REASON = browser_support.reason(None if PAGES else "the site is not built (make test builds it: make book)")
pytestmark = pytest.mark.skipif(_REASON is not None, reason=str(_REASON))


# ------------------------------------------------------------------------------------------- fixtures


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def server():
    """``http://127.0.0.1:<port>/`` serving ``_build/html`` (a free port, one per test process)."""
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    with browser_support.chromium() as b:
        yield b


class Recorder:
    """What a page did: console errors, uncaught exceptions, failed and off-machine requests."""

    def __init__(self, page, allowed_schemes=("data", "blob", "about")):
        self.console: list[str] = []
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.failed: list[str] = []
        self.requests: list[str] = []
        self.allowed_schemes = allowed_schemes
        page.on("console", lambda m: self.console.append(f"{m.text} ({m.location.get('url', '')})")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("requestfailed", lambda r: self.failed.append(f"{r.failure} {r.url}")
                if r.url not in self.blocked else None)

    def route(self, route):
        url = route.request.url
        self.requests.append(url)
        parts = urlsplit(url)
        if parts.scheme in self.allowed_schemes or (parts.scheme in ("http", "https") and parts.hostname == "127.0.0.1"):
            route.continue_()
        elif parts.scheme == "file" and "file" in self.allowed_schemes:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def assert_clean(self, what: str):
        assert not self.blocked, f"{what}: requests that would leave 127.0.0.1: {self.blocked}"
        assert not self.errors, f"{what}: uncaught JavaScript errors: {self.errors}"
        assert not self.failed, f"{what}: failed requests: {self.failed}"
        assert not self.console, f"{what}: console errors: {self.console}"


def redirect_target(page_path: str) -> str | None:
    """Where a page sends the reader at once (``<meta http-equiv="Refresh">``, e.g. the site's index.html)."""
    m = re.search(r'<meta http-equiv="refresh" content="\d+;\s*url=([^"]+)"', (SITE / page_path).read_text(encoding="utf-8"),
                  re.I)
    return m.group(1) if m else None


def _open(browser, url, page_path, *, allowed_schemes=("data", "blob", "about")):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    page = context.new_page()
    rec = Recorder(page, allowed_schemes)
    context.route("**/*", rec.route)
    page.goto(url, wait_until="load")
    target = redirect_target(page_path)
    if target:  # check the page it lands on
        page.wait_for_url(urljoin(url, target), wait_until="load")
    return context, page, rec


# ---------------------------------------------------------------------------------------- in-page checks

_WAIT_MATH = """async () => {
  if (!document.querySelector('.math')) { return 'no math'; }
  for (let i = 0; i < 200 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++) {
    await new Promise(r => setTimeout(r, 50));
  }
  if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) { return 'MathJax never loaded'; }
  await MathJax.startup.promise;
  return 'typeset';
}"""

_MATH_REPORT = r"""() => {
  const maths = Array.from(document.querySelectorAll('.math'));
  const unrendered = maths.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.trim().slice(0, 80));
  const merrors = Array.from(document.querySelectorAll('mjx-merror')).map(e => e.textContent.slice(0, 80));
  const undefinedMacros = Array.from(document.querySelectorAll('mjx-container [style*="color: red"]'))
    .map(e => e.textContent.slice(0, 80));
  // visible prose: the body without code, scripts, styles and rendered math
  const body = document.querySelector('main') || document.body;
  const copy = body.cloneNode(true);
  copy.querySelectorAll('pre, code, script, style, mjx-container, mjx-assistive-mml, .attnlib-stepper, textarea')
    .forEach(e => e.remove());
  const text = copy.textContent;
  const raw = [];
  for (const pat of [/\\\(/, /\\\)/, /\\\[/, /\\\]/, /\$\$/, /\\begin\{/, /\\[a-zA-Z]+\{/,
                     /(^|[^\w$])\$[^$\s][^$\n]*[^$\s\\]\$(?![\w$])/]) {
    const m = text.match(pat);
    if (m) { raw.push(text.slice(Math.max(0, m.index - 40), m.index + 60).replace(/\s+/g, ' ')); }
  }
  return {count: maths.length, containers: document.querySelectorAll('mjx-container').length,
          unrendered, merrors, undefinedMacros, raw};
}"""

_IMAGES = """async () => {
  const imgs = Array.from(document.images);
  const bad = [];
  await Promise.all(imgs.map(async img => {
    img.loading = 'eager';
    try { await img.decode(); } catch (e) { bad.push(img.currentSrc || img.src); return; }
    if (!img.naturalWidth || !img.naturalHeight) { bad.push(img.currentSrc || img.src); }
  }));
  return {count: imgs.length, bad};
}"""


def _check_math(page, what):
    state = page.evaluate(_WAIT_MATH)
    assert state in ("no math", "typeset"), f"{what}: {state}"
    r = page.evaluate(_MATH_REPORT)
    assert not r["unrendered"], f"{what}: {len(r['unrendered'])} math elements without MathJax output: {r['unrendered'][:5]}"
    assert not r["merrors"], f"{what}: MathJax errors: {r['merrors'][:5]}"
    assert not r["undefinedMacros"], f"{what}: undefined TeX macros: {r['undefinedMacros'][:5]}"
    assert not r["raw"], f"{what}: raw TeX in the visible text: {r['raw']}"
    return r


def _stepper_ids(page) -> list[str]:
    return page.eval_on_selector_all(
        "div.attnlib-stepper[id]", "els => els.filter(e => e.querySelector('script[type=\"application/json\"]')).map(e => e.id)")


def _check_stepper(page, sid, what):
    root = page.locator(f"#{sid}")
    assert root.get_attribute("data-ready") == "1", f"{what}: stepper {sid} never started"
    pos, view = root.locator('[data-role="pos"]'), root.locator('[data-role="view"]')
    nxt, prev = root.locator('[data-role="next"]'), root.locator('[data-role="prev"]')
    first_pos, first_view = pos.inner_text(), view.inner_text()
    m = re.fullmatch(r"step 1 / (\d+)", first_pos)
    assert m, f"{what}: stepper {sid} does not start at step 1: {first_pos!r}"
    n = int(m.group(1))
    assert prev.is_disabled(), f"{what}: stepper {sid}: Prev is enabled on step 1"
    if n > 1:
        nxt.click()
        assert pos.inner_text() == f"step 2 / {n}", f"{what}: stepper {sid}: Next did not step forward"
        second_view = view.inner_text()
        assert second_view != first_view and second_view.startswith("2. "), f"{what}: stepper {sid}: view did not change"
        cur = root.locator("li.ats-current")
        assert cur.count() == 1 and cur.get_attribute("data-i") == "1"
        prev.click()
        assert pos.inner_text() == f"step 1 / {n}" and view.inner_text() == first_view, \
            f"{what}: stepper {sid}: Prev did not step back"
    # every value of every control renders a step or the setting's error, never nothing
    for sel in root.locator("select").all():
        start = sel.input_value()
        for value in sel.locator("option").evaluate_all("os => os.map(o => o.value)"):
            sel.select_option(value)
            text = view.inner_text()
            assert text.strip() and (re.match(r"\d+\. ", text) or "cannot be built" in text), \
                f"{what}: stepper {sid}: setting {value} of a control shows {text[:80]!r}"
        sel.select_option(start)
    return n


def _check_dropdowns(page, what) -> int:
    opened = 0
    # sphinx-togglebutton's dropdown admonitions (":class: dropdown")
    for item in page.locator(".admonition.dropdown").all():
        assert "toggle-hidden" in (item.get_attribute("class") or ""), f"{what}: a dropdown starts open"
        item.locator(".admonition-title").first.click()
        page.wait_for_function("el => !el.classList.contains('toggle-hidden')", arg=item.element_handle())
        body = item.locator(":scope > :not(.admonition-title)")
        assert body.count() and all(b.is_visible() for b in body.all()), f"{what}: a dropdown opened empty"
        opened += 1
    # <details> blocks (sphinx-design dropdowns, hidden cells)
    for det in page.locator("main details").all():
        if det.get_attribute("open") is None:
            det.locator(":scope > summary").first.click()
        assert det.evaluate("d => d.open"), f"{what}: a <details> block did not open"
        inner = det.locator(":scope > :not(summary)")
        assert inner.count() and any(b.is_visible() for b in inner.all()), f"{what}: a <details> block opened empty"
        opened += 1
    return opened


# ------------------------------------------------------------------------------------------------ tests


def test_pages_are_discovered_from_the_built_site():
    assert "index.html" in PAGES
    # every chapter in the table of contents is a page of the site
    toc = (ROOT / "_toc.yml").read_text()
    for doc in re.findall(r"file:\s*(\S+)", toc):
        assert f"{doc}.html" in PAGES, f"{doc} is in _toc.yml but not in the built site"


def test_no_page_links_a_script_stylesheet_or_image_elsewhere():
    """The static half of the offline check: no tag of any page loads a resource from another host."""
    tag = re.compile(r"<(script|img|link|iframe|source)\b[^>]*?\b(src|href)=[\"']([^\"']+)", re.I)
    offending = []
    for page_path in PAGES:
        for kind, _attr, url in tag.findall((SITE / page_path).read_text(encoding="utf-8")):
            if kind.lower() == "link" and url.startswith(("http://", "https://")):
                # <link rel="stylesheet|preload|icon"> would load; rel="prev/next/index" are plain links
                continue
            if re.match(r"(https?:)?//", url):
                offending.append(f"{page_path}: <{kind} {url}>")
    links = re.compile(r"<link\b[^>]*>", re.I)
    for page_path in PAGES:
        for link in links.findall((SITE / page_path).read_text(encoding="utf-8")):
            rel = re.search(r"rel=[\"']([^\"']+)", link)
            href = re.search(r"href=[\"']([^\"']+)", link)
            if rel and href and re.match(r"(https?:)?//", href.group(1)) and \
                    set(rel.group(1).lower().split()) & {"stylesheet", "preload", "modulepreload", "icon", "prefetch"}:
                offending.append(f"{page_path}: {link}")
    assert not offending, offending


@pytest.mark.parametrize("page_path", PAGES)
def test_page_in_browser(browser, server, page_path):
    context, page, rec = _open(browser, server + page_path, page_path)
    try:
        math = _check_math(page, page_path)
        images = page.evaluate(_IMAGES)
        assert not images["bad"], f"{page_path}: images that do not load: {images['bad']}"
        # the page as a reader first sees it, math typeset and images loaded
        SHOTS.mkdir(parents=True, exist_ok=True)
        name = page_path.replace("/", "__")[:-len(".html")]
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        steppers = _stepper_ids(page)
        steps = [_check_stepper(page, sid, page_path) for sid in steppers]
        dropdowns = _check_dropdowns(page, page_path)
        # math inside the opened solutions is rendered too
        math_open = _check_math(page, page_path + " (solutions open)")
        page.wait_for_timeout(100)  # let late console messages arrive
        rec.assert_clean(page_path)
        (SHOTS / f"{name}.json").write_text(json.dumps({
            "page": page_path, "landed_on": page.url[len(server):], "math_elements": math_open["count"],
            "mathjax_containers": math_open["containers"], "images": images["count"], "steppers": len(steppers),
            "stepper_steps": steps, "hidden_blocks_opened": dropdowns, "requests": len(rec.requests)}, indent=1))
    finally:
        context.close()


def test_site_works_from_disk(browser):
    """Opening the site's files directly (file://): math renders and a stepper steps, nothing is fetched."""
    with_stepper = [p for p in PAGES if 'class="attnlib-stepper"' in (SITE / p).read_text(encoding="utf-8")]
    assert with_stepper, "no page of the site holds a shape stepper"
    for page_path in ("index.html", with_stepper[0]):
        context, page, rec = _open(browser, (SITE / page_path).as_uri(), page_path,
                                   allowed_schemes=("data", "blob", "about", "file"))
        try:
            r = _check_math(page, f"file://{page_path}")
            if page_path != "index.html":
                assert r["containers"] > 0, f"{page_path}: no math typeset from disk"
                (sid, *_) = _stepper_ids(page)
                assert _check_stepper(page, sid, f"file://{page_path}") > 1
            rec.assert_clean(f"file://{page_path}")
        finally:
            context.close()


def test_vendored_widget_scripts_render_widgets(browser, server, tmp_path):
    """A page holding widget state, as myst-nb writes one, with the site's own RequireJS and widget manager:
    the widgets render and a JavaScript link works without a kernel; nothing is fetched off the machine."""
    import ipywidgets as w
    from ipywidgets.embed import dependency_state, embed_data

    slider = w.IntSlider(value=3, min=0, max=10, description="k")
    box = w.IntText(value=3)
    link = w.jslink((box, "value"), (slider, "value"))
    container = w.VBox([slider, box])
    data = embed_data(views=[container], state=dependency_state([container, link]))
    state = json.dumps(data["manager_state"])
    view = json.dumps(data["view_specs"][0])
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f'<script type="application/vnd.jupyter.widget-state+json">{state}</script>'
        '<script src="vendor/requirejs/require.js"></script>'
        '<script src="vendor/html-manager/embed-amd.js"></script>'
        f'</head><body><script type="application/vnd.jupyter.widget-view+json">{view}</script></body></html>')
    url = server + "__widget_test__.html"
    context = browser.new_context(service_workers="block")
    page = context.new_page()
    rec = Recorder(page)

    def route(r):
        if r.request.url == url:
            r.fulfill(status=200, content_type="text/html", body=html)
        else:
            rec.route(r)

    context.route("**/*", route)
    try:
        page.goto(url, wait_until="load")
        page.wait_for_selector(".widget-readout", timeout=20_000)
        assert page.locator(".widget-readout").inner_text().strip() == "3"
        field = page.locator(".widget-text input")
        field.fill("7")
        field.press("Enter")
        page.wait_for_function("() => document.querySelector('.widget-readout').textContent.trim() === '7'",
                               timeout=5_000)
        rec.assert_clean("widget page")
        assert rec.requests and all(urlsplit(u).hostname == "127.0.0.1" for u in rec.requests)
    finally:
        context.close()
        for wd in (container, slider, box, link):
            wd.close()
