"""The layout rules of docs/architecture.md, checked by reading the source (ast, no imports run):

- who may import whom: the runtime packages only downwards (schemas <- bus <- gateway, worker <-
  streamer), paper on its own, `aiqt` (the CLI and SDK) above them, `harness` above that, and
  `bench` and `tests` on top, never importing each other;
- no pytest in `harness` or `bench` (what is pytest-specific stays in tests/);
- no module of a non-test package over 600 lines, and at most two functions over 100 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: package -> the first-party packages it may import.
RUNTIME = {"schemas", "bus", "gateway", "worker", "streamer", "paper"}
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "bus": {"schemas"},
    "gateway": {"schemas", "bus"},
    "worker": {"schemas", "bus"},
    "streamer": {"schemas", "bus", "worker"},  # the worker's Binance client (worker.binance)
    "paper": set(),
    "aiqt": RUNTIME,
    "harness": RUNTIME | {"aiqt"},
    "bench": RUNTIME | {"aiqt", "harness"},
    "tests": RUNTIME | {"aiqt", "harness"},
}
FIRST_PARTY = set(ALLOWED)
#: Packages whose modules and functions the size rules cover.
SIZED = ["schemas", "bus", "gateway", "worker", "streamer", "paper", "aiqt", "harness", "bench"]
MAX_MODULE_LINES = 600
#: Modules over the limit that are known and owned: each names why it is still here. Shrink, don't grow.
OVERSIZED: dict[str, str] = {}
LONG_FUNCTION = 100
MAX_LONG_FUNCTIONS = 2


def _modules(package: str) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every absolute import, lazy ones inside functions included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_one_way(package: str) -> None:
    allowed = ALLOWED[package] | {package}
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {top}"
        for path, tree in _modules(package)
        for line, top in _imports(tree)
        if top in FIRST_PARTY and top not in allowed
    ]
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package])}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", ["harness", "bench"])
def test_no_pytest_outside_the_tests(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line}"
        for path, tree in _modules(package)
        for line, top in _imports(tree)
        if top == "pytest"
    ]
    assert not wrong, wrong


def test_no_module_over_600_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for package in SIZED
        for path in (ROOT / package).rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert set(long) <= set(OVERSIZED), {k: v for k, v in long.items() if k not in OVERSIZED}
    assert set(OVERSIZED) <= set(long), f"back under {MAX_MODULE_LINES} lines: drop from OVERSIZED"


def test_at_most_two_functions_over_100_lines() -> None:
    long = sorted(
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)"
        for package in SIZED
        for path, tree in _modules(package)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (n := (node.end_lineno or node.lineno) - node.lineno + 1) > LONG_FUNCTION
    )
    assert len(long) <= MAX_LONG_FUNCTIONS, long
