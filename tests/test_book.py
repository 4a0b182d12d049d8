"""Fast checks of the book's sources and configuration (no book build here; `make book` builds it).

- every page of ``_toc.yml`` exists; every block chapter has the ten section titles, in order;
- each chapter's ``.md`` and its Colab ``.ipynb`` are in sync (jupytext's conversion of the ``.md`` against
  the ``.ipynb``: code cells identical, Markdown cells rendered by ``book/sync_notebooks.py``; outputs and
  metadata ignored), and no notebook's Markdown holds MyST markup (roles, directives, targets, labels);
- the MyST rendering itself: dropdowns, equation numbers and tags, citations, page and label links, and a
  clear error for what it cannot render;
- the install cell of each chapter installs from the URL in ``_config.yml`` wherever ``attnlib`` is not
  importable, and upgrades nothing it should not;
- ``attnlib.links`` (the overview's links to chapters) agrees with ``_config.yml`` and ``_toc.yml``;
- ``_config.yml`` keeps the settings that make the build strict and offline;
- every ``{cite}`` key exists in ``references.bib``, every ``{eq}`` target exists, and every equation label
  in a block's source comments is a labelled equation of its chapter;
- the live stepper cell is never executed at build time;
- ``attnlib.plotting``'s overlay convention.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

_spec = importlib.util.spec_from_file_location("sync_notebooks", ROOT / "book" / "sync_notebooks.py")
sync_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_notebooks)
_len_spec = importlib.util.spec_from_file_location("chapter_length", ROOT / "book" / "chapter_length.py")
chapter_length = importlib.util.module_from_spec(_len_spec)
_len_spec.loader.exec_module(chapter_length)

SECTIONS = ["Idea", "Derivation", "Shapes, step by step", "Implementation", "Attention on real images",
            "What the paper found", "Cost", "Pitfalls", "Exercises", "Tests"]
CHAPTERS = sync_notebooks.block_chapters(ROOT)
#: every executable page (block chapters, overview, zoo): each has a Colab notebook and an install cell
PAGES = sync_notebooks.notebook_pages(ROOT)
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
#: every toc page's titles, equations and labels, and the bibliography, as the sync script reads them
BOOK = sync_notebooks.Book(ROOT)


def _ids(paths):
    return [p.stem for p in paths]


def _markdown_outside_code(text: str) -> str:
    """The text with fenced blocks whose info string is a code cell or a literal code block removed."""
    out, fence = [], None
    for line in text.splitlines():
        m = re.match(r"^(`{3,}|~{3,})(.*)$", line)
        if fence is None and m:
            info = m.group(2).strip()
            if info.startswith("{code-cell}") or not info.startswith("{"):
                fence = m.group(1)
                continue
        elif fence is not None and line.startswith(fence) and line.strip() == fence:
            fence = None
            continue
        if fence is None:
            out.append(line)
    return "\n".join(out)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


# ------------------------------------------------------------------------------------------ toc & sections


def test_toc_pages_exist_and_chapters_are_found():
    for _, file in sync_notebooks.toc_files(ROOT):
        assert (ROOT / f"{file}.md").exists(), f"_toc.yml lists {file} but {file}.md does not exist"
    assert CHAPTERS, "no block chapter found in _toc.yml"
    assert ROOT / "book" / "se.md" in CHAPTERS


def test_every_block_chapter_and_the_overview_are_colab_notebooks():
    assert set(CHAPTERS) <= set(PAGES)
    assert ROOT / "book" / "overview.md" in PAGES


def test_front_matter_is_there():
    files = [f for _, f in sync_notebooks.toc_files(ROOT)]
    for page in ("book/intro", "book/notation", "book/overview"):
        assert page in files


@pytest.mark.parametrize("md", CHAPTERS, ids=_ids(CHAPTERS))
def test_chapter_has_the_nine_sections_in_order(md):
    text = _markdown_outside_code(md.read_text())
    titles = re.findall(r"^## (.+?)\s*$", text, flags=re.MULTILINE)
    assert titles == SECTIONS, f"{md.name}: ## sections {titles}, expected exactly {SECTIONS}"
    assert len(re.findall(r"^# \S", text, flags=re.MULTILINE)) == 1, f"{md.name}: needs exactly one # title"


def test_section_check_would_catch_a_swapped_order():
    text = "# T\n" + "".join(f"## {s}\n" for s in SECTIONS[:2][::-1] + SECTIONS[2:])
    titles = re.findall(r"^## (.+?)\s*$", _markdown_outside_code(text), flags=re.MULTILINE)
    assert titles != SECTIONS


# ------------------------------------------------------------------------------------------ notebook pairs


@pytest.mark.parametrize("md", PAGES, ids=_ids(PAGES))
def test_md_and_ipynb_are_in_sync(md):
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} missing: run .venv/bin/python book/sync_notebooks.py"
    from_md = jupytext.reads(md.read_text(), fmt="md:myst")
    on_disk = nbformat.read(ipynb, as_version=4)
    assert [c.cell_type for c in from_md.cells] == [c.cell_type for c in on_disk.cells], (
        f"{ipynb.name} is out of sync with {md.name}: run .venv/bin/python book/sync_notebooks.py")
    # code cells: character for character what the site runs, with the same tags
    for a, b in zip(_code_cells(from_md), _code_cells(on_disk)):
        assert a.source == b.source, f"{ipynb.name}: a code cell differs from {md.name}: run book/sync_notebooks.py"
        assert a.metadata.get("tags", []) == b.metadata.get("tags", []), f"{ipynb.name}: tags differ"
    # Markdown cells: the .md's cell rendered for a notebook reader
    renderer = sync_notebooks.PageRenderer(BOOK, md.with_suffix("").relative_to(ROOT).as_posix())
    for a, b in zip(from_md.cells, on_disk.cells):
        if a.cell_type == "markdown":
            assert renderer.render(a.source) == b.source, f"{ipynb.name} is out of sync with {md.name}"
    assert all(not c.get("outputs") for c in _code_cells(on_disk)), f"{ipynb.name} should carry no outputs"
    nbformat.validate(on_disk)


@pytest.mark.parametrize("md", PAGES, ids=_ids(PAGES))
def test_notebook_markdown_holds_no_myst_markup(md):
    """A notebook reader has no Sphinx: every role, directive, target and label must have been rendered."""
    on_disk = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    markdown = [c.source for c in on_disk.cells if c.cell_type == "markdown"]
    for source in markdown:
        for pattern in (r"\{[A-Za-z][\w:+-]*\}`", r"^[ \t>]*(`{3,}|~{3,}|:{3,})[ \t]*\{", r"^[ \t>]*\([^()\s]+\)=[ \t]*$",
                        r"\$\$[ \t]*\([^()\s]+\)[ \t]*$", r"^[ \t>]*:class:"):
            # literal code is the one place where MyST may be shown as it is written: drop fenced blocks
            # that are no directive, and inline code spans that are no role
            prose = re.sub(r"^(`{3,}|~{3,})(?!\s*\{).*?^\1[ \t]*$", "", source, flags=re.MULTILINE | re.DOTALL)
            prose = re.sub(r"(?<![}`])(`+)(?!\{)[^`]+?\1(?!`)", "", prose)
            found = re.findall(pattern, prose, flags=re.MULTILINE)
            assert not found, f"{md.with_suffix('.ipynb').name}: MyST markup left in a Markdown cell: {pattern} {found[:3]}"
        # links lead to an address or to an anchor of the notebook, never to a label or a .md file
        for dest in re.findall(r"(?<!!)\[[^\]]*\]\(([^)\s]*)\)", source):
            assert re.match(r"^(https?://|mailto:|#)", dest), f"{md.with_suffix('.ipynb').name}: link to {dest!r}"
        for anchor in re.findall(r"\]\(#([^)\s]+)\)", source):
            assert any(f'id="{anchor}"' in s for s in markdown), f"{md.stem}: link to #{anchor}, no such anchor"
    assert sync_notebooks.leftover_myst("\n".join(markdown)) == []


def test_the_myst_check_finds_raw_markup():
    """The regexes of the check above, on text holding each kind of raw MyST, and on rendered text."""
    raw = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(s) for s in (
        "By {eq}`se-squeeze`.", ":::{admonition} Solution\n:class: dropdown\nx\n:::", "(se-tests)=\n## Tests",
        "$$\nx\n$$ (se-x)", "see [Tests](se-tests)", "```{note}\nx\n```")])
    for cell in raw.cells:
        assert sync_notebooks.leftover_myst(cell.source), cell.source
    assert sync_notebooks.leftover_myst("`{eq}` in code and\n```python\n:::{note}\n```\n") == []


def test_sync_check_reports_nothing_stale():
    assert sync_notebooks.sync(check=True, root=ROOT) == []


@pytest.mark.parametrize("md", PAGES, ids=_ids(PAGES))
def test_install_cell_installs_wherever_attnlib_is_missing(md):
    url = sync_notebooks.install_url(CONFIG)
    assert url == f"git+{CONFIG['repository']['url']}@{CONFIG['repository']['branch']}"
    guard = 'if importlib.util.find_spec("attnlib") is None:'
    for nb in (jupytext.reads(md.read_text(), fmt="md:myst"), nbformat.read(md.with_suffix(".ipynb"), 4)):
        first = _code_cells(nb)[0].source
        found = re.findall(r'^ATTNLIB_URL = "([^"]*)"$', first, flags=re.MULTILINE)
        assert found == [url], f"{md.name}: install cell URL {found} != _config.yml's {url}"
        assert guard in first and "google.colab" not in first, f"{md.name}: install wherever attnlib is missing"
        assert "pip" in first and "ATTNLIB_URL" in first.split("pip", 1)[1]
        for forbidden in ("ipywidgets", "--upgrade", " -U", "torch", "--force", "--no-deps"):
            assert forbidden not in first.split(guard, 1)[1], (md.name, forbidden)
        # nothing in a chapter reads files beside the notebook (Colab has none)
        code = "\n".join(c.source for c in _code_cells(nb))
        assert "open(" not in code and "read_text(" not in code and "literalinclude" not in code, md.name


def test_install_cell_runs_pip_only_when_attnlib_is_missing(tmp_path, monkeypatch):
    """Execute the install cell with find_spec answering "missing" and "installed"; record pip's calls."""
    import importlib.util
    import subprocess

    cell = sync_notebooks.install_cell("git+https://example.org/x@main", "[viz]")
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, check: calls.append((args, check)))
    for present, expected in ((True, 0), (False, 1)):
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, present=present: object() if present else None)
        calls.clear()
        exec(compile(cell, "install-cell", "exec"), {})
        assert len(calls) == expected
    args, check = calls[0]
    assert check is True and args[1:5] == ["-m", "pip", "install", "-q"]
    assert args[5] == "attnlib[viz] @ git+https://example.org/x@main"


