"""Execute one page of the book as the build does, without building the site: a quick check while editing.

    python book/run_page.py book/se.md [--save out.ipynb]

Runs every code cell but those tagged ``skip-execution`` (as myst-nb does), with the build's cell timeout,
in the page's folder, and exits non-zero at the first failing cell, printing it. Cross-references, citations
and the rendering are checked only by the full build (``make book``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jupytext
import nbclient
import yaml

ROOT = Path(__file__).resolve().parent.parent


def run(path: Path, save: Path | None = None) -> float:
    nb = jupytext.read(path)
    timeout = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]["timeout"]
    skipped = [c for c in nb.cells if c.cell_type == "code" and "skip-execution" in c.metadata.get("tags", [])]
    for cell in skipped:
        cell.cell_type, cell.outputs = "raw", None  # not run (myst-nb skips them too)
        cell.pop("execution_count", None)
        cell.pop("outputs", None)
    t0 = time.perf_counter()
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    finally:
        if save:
            jupytext.write(nb, save)
    return time.perf_counter() - t0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--save", type=Path, help="write the executed notebook here")
    args = parser.parse_args()
    try:
        seconds = run(args.page, args.save)
    except nbclient.exceptions.CellExecutionError as err:
        print(err, file=sys.stderr)
        sys.exit(1)
    print(f"{args.page}: every cell ran ({seconds:.1f} s)")
