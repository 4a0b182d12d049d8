"""Write each executable page's Colab notebook from its MyST Markdown source.

Every page of ``_toc.yml`` that is a MyST Markdown notebook (it has a ``kernelspec`` in its front matter:
every block chapter, the overview, the model zoo) has a paired ``book/<page>.ipynb`` beside it: the file
Colab opens from the page's launch button. This script

1. writes the repository URL of ``_config.yml`` (``repository.url`` at ``repository.branch``) into the
   chapter's install cell, the line ``ATTNLIB_URL = "git+<url>@<branch>"``,
2. writes the chapter's "Open in Colab" link (the line ``[Open in Colab](...)`` under its title) from
   ``launch_buttons.colab_url`` and the same repository, pointing at ``book/<chapter>.ipynb``, and
3. converts the ``.md`` to the ``.ipynb`` with jupytext (no outputs: Colab runs it).

Usage (from the repository root)::

    .venv/bin/python book/sync_notebooks.py          # rewrite what is out of date
    .venv/bin/python book/sync_notebooks.py --check  # exit 1 if anything is out of date, change nothing

``tests/test_book.py`` fails when a pair is out of sync, so run this after editing a chapter.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
#: parts of _toc.yml that hold no block chapter
NON_CHAPTER_PARTS = ("Front matter", "Back matter")
#: the line of the install cell that names what Colab installs
URL_LINE = re.compile(r'^ATTNLIB_URL = "[^"]*"$', re.MULTILINE)
#: the chapter's explicit Colab link (the theme's launch button holds the same link)
COLAB_LINE = re.compile(r"^\[Open in Colab\]\([^)]*\)$", re.MULTILINE)


def load_config(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / "_config.yml").read_text())


def install_url(config: dict) -> str:
    """What the chapters' install cell passes to pip: ``git+<repository.url>@<repository.branch>``."""
    repo = config["repository"]
    return f"git+{repo['url'].rstrip('/')}@{repo.get('branch', 'main')}"


def colab_link(config: dict, md_path: Path, root: Path = ROOT) -> str:
    """The Colab URL that opens the chapter's paired ``.ipynb`` from the configured repository."""
    repo = config["repository"]
    slug = repo["url"].rstrip("/").removeprefix("https://github.com/")
    rel = md_path.with_suffix(".ipynb").relative_to(root).as_posix()
    base = config["launch_buttons"]["colab_url"].rstrip("/")
    return f"{base}/github/{slug}/blob/{repo.get('branch', 'main')}/{rel}"


def toc_files(root: Path = ROOT) -> list[tuple[str | None, str]]:
    """``(part caption, file)`` for every page of ``_toc.yml``, the root page first (caption None)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    out = [(None, toc["root"])]

    def walk(entries, caption):
        for entry in entries or []:
            if "file" in entry:
                out.append((caption, entry["file"]))
            walk(entry.get("sections"), caption)

    for part in toc.get("parts", []):
        walk(part.get("chapters"), part.get("caption"))
    walk(toc.get("chapters"), None)
    return out


def block_chapters(root: Path = ROOT) -> list[Path]:
    """The block chapters' ``.md`` files: every toc page outside the front and back matter."""
    return [root / f"{file}.md" for caption, file in toc_files(root)[1:] if caption not in NON_CHAPTER_PARTS]


def notebook_pages(root: Path = ROOT) -> list[Path]:
    """Every toc page that is a MyST notebook (code cells run at build time), block chapters included."""
    pages = [root / f"{file}.md" for _, file in toc_files(root)]
    return [p for p in pages if p.exists() and _is_notebook(p.read_text())]


def _is_notebook(md_text: str) -> bool:
    front = re.match(r"^---\n(.*?)\n---\n", md_text, flags=re.DOTALL)
    return bool(front) and "kernelspec" in (yaml.safe_load(front.group(1)) or {})


def with_url(md_text: str, url: str) -> str:
    """The chapter text with its install line set to ``url``; raises if the chapter has no install line."""
    if len(URL_LINE.findall(md_text)) != 1:
        raise ValueError('a chapter must contain exactly one line ATTNLIB_URL = "..." in its install cell')
    return URL_LINE.sub(f'ATTNLIB_URL = "{url}"', md_text)


def with_colab_link(md_text: str, link: str) -> str:
    """The chapter text with its ``[Open in Colab](...)`` line set to ``link`` (added under the title if absent)."""
    line = f"[Open in Colab]({link})"
    found = COLAB_LINE.findall(md_text)
    if len(found) > 1:
        raise ValueError("a chapter must contain at most one [Open in Colab](...) line")
    if found:
        return COLAB_LINE.sub(lambda _: line, md_text)
    title = re.search(r"^# .+$", md_text, flags=re.MULTILINE)
    if title is None:
        raise ValueError("a chapter needs a '# title' line")
    return md_text[:title.end()] + "\n\n" + line + md_text[title.end():]


def notebook_text(md_path: Path) -> str:
    """The ``.ipynb`` (JSON text) that jupytext makes of the chapter, without outputs."""
    nb = jupytext.reads(md_path.read_text(), fmt="md:myst")
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):  # deterministic ids, so an unchanged chapter gives an unchanged file
        cell.id = f"c{i:03d}-{hashlib.sha1(cell.source.encode()).hexdigest()[:8]}"
    nb.metadata["colab"] = {"provenance": []}
    return nbformat.writes(nb) + "\n"


def sync(check: bool = False, root: Path = ROOT) -> list[str]:
    """Bring every pair up to date (or, with ``check``, only report). Returns the out-of-date files."""
    config = load_config(root)
    url = install_url(config)
    stale = []
    for md in notebook_pages(root):
        text = md.read_text()
        new_text = with_colab_link(with_url(text, url), colab_link(config, md, root))
        if new_text != text:
            stale.append(str(md.relative_to(root)))
            if not check:
                md.write_text(new_text)
        ipynb = md.with_suffix(".ipynb")
        new_nb = notebook_text(md) if not check or new_text == text else None
        if new_nb is None or not ipynb.exists() or ipynb.read_text() != new_nb:
            stale.append(str(ipynb.relative_to(root)))
            if not check:
                ipynb.write_text(new_nb)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report out-of-date files, change nothing")
    args = parser.parse_args(argv)
    stale = sync(check=args.check)
    verb = "out of date" if args.check else "written"
    for path in stale:
        print(f"{verb}: {path}")
    if not stale:
        print("all chapter notebooks in sync")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
