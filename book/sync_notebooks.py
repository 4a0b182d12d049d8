"""Write each executable page's Colab notebook from its MyST Markdown source.

Every page of ``_toc.yml`` that is a MyST Markdown notebook (it has a ``kernelspec`` in its front matter:
every block chapter, the overview, the model zoo) has a paired ``book/<page>.ipynb`` beside it: the file
Colab opens from the page's launch button. This script

1. writes the page's install cell (its first code cell) from one template: it installs attnlib from
   ``_config.yml``'s repository (``ATTNLIB_URL = "git+<repository.url>@<repository.branch>"``) wherever
   ``attnlib`` is not importable (Colab, Kaggle, a downloaded notebook), keeping the extras (``[viz]``)
   the page asked for, and upgrading nothing;
2. writes the page's "Open in Colab" link (the line ``[Open in Colab](...)`` under its title) from
   ``launch_buttons.colab_url`` and the same repository, pointing at ``book/<page>.ipynb``;
3. writes the addresses of the site and of Colab into ``attnlib/links.py`` (the installed library needs
   them to link blocks to their chapters when no repository is beside the notebook);
4. converts the ``.md`` to the ``.ipynb`` with jupytext (no outputs: Colab runs it), code cells unchanged,
   and renders every Markdown cell for a notebook reader, who has no Sphinx: MyST directives become
   ``<details>`` (dropdowns) or quoted blocks, equation labels ``\\tag{n}`` and ``{eq}`` references the
   number Sphinx gives them (per page, in order of the labelled equations), ``{cite:p}``/``{cite:t}``
   "Author et al., year" linked to the paper (DOI, else URL, else arXiv, from ``references.bib``),
   ``{doc}`` and label links the site's page (and the other chapter's Colab notebook), ``(target)=`` an
   HTML anchor. Anything it cannot render (an unknown role or directive, citation key, equation label,
   link target) stops the sync with a message naming the page.

The site's address is ``html.baseurl`` of ``_config.yml`` if set, else the repository's GitHub Pages
address (``https://<owner>.github.io/<name>/``); a page ``book/<x>`` is at ``<site>book/<x>.html``.

Usage (from the repository root)::

    .venv/bin/python book/sync_notebooks.py          # rewrite what is out of date
    .venv/bin/python book/sync_notebooks.py --check  # exit 1 if anything is out of date, change nothing

``tests/test_book.py`` fails when a pair is out of sync, so run this after editing a chapter.
"""


import argparse
import codecs
import hashlib
import posixpath
import re
import sys
from dataclasses import dataclass, field
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
#: the file of the library that holds the book's addresses (written by :func:`with_links`)
LINKS_FILE = Path("attnlib") / "links.py"


class SyncError(ValueError):
    """A page holds something the sync cannot write into its notebook; the message names page and item."""


# ------------------------------------------------------------------------------------------ configuration


def load_config(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / "_config.yml").read_text())


def install_url(config: dict) -> str:
    """What the chapters' install cell passes to pip: ``git+<repository.url>@<repository.branch>``."""
    repo = config["repository"]
    return f"git+{repo['url'].rstrip('/')}@{repo.get('branch', 'main')}"


def _repo_slug(config: dict) -> str:
    url = config["repository"]["url"].rstrip("/")
    if not url.startswith("https://github.com/"):
        raise SyncError(f"_config.yml: repository.url must be a https://github.com/ address, got {url!r}")
    return url.removeprefix("https://github.com/")


def site_url(config: dict) -> str:
    """The site's base address, ending in ``/``: ``html.baseurl`` or the repository's GitHub Pages address."""
    base = ((config.get("html") or {}).get("baseurl") or "").strip()
    if not base:
        owner, name = _repo_slug(config).split("/", 1)
        base = f"https://{owner.lower()}.github.io/{name}/"
    return base.rstrip("/") + "/"


def page_url(config: dict, page: str) -> str:
    """The site's address of a toc page (``"book/se"``)."""
    return f"{site_url(config)}{page.strip('/')}.html"


def colab_url(config: dict, page: str) -> str:
    """The Colab address that opens ``<page>.ipynb`` from the configured repository and branch."""
    base = config["launch_buttons"]["colab_url"].rstrip("/")
    return f"{base}/github/{_repo_slug(config)}/blob/{config['repository'].get('branch', 'main')}/{page}.ipynb"


def colab_link(config: dict, md_path: Path, root: Path = ROOT) -> str:
    """The Colab URL that opens the chapter's paired ``.ipynb`` from the configured repository."""
    return colab_url(config, md_path.with_suffix("").relative_to(root).as_posix())