def test_install_cell_writer_keeps_the_extras_and_refuses_a_page_without_one():
    page = ("# T\n\n```{code-cell} ipython3\n:tags: [hide-input]\n\nimport sys\n\nATTNLIB_URL = \"old\"\n"
            "if \"google.colab\" in sys.modules:\n    pip(f\"attnlib[viz] @ {ATTNLIB_URL}\")\n```\n\ntext\n")
    new = sync_notebooks.with_install_cell(page, "git+https://e/new@main")
    assert new.startswith("# T\n\n```{code-cell} ipython3\n:tags: [hide-input]\n\n# Setup.")
    assert new.endswith("    importlib.invalidate_caches()\n```\n\ntext\n")
    assert sync_notebooks.install_cell("git+https://e/new@main", "[viz]") in new
    assert sync_notebooks.with_install_cell(new, "git+https://e/new@main") == new
    with pytest.raises(ValueError, match="install cell"):
        sync_notebooks.with_install_cell("# T\n\n```{code-cell} ipython3\nx = 1\n```\nATTNLIB_URL = \"u\"\n", "u")


@pytest.mark.parametrize("md", PAGES, ids=_ids(PAGES))
def test_colab_link_opens_the_paired_notebook_from_the_configured_repository(md):
    link = sync_notebooks.colab_link(CONFIG, md, ROOT)
    slug = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    assert link == (f"https://colab.research.google.com/github/{slug}/blob/{CONFIG['repository']['branch']}/"
                    f"book/{md.stem}.ipynb")
    assert re.findall(r"^\[Open in Colab\]\(([^)]*)\)$", md.read_text(), flags=re.MULTILINE) == [link]


