"""ingest holds database connections only through storage: no module of it imports the driver."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

INGEST = Path(__file__).parents[2] / "ingest"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(INGEST.rglob("*.py")), ids=lambda path: str(path.relative_to(INGEST)))
def test_no_ingest_module_imports_psycopg(path: Path) -> None:
    drivers = {name for name in imported_modules(path) if name.split(".")[0] == "psycopg"}
    assert drivers == set(), f"{path.name} imports {sorted(drivers)}: go through storage instead"
