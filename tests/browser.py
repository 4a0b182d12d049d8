"""What every browser test shares: Debian's Chromium driven by Playwright, and why a test must skip.

In CI a missing browser is an error, not a skip: the README's commands install both.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
#: flags for a root user on a machine with a closed network (background connections would be refused)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def missing(*extra: str | None) -> str | None:
    """Why browser tests cannot run here (``None`` when they can); ``extra`` are further reasons or ``None``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make test installs it from requirements.txt)"
    if not CHROMIUM.exists():
        return "/usr/bin/chromium is missing (make test installs Debian's chromium)"
    return next((r for r in extra if r), None)


def reason(*extra: str | None) -> str | None:
    """:func:`missing`, raising in CI (``$CI`` set) instead of returning a reason to skip."""
    why = missing(*extra)
    if why and os.environ.get("CI"):
        raise RuntimeError(f"browser tests cannot run in CI: {why}")
    return why


@contextmanager
def chromium():
    """A headless Chromium (Debian's) for the length of the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            yield b
        finally:
            b.close()
