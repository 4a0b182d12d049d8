"""What the book's chapters show of the library: its source code and a block's autograd graph.

Chapters never paste library code; they show the installed code, which is the code that ran. Reading it
with ``inspect.getsource`` (not a file beside the page) works on the site and in Colab alike.

    >>> import attnlib
    >>> from attnlib import show
    >>> from attnlib.blocks.se import SqueezeExcitation
    >>> "class SqueezeExcitation" in show.source(SqueezeExcitation).data
    True
"""

from __future__ import annotations

import inspect

import torch
from torch import nn


def source(*objects):
    """The source code of one or more library objects (classes, functions, modules), highlighted.

    Returns an ``IPython.display.Code`` object (shown when it is a cell's last value).
    """
    if not objects:
        raise TypeError("show.source needs at least one class, function or module")
    from IPython.display import Code

    parts = []
    for obj in objects:
        try:
            parts.append(inspect.getsource(obj))
        except (TypeError, OSError) as err:
            raise TypeError(f"show.source cannot read the source of {obj!r}: pass a class, function or "
                            f"module defined in Python ({err})") from None
    return Code("\n\n".join(parts), language="python")


def autograd_graph(block: nn.Module, x: torch.Tensor):
    """torchviz's drawing of the autograd graph of ``block(x)``: leaves (input and parameters) on top.

    ``x`` becomes a leaf that requires grad (a copy; the caller's tensor is untouched). Needs torchviz
    (``pip install attnlib[viz]``) and Graphviz's ``dot`` program to render.
    """
    try:
        from torchviz import make_dot
    except ImportError:
        raise ImportError("show.autograd_graph needs torchviz: pip install 'attnlib[viz]' "
                          "(and Graphviz's dot program)") from None
    x = x.detach().clone().requires_grad_(True)
    return make_dot(block(x), params={"x": x, **dict(block.named_parameters())})