def links_constants(config: dict) -> dict[str, str]:
    """The constants of ``attnlib/links.py``, from ``_config.yml``."""
    return {"REPOSITORY_URL": config["repository"]["url"].rstrip("/"),
            "BRANCH": config["repository"].get("branch", "main"),
            "SITE_URL": site_url(config),
            "COLAB_URL": config["launch_buttons"]["colab_url"].rstrip("/")}


def with_links(py_text: str, config: dict) -> str:
    """``attnlib/links.py``'s text with its four constants set from ``_config.yml``."""
    for name, value in links_constants(config).items():
        line = re.compile(rf'^{name} = "[^"]*"$', re.MULTILINE)
        if len(line.findall(py_text)) != 1:
            raise SyncError(f'{LINKS_FILE}: needs exactly one line {name} = "..."')
        py_text = line.sub(f'{name} = "{value}"', py_text)
    return py_text


# ------------------------------------------------------------------------------------------ pages


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


# ------------------------------------------------------------------------------------------ install cell

INSTALL_CELL = '''\
# Setup. Where attnlib is not importable (Colab, Kaggle, a downloaded notebook) this cell installs it
# from the repository; pip keeps the torch and ipywidgets already installed, which satisfy attnlib's
# requirements (nothing is upgraded). Where attnlib is installed (the book's build, a local checkout)
# it does nothing. book/sync_notebooks.py writes this cell, with the URL from _config.yml.{extras_note}
import importlib.util
import sys

ATTNLIB_URL = "{url}"
if importlib.util.find_spec("attnlib") is None:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"attnlib{extras} @ {{ATTNLIB_URL}}"], check=True)
    importlib.invalidate_caches()'''