def test_colab_link_writer_inserts_under_the_title():
    assert sync_notebooks.with_colab_link("# T\n\ntext\n", "L") == "# T\n\n[Open in Colab](L)\n\ntext\n"
    assert sync_notebooks.with_colab_link("# T\n\n[Open in Colab](old)\n", "L") == "# T\n\n[Open in Colab](L)\n"


@pytest.mark.parametrize("md", CHAPTERS, ids=_ids(CHAPTERS))
def test_chapter_picks_its_device_with_attnlib_device(md):
    code = "\n".join(c.source for c in _code_cells(jupytext.reads(md.read_text(), fmt="md:myst")))
    assert "attnlib.device()" in code, f"{md.name}: use attnlib.device() so the chapter runs on a GPU when present"
    assert ".cuda()" not in code and 'device="cuda"' not in code, f"{md.name}: hard-coded CUDA"


def test_url_writer_replaces_the_install_line():
    text = 'x\nATTNLIB_URL = "git+https://example.org/old@dev"\ny\n'
    assert sync_notebooks.with_url(text, "git+https://e/new@main") == 'x\nATTNLIB_URL = "git+https://e/new@main"\ny\n'
    with pytest.raises(ValueError):
        sync_notebooks.with_url("no install line", "u")


@pytest.mark.parametrize("md", CHAPTERS, ids=_ids(CHAPTERS))
def test_live_stepper_cells_are_not_executed_at_build_time(md):
    nb = jupytext.reads(md.read_text(), fmt="md:myst")
    for cell in _code_cells(nb):
        if "live_stepper(" in cell.source and "import" not in cell.source.split("live_stepper(")[0].split("\n")[-1]:
            assert "skip-execution" in cell.metadata.get("tags", []), f"{md.name}: live stepper cell needs skip-execution"
    sources = "\n".join(c.source for c in _code_cells(nb))
    assert "static_stepper(" in sources and "live_stepper(" in sources, f"{md.name}: section 3 needs both steppers"


