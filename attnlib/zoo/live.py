"""The live component of the book's pages: a zoo model computing in the reader's browser (onnxruntime-web).

:func:`component` returns an IPython HTML display: markup plus a ``<script type="module">`` that loads
``live/live.js`` from the site (the component's code), the ONNX graphs of :mod:`attnlib.zoo.onnx_export`
and onnxruntime-web (``vendor/onnxruntime-web/``, pinned by ``package-lock.json``). The reader picks a
held-out test scene or uploads a photo (or takes one with the camera where the browser offers one) and sees
the predicted class and the block's maps over the image, in the book-wide overlay
(:mod:`attnlib.plotting`: colormap ``inferno``, opacity 0.55, bilinear upsampling, min-max per map), next
to the baseline's Grad-CAM (precomputed for the test scenes). For Non-local a click on the image picks the
query whose attention row is shown; for GC the same clicks show its one context map.

Until the runtime has loaded, and wherever it cannot (a page opened from disk, ``file://``; a notebook),
the component is one line saying how to serve the site; the precomputed figures above it stay the
page's content. :func:`write_site_data` writes what the component fetches (the book's Sphinx extension
calls it at build time).
"""

from __future__ import annotations

import html
import json
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..htmlout import png_data_url

#: the test scenes a reader can pick (indices into the held-out test set; the chapters' figure scenes first)
SCENES = tuple(range(24))
#: the folder of the site that holds the component's files
SITE_DIR = "live"
JS = Path(__file__).with_name("live.js")
SERVE_LINE = ("Live version: this page can compute the model in your browser on a held-out scene or your own "
              "photo when the site is served over HTTP: open it on <a href=\"{site}\">the book's site</a>, or, in a "
              "local build, run <code>make serve</code> and open <code>http://127.0.0.1:8000/</code> (the figures "
              "above are precomputed).")

_SCRIPT = """<script type="module" async>
const el = document.getElementById(%(id)s);
const root = document.documentElement.dataset.content_root;
if (el && location.protocol !== 'file:' && root !== undefined) {
  const base = new URL(root, location.href);
  el.dataset.state = 'loading';
  import(new URL('%(dir)s/live.js', base).href)
    .then(m => m.mount(el, base.href))
    .catch(e => { el.dataset.state = 'failed';
      el.querySelector('.al-status').textContent = 'The live version could not start: ' + e.message; });
}
</script>"""


def component(name: str | None = None, models: tuple[str, ...] | list[str] | None = None):
    """The live component for zoo model ``name`` (and ``models`` to choose among; default ``(name,)``;
    ``name=None`` with ``models``: the first of them). Returns an ``IPython.display.HTML``."""
    from IPython.display import HTML

    from . import checkpoint

    shipped = checkpoint.available()
    chosen = list(models) if models else ([name] if name else [])
    if not chosen:
        raise ValueError("live.component: give a zoo model name or models=[...]")
    unknown = [m for m in chosen if m not in shipped]
    if unknown:
        raise ValueError(f"live.component: no shipped zoo model {unknown}; shipped: {shipped}")
    first = name if name in chosen else chosen[0]
    uid = "attnlib-live-" + uuid.uuid4().hex[:10]
    markup = (f'<div class="attnlib-live" id="{uid}" data-models="{html.escape(json.dumps(chosen))}" '
              f'data-model="{html.escape(first)}">'
              f'<p class="al-status" role="status">{SERVE_LINE.format(site=html.escape(_site_page(first)))}</p>'
              '</div>')
    return HTML(markup + _SCRIPT % {"id": json.dumps(uid), "dir": SITE_DIR})


def _site_page(model: str) -> str:
    """The site's page that holds the component for zoo model ``model``: its block's chapter, else the zoo page
    (the baseline and the variants). A notebook reader in Colab has no local site: this link is the way there."""
    from .. import links
    from ..registry import list_blocks

    block = model.split("+")[0]
    found = links.chapter_links(block) if block in list_blocks() else None
    return found[0] if found else links.page_url("book/zoo")


def scene_data() -> list[dict]:
    """The pickable test scenes: image (PNG data URL), label, mask (bits, base64), the mask point the book
    uses as Non-local's query, and the baseline's Grad-CAM at the headline stage (precomputed; divided by its
    maximum and rounded to 3 decimals: the page min-max normalises every map)."""
    import base64

    from . import checkpoint, pipeline, scores

    data = pipeline.test_set().subset(np.array(SCENES))
    base = checkpoint.load_model(checkpoint.BASELINE)
    cam = scores.grad_cam(base, data, scores.HEADLINE_STAGE).numpy()
    out = []
    for i, idx in enumerate(SCENES):
        r, c = scores.mask_points(data.masks[i:i + 1])[0]
        out.append({"index": int(idx), "label": int(data.labels[i]), "image": png_data_url(data.images[i]),
                    "mask": base64.b64encode(np.packbits(data.masks[i].astype(np.uint8)).tobytes()).decode(),
                    "query": [round(r, 4), round(c, 4)],
                    "baseline_grad_cam": np.round(cam[i] / max(float(cam[i].max()), 1e-12), 3).tolist()})
    return out


def colormap(n: int = 256) -> str:
    """The book's colormap (:data:`attnlib.plotting.CMAP`) as ``n`` concatenated RGB hex triplets."""
    from .. import plotting

    return "".join(c[1:] for c in plotting.colormap_hex(n))


def write_site_data(out: str | Path, *, jobs: int = 2, log=None) -> Path:
    """Write the component's files into ``out`` (the site's ``live/`` folder): ``live.js``, the graphs
    (``models/``, from the export cache) and ``data.json`` (manifest, scenes, colormap). Returns ``out``."""
    from .. import plotting
    from . import onnx_export, scores
    from .fashion import CLASSES

    out = Path(out)
    manifest = onnx_export.export_all(out / "models", jobs=jobs, log=log)
    data = {"classes": list(CLASSES), "size": manifest["size"], "models": manifest["models"],
            "cmap": colormap(), "cmap_name": plotting.CMAP, "alpha": plotting.ALPHA,
            "grad_cam_stage": scores.HEADLINE_STAGE, "scenes": scene_data()}
    (out / "data.json").write_text(json.dumps(data, separators=(",", ":")))
    shutil.copyfile(JS, out / "live.js")
    return out
