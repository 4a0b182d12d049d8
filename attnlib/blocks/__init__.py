"""Every block module in this package is imported here, which registers its blocks."""

import importlib
import pkgutil

from .base import AttentionBlock

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name != "base" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["AttentionBlock"]