# ------------------------------------------------------------------------------------------ configuration


def test_config_keeps_the_build_strict_and_offline():
    ex = CONFIG["execute"]
    assert ex["execute_notebooks"] == "force"
    assert ex["raise_on_error"] is True
    assert ex.get("allow_errors", False) is False
    assert 30 <= ex["timeout"] <= 120  # the zoo pages read and score every model in a cell
    assert CONFIG["only_build_toc_files"] is True
    excluded = set(CONFIG["exclude_patterns"])
    for pattern in ("book/*.ipynb", "README.md", "tests", "attnlib", "benchmarks", ".venv"):
        assert pattern in excluded, f"exclude_patterns lacks {pattern}"
    ext = CONFIG["parse"]["myst_enable_extensions"]
    assert "amsmath" in ext and "dollarmath" in ext and "colon_fence" in ext
    sphinx = CONFIG.get("sphinx", {}) or {}
    assert "intersphinx_mapping" not in (sphinx.get("config") or {}), "no intersphinx: the build is offline"
    assert "sphinx.ext.intersphinx" not in (sphinx.get("extra_extensions") or [])
    assert CONFIG["bibtex_bibfiles"] == ["references.bib"] and (ROOT / "references.bib").exists()
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["repository"]["url"].startswith("https://github.com/")
    assert CONFIG["repository"].get("path_to_book", "") == ""  # _config.yml at the root: pages are book/<x>


def test_toc_root_and_format():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["format"] == "jb-book" and toc["root"] == "book/intro"


# ------------------------------------------------------------------------------------------ cross-references

BIB_KEYS = set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(), flags=re.MULTILINE))
PAGES = [ROOT / f"{f}.md" for _, f in sync_notebooks.toc_files(ROOT)]


def test_bibliography_has_every_paper():
    eprints = set(re.findall(r"eprint\s*=\s*\{([^}]+)\}", (ROOT / "references.bib").read_text()))
    for arxiv in ("1709.01507", "1910.03151", "1807.06521", "1903.06586", "1803.02579", "1711.07971",
                  "1904.11492", "2103.02907", "1912.03458", "2204.10762", "1612.02844", "2210.02093"):
        assert arxiv in eprints, f"references.bib lacks arXiv:{arxiv}"
    import attnlib

    for name in attnlib.list_blocks():
        arxiv = attnlib.block_info(name).arxiv
        assert arxiv is None or arxiv in eprints, f"block {name}: arXiv {arxiv} missing from references.bib"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_every_cite_key_exists(page):
    text = page.read_text()
    for roles_keys in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
        for key in roles_keys.split(","):
            assert key.strip() in BIB_KEYS, f"{page.name}: {{cite}} key {key.strip()!r} not in references.bib"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_every_eq_reference_has_a_label(page):
    text = page.read_text()
    labels = set(re.findall(r"^\$\$\s*\(([\w-]+)\)\s*$", text, flags=re.MULTILINE))
    for ref in re.findall(r"\{eq\}`([^`]+)`", text):
        assert ref in labels, f"{page.name}: {{eq}}`{ref}` has no labelled equation on the page"


