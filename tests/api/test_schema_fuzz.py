"""schemathesis against the app's own OpenAPI schema: generated requests never get a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from search.api import create_app
from search.embedders import Embedder
from search.settings import Settings


@pytest.fixture(scope="module")
def started_app(
    tmp_path_factory: pytest.TempPathFactory, bundled_embedder: Embedder
) -> Iterator[FastAPI]:
    root = tmp_path_factory.mktemp("roots")
    settings_ = Settings(data_dir=tmp_path_factory.mktemp("fuzz"), allowed_roots=[root])
    app = create_app(settings_, bundled_embedder, worker=False)
    with TestClient(app):
        yield app


def test_no_server_errors(started_app: FastAPI) -> None:
    """Every operation, a bounded number of generated requests each (pytest 9 cannot use
    schemathesis' own pytest plugin, so operations are driven through hypothesis here)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", started_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        check()


def test_schema_has_stable_operation_ids(started_app: FastAPI, tmp_path: Path) -> None:
    spec = started_app.openapi()
    ids = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {
        "search_collection",
        "search",
        "add_documents",
        "create_job",
        "get_job",
        "create_embeddings",
        "list_models",
        "health",
        "ready",
    } <= ids