#: the first code cell of a page: fence, options, source
FIRST_CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n((?::[^\n]*\n)*)\n?(.*?)^```[ \t]*$",
                             re.MULTILINE | re.DOTALL)


def install_cell(url: str, extras: str = "") -> str:
    """The install cell's source for ``url`` and pip extras such as ``"[viz]"``."""
    note = f'\n# The "{extras.strip("[]")}" extra of attnlib is installed too' if extras else ""
    if extras == "[viz]":
        note += " (torchviz, for the autograd graph)"
    note += "." if extras else ""
    return INSTALL_CELL.format(url=url, extras=extras, extras_note=note)


def with_url(md_text: str, url: str) -> str:
    """The chapter text with its install line set to ``url``; raises if the chapter has no install line."""
    if len(URL_LINE.findall(md_text)) != 1:
        raise ValueError('a chapter must contain exactly one line ATTNLIB_URL = "..." in its install cell')
    return URL_LINE.sub(f'ATTNLIB_URL = "{url}"', md_text)


def with_install_cell(md_text: str, url: str) -> str:
    """The page's text with its first code cell (which must hold ``ATTNLIB_URL``) rewritten from the template.

    The pip extras of the present cell (``attnlib[viz] @ ...``) are kept.
    """
    md_text = with_url(md_text, url)
    m = FIRST_CODE_CELL.search(md_text)
    if m is None or not URL_LINE.search(m.group(2)):
        raise ValueError("the first code cell of a page must be its install cell (with ATTNLIB_URL = ...)")
    extras = re.search(r'"attnlib(\[[\w,\- ]*\])? @ ', m.group(2))
    cell = install_cell(url, (extras.group(1) or "") if extras else "")
    return md_text[:m.start(2)] + cell + "\n" + md_text[m.end(2):]


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


# ------------------------------------------------------------------------------------------ bibliography


@dataclass(frozen=True)
class Reference:
    """What a citation prints: short authors ("Hu et al."), all authors, year, and the paper's link."""

    key: str
    short: str
    authors: str
    year: str
    link: str | None


def _latex_to_text(s: str) -> str:
    import latexcodec  # noqa: F401  (registers the "ulatex" codec; pybtex depends on it)

    return re.sub(r"\s+", " ", codecs.decode(s, "ulatex").replace("{", "").replace("}", "")).strip()


def load_bibliography(path: Path) -> dict[str, Reference]:
    """Every entry of a BibTeX file, formatted as sphinxcontrib-bibtex's ``author_year`` style cites it."""
    from pybtex.database import parse_file

    refs = {}
    for key, entry in parse_file(str(path)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_latex_to_text(" ".join(p.prelast_names + p.last_names)) for p in people]
        others = bool(names) and names[-1].lower() == "others"
        names = [n for n in names if n.lower() != "others"]
        if not names:
            raise SyncError(f"{path.name}: entry {key!r} has no author")
        if len(names) == 1 and not others:
            short = names[0]
        elif len(names) == 2 and not others:
            short = f"{names[0]} and {names[1]}"
        else:
            short = f"{names[0]} et al."
        full = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
        if others:
            full = ", ".join(names) + " et al."
        fields = {k.lower(): v for k, v in entry.fields.items()}
        if "doi" in fields:
            link = "https://doi.org/" + fields["doi"].removeprefix("https://doi.org/")
        elif "url" in fields:
            link = fields["url"]
        elif "eprint" in fields and fields.get("archiveprefix", "arXiv").lower() == "arxiv":
            link = f"https://arxiv.org/abs/{fields['eprint']}"
        else:
            link = None
        refs[key] = Reference(key, short, full, fields.get("year", "n.d."), link)
    return refs


# ------------------------------------------------------------------------------------------ MyST blocks

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,}|:{3,})[ \t]*(?P<info>.*?)[ \t]*$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[A-Za-z][\w:+-]*)\}[ \t]*(?P<arg>.*)$")
_TARGET = re.compile(r"^[ \t]*\((?P<label>[^()\s]+)\)=[ \t]*$")
_EQ_LABEL = re.compile(r"^[ \t]*\((?P<label>[^()\s]+)\)[ \t]*$")
_HEADING = re.compile(r"^[ \t]{0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):(?:[ \t]+(?P<value>.*))?$")


@dataclass
class Block:
    kind: str                      # "text", "code" (literal fence), "directive", "math", "target"
    lines: list[str] = field(default_factory=list)
    name: str = ""                 # directive name
    arg: str = ""                  # directive argument
    options: dict = field(default_factory=dict)
    body: list[str] = field(default_factory=list)
    label: str | None = None       # target, equation or directive label
    tail: str = ""                 # text after a display equation's closing $$ that is no label


def _dedent(lines: list[str], indent: str) -> list[str]:
    return [ln[len(indent):] if ln.startswith(indent) else ln.lstrip() for ln in lines]


def _directive_options(body: list[str]) -> tuple[dict, list[str]]:
    """Split a directive's leading ``:key: value`` lines (or ``---`` YAML block) from its content."""
    options, i = {}, 0
    if body and body[0].strip() == "---":
        end = next((j for j in range(1, len(body)) if body[j].strip() == "---"), None)
        if end is None:
            raise SyncError("a directive's option block opened with --- is not closed")
        options = yaml.safe_load("\n".join(body[1:end])) or {}
        i = end + 1
    else:
        while i < len(body) and (m := _OPTION.match(body[i].strip())):
            options[m.group("key")] = (m.group("value") or "").strip()
            i += 1
    while i < len(body) and not body[i].strip():
        i += 1
    return options, body[i:]


def parse_blocks(lines: list[str]) -> list[Block]:
    """Split Markdown lines into text runs, literal code fences, directives, display equations and targets."""
    blocks: list[Block] = []
    i = 0

    def text(line):
        if blocks and blocks[-1].kind == "text":
            blocks[-1].lines.append(line)
        else:
            blocks.append(Block("text", [line]))

    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence and (fence.group("fence")[0] != ":" or fence.group("info").startswith("{")):
            char, n, indent = fence.group("fence")[0], len(fence.group("fence")), fence.group("indent")
            end = next((j for j in range(i + 1, len(lines))
                        if re.fullmatch(rf"[ \t]*{re.escape(char)}{{{n},}}[ \t]*", lines[j])), len(lines))
            inner = _dedent(lines[i + 1:end], indent)
            directive = _DIRECTIVE.match(fence.group("info"))
            if directive and not directive.group("name").startswith("code-cell"):
                options, body = _directive_options(inner)
                blocks.append(Block("directive", lines[i:end + 1], name=directive.group("name"),
                                    arg=directive.group("arg").strip(), options=options, body=body,
                                    label=options.get("name") or options.get("label")))
            else:
                blocks.append(Block("code", lines[i:end + 1]))
            i = end + 1
            continue
        target = _TARGET.match(line)
        if target:
            blocks.append(Block("target", [line], label=target.group("label")))
            i += 1
            continue
        stripped = line.lstrip()
        if stripped.startswith("$$"):
            rest = stripped[2:]
            if "$$" in rest:                                    # $$ ... $$ on one line
                end, close_line = i, rest
            else:
                end = next((j for j in range(i + 1, len(lines)) if "$$" in lines[j]), None)
                if end is None:
                    text(line)
                    i += 1
                    continue
                close_line = lines[end]
            after = close_line[close_line.rindex("$$") + 2:]
            label = _EQ_LABEL.match(after)
            blocks.append(Block("math", lines[i:end + 1], label=label.group("label") if label else None,
                                tail="" if label else after.strip()))
            i = end + 1
            continue
        text(line)
        i += 1
    return blocks


#: directives whose content is Markdown, rendered as a quoted block (or <details> when a dropdown)
ADMONITIONS = {"note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important", "warning": "Warning",
               "caution": "Caution", "attention": "Attention", "danger": "Danger", "error": "Error",
               "seealso": "See also", "admonition": None, "dropdown": "Details", "toggle": "Show",
               "margin": None, "sidebar": None, "epigraph": None, "pull-quote": None, "highlights": None}
#: directives whose content is literal code
CODE_DIRECTIVES = {"code-block", "code", "sourcecode"}
#: numbered by {numref}, as Sphinx's default numfig_format names them
NUMBERED = {"figure": "Fig.", "table": "Table", "list-table": "Table", **{d: "Listing" for d in CODE_DIRECTIVES}}
#: directives that have no meaning in a notebook
REFUSED = {"bibliography", "toctree", "tableofcontents", "include", "literalinclude", "glossary", "code-cell",
           "only", "automodule", "autoclass", "autofunction", "eval-rst"}


# ------------------------------------------------------------------------------------------ the book's index


@dataclass
class PageIndex:
    """What other pages may refer to on one page."""

    file: str                                   # toc entry, e.g. "book/se"
    title: str
    notebook: bool
    equations: dict[str, int] = field(default_factory=dict)       # label -> number
    targets: dict[str, str | None] = field(default_factory=dict)  # label -> title of the heading after it
    numbered: dict[str, str] = field(default_factory=dict)        # label -> "Table 2"


def _markdown_parts(md_text: str) -> list[str]:
    """The Markdown cells' sources of a page, in order (jupytext's split: code cells excluded)."""
    nb = jupytext.reads(md_text, fmt="md:myst")
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def index_page(file: str, md_text: str) -> PageIndex:
    """Title, numbered equations, targets and numbered directives of a page (errors name the page)."""
    title = re.search(r"^# (.+?)\s*$", _strip_code(md_text), flags=re.MULTILINE)
    index = PageIndex(file, title.group(1) if title else file.rsplit("/", 1)[-1], _is_notebook(md_text))
    counters: dict[str, int] = {}
    pending: list[str] = []        # targets waiting for the heading that follows them

    def add_label(table, label, value):
        if label in index.equations or label in index.targets or label in index.numbered:
            raise SyncError(f"{file}.md: label {label!r} is defined twice")
        table[label] = value

    def walk(blocks):
        nonlocal pending
        for b in blocks:
            if b.kind == "target":
                add_label(index.targets, b.label, None)
                pending.append(b.label)
                continue
            if b.kind == "text":
                for line in b.lines:
                    heading = _HEADING.match(line)
                    if heading:
                        for label in pending:
                            index.targets[label] = heading.group(2)
                        pending = []
                    elif line.strip():
                        pending = []
                continue
            pending = []
            if b.kind == "math" and b.label:
                add_label(index.equations, b.label, len(index.equations) + 1)
            elif b.kind == "directive":
                if b.name == "math" and b.label:
                    add_label(index.equations, b.label, len(index.equations) + 1)
                elif b.name in NUMBERED and b.label:
                    kind = NUMBERED[b.name]
                    counters[kind] = counters.get(kind, 0) + 1
                    add_label(index.numbered, b.label, f"{kind} {counters[kind]}")
                if b.name in ADMONITIONS or b.name in ("exercise", "solution"):
                    walk(parse_blocks(b.body))

    for part in _markdown_parts(md_text) if index.notebook else [_strip_front_matter(md_text)]:
        walk(parse_blocks(part.split("\n")))
    return index


def _strip_front_matter(md_text: str) -> str:
    return re.sub(r"^---\n.*?\n---\n", "", md_text, count=1, flags=re.DOTALL)


def _strip_code(md_text: str) -> str:
    """The page without its fenced blocks that hold code (code cells and literal blocks)."""
    return "\n".join("\n".join(b.lines) for b in parse_blocks(_strip_front_matter(md_text).split("\n"))
                     if b.kind != "code")


class _naming:
    """Context manager: a :class:`SyncError` raised inside names the page it happened on."""

    def __init__(self, file: str):
        self.file = file

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if isinstance(err, SyncError) and not str(err).startswith(f"{self.file}.md"):
            raise SyncError(f"{self.file}.md: {err}") from err
        return False


class Book:
    """Every toc page's index, the bibliography and the site's and Colab's addresses."""

    def __init__(self, root: Path = ROOT, config: dict | None = None):
        self.root = root
        self.config = config or load_config(root)
        self.bib = load_bibliography(root / self.config["bibtex_bibfiles"][0])
        self.pages: dict[str, PageIndex] = {}
        self.labels: dict[str, str] = {}        # target or numbered label -> page
        self.eq_labels: dict[str, str] = {}     # equation label -> page
        for _, file in toc_files(root):
            path = root / f"{file}.md"
            if not path.exists():
                continue
            with _naming(file):
                page = index_page(file, path.read_text())
            self.pages[file] = page
            for table, labels in ((self.labels, [*page.targets, *page.numbered]), (self.eq_labels, page.equations)):
                for label in labels:
                    if label in table:
                        raise SyncError(f"label {label!r} is defined on {table[label]}.md and on {file}.md")
                    table[label] = file

    def page_url(self, file: str) -> str:
        return page_url(self.config, file)

    def colab_url(self, file: str) -> str:
        return colab_url(self.config, file)


# ------------------------------------------------------------------------------------------ rendering

#: the spans that inline rendering treats as one unit (roles first: `{eq}`x`` is no code span)
_INLINE = re.compile(
    r"(?P<role>\{(?P<rname>[A-Za-z][\w:+-]*)\}(?P<rtick>`+)(?P<rbody>.*?)(?P=rtick)(?!`))"
    r"|(?P<code>(?P<tick>`+).+?(?<!`)(?P=tick)(?!`))"
    r"|(?P<escaped>\\.)"
    r"|(?P<dmath>\$\$.+?\$\$)"
    r"|(?P<math>\$(?:\\.|[^$\\])+?\$)"
    r"|(?P<link>(?P<bang>!?)\[(?P<ltext>[^\]]*)\]\((?P<ldest>[^)\s]*)(?P<ltitle>\s+\"[^\"]*\")?\))",
    re.DOTALL,
)
_EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)
_URL = re.compile(r"^(https?:|mailto:|#)")