@pytest.mark.parametrize("md", CHAPTERS, ids=_ids(CHAPTERS))
def test_library_equation_labels_are_labelled_equations_of_the_chapter(md):
    import inspect

    import attnlib

    chapter = md.stem
    names = [n for n in attnlib.list_blocks() if attnlib.block_info(n).chapter == chapter]
    assert names, f"no registered block has chapter={chapter!r}"
    labels = set(re.findall(r"^\$\$\s*\(([\w-]+)\)\s*$", md.read_text(), flags=re.MULTILINE))
    for name in names:
        source = inspect.getsource(inspect.getmodule(attnlib.block_info(name).cls))
        used = set(re.findall(r"eq\. ([\w-]+):", source))
        assert used, f"{name}: no `eq. <label>:` comments in its source"
        assert used <= labels, f"{md.name}: labels {sorted(used - labels)} used by {name}'s code have no equation"


# ------------------------------------------------------------------------------------------ plotting


@pytest.fixture
def ax():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_overlay_upsamples_normalises_and_labels(ax):
    import numpy as np
    import torch

    from attnlib import plotting

    img = np.zeros((30, 40, 3), np.uint8)
    m = torch.arange(6.0).reshape(1, 1, 2, 3) * 10 + 5
    im = plotting.overlay(ax, img, m)
    arr = np.asarray(im.get_array())
    assert arr.shape == (30, 40)
    assert arr.min() == pytest.approx(0.0) and arr.max() == pytest.approx(1.0)
    expected = torch.nn.functional.interpolate(m, size=(30, 40), mode="bilinear", align_corners=False)[0, 0]
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    np.testing.assert_allclose(arr, expected.numpy(), atol=1e-6)
    cbar_label = ax.figure.axes[-1].get_ylabel()
    assert "min-max" in cbar_label
    assert im.get_cmap().name == plotting.CMAP


def test_overlay_raw_values_and_errors(ax):
    import numpy as np

    from attnlib import plotting

    img = np.zeros((8, 8, 3), np.uint8)
    im = plotting.overlay(ax, img, np.full((2, 2), 3.0), normalise="none", colorbar=True)
    assert np.allclose(im.get_array(), 3.0)
    assert "raw" in ax.figure.axes[-1].get_ylabel()
    with pytest.raises(ValueError, match="normalise"):
        plotting.overlay(ax, img, np.ones((2, 2)), normalise="max")
    with pytest.raises(ValueError, match="attention_map"):
        plotting.overlay(ax, img, np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="image"):
        plotting.overlay(ax, np.zeros((8, 8, 5)), np.ones((2, 2)))


def test_overlay_names_what_the_map_holds(ax):
    import numpy as np

    from attnlib import plotting

    img = np.zeros((8, 8, 3), np.uint8)
    plotting.overlay(ax, img, np.arange(4.0).reshape(2, 2), quantity="feature value")
    label = ax.figure.axes[-1].get_ylabel()
    assert label.startswith("feature value (") and "min-max" in label and "attention" not in label
    with pytest.raises(ValueError, match="quantity"):
        plotting.overlay(ax, img, np.ones((2, 2)), quantity="")


def test_gate_bars_and_flow_diagram(ax):
    import torch

    from attnlib import plotting

    bars = plotting.gate_bars(ax, torch.full((1, 5, 1, 1), 0.25), highlight=[3])
    assert len(bars) == 5 and bars[0].get_height() == pytest.approx(0.25)
    assert bars[3].get_facecolor() != bars[0].get_facecolor()
    with pytest.raises(ValueError, match="gate"):
        plotting.gate_bars(ax, torch.ones(2, 5))
    with pytest.raises(ValueError, match="highlight"):
        plotting.gate_bars(ax, torch.ones(5), highlight=[7])
    assert len(plotting.flow_diagram(ax, [("x", "(B, C)"), ("y", "(B, C)")])) == 2
    with pytest.raises(ValueError, match="steps"):
        plotting.flow_diagram(ax, [])


