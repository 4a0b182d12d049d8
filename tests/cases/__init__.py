"""The table of test cases that drives the generic tests over every registered block.

Each module in this package defines ``CASES``, a list of :class:`Case`; they are merged here. A block
that is registered without a case fails ``test_every_registered_block_has_a_case``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable


def same(B, C, H, W):
    return (B, C, H, W)


@dataclass
class Case:
    """How to build and feed one registered block in the generic tests.

    Attributes:
        name: registry name.
        channels: C of the input; the block is built with ``create_block(name, channels, *args, **kwargs)``.
        args, kwargs: further constructor arguments.
        size: (H, W) of the default test input (H != W on purpose).
        out_shape: ``f(B, C, H, W) -> output shape``.
        captured: ``{tensor name: f(B, C, H, W) -> shape}``, what ``attnlib.capture`` must return for the
            block itself (module name ``""``).
        batch1_train: ``"ok"`` or ``"error"`` (a clear ValueError, where BatchNorm on 1x1 features forbids it).
        grad_size: (H, W) of the tiny float64 gradcheck input.
    """

    name: str
    channels: int = 64
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    size: tuple[int, int] = (12, 10)
    out_shape: Callable = same
    captured: dict[str, Callable] = field(default_factory=dict)
    batch1_train: str = "ok"
    grad_size: tuple[int, int] = (4, 3)
    grad_channels: int | None = None

    def build(self, channels: int | None = None):
        import attnlib

        return attnlib.create_block(self.name, channels or self.channels, *self.args, **self.kwargs)

    def __str__(self) -> str:
        return self.name


def _load() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for case in module.CASES:
            if case.name in cases:
                raise ValueError(f"two test cases for block {case.name!r}")
            cases[case.name] = case
    return cases


CASES: dict[str, Case] = _load()
