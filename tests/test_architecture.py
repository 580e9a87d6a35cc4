"""The import rules of docs/ARCHITECTURE.md ("Who may import whom"), checked on the code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PRODUCT = [p for part in ("search", "indexer", "migrations") for p in (REPO / part).rglob("*.py")]


def imports(path: Path) -> set[str]:
    """The modules `path` imports, at any level of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def named(path: Path) -> str:
    return str(path.relative_to(REPO))


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


@pytest.mark.parametrize("path", [p for p in PRODUCT if "search/store" in named(p)], ids=named)
def test_the_store_imports_only_schemas_errors_and_itself(path: Path) -> None:
    ours = {m for m in imports(path) if within(m, "search", "indexer")}
    assert all(within(m, "search.store", "search.schemas", "search.errors") for m in ours), ours


@pytest.mark.parametrize("path", PRODUCT, ids=named)
def test_only_the_api_knows_the_web_framework(path: Path) -> None:
    in_api = named(path).startswith("search/api/")
    used = imports(path)
    if not in_api:
        assert not {m for m in used if within(m, "fastapi", "starlette")}, named(path)
        allowed_api = named(path) == "search/cli.py"  # `serve` starts the API
        assert allowed_api or not {m for m in used if within(m, "search.api")}, named(path)


@pytest.mark.parametrize("path", PRODUCT, ids=named)
def test_the_product_imports_neither_benchmarks_nor_tests(path: Path) -> None:
    assert not {m for m in imports(path) if within(m, "bench", "tests")}, named(path)


def test_search_starts_ingestion_only_from_the_cli_and_the_app() -> None:
    starting = {named(p) for p in PRODUCT
                if named(p).startswith("search/") and any(within(m, "indexer") for m in imports(p))}
    assert starting <= {"search/cli.py", "search/api/app.py"}, starting