# ------------------------------------------------------------------------------------------ MyST -> notebook

_FRONT = ("---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
          "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n")
_BIB = """@article{doe2020one, title = {One}, author = {Doe, Jane}, year = {2020}, doi = {10.1000/one}}
@article{roe2021two, title = {Two}, author = {Roe, R. and M{\\"u}ller, Anna}, year = {2021},
  url = {https://example.org/two}}
@article{poe2022three, title = {Three}, author = {Poe, E. and Zed, Z. and Xu, X.}, year = {2022},
  eprint = {2201.00001}, archiveprefix = {arXiv}}
"""


def _tiny_book(tmp_path, a_md, b_md="# Page B\n\n(b-sec)=\n## B section\n\n$$ y $$ (b-eq)\n"):
    (tmp_path / "book").mkdir(parents=True)
    (tmp_path / "_config.yml").write_text(yaml.safe_dump({
        "repository": {"url": "https://github.com/Owner/repo", "branch": "dev"},
        "launch_buttons": {"colab_url": "https://colab.research.google.com"},
        "bibtex_bibfiles": ["references.bib"]}))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/a\nchapters:\n  - file: book/b\n")
    (tmp_path / "references.bib").write_text(_BIB)
    (tmp_path / "book" / "a.md").write_text(_FRONT + a_md)
    (tmp_path / "book" / "b.md").write_text(b_md)
    return sync_notebooks.Book(tmp_path)


def _render(tmp_path, a_md, **kw):
    book = _tiny_book(tmp_path, a_md, **kw)
    return sync_notebooks.PageRenderer(book, "book/a").render(a_md)


def test_rendering_numbers_equations_as_sphinx_does_and_tags_them(tmp_path):
    a = ("# A\n\n$$\nx\n$$ (a-first)\n\nUnlabelled:\n\n$$\nu\n$$\n\n$$ z $$ (a-second)\n\n"
         "By {eq}`a-second` and {eq}`a-first`; see also {eq}`b-eq`.\n")
    out = _render(tmp_path, a)
    assert "$$\nx\n\\tag{1}\n$$" in out and "$$ z \\tag{2} $$" in out and "$$\nu\n$$" in out
    assert "By (2) and (1); see also [(1)](https://owner.github.io/repo/book/b.html#equation-b-eq)." in out
    with pytest.raises(sync_notebooks.SyncError, match=r"book/a\.md.*'a-third'"):
        _render(tmp_path / "x", "# A\n\n{eq}`a-third`\n")


def test_rendering_hides_dropdowns_and_quotes_admonitions(tmp_path):
    a = ("# A\n\n:::{admonition} Solution\n:class: dropdown\nBy {eq}`a-e`.\n\n```python\n{eq}`kept`\n```\n:::\n\n"
         "```{note}\nA note.\n```\n\n::::{admonition} Outer\n:::{tip}\nInner.\n:::\n::::\n\n$$ e $$ (a-e)\n")
    out = _render(tmp_path, a)
    assert "<details>\n<summary>Solution</summary>\n\nBy (1).\n\n```python\n{eq}`kept`\n```\n\n</details>" in out
    assert "> **Note**\n>\n> A note." in out
    assert "> **Outer**\n>\n> > **Tip**\n> >\n> > Inner." in out
    with pytest.raises(sync_notebooks.SyncError, match=r"book/a\.md: unknown directive \{mystery\}"):
        _render(tmp_path / "x", "# A\n\n:::{mystery}\nx\n:::\n")


def test_rendering_cites_author_year_with_the_papers_link(tmp_path):
    out = _render(tmp_path, "# A\n\n{cite:p}`doe2020one` {cite:t}`roe2021two` {cite:p}`poe2022three,doe2020one`\n")
    assert "([Doe, 2020](https://doi.org/10.1000/one))" in out
    assert "[Roe and Müller (2021)](https://example.org/two)" in out
    assert "([Poe et al., 2022](https://arxiv.org/abs/2201.00001); [Doe, 2020](https://doi.org/10.1000/one))" in out
    with pytest.raises(sync_notebooks.SyncError, match=r"book/a\.md: .*unknown citation key 'nobody1999'"):
        _render(tmp_path / "x", "# A\n\n{cite:p}`doe2020one,nobody1999`\n")


