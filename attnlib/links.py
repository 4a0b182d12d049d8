"""Where the book lives: the site's page and the Colab notebook of each chapter.

The chapters link to each other and the overview's table links every block to its chapter, also when a
notebook runs in Colab with no repository beside it; so the addresses live here, in the installed library.
``book/sync_notebooks.py`` writes the four constants below from ``_config.yml`` (``repository.url``,
``repository.branch``, ``launch_buttons.colab_url``, and ``html.baseurl`` or, without it, the repository's
GitHub Pages address); ``tests/test_book.py`` fails when they disagree with it.

    >>> from attnlib import links
    >>> links.page_url("book/se").endswith("/book/se.html")
    True
    >>> links.colab_url("book/se").endswith("/blob/main/book/se.ipynb")
    True
"""

from __future__ import annotations

# --- written by book/sync_notebooks.py from _config.yml; do not edit by hand ---
REPOSITORY_URL = "https://github.com/attnlib/attnlib"
BRANCH = "main"
SITE_URL = "https://attnlib.github.io/attnlib/"
COLAB_URL = "https://colab.research.google.com"
# --- end of what book/sync_notebooks.py writes ---


def page_url(page: str) -> str:
    """The site's address of a book page given as its ``_toc.yml`` entry, e.g. ``"book/se"``."""
    return f"{SITE_URL.rstrip('/')}/{page.strip('/')}.html"


def colab_url(page: str) -> str:
    """The Colab address that opens the paired notebook ``<page>.ipynb`` from the repository."""
    slug = REPOSITORY_URL.rstrip("/").removeprefix("https://github.com/")
    return f"{COLAB_URL.rstrip('/')}/github/{slug}/blob/{BRANCH}/{page.strip('/')}.ipynb"


def chapter_links(name: str) -> tuple[str, str] | None:
    """``(site page, Colab notebook)`` of the chapter that derives block ``name``; ``None`` if it has none.

    Read from the registry's metadata (``attnlib.block_info(name).chapter``), never from files beside the
    notebook, so the links are the same on the site, in Colab and in a downloaded notebook.
    """
    from .registry import block_info

    chapter = block_info(name).chapter
    if chapter is None:
        return None
    page = f"book/{chapter}"
    return page_url(page), colab_url(page)
