"""The shape of exporter/: the limits its design holds to, so that it stays easy to change."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

PACKAGE = ROOT / "exporter"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _source(name: str) -> Path:
    path = ROOT / Path(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _runtime_imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """The exporter modules `tree` imports when it runs (not under TYPE_CHECKING)."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                names = [f"{sub.module}.{alias.name}" for alias in sub.names]
                found |= {n for n in [sub.module, *names] if n in modules}
            elif isinstance(sub, ast.Import):
                found |= {alias.name for alias in sub.names if alias.name in modules}
    return found


def test_no_module_is_over_500_lines() -> None:
    long = {n: _source(n).read_text().count("\n") for n in _modules()}
    assert not {n: lines for n, lines in long.items() if lines > 500}


def test_at_most_one_class_over_250_lines_and_three_functions_over_60() -> None:
    classes, functions = [], []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            length = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, ast.ClassDef) and length > 250:
                classes.append((name, node.name, length))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and length > 60:
                functions.append((name, node.name, length))
    assert len(classes) <= 1, classes
    assert len(functions) <= 3, functions


def test_no_function_takes_more_than_7_parameters() -> None:
    wide = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args
                params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
                count = len(params) + bool(args.vararg) + bool(args.kwarg)
                if params and params[0].arg in ("self", "cls"):
                    count -= 1
                if count > 7:
                    wide.append((name, node.name, count))
    assert not wide


def test_no_import_cycle_and_no_ctypes() -> None:
    modules = _modules()
    graph = {name: _runtime_imports(tree, set(modules)) - {name} for name, tree in modules.items()}
    # A package's __init__ re-exporting its submodules is not a cycle through them.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            assert state.get(dep) != 1, " -> ".join([*path, name, dep])
            if dep not in state:
                visit(dep, [*path, name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    for name in modules:
        assert "import ctypes" not in _source(name).read_text(), name


def test_no_test_imports_another_test() -> None:
    for path in (ROOT / "tests").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("tests.test_"), (path.name, node.module)
