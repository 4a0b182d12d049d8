"""Length of each block chapter: the prose and shown code a reader goes through.

Counts the non-blank lines of a chapter's MyST source, leaving out the YAML front matter and the setup
cell (the one that installs attnlib where it is missing; book/sync_notebooks.py writes it). Run it to
print every chapter's length and the median::

    python book/chapter_length.py            # the working tree
    python book/chapter_length.py --rev REV  # the chapters as they were at a git revision
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def length(text: str) -> int:
    """Non-blank lines outside the front matter and the setup cell."""
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    cells = re.split(r"(?m)^(```\{code-cell\}.*?^```$)", text, flags=re.S)
    kept = [c for c in cells if not (c.startswith("```{code-cell}") and "ATTNLIB_URL" in c)]
    return sum(1 for line in "".join(kept).splitlines() if line.strip())


def chapters(rev: str | None = None) -> dict[str, int]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync_notebooks", ROOT / "book" / "sync_notebooks.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    out = {}
    for path in sync.block_chapters(ROOT):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text() if rev is None else subprocess.run(
            ["git", "show", f"{rev}:{rel}"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
        out[path.stem] = length(text)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="a git revision (default: the working tree)")
    args = parser.parse_args()
    lengths = chapters(args.rev)
    for name, n in lengths.items():
        print(f"{name:14s} {n:5d}")
    print(f"{'median':14s} {statistics.median(lengths.values()):7.1f}")
