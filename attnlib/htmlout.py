"""One self-contained HTML output (markup, data and script in one string) shown by Jupyter, Colab and myst-nb.

The shape steppers (:mod:`attnlib.stepper`) and the interactives (:mod:`attnlib.interactive`) return one.
Every element is found inside the root ``<div>`` by its id, so two outputs on one page never clash; showing
the same object twice on a page gives the second display a new root id.

    >>> from attnlib.htmlout import HTMLOutput
    >>> out = HTMLOutput('<div id="x-1">hi</div>', "x-1", prefix="x")
    >>> out._repr_html_() == out.html
    True
    >>> 'id="x-1"' in out._repr_html_()   # a second display of the same object: a fresh id
    False
"""

from __future__ import annotations

import base64
import io
import uuid

import numpy as np


class HTMLOutput:
    """An HTML string with the id of its root ``<div>``; displayed through ``_repr_html_``.

    Attributes:
        html: the HTML string.
        element_id: the id of the root ``<div>``; every other element is found inside it.
    """

    def __init__(self, html: str, element_id: str, *, prefix: str, fresh_ids: bool = True):
        self.html = html
        self.element_id = element_id
        self._prefix = prefix
        self._fresh_ids = fresh_ids
        self._shown = 0

    def _repr_html_(self) -> str:
        # every display after the first gets a new root id (unless the caller fixed the id)
        self._shown += 1
        if self._shown == 1 or not self._fresh_ids:
            return self.html
        return self.html.replace(self.element_id, f"{self._prefix}-{uuid.uuid4().hex}")

    def __str__(self) -> str:
        return self.html


def png_data_url(image) -> str:
    """A uint8 image (H, W, 3) as a ``data:image/png`` URL, to embed in an output or a page's data."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
