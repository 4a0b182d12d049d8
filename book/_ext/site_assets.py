"""Sphinx extension of the book: the site serves every script, font and stylesheet itself.

- MathJax 3 and, for pages whose executed notebook holds widget state, RequireJS and the Jupyter widgets
  HTML manager come from the npm packages pinned by ``package.json`` / ``package-lock.json`` (``make book``
  runs ``npm ci``). Only the files a page can ask for are staged into ``_build/site-vendor/vendor/`` and
  copied into the site through ``html_extra_path`` (not ``_static/``: Jupyter Book injects every ``.js``
  and ``.css`` found there into every page). ``mathjax_path`` and ``nb_ipywidgets_js`` are set here, from
  the same table, so a page never points at a file that was not copied.
- The shape stepper's JavaScript and CSS (``attnlib/assets/``) are copied into ``_static/`` once and loaded
  by every page; the kernels that execute the chapters get ``ATTNLIB_STEPPER_ASSETS=linked``, so stepper
  outputs on the site carry only their data and markup.
- The live component (:mod:`attnlib.zoo.live`) gets its files in the site's ``live/`` folder: its
  JavaScript, every zoo model as an ONNX graph (:mod:`attnlib.zoo.onnx_export`, exported at the first
  build and then copied from the cache ``$ATTNLIB_CACHE``/``~/.cache/attnlib``, keyed on the weights'
  SHA-256 and the exporter's source) and ``data.json`` (the test scenes a reader can pick, the colormap).
  Nothing is injected into pages: a page that holds the component imports them.
- Every page's inline scripts are listed once: Jupyter Book's sphinx-thebe and sphinx-togglebutton reach
  the page twice, and sphinx-thebe's ``const THEBE_JS_URL = ...`` declared a second time is a JavaScript
  error ("Identifier 'THEBE_JS_URL' has already been declared") on every page (found by tests/test_site.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ConfigError

from attnlib.stepper import ASSET_FILES, ASSET_MODE_ENV, asset_dir

# (npm package folder, path inside it, path under the site's vendor/ folder); a folder is copied whole
VENDOR = [
    ("mathjax", "es5/tex-mml-chtml.js", "mathjax/tex-mml-chtml.js"),
    ("mathjax", "es5/input/tex/extensions", "mathjax/input/tex/extensions"),  # autoloaded (\boldsymbol, ...)
    ("mathjax", "es5/output/chtml/fonts/woff-v2", "mathjax/output/chtml/fonts/woff-v2"),
    ("requirejs", "require.js", "requirejs/require.js"),
    ("@jupyter-widgets/html-manager", "dist/embed-amd.js", "html-manager/embed-amd.js"),
    ("@jupyter-widgets/html-manager", "dist/*.woff2", "html-manager"),  # Font Awesome, beside the script
    ("@jupyter-widgets/html-manager", "dist/*.woff", "html-manager"),
    # onnxruntime-web for the live component (attnlib/zoo/live.py): the wasm build's loader, its Emscripten
    # module and the wasm binary; imported only by pages that hold the component
    ("onnxruntime-web", "dist/ort.wasm.min.mjs", "onnxruntime-web/ort.wasm.min.mjs"),
    ("onnxruntime-web", "dist/ort-wasm-simd-threaded.mjs", "onnxruntime-web/ort-wasm-simd-threaded.mjs"),
    ("onnxruntime-web", "dist/ort-wasm-simd-threaded.wasm", "onnxruntime-web/ort-wasm-simd-threaded.wasm"),
]
MATHJAX_PATH = "../vendor/mathjax/tex-mml-chtml.js"  # resolved from _static/
WIDGETS_JS = {"../vendor/requirejs/require.js": {}, "../vendor/html-manager/embed-amd.js": {}}
STAGE = Path("_build") / "site-vendor"  # relative to the book's root; html_extra_path copies its contents


def stage_vendor(root: Path, node_modules: Path, stage: Path) -> list[Path]:
    """Copy the files listed in ``VENDOR`` from ``node_modules`` into ``stage/vendor``; return the copies.

    Raises:
        ConfigError: a package or file is missing (``npm ci`` was not run, or the lock file changed).
    """
    if not node_modules.is_dir():
        raise ConfigError(f"site_assets: {node_modules} does not exist; run `npm ci --ignore-scripts` in {root} "
                          "(make book does it) to fetch MathJax and the widget scripts pinned by package-lock.json")
    out = stage / "vendor"
    if out.exists():
        shutil.rmtree(out)
    copied = []
    for package, inner, target in VENDOR:
        base = node_modules / package
        sources = sorted(base.glob(inner)) if "*" in inner else [base / inner]
        if not sources or not all(s.exists() for s in sources):
            raise ConfigError(f"site_assets: {package}/{inner} not found under {node_modules}; run "
                              "`npm ci --ignore-scripts` (make book does it)")
        for src in sources:
            dest = out / target / src.name if "*" in inner else out / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dest)
                copied.extend(p for p in dest.rglob("*") if p.is_file())
            else:
                shutil.copy2(src, dest)
                copied.append(dest)
    return copied


def stage_live(stage: Path) -> Path:
    """Write the live component's files into ``stage/live`` (graphs from the export cache)."""
    import time

    from sphinx.util import logging

    from attnlib.zoo import live

    out = stage / live.SITE_DIR
    if out.exists():
        shutil.rmtree(out)
    log = logging.getLogger(__name__)
    t0 = time.perf_counter()
    live.write_site_data(out, jobs=2, log=log.info)
    log.info(f"site_assets: live component files in {time.perf_counter() - t0:.1f} s")
    return out


def _config_inited(app: Sphinx, config) -> None:
    root = Path(app.confdir)
    stage = root / STAGE
    stage_vendor(root, root / "node_modules", stage)
    stage_live(stage)
    config.html_extra_path = [*config.html_extra_path, str(stage)]
    config.html_static_path = [*config.html_static_path, str(asset_dir())]
    config.mathjax_path = MATHJAX_PATH
    config.nb_ipywidgets_js = dict(WIDGETS_JS)


def _script_key(js) -> tuple:
    # an inline script is filename None when added to the builder, '' when copied from Sphinx's registry
    # (both render as <script>body</script>): that is how the same script reaches a page twice
    attributes = getattr(js, "attributes", {}) or {}
    return (getattr(js, "filename", str(js)) or "", tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _drop_duplicate_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Keep the first of scripts that are the same file or the same inline body with the same attributes."""
    if "script_files" not in context:
        return
    seen, kept = set(), []
    for js in context["script_files"]:
        key = _script_key(js)
        if key not in seen:
            seen.add(key)
            kept.append(js)
    # in place: the list is the builder's own, to which handlers that run later (MathJax, myst-nb's widget
    # scripts) still add; Sphinx restores it before the next page
    context["script_files"][:] = kept


def setup(app: Sphinx) -> dict:
    # the kernels started for the chapters inherit this process's environment
    os.environ[ASSET_MODE_ENV] = "linked"
    app.connect("config-inited", _config_inited, priority=400)  # before Sphinx checks html_extra_path (800)
    # html-page-context is emitted with emit_firstresult: a handler that returns a template name stops the
    # handlers after it, so a late handler may never run; the duplicates are already in the page's list at
    # the start, so run early, and once more late for scripts added by other handlers
    app.connect("html-page-context", _drop_duplicate_scripts, priority=100)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    js, css = ASSET_FILES
    app.add_js_file(js)
    app.add_css_file(css)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