def test_rendering_links_pages_labels_and_targets(tmp_path):
    a = ("# A\n\n[Open in Colab](https://colab.research.google.com/github/Owner/repo/blob/dev/book/a.ipynb)\n\n"
         "See {doc}`b`, {doc}`the other page <b>`, [B's section](b-sec), {ref}`b-sec`, [here](a-sec) and "
         "[](a-sec); `{doc}` and `[x](a-sec)` stay code.\n\n(a-sec)=\n## A section\n")
    out = _render(tmp_path, a)
    assert "· [Read it on the site](https://owner.github.io/repo/book/a.html)" in out
    assert "See [Page B](https://owner.github.io/repo/book/b.html), " in out     # b is no notebook: no Colab
    assert "[the other page](https://owner.github.io/repo/book/b.html)" in out
    assert "[B's section](https://owner.github.io/repo/book/b.html#b-sec), [B section](https" in out
    assert "[here](#a-sec) and [A section](#a-sec); `{doc}` and `[x](a-sec)` stay code." in out
    assert '<a id="a-sec" name="a-sec"></a>\n## A section' in out
    for i, (bad, message) in enumerate((("[x](nowhere)", "'nowhere' is no URL"), ("{doc}`c`", "'book/c' is no page"),
                                        ("{ref}`zz`", "no target"), ("{foo}`x`", r"unknown role \{foo\}"))):
        with pytest.raises(sync_notebooks.SyncError, match=message):
            _render(tmp_path / f"bad{i}", f"# A\n\n{bad}\n")


def test_rendering_links_a_notebook_page_to_the_site_and_colab(tmp_path):
    book = _tiny_book(tmp_path, "# A\n", b_md=_FRONT + "# Page B\n")
    out = sync_notebooks.PageRenderer(book, "book/b").render("See {doc}`a`.")
    assert out == ("See [A](https://owner.github.io/repo/book/a.html) "
                   "([Colab](https://colab.research.google.com/github/Owner/repo/blob/dev/book/a.ipynb)).")


def test_site_and_colab_addresses_come_from_the_config():
    assert sync_notebooks.site_url({"repository": {"url": "https://github.com/A/b"}}) == "https://a.github.io/b/"
    assert sync_notebooks.site_url({"repository": {"url": "https://github.com/A/b"},
                                    "html": {"baseurl": "https://docs.example.org/x"}}) == "https://docs.example.org/x/"
    assert sync_notebooks.page_url(CONFIG, "book/se") == sync_notebooks.site_url(CONFIG) + "book/se.html"


def test_attnlib_links_agree_with_the_config_and_every_block_has_a_chapter_page():
    import attnlib
    from attnlib import links

    assert sync_notebooks.links_constants(CONFIG) == {
        "REPOSITORY_URL": links.REPOSITORY_URL, "BRANCH": links.BRANCH, "SITE_URL": links.SITE_URL,
        "COLAB_URL": links.COLAB_URL}
    toc = {f for _, f in sync_notebooks.toc_files(ROOT)}
    for name in attnlib.list_blocks():
        chapter = attnlib.block_info(name).chapter
        assert chapter is not None and f"book/{chapter}" in toc, f"block {name}: chapter {chapter!r} not in _toc.yml"
        page, colab = links.chapter_links(name)
        assert page == sync_notebooks.page_url(CONFIG, f"book/{chapter}")
        assert colab == sync_notebooks.colab_link(CONFIG, ROOT / "book" / f"{chapter}.md", ROOT)


def test_overview_table_links_every_block_to_site_and_colab_without_the_repository(tmp_path, monkeypatch):
    """Run the overview's table cell in an empty directory (as in Colab): every row links its chapter."""
    import attnlib
    from attnlib import links

    cells = _code_cells(jupytext.reads((ROOT / "book" / "overview.md").read_text(), fmt="md:myst"))
    (table_cell,) = [c.source for c in cells if "Markdown(table)" in c.source]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(table_cell, "overview-table", "exec"), namespace)
    rows = namespace["rows"]
    assert len(rows) == len(attnlib.list_blocks())
    for name, row in zip(namespace["names"], rows):
        page, colab = links.chapter_links(name)
        assert row[0] == f"[`{name}`]({page}) ([Colab]({colab}))", row[0]
        assert page.startswith(links.SITE_URL) and colab.endswith(f"/book/{attnlib.block_info(name).chapter}.ipynb")


