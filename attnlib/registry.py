"""The block registry: one short name per block, with the metadata the tests and the book read.

Blocks register themselves with the :func:`register` decorator when ``attnlib.blocks`` is imported.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from torch import nn

from .validation import describe

FAMILIES = ("channel", "spatial", "hybrid", "context", "dynamic")


@dataclass(frozen=True)
class BlockInfo:
    """Metadata of a registered block.

    Attributes:
        name: registry name, e.g. ``"se"``.
        cls: the ``nn.Module`` subclass.
        family: one of ``channel``, ``spatial``, ``hybrid``, ``context``, ``dynamic``.
        paper: title of the paper that introduced the block (or a description for a block defined only by code).
        year: publication year.
        arxiv: arXiv identifier, or ``None`` when the block has no paper.
        chapter: the book chapter that derives the block (a path under ``book/``), or ``None``.
    """

    name: str
    cls: type
    family: str
    paper: str
    year: int
    arxiv: str | None
    chapter: str | None = None


_REGISTRY: dict[str, BlockInfo] = {}


def register(
    name: str,
    *,
    family: str,
    paper: str,
    year: int,
    arxiv: str | None,
    chapter: str | None = None,
) -> Callable[[type], type]:
    """Class decorator that registers a block under ``name``."""
    if family not in FAMILIES:
        raise ValueError(f"register({name!r}): family must be one of {FAMILIES}, got {family!r}")

    def decorator(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"register({name!r}) decorates nn.Module subclasses, got {cls!r}")
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"block name {name!r} is already registered to {_REGISTRY[name].cls.__name__}")
        _REGISTRY[name] = BlockInfo(name, cls, family, paper, year, arxiv, chapter)
        cls.registry_name = name
        return cls

    return decorator


def _lookup(name: str) -> BlockInfo:
    known = ", ".join(sorted(_REGISTRY))
    if not isinstance(name, str):  # a list or a dict is unhashable: say what is wrong, not "unhashable type"
        raise ValueError(f"a block name must be a string, one of: {known}; got {describe(name)} "
                         f"({type(name).__name__})")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown block {describe(name)}; known blocks: {known}") from None


def create_block(name: str, *args, **kwargs) -> nn.Module:
    """Build the block registered as ``name``; positional and keyword arguments go to its constructor.

    ``create_block(name, C)`` builds every block with its paper's defaults for ``C`` channels.

    A ``stride`` given to a block that keeps its input's shape (every gating block) raises a
    ``ValueError`` saying so; other unknown keyword arguments raise the usual ``TypeError``.

    Example:
        >>> import attnlib
        >>> attnlib.create_block("se", 64, reduction=8).reduced_channels
        8
    """
    info = _lookup(name)
    if "stride" in kwargs and "stride" not in inspect.signature(info.cls.__init__).parameters:
        raise ValueError(
            f"{name}: stride={kwargs['stride']!r} is not allowed: {info.cls.__name__} keeps its input's shape "
            f"(B, C, H, W -> B, C, H, W) and has no strided step; downsample before or after the block"
        )
    return info.cls(*args, **kwargs)


def block_info(name: str) -> BlockInfo:
    """Metadata of the block registered as ``name`` (see :class:`BlockInfo`)."""
    return _lookup(name)


def list_blocks(family: str | None = None) -> list[str]:
    """Names of the registered blocks in registration order, optionally only those of one ``family``."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"list_blocks: family must be one of {FAMILIES} or None, got {family!r}")
    return [n for n, info in _REGISTRY.items() if family is None or info.family == family]
