"""The package's plan, checked: imports run down the layers only and form no cycle, modules and functions
stay readable, and tests and tutorials use public names.

Layers, top to bottom (README "How the package is built"): the command line; the catalogue; detection
(and, beside it, event-level gamma/hadron separation); fitting and simulation; the likelihood; datasets and
their readers; maps, responses, models and backgrounds (and, beside them, the air-shower simulation); the
foundations. A module may import from its own layer and the layers below it, never from above; an import
inside a function counts as much as one at the top of the module.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "skyfit"

# (layer, module prefixes); a module belongs to the first layer with a prefix matching it
LAYERS = (
    ("foundations", ("skyfit._precision", "skyfit._data", "skyfit._netfile", "skyfit._tasks", "skyfit._version",
                     "skyfit._units", "skyfit.provenance", "skyfit.coords", "skyfit.events")),
    ("maps, responses, models, backgrounds; air showers beside them",
     ("skyfit.maps", "skyfit.reproject", "skyfit.response", "skyfit.models", "skyfit.background", "skyfit.plotting",
      "skyfit.showers")),
    ("datasets and their readers", ("skyfit.dataset", "skyfit.io", "skyfit.hawc", "skyfit.stream")),
    ("likelihood", ("skyfit._shapes", "skyfit.likelihood")),
    ("fit and simulation; flux points and light curves",
     ("skyfit.fit", "skyfit.simulate", "skyfit.skies", "skyfit.validate", "skyfit.fluxpoints", "skyfit.lightcurve")),
    ("detection; gamma/hadron separation and shower ML beside it",
     ("skyfit.detect", "skyfit.ghsep", "skyfit.showerml")),
    ("catalogue", ("skyfit.catalog",)),
    ("command line", ("skyfit.cli", "skyfit.__main__")),
)  # fmt: skip
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 600, 100
ARGUMENT_PARSING = re.compile(r"^(build_parser|_?add_\w*(parser|arguments|options))$")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """The skyfit modules ``name`` imports anywhere in its code (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("skyfit"):
                continue
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("skyfit"))
    return {t for t in found if t in MODULES and t != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"module {name} is in no layer: add it to LAYERS in tests/test_layout.py")


def test_every_module_has_a_layer_and_the_package_is_not_imported_from_inside():
    for name in MODULES:
        if name != "skyfit":
            _layer(name)
    importers = sorted(m for m, targets in GRAPH.items() if "skyfit" in targets)
    assert not importers, f"modules importing the top-level package (import from the module instead): {importers}"


def test_no_module_imports_from_a_layer_above_it():
    upward = [
        f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
        for m, targets in GRAPH.items()
        if m != "skyfit"
        for t in sorted(targets)
        if t != "skyfit" and _layer(t) > _layer(m)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    """Tarjan's strongly connected components of the import graph: every one must be a single module."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_modules_and_functions_stay_readable():
    long_modules = [f"{p.relative_to(ROOT)}: {n} lines" for p in MODULES.values()
                    if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]  # fmt: skip
    long_functions = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not ARGUMENT_PARSING.match(node.name):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(ROOT)}::{node.name}: {n} lines")
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def _private_imports(source: str) -> list[tuple[str, str]]:
    """(module, name) of each import of a private skyfit module or a private name."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("skyfit"):
            for a in node.names:
                if any(part.startswith("_") for part in node.module.split(".")) or a.name.startswith("_"):
                    out.append((node.module, a.name))
        elif isinstance(node, ast.Import):
            out += [(a.name, "") for a in node.names
                    if a.name.startswith("skyfit") and any(p.startswith("_") for p in a.name.split("."))]  # fmt: skip
    return out


def _own_module_test(test_file: Path, module: str) -> bool:
    """A private name may be tested in its own module's tests: ``tests/test_<module>.py`` (the module's last
    part, or its dotted path joined by underscores, leading underscores dropped)."""
    parts = [p.lstrip("_") for p in module.split(".")[1:]]
    stem = test_file.stem.removeprefix("test_")
    return stem in {parts[-1], "_".join(parts)} if parts else False


def test_tests_use_public_names_except_in_their_own_modules_tests():
    offences = [f"{t.name}: from {m} import {n}" for t in sorted((ROOT / "tests").glob("test_*.py"))
                for m, n in _private_imports(t.read_text()) if not _own_module_test(t, m)]  # fmt: skip
    assert not offences, "tests importing private names outside their module's own tests:\n" + "\n".join(offences)


@pytest.mark.parametrize("notebook", sorted((ROOT / "tutorials").glob("*.ipynb")), ids=lambda p: p.stem)
def test_tutorials_use_public_names(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    assert not _private_imports(source), f"{notebook.name} imports private names: {_private_imports(source)}"


def test_the_checks_catch_what_they_are_for():
    """Each rule fires on a made-up offence (so a green run means something)."""
    assert _private_imports("from skyfit.catalog._roi import detect_and_fit") == [
        ("skyfit.catalog._roi", "detect_and_fit")
    ]
    assert _private_imports("from skyfit.catalog import _seed") == [("skyfit.catalog", "_seed")]
    assert _private_imports("from skyfit.catalog import detect_and_fit") == []
    assert _own_module_test(Path("tests/test_tasks.py"), "skyfit._tasks")
    assert _own_module_test(Path("tests/test_catalog_roi.py"), "skyfit.catalog._roi")
    assert not _own_module_test(Path("tests/test_cli.py"), "skyfit.catalog._roi")
    assert _layer("skyfit.catalog._roi") > _layer("skyfit.detect.tsmap") > _layer("skyfit.fit")
    assert _layer("skyfit.fit") > _layer("skyfit.likelihood") > _layer("skyfit.dataset") > _layer("skyfit.maps")
    assert ARGUMENT_PARSING.match("build_parser") and not ARGUMENT_PARSING.match("detect_and_fit")