class PageRenderer:
    """Renders one page's Markdown cells for a notebook reader (see the module docstring)."""

    def __init__(self, book: Book, file: str):
        self.book, self.file = book, file
        self.page = book.pages[file]

    def fail(self, message: str):
        raise SyncError(f"{self.file}.md: {message}")

    # ---- blocks

    def render(self, source: str) -> str:
        return "\n".join(self.render_blocks(parse_blocks(source.split("\n"))))

    def render_blocks(self, blocks: list[Block]) -> list[str]:
        out: list[str] = []
        for b in blocks:
            if b.kind == "text":
                text = self.inline("\n".join(b.lines))
                text = COLAB_LINE.sub(lambda m: f"{m.group(0)} · [Read it on the site]"
                                                f"({self.book.page_url(self.file)})", text)
                out.extend(text.split("\n"))
            elif b.kind == "code":
                out.extend(b.lines)
            elif b.kind == "target":
                out.append(f'<a id="{b.label}" name="{b.label}"></a>')
            elif b.kind == "math":
                out.extend(self.math(b))
            else:
                indent = re.match(r"^[ \t]*", b.lines[0]).group(0)
                out.extend(indent + ln if ln else ln for ln in self.directive(b))
        return out

    def math(self, b: Block) -> list[str]:
        lines = list(b.lines)
        if b.label:
            tag = f"\\tag{{{self.page.equations[b.label]}}}"
            last = lines[-1]
            cut = last.rindex("$$")
            head = last[:cut].rstrip()
            if len(lines) == 1:            # $$ body $$ (label)
                lines[-1] = f"{head} {tag} $$"
            elif head.strip():
                lines[-1] = f"{head} {tag}"
                lines.append("$$")
            else:
                lines[-1:] = [tag, head + "$$"]
        else:
            last = lines[-1]
            lines[-1] = last[:last.rindex("$$") + 2]
        if b.tail:
            lines.append(self.inline(b.tail))
        return lines

    def directive(self, b: Block) -> list[str]:
        name = b.name
        anchor = [f'<a id="{b.label}" name="{b.label}"></a>', ""] if b.label else []
        if name in ADMONITIONS:
            title = b.arg or ADMONITIONS[name] or ""
            if name == "admonition" and not b.arg:
                self.fail("an {admonition} needs a title")
            body = self.render_blocks(parse_blocks(b.body))
            classes = str(b.options.get("class", "")).split()
            if name in ("dropdown", "toggle") or "dropdown" in classes or "toggle" in classes:
                opened = " open" if "open" in b.options else ""
                return anchor + [f"<details{opened}>", f"<summary>{self.inline(title)}</summary>", "", *body, "",
                                 "</details>"]
            head = [f"> **{self.inline(title)}**", ">"] if title else []
            return anchor + head + [f"> {ln}" if ln else ">" for ln in body]
        if name == "exercise":       # sphinx-exercise: the exercise stays visible, its solution is hidden
            return anchor + [f"> **Exercise{' ' + self.inline(b.arg) if b.arg else ''}**", ">",
                             *(f"> {ln}" if ln else ">" for ln in self.render_blocks(parse_blocks(b.body)))]
        if name == "solution":
            return anchor + ["<details>", "<summary>Solution</summary>", "",
                             *self.render_blocks(parse_blocks(b.body)), "", "</details>"]
        if name.startswith("glue"):    # myst-nb glue: the value exists only once the notebook has run
            return [f"*(`{b.arg.split(':')[0]}`: shown by the cell that computes it)*"]
        if name == "math":
            tag = [f"\\tag{{{self.page.equations[b.label]}}}"] if b.label else []
            return anchor + ["$$", *b.body, *tag, "$$"]
        if name in CODE_DIRECTIVES:
            caption = self.inline(b.options.get("caption", ""))
            number = self.page.numbered.get(b.label) if b.label else None
            head = [f"**{number}:** {caption}" if number else f"*{caption}*", ""] if caption else []
            return anchor + head + [f"```{b.arg}", *b.body, "```"]
        if name == "table":
            number = self.page.numbered.get(b.label) if b.label else None
            caption = self.inline(b.arg) if b.arg else ""
            head = [f"**{number}:** {caption}" if number else f"**{caption}**", ""] if (caption or number) else []
            return anchor + head + self.render_blocks(parse_blocks(b.body))
        if name in ("figure", "image"):
            if not _URL.match(b.arg) or b.arg.startswith("#"):
                self.fail(f"{{{name}}} {b.arg}: a notebook has no files beside it; use an http(s) address")
            number = self.page.numbered.get(b.label) if b.label else None
            caption = " ".join(self.render_blocks(parse_blocks(b.body))).strip()
            alt = b.options.get("alt", caption or b.arg)
            lines = [f"![{alt}]({b.arg})"]
            if caption or number:
                lines += ["", f"*{number + ': ' if number else ''}{caption}*"]
            return anchor + lines
        if name == "raw":
            return b.body if b.arg.strip().lower() == "html" else []
        if name in REFUSED:
            self.fail(f"the {{{name}}} directive has no meaning in a notebook page")
        self.fail(f"unknown directive {{{name}}}: book/sync_notebooks.py cannot render it for the notebook")

    # ---- inline

    def inline(self, text: str) -> str:
        return _INLINE.sub(self._inline_match, text)

    def _inline_match(self, m: re.Match) -> str:
        if m.group("role"):
            return self.role(m.group("rname"), m.group("rbody"), m.group(0))
        if m.group("link") and not m.group("bang"):
            return self.link(m.group("ltext"), m.group("ldest"), m.group(0))
        return m.group(0)

    def link(self, text: str, dest: str, whole: str) -> str:
        if not dest or _URL.match(dest):
            return whole
        anchor = ""
        if "#" in dest:
            dest, anchor = dest.split("#", 1)
        if dest.endswith((".md", ".ipynb")):
            file = self.resolve_doc(dest.rsplit(".", 1)[0])
            return self.doc_link(self.inline(text) or self.book.pages[file].title, file, anchor)
        if dest in self.book.labels or dest in self.book.eq_labels:
            return self.ref(text, dest, "link")
        self.fail(f"link [{text}]({dest}): {dest!r} is no URL, no page and no label of the book")

    def role(self, name: str, body: str, whole: str) -> str:
        if name == "eq":
            return self.eq(body)
        if name == "cite" or name.startswith("cite:"):
            return self.cite(name.split(":", 1)[1] if ":" in name else "p", body)
        if name == "doc":
            m = _EXPLICIT.match(body)
            target = m.group("target") if m else body
            file = self.resolve_doc(target)
            text = self.inline(m.group("text")) if m and m.group("text") else self.book.pages[file].title
            return self.doc_link(text, file)
        if name in ("ref", "numref"):
            m = _EXPLICIT.match(body)
            return self.ref(m.group("text") if m else "", m.group("target") if m else body, name)
        if name == "math":
            return f"${body}$"
        if name == "glue" or name.startswith("glue:"):   # myst-nb glue: computed when the notebook runs
            return f"`{body.split(':')[0].strip()}` (computed by the notebook's code)"
        if name in ("sub", "sup", "kbd"):
            return f"<{name}>{body}</{name}>"
        if name in ("abbr", "term", "guilabel", "menuselection", "dfn"):
            m = re.match(r"^(?P<text>.*?)\s*\((?P<expl>[^()]*)\)$", body) if name == "abbr" else None
            return m.group("text") if m else body.replace("&", "")
        if name in ("code", "samp", "file", "command", "program", "envvar", "option"):
            return f"`{body}`"
        if name.split(":")[-1] in ("func", "class", "meth", "mod", "attr", "obj", "data", "exc", "const"):
            m = _EXPLICIT.match(body)
            shown = m.group("text") if m and m.group("text") else (m.group("target") if m else body)
            if shown.startswith("~"):
                shown = shown.rsplit(".", 1)[-1]
            return f"`{shown}{'()' if name.endswith(('func', 'meth')) and not shown.endswith(')') else ''}`"
        if name == "download":
            m = _EXPLICIT.match(body)
            target = m.group("target") if m else body
            if not re.match(r"^https?:", target):
                self.fail(f"{{download}}`{body}`: a notebook has no files beside it; use an http(s) address")
            return f"[{m.group('text') if m and m.group('text') else target}]({target})"
        self.fail(f"unknown role {{{name}}}`{body}`: book/sync_notebooks.py cannot render it for the notebook")

    def eq(self, body: str) -> str:
        m = _EXPLICIT.match(body)
        label = (m.group("target") if m else body).strip()
        page = self.book.eq_labels.get(label)
        if page is None:
            self.fail(f"{{eq}}`{body}`: no equation is labelled {label!r} in the book")
        number = self.book.pages[page].equations[label]
        text = (m.group("text").replace("{number}", str(number)) if m and m.group("text") else f"({number})")
        if page == self.file:
            return text
        return f"[{text}]({self.book.page_url(page)}#equation-{label})"

    def cite(self, style: str, body: str) -> str:
        if "{" in body:
            self.fail(f"{{cite:{style}}}`{body}`: citations with pre- or post-notes are not supported")
        refs = []
        for key in (k.strip() for k in body.split(",")):
            if key not in self.book.bib:
                self.fail(f"{{cite:{style}}}`{body}`: unknown citation key {key!r} (not in references.bib)")
            refs.append(self.book.bib[key])

        def linked(text, ref):
            return f"[{text}]({ref.link})" if ref.link else text

        full = style.endswith("s")            # ps, ts, alps, alts, authors: every author's name
        authors = (lambda r: r.authors) if full else (lambda r: r.short)
        base = style[:-1] if full else style
        if base == "p":
            return "(" + "; ".join(linked(f"{authors(r)}, {r.year}", r) for r in refs) + ")"
        if base == "t":
            return "; ".join(linked(f"{authors(r)} ({r.year})", r) for r in refs)
        if base == "alp":
            return "; ".join(linked(f"{authors(r)}, {r.year}", r) for r in refs)
        if base == "alt":
            return "; ".join(linked(f"{authors(r)} {r.year}", r) for r in refs)
        if base in ("author", "authors"):
            return "; ".join(linked(authors(r), r) for r in refs)
        if base == "year":
            return "; ".join(linked(r.year, r) for r in refs)
        self.fail(f"{{cite:{style}}}: unknown citation style (known: p, t, ps, ts, alp, alt, author, year)")

    def resolve_doc(self, target: str) -> str:
        target = target.strip()
        file = target.lstrip("/") if target.startswith("/") else posixpath.normpath(
            posixpath.join(posixpath.dirname(self.file), target))
        if file not in self.book.pages:
            self.fail(f"{{doc}}`{target}`: {file!r} is no page of _toc.yml")
        return file

    def doc_link(self, text: str, file: str, anchor: str = "") -> str:
        url = self.book.page_url(file) + (f"#{anchor}" if anchor else "")
        if file == self.file:
            return f"[{text}](#{anchor})" if anchor else text
        if self.book.pages[file].notebook:
            return f"[{text}]({url}) ([Colab]({self.book.colab_url(file)}))"
        return f"[{text}]({url})"

    def ref(self, text: str, label: str, how: str) -> str:
        if label in self.book.eq_labels and label not in self.book.labels:
            self.fail(f"{how} to {label!r}: an equation label; refer to equations with {{eq}}")
        page = self.book.labels.get(label)
        if page is None:
            self.fail(f"{how} to {label!r}: no target (label)= of that name in the book")
        index = self.book.pages[page]
        number = index.numbered.get(label)
        if how == "numref" and number:
            text = (text.replace("%s", number.split()[-1]).replace("{number}", number.split()[-1])
                    if text else number)
        text = self.inline(text) if text else (index.targets.get(label) or number)
        if not text:
            self.fail(f"{how} to {label!r}: the target precedes no heading, so the link needs its own text")
        url = f"#{label}" if page == self.file else f"{self.book.page_url(page)}#{label}"
        return f"[{text}]({url})"


