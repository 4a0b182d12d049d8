"""Tests for the book's Sphinx extension book/_ext/site_assets.py (no build needed)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
site_assets = pytest.importorskip("site_assets")

from sphinx.builders.html._assets import _JavaScript  # noqa: E402
from sphinx.errors import ConfigError  # noqa: E402


def _fake_node_modules(root: Path, skip: str | None = None) -> Path:
    """A node_modules tree holding one small file for every entry of site_assets.VENDOR."""
    nm = root / "node_modules"
    for package, inner, _target in site_assets.VENDOR:
        if skip and inner == skip:
            continue
        base = nm / package
        if "*" in inner:
            folder, pattern = inner.rsplit("/", 1)
            (base / folder).mkdir(parents=True, exist_ok=True)
            (base / folder / pattern.replace("*", "font-a")).write_text("a")
            (base / folder / pattern.replace("*", "font-b")).write_text("b")
        elif "." in Path(inner).name:
            (base / inner).parent.mkdir(parents=True, exist_ok=True)
            (base / inner).write_text(inner)
        else:
            (base / inner / "sub").mkdir(parents=True, exist_ok=True)
            (base / inner / "sub" / "x.js").write_text("x")
    return nm


def test_stage_vendor_copies_every_listed_file(tmp_path):
    nm = _fake_node_modules(tmp_path)
    copied = site_assets.stage_vendor(tmp_path, nm, tmp_path / "stage")
    vendor = tmp_path / "stage" / "vendor"
    rel = sorted(p.relative_to(vendor).as_posix() for p in copied)
    assert "mathjax/tex-mml-chtml.js" in rel and "requirejs/require.js" in rel
    assert "html-manager/embed-amd.js" in rel and "html-manager/font-a.woff2" in rel and "html-manager/font-b.woff" in rel
    assert "mathjax/input/tex/extensions/sub/x.js" in rel
    assert sorted(p.relative_to(vendor).as_posix() for p in vendor.rglob("*") if p.is_file()) == rel
    # every URL the pages are given points at a staged file
    for url in [site_assets.MATHJAX_PATH, *site_assets.WIDGETS_JS]:
        assert url.startswith("../vendor/") and (vendor / url[len("../vendor/"):]).is_file(), url
    # staging again starts from an empty folder (a file dropped from the list does not linger)
    (vendor / "stale.js").write_text("old")
    site_assets.stage_vendor(tmp_path, nm, tmp_path / "stage")
    assert not (vendor / "stale.js").exists()


def test_stage_vendor_names_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match="does not exist; run `npm ci"):
        site_assets.stage_vendor(tmp_path, tmp_path / "node_modules", tmp_path / "stage")
    nm = _fake_node_modules(tmp_path, skip="require.js")
    with pytest.raises(ConfigError, match="requirejs/require.js not found"):
        site_assets.stage_vendor(tmp_path, nm, tmp_path / "stage")


def test_duplicate_inline_scripts_are_dropped():
    thebe = 'const THEBE_JS_URL = "x"'
    # as Sphinx lists them: the builder's copy has filename None, the registry's copy ''
    scripts = [_JavaScript("a.js"), _JavaScript(None, body=thebe), _JavaScript("b.js", **{"async": "async"}),
               _JavaScript("", body=thebe), _JavaScript("a.js"), _JavaScript("b.js"),
               _JavaScript(None, body="let y = 1"), _JavaScript(None, body=thebe, priority=501)]
    context = {"script_files": scripts}
    site_assets._drop_duplicate_scripts(None, "page", "page.html", context, None)
    kept = context["script_files"]
    # the same list object: scripts that later handlers add to the builder's list still reach the page
    assert kept is scripts
    assert [(js.filename, js.attributes.get("body")) for js in kept] == [
        ("a.js", None), (None, thebe), ("b.js", None), ("b.js", None), (None, "let y = 1")]
    assert kept[2].attributes == {"async": "async"} and kept[3].attributes == {}
