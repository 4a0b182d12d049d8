"""attnlib: readable, tested PyTorch implementations of CNN attention blocks.

The library behind the book *CNN attention blocks, derived and measured*. Every block is
registered under a short name::

    >>> import torch, attnlib
    >>> block = attnlib.create_block("se", 64)
    >>> with attnlib.capture(block) as maps:
    ...     y = block(torch.randn(2, 64, 8, 8))
    >>> maps[""]["gate"].shape
    torch.Size([2, 64, 1, 1])
"""

from .registry import BlockInfo, block_info, create_block, list_blocks, register
from .capture import capture
from .devices import device
from .trace import Trace, trace_block
from .stepper import live_stepper, render_trace_html, static_stepper
from . import blocks  # noqa: F401  (importing the package registers every block)
from . import links  # noqa: F401  (the site's and Colab's address of each chapter)

__version__ = "0.1.0"

__all__ = [
    "BlockInfo",
    "block_info",
    "blocks",
    "capture",
    "create_block",
    "device",
    "links",
    "list_blocks",
    "register",
    "render_trace_html",
    "static_stepper",
    "live_stepper",
    "Trace",
    "trace_block",
    "__version__",
]
