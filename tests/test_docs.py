"""The documentation site builds with warnings as errors, executing the tutorials (docs/conf.py).

This is also the tutorials' test: each notebook runs from top to bottom during the build, and a failing
cell fails it. Tutorials that need the public reference data are left unexecuted (with a note on their
page) when the data are absent; their figures are then not checked.
"""

import importlib
import runpy
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = sorted((ROOT / "tutorials").glob("*.ipynb"))
# API pages that must exist, and list every name of their module's __all__
API_MODULES = ["skyfit", "skyfit.models", "skyfit.io", "skyfit.response", "skyfit.catalog", "skyfit.detect",
               "skyfit.ghsep", "skyfit.showers", "skyfit.skies", "skyfit.plotting", "skyfit.dataset", "skyfit.fit",
               "skyfit.maps", "skyfit.likelihood", "skyfit.showerml"]  # fmt: skip


class _OutputImages(HTMLParser):
    """Counts the images inside code cells' outputs (myst-nb's ``cell_output`` blocks), not those of the
    markdown cells."""

    def __init__(self):
        super().__init__()
        self.depth = 0  # nesting of <div> inside the current cell_output block (0: outside one)
        self.images = 0

    def handle_starttag(self, tag, attrs):
        if tag == "div" and (self.depth or "cell_output" in (dict(attrs).get("class") or "").split()):
            self.depth += 1
        elif tag == "img" and self.depth:
            self.images += 1

    def handle_endtag(self, tag):
        if tag == "div" and self.depth:
            self.depth -= 1


def _output_images(html: str) -> int:
    parser = _OutputImages()
    parser.feed(html)
    return parser.images


@pytest.mark.slow
def test_docs_build(tmp_path):
    conf = runpy.run_path(str(DOCS / "conf.py"))  # no side effects on import: what the build will exclude
    unexecuted = {Path(p).name for p in conf["nb_execution_excludepatterns"]}
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", str(DOCS), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-12000:]}"

    for nb in TUTORIALS:
        page = out / "tutorials" / f"{nb.stem}.html"
        assert page.is_file(), f"no page for {nb.name}"
        html = page.read_text(encoding="utf-8")
        if nb.name in unexecuted:  # its reference data are absent: shown without outputs, saying so
            assert "not executed" in html, nb.name
        else:
            assert _output_images(html) >= 1, f"{nb.name}: no figure among the executed cells' outputs"

    for modname in API_MODULES:
        page = out / "api" / "generated" / f"{modname}.html"
        assert page.is_file(), f"no API page for {modname}"
        html = page.read_text(encoding="utf-8")
        # each name is documented here (id="modname.name") or links to its home (href="...#home.name")
        missing = [n for n in importlib.import_module(modname).__all__ if f'.{n}"' not in html]
        assert not missing, f"{modname}: names of __all__ missing from its page: {missing}"
    assert (out / "api" / "index.html").is_file()
    for page in ("index", "user-guide", "tutorials", "cli-json", "formats/index", "formats/dataset",
                 "formats/response", "formats/fit-results", "formats/catalogue", "formats/flux-points",
                 "formats/maps"):  # fmt: skip
        assert (out / f"{page}.html").is_file(), page
