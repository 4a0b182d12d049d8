"""Self-checking coding exercises, two or more per block chapter.

Each chapter module (``attnlib.exercises.se``, ``.eca``, ...) defines :class:`Exercise` objects. The reader
writes a function, and ``check`` runs it against the library's block on random inputs and random weights
(float64, several trials), naming the mistake when the output matches a catalogued wrong variant::

    >>> import attnlib.exercises as ex
    >>> ex.get("se.gate").title
    'The SE gate'
    >>> def se_gate(x, W1, b1, W2, b2):
    ...     return x.mean(dim=(2, 3))          # not yet finished
    >>> ex.check("se.gate", se_gate).mistake
    'shape'

Everything lives in the installed package, so the exercises work in Colab with no repository files.
"""

from __future__ import annotations

import importlib

from ._framework import Case, CheckResult, Exercise, Mistake

#: chapter names (``book/<chapter>.md``), in book order
CHAPTERS = ("se", "eca", "sk", "cbam", "scse", "coord", "nonlocal", "gc", "encoding", "lvc", "dynamic_conv",
            "dka", "dycaconv")
#: the module of each chapter's exercises, ``attnlib.exercises.<module>`` (``nonlocal`` is a Python keyword)
MODULES = {chapter: "non_local" if chapter == "nonlocal" else chapter for chapter in CHAPTERS}


def list_exercises(chapter: str | None = None) -> list[Exercise]:
    """Every exercise, in book order, or those of one chapter."""
    if chapter is not None and chapter not in CHAPTERS:
        raise ValueError(f"chapter must be one of {CHAPTERS}, got {chapter!r}")
    names = [chapter] if chapter is not None else CHAPTERS
    return [e for n in names for e in importlib.import_module(f"{__name__}.{MODULES[n]}").EXERCISES]


def get(key: str) -> Exercise:
    """The exercise named ``"<chapter>.<name>"``, e.g. ``get("se.gate")``."""
    for e in list_exercises():
        if e.key == key:
            return e
    known = ", ".join(e.key for e in list_exercises())
    raise ValueError(f"no exercise {key!r}; the exercises are: {known}")


def check(key: str, fn, **kwargs) -> CheckResult:
    """``get(key).check(fn)``."""
    return get(key).check(fn, **kwargs)


def hint(key: str, level: int = 1) -> str:
    """``get(key).hint(level)``."""
    return get(key).hint(level)


__all__ = ["CHAPTERS", "MODULES", "Case", "CheckResult", "Exercise", "Mistake", "check", "get", "hint", "list_exercises"]
