"""The package's layout keeps the bars of its architecture (docs/design.md).

Imports run one way (no cycles, imports inside functions counted), no module reads
another's underscore names, modules and functions stay small enough to read, and the
four framework backends stay lean (operators are composed once, in
``backends/compose.py``). A change that breaks a bar fails here, not in a review.
"""

from __future__ import annotations

import ast
import graphlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "src" / "diffops"
MODULE_LINES = 500
FUNCTION_LINES = 80  # from ``def`` to the last line, docstring included
FRAMEWORK_LINES = 1400
FRAMEWORK_MODULES = ("jax.py", "torch.py", "autograd.py", "symnum.py")


def _modules() -> dict[str, pathlib.Path]:
    """Dotted name -> file, for every module of the package."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _trees():
    return {name: ast.parse(path.read_text()) for name, path in MODULES.items()}


def _imports(name: str, tree: ast.Module) -> set[str]:
    """The package's modules that ``name`` imports (anywhere but for type checking)."""
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    targets = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: relative import"
            base = node.module or ""
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {
        t
        for t in targets
        if t in MODULES and t != name and not name.startswith(t + ".")
    }


def test_imports_have_no_cycles():
    graph = {name: _imports(name, tree) for name, tree in _trees().items()}
    assert sum(map(len, graph.values())) > 100  # the scan sees the imports
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_no_module_imports_underscore_names_of_another():
    found = [
        f"{name} imports {node.module}.{alias.name}"
        for name, tree in _trees().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("diffops")
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert not found


def test_modules_and_functions_are_small():
    long_modules = {
        name: lines
        for name, path in MODULES.items()
        if (lines := len(path.read_text().splitlines())) > MODULE_LINES
    }
    long_functions = {
        f"{name}.{node.name}": lines
        for name, tree in _trees().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        if (lines := node.end_lineno - node.lineno + 1) > FUNCTION_LINES
    }
    assert not long_modules, f"modules over {MODULE_LINES} lines"
    assert not long_functions, f"functions over {FUNCTION_LINES} lines"


def test_framework_backends_stay_lean():
    lines = {
        name: len((ROOT / "backends" / name).read_text().splitlines())
        for name in FRAMEWORK_MODULES
    }
    assert min(lines.values()) > 50  # the files are there
    assert sum(lines.values()) <= FRAMEWORK_LINES, lines
