"""Sphinx configuration of skyfit's documentation.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (tests/test_docs.py runs the same).

Two things are made at the start of every build, in gitignored folders beside this file, so that nothing
is kept twice in the repository:

* ``docs/tutorials/``: copies of ``tutorials/*.ipynb`` (Sphinx reads documents only below ``docs/``); the
  notebooks are executed during the build (myst-nb, ``nb_execution_mode = "force"``). Those that need the
  public reference data are left unexecuted, with a note on their page, when the data are absent.
* ``docs/api/generated/``: one page per public module, documenting the names in its ``__all__``. A name
  exported by several modules (``skyfit.Dataset`` is ``skyfit.dataset.Dataset``) is documented once, in
  its home module (see :func:`_home`), and linked from the others.

Importing this file has no side effects (tests/test_docs.py reads ``TUTORIALS_NEEDING_DATA`` and
``nb_execution_excludepatterns`` from it); the files above are written in :func:`setup`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path

from sphinx.util import logging

from skyfit._data import DataNotFoundError, data_dir
from skyfit._version import __version__

_LOG = logging.getLogger(__name__)
DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

project = "skyfit"
author = "skyfit developers"
copyright = "skyfit developers, BSD-3-Clause"
release = version = __version__

extensions = [
    "myst_nb",  # Markdown pages (MyST) and the notebooks, executed during the build
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # the docstrings are numpydoc-style
]

exclude_patterns = ["_build", "**.ipynb_checkpoints"]
root_doc = "index"

# ---- MyST and notebooks ---------------------------------------------------------------------------------------

myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# the tutorials run from top to bottom at every build; a failing cell fails the build
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 1800  # per cell (s): the catalogue and training cells take minutes on two cores
nb_execution_in_temp = True  # the tutorials write files (events, datasets, catalogues): in a temporary folder
nb_merge_streams = True

# tutorials that read the public reference data (SKYFIT_DATA, else ../shared/data; see skyfit._data), with
# the file or folder each needs; the others simulate their own data (06 uses the HAWC events only if present)
TUTORIALS_NEEDING_DATA = {
    "01_hawc_crab.ipynb": ("hawc", "crab_events_pass4"),
    "03_galactic_plane.ipynb": ("catalogs",),
    "05_nn_prior.ipynb": ("catalogs",),
    "07_your_own_data.ipynb": ("hawc_hal", "geminga_response.root"),
    "08_fermi_galactic_centre.ipynb": ("fermi-3fhl-gc",),
}


def _missing_data(parts: tuple[str, ...]) -> str | None:
    """``None`` when the reference data hold ``parts``, else the missing path (``"hawc/crab_events_pass4"``)."""
    try:
        data_dir(*parts)
    except DataNotFoundError:
        return "/".join(parts)
    return None


def tutorials_without_data() -> dict[str, str]:
    """``{notebook: missing path}`` for the tutorials whose reference data are absent."""
    missing = {name: _missing_data(parts) for name, parts in TUTORIALS_NEEDING_DATA.items()}
    return {name: what for name, what in missing.items() if what is not None}


# not executed (rendered without outputs, with a note) when their data are absent
nb_execution_excludepatterns = [f"tutorials/{name}" for name in sorted(tutorials_without_data())]

NOT_EXECUTED_NOTE = (
    ":::{{note}}\nThis tutorial was **not executed** in this build of the documentation: it needs the public "
    "reference data (`{what}`), which were not found. Set `SKYFIT_DATA` (see the user guide's *Data* section) "
    "and build again to see its outputs.\n:::"
)

# ---- API reference -------------------------------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autodoc_typehints = "signature"
autosummary_generate = False  # the pages are written by _write_api_pages
add_module_names = False
python_use_unqualified_type_names = True

napoleon_google_docstring = False  # "Returns:" in prose would be read as a Google section
napoleon_numpy_docstring = True
# "Attributes" sections as fields, not attribute entries: the dataclasses' fields are documented by autodoc too
napoleon_use_ivar = True
napoleon_use_rtype = False

# unresolved cross-references (types written in prose, such as "(n_bins, n_pix) array") are left as text
nitpicky = False

# ---- HTML ------------------------------------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skyfit {version}"
html_theme_options = {
    "navigation_depth": 3,
    "show_toc_level": 2,
    "navbar_align": "left",
}
html_show_sourcelink = False

# ---- files made at the start of the build ------------------------------------------------------------------


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it (keeps its time stamp: Sphinx rereads changed files)."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _extract_attachments(nb: dict, folder: Path, stem: str) -> None:
    """Images attached to markdown cells (``![...](attachment:NAME)``; myst-nb does not read them, see
    executablebooks/MyST-NB#492) -> files in ``folder``, the cells pointing at them."""
    import base64

    for cell in nb["cells"]:
        attachments = cell.pop("attachments", None) if cell["cell_type"] == "markdown" else None
        if not attachments:
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for name, bundle in attachments.items():
            mime, data = next(iter(bundle.items()))
            raw = "".join(data) if isinstance(data, list) else data
            content = raw.encode() if mime == "image/svg+xml" else base64.b64decode(raw)
            path = folder / f"{stem}-{name}"
            if not (path.is_file() and path.read_bytes() == content):
                folder.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
            source = source.replace(f"attachment:{name}", f"{folder.name}/{path.name}")
        cell["source"] = source


def _copy_tutorials() -> None:
    """``tutorials/*.ipynb`` -> ``docs/tutorials/`` (a note added to those left unexecuted); stale copies go."""
    target = DOCS / "tutorials"
    target.mkdir(exist_ok=True)
    missing = tutorials_without_data()
    sources = sorted((ROOT / "tutorials").glob("*.ipynb"))
    for nb_path in sources:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        _extract_attachments(nb, target / "_attachments", nb_path.stem)
        if nb_path.name in missing:
            note = {"cell_type": "markdown", "metadata": {},
                    "source": NOT_EXECUTED_NOTE.format(what=missing[nb_path.name])}  # fmt: skip
            nb["cells"].insert(1, note)  # after the title cell
        _write_if_changed(target / nb_path.name, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    for stale in set(target.glob("*.ipynb")) - {target / p.name for p in sources}:
        stale.unlink()


# public modules that are not part of the API reference: the command line (documented in the user guide)
API_SKIP = ("skyfit.cli",)


def _public_modules() -> list[str]:
    import skyfit

    names = ["skyfit"]
    for info in pkgutil.walk_packages(skyfit.__path__, "skyfit."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts) or info.name.startswith(API_SKIP):
            continue
        names.append(info.name)
    return sorted(names)


def _exports(modname: str) -> list[str]:
    """The module's ``__all__``; without one, the public classes and functions defined in it."""
    mod = importlib.import_module(modname)
    names = getattr(mod, "__all__", None)
    if names is not None:
        return list(names)
    return [n for n, obj in vars(mod).items() if not n.startswith("_")
            and (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == modname]  # fmt: skip


def _attribute(modname: str, name: str):
    """``modname.name``; where a submodule of the same name shadows it (``skyfit.fit`` is both a module and,
    in ``skyfit.__all__``, the function ``skyfit.fit.fit``), the submodule's attribute of that name."""
    obj = getattr(importlib.import_module(modname), name)
    if inspect.ismodule(obj) and obj.__name__ == f"{modname}.{name}" and hasattr(obj, name):
        obj = getattr(obj, name)
    return obj


def _home(obj, candidates: list[str]) -> str:
    """Where an object exported by several modules is documented: the shallowest of them (the package
    over its submodule), then the one its ``__module__`` lives in, then the first by name."""
    defined = getattr(obj, "__module__", None) or ""

    def rank(mod: str):
        return (mod.count("."), not (defined == mod or defined.startswith(mod + ".")), mod)

    return min(candidates, key=rank)


def _directive(obj) -> str:
    if inspect.isclass(obj):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    if callable(obj):
        return "autofunction"
    return "autodata"


def _relative(page: str, home: str, name: str) -> str:
    """An autosummary entry on ``page`` for ``home.name``: relative below the page's module (shown as the
    bare name), absolute elsewhere (shown with its module)."""
    if home.startswith(page + "."):
        return f"~{home[len(page) + 1 :]}.{name}"
    return f"{home}.{name}"


def _title(text: str, char: str = "=") -> list[str]:
    return [text, char * len(text), ""]


def _write_api_pages() -> None:
    """One page per public module in ``docs/api/generated/``; every documented name has one home."""
    out = DOCS / "api" / "generated"
    modules = _public_modules()
    exports = {m: _exports(m) for m in modules}
    objects = {(m, n): _attribute(m, n) for m in modules for n in exports[m]}
    where: dict[tuple[str, int], list[str]] = {}
    for (m, n), obj in objects.items():
        if m != "skyfit":  # the top level re-exports only: its page links to the homes
            where.setdefault((n, id(obj)), []).append(m)
    home = {key: _home(objects[(mods[0], key[0])], mods) for key, mods in where.items()}
    listed = (DOCS / "api" / "index.md").read_text(encoding="utf-8")
    pages = {}
    for m in modules:
        mod = importlib.import_module(m)
        is_pkg = hasattr(mod, "__path__")
        lines = _title(f"``{m}``")
        lines += [f".. automodule:: {m}", ""]
        subs = [s for s in modules if s.rsplit(".", 1)[0] == m and m != "skyfit"]
        if subs:
            lines += [".. rubric:: Submodules", "", ".. toctree::", "   :maxdepth: 1", ""]
            lines += [f"   {s}" for s in subs] + [""]
        own, elsewhere = [], []
        for n in exports[m]:
            obj = objects[(m, n)]
            h = home.get((n, id(obj)), m)  # exported by the top level alone (from a private module): here
            (own if h == m else elsewhere).append((n, obj, h))
        if own:  # autosummary names are relative to the page's module
            lines += [".. rubric:: Summary", "", ".. autosummary::", ""]
            lines += [f"   {n}" for n, _, _ in own] + [""]
        if elsewhere:
            intro = ("The names ``import skyfit`` gives (imported on first use), each documented in its module:"
                     if m == "skyfit" else "Also importable from here, documented in their home modules:")  # fmt: skip
            lines += [".. rubric:: Re-exported" if m != "skyfit" else ".. rubric:: Contents", "", intro, "",
                      ".. autosummary::", ""]  # fmt: skip
            lines += [f"   {_relative(m, h, n)}" for n, _, h in elsewhere] + [""]
        for n, obj, _ in own:
            lines += [f".. {_directive(obj)}:: {m}.{n}"]
            if inspect.isclass(obj):
                lines += ["   :members:", "   :show-inheritance:"]
            lines += [""]
        pages[m] = "\n".join(lines)
        parent = m.rsplit(".", 1)[0]
        top_level = m == "skyfit" or parent == "skyfit"
        if top_level and f"generated/{m}\n" not in listed:  # an error with -W: the reference must be complete
            kind = "package" if is_pkg else "module"
            _LOG.warning(f"the public {kind} {m} is not listed in docs/api/index.md: add generated/{m} there",
                         type="skyfit", subtype="api")  # fmt: skip
    for m, text in pages.items():
        _write_if_changed(out / f"{m}.rst", text + "\n")
    for stale in set(out.glob("*.rst")) - {out / f"{m}.rst" for m in pages}:
        stale.unlink()


def _no_type_docstring(app, what, name, obj, options, lines) -> None:
    """A constant without a ``#:`` comment would show the docstring of its type (dict, tuple, float):
    drop it."""
    if what in ("data", "attribute") and lines:
        doc = getattr(type(obj), "__doc__", None)
        text = " ".join(" ".join(lines).split())
        if isinstance(doc, str) and doc.strip() and " ".join(doc.split())[:200] in text:
            lines.clear()  # (numpy arrays: autodoc puts the signature of ndarray before its docstring)


def _make_sources(app) -> None:
    _copy_tutorials()
    _write_api_pages()


def setup(app):
    app.connect("builder-inited", _make_sources)
    app.connect("autodoc-process-docstring", _no_type_docstring, priority=100)  # before napoleon (500)
    return {"parallel_read_safe": True}