def test_rendering_of_the_less_common_roles_and_directives(tmp_path):
    a = ("# A\n\n```{table} Sizes\n:name: a-sizes\n| x |\n|---|\n| 1 |\n```\n\n{numref}`a-sizes` and "
         "{numref}`the sizes (%s) <a-sizes>`; {math}`x^2`, H{sub}`2`O; {cite:ts}`poe2022three`; {cite:year}`doe2020one`."
         "\n\n```{code-block} python\nx = 1\n```\n\n:::{exercise}\n:label: a-ex\nCompute.\n:::\n\n:::{solution} a-ex\n"
         "42.\n:::\n\nValue {glue:text}`acc:.2f`.\n\n```{math}\n:label: a-m\nm\n```\n\n{eq}`a-m`\n")
    out = _render(tmp_path, a)
    assert "**Table 1:** Sizes\n\n| x |" in out and "[Table 1](#a-sizes) and [the sizes (1)](#a-sizes)" in out
    assert "$x^2$, H<sub>2</sub>O; [Poe, Zed and Xu (2022)](https://arxiv.org/abs/2201.00001);" in out
    assert "[2020](https://doi.org/10.1000/one)." in out
    assert "```python\nx = 1\n```" in out
    assert '<a id="a-ex" name="a-ex"></a>\n\n> **Exercise**\n>\n> Compute.' in out
    assert "<details>\n<summary>Solution</summary>\n\n42.\n\n</details>" in out
    assert "Value `acc` (computed by the notebook's code)." in out
    assert "$$\nm\n\\tag{1}\n$$" in out and out.endswith("\n(1)\n")
    assert sync_notebooks.leftover_myst(out) == []
    with pytest.raises(sync_notebooks.SyncError, match=r"\{toctree\} directive has no meaning"):
        _render(tmp_path / "bad", "# A\n\n```{toctree}\nb\n```\n")


def test_sync_names_the_page_of_a_broken_directive(tmp_path):
    with pytest.raises(sync_notebooks.SyncError, match=r"^book/a\.md: a directive's option block"):
        _tiny_book(tmp_path, "# A\n\n:::{note}\n---\nclass: x\n:::\n")


# ------------------------------------------------------------------------------------------ chapter length

#: each block chapter's length (book/chapter_length.py: non-blank lines, front matter and setup cell left out)
#: before the chapters were tightened, as `python book/chapter_length.py --rev 0424a3c` prints it
LENGTH_BEFORE = {"se": 447, "eca": 517, "sk": 620, "cbam": 629, "scse": 530, "coord": 554, "nonlocal": 732,
                 "gc": 589, "encoding": 549, "lvc": 729, "dynamic_conv": 690, "dka": 589, "dycaconv": 715}


def test_chapters_stay_tight():
    """The median chapter is at least 30 % shorter than before, and no chapter grew back past its old length."""
    import statistics

    now = chapter_length.chapters()
    assert set(now) == set(LENGTH_BEFORE), "the block chapters changed: update LENGTH_BEFORE"
    median_before, median_now = statistics.median(LENGTH_BEFORE.values()), statistics.median(now.values())
    assert median_now <= 0.7 * median_before, f"median chapter length {median_now} > 0.7 x {median_before}"
    grown = {k: (LENGTH_BEFORE[k], n) for k, n in now.items() if n > LENGTH_BEFORE[k]}
    assert not grown, f"chapters longer than before the tightening (before, now): {grown}"


def test_chapter_length_counts_what_a_reader_reads():
    text = ("---\njupytext: x\n---\n\n# T\n\n```{code-cell} ipython3\nATTNLIB_URL = 1\nimport x\n```\n\nprose\n\n"
            "```{code-cell} ipython3\nprint(1)\n```\n")
    assert chapter_length.length(text) == 5  # title, prose, and the three lines of the second cell
