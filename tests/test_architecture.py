"""Imports run one way: facade may use connectors and parallel_run; nothing imports facade; nor sandbox."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PLATFORM = ("core", "connectors", "facade", "replication", "parallel_run", "cli")
FORBIDDEN = {
    "core": {"facade", "connectors", "replication", "parallel_run", "cli", "sandbox"},
    "connectors": {"facade", "replication", "parallel_run", "cli", "sandbox"},
    "replication": {"facade", "parallel_run", "cli", "sandbox"},
    "parallel_run": {"facade", "cli", "sandbox"},
    "facade": {"cli", "sandbox", "replication"},
    "cli": {"sandbox"},
    "sandbox": {"facade", "connectors", "replication", "parallel_run", "cli"},
}
PURE = (
    "core/rules.py",
    "core/calls.py",
    "core/problems.py",
    "facade/routing.py",
    "connectors/adapters",
    "parallel_run/compare.py",
    "parallel_run/jsonpath.py",
    "parallel_run/mask.py",
    "parallel_run/normalisers.py",
)


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downhill(package: str) -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (REPO / package).rglob("*.py")
        if imported_packages(path) & FORBIDDEN[package]
    }
    assert offenders == {}


def test_pure_modules_open_no_sockets_and_read_no_environment() -> None:
    io_modules = {"socket", "requests", "sqlalchemy", "psycopg", "psycopg2", "os", "subprocess", "confluent_kafka"}
    for entry in PURE:
        for path in [REPO / entry] if entry.endswith(".py") else sorted((REPO / entry).rglob("*.py")):
            assert not imported_packages(path) & io_modules, f"{path.relative_to(REPO)} does I/O"


def test_nothing_reads_the_environment_at_import_time() -> None:
    for package in PLATFORM:
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in tree.body:
                text = ast.unparse(node)
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    assert "os.environ" not in text and "getenv" not in text, f"{path}: {text[:80]}"