# ------------------------------------------------------------------------------------------ notebooks

#: MyST markup that must not survive in a notebook's Markdown (outside code): roles, directive fences,
#: (target)= lines, equation labels after $$, and links whose target is a label rather than an address
LEFTOVER_MYST = {
    "role": re.compile(r"\{[A-Za-z][\w:+-]*\}`"),
    "directive": re.compile(r"^[ \t>]*(`{3,}|~{3,}|:{3,})[ \t]*\{", re.MULTILINE),
    "target": re.compile(r"^[ \t>]*\([^()\s]+\)=[ \t]*$", re.MULTILINE),
    "equation label": re.compile(r"\$\$[ \t]*\([^()\s]+\)[ \t]*$", re.MULTILINE),
    "directive option": re.compile(r"^[ \t>]*:(class|name|label|tags|dropdown):", re.MULTILINE),
    "label link": re.compile(r"(?<!!)\[[^\]]*\]\((?!https?:|mailto:|#)[^)\s]*\)"),
}


def leftover_myst(markdown: str) -> list[tuple[str, str]]:
    """``(kind, text)`` of every piece of MyST markup in ``markdown``, ignoring code blocks and code spans."""
    prose = "\n".join("\n".join(b.lines) for b in parse_blocks(markdown.split("\n")) if b.kind != "code")
    found = [(kind, m.group(0)) for kind in ("directive", "target", "equation label", "directive option")
             for m in LEFTOVER_MYST[kind].finditer(prose)]
    prose = _INLINE.sub(lambda m: "" if m.group("code") else m.group(0), prose)   # roles stay, code spans go
    return found + [(kind, m.group(0)) for kind in ("role", "label link") for m in LEFTOVER_MYST[kind].finditer(prose)]


def notebook_text(md_path: Path, book: Book | None = None, root: Path = ROOT) -> str:
    """The ``.ipynb`` (JSON text) of the page: jupytext's cells, Markdown rendered, no outputs."""
    book = book or Book(root)
    file = md_path.with_suffix("").relative_to(root).as_posix()
    renderer = PageRenderer(book, file)
    nb = jupytext.reads(md_path.read_text(), fmt="md:myst")
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):  # deterministic ids, so an unchanged chapter gives an unchanged file
        if cell.cell_type == "markdown":
            with _naming(file):
                cell.source = renderer.render(cell.source)
            left = leftover_myst(cell.source)
            if left:
                raise SyncError(f"{file}.md: MyST markup left in a notebook cell: {left[:3]}")
        cell.id = f"c{i:03d}-{hashlib.sha1(cell.source.encode()).hexdigest()[:8]}"
    nb.metadata["colab"] = {"provenance": []}
    return nbformat.writes(nb) + "\n"


def sync(check: bool = False, root: Path = ROOT) -> list[str]:
    """Bring every pair up to date (or, with ``check``, only report). Returns the out-of-date files."""
    config = load_config(root)
    url = install_url(config)
    stale = []
    links = root / LINKS_FILE
    if links.exists():
        new_links = with_links(links.read_text(), config)
        if new_links != links.read_text():
            stale.append(str(LINKS_FILE))
            if not check:
                links.write_text(new_links)
    pages = notebook_pages(root)
    changed = False
    for md in pages:
        text = md.read_text()
        new_text = with_colab_link(with_install_cell(text, url), colab_link(config, md, root))
        if new_text != text:
            changed = True
            stale.append(str(md.relative_to(root)))
            if not check:
                md.write_text(new_text)
    if check and changed:     # the notebooks would be written from the rewritten pages: all of them are stale
        return stale + [str(md.with_suffix(".ipynb").relative_to(root)) for md in pages]
    book = Book(root, config)
    for md in pages:
        ipynb = md.with_suffix(".ipynb")
        new_nb = notebook_text(md, book, root)
        if not ipynb.exists() or ipynb.read_text() != new_nb:
            stale.append(str(ipynb.relative_to(root)))
            if not check:
                ipynb.write_text(new_nb)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report out-of-date files, change nothing")
    args = parser.parse_args(argv)
    try:
        stale = sync(check=args.check)
    except SyncError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    verb = "out of date" if args.check else "written"
    for path in stale:
        print(f"{verb}: {path}")
    if not stale:
        print("all chapter notebooks in sync")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
