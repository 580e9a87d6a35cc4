"""Fuzzing the app through its own OpenAPI schema: schemathesis' generated requests, and
hostile values in every field and parameter, never get a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from search.api import create_app
from search.embedders import Embedder
from search.settings import Settings
from tests.conftest import BACKENDS
from tests.waiting import wait_until


@pytest.fixture(scope="module", params=BACKENDS)
def started_app(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    bundled_embedder: Embedder,
) -> Iterator[FastAPI]:
    root = tmp_path_factory.mktemp("roots")
    overrides: dict[str, Any] = {}
    if request.param == "postgresql":  # it refuses NULs in text where SQLite stores them
        overrides["database_url"] = request.getfixturevalue("postgres").create_database()
    settings_ = Settings(
        data_dir=tmp_path_factory.mktemp("fuzz"),
        allowed_roots=[root],
        max_document_bytes=65536,
        **overrides,
    )
    app = create_app(settings_, bundled_embedder, worker=False)
    with TestClient(app) as client:
        # the first catch-up runs in the background
        wait_until(lambda: client.get("/ready").status_code == 200, 30, "the app to be ready")
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
            response = case.call()
            if case.path == "/ready" and response.status_code == 503:
                return  # documented: schemathesis starts the app anew, still catching up
            case.validate_response(response, checks=[not_a_server_error])

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


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


HOSTILE_VALUES: list[Any] = [
    "\ud800",
    "x\udc00y",
    "nul\x00byte",
    "x" * 1_000_000,
    float("nan"),
    float("inf"),
    -float("inf"),
    10**30,
    -1,
    True,
    None,
    [],
    {},
    [0] * 10_000,
    nested(60),
]
VALID_BODIES: dict[str, dict[str, Any]] = {
    "/v1/collections": {"name": "fuzzed"},
    "/v1/collections/default/documents": {
        "documents": [
            {
                "id": "a",
                "text": "Tea.",
                "title": "t",
                "lang": "en",
                "url": "u",
                "metadata": {"k": "v"},
            }
        ],
        "wait": True,  # whatever is accepted is stored, so the reads afterwards see it
    },
    "/v1/collections/default/jobs": {"path": "."},
    "/v1/collections/default/search": {
        "query": "tea",
        "k": 3,
        "languages": ["en"],
        "filter": {"k": "v"},
        "instruction": "i",
        "nprobe": 2,
    },
    "/v1/embeddings": {"input": ["tea"], "model": "m", "dimensions": 64, "instruction": "i"},
}
PATHS_WITH_NAMES = [
    "/v1/collections/{}",
    "/v1/collections/{}/documents/x",
    "/v1/collections/default/documents/{}",
    "/v1/jobs/{}",
    "/v1/search?q=tea&collection={}",
    "/v1/search?q={}",
    "/v1/search?q=tea&lang={}",
]
HOSTILE_NAMES = ["a%00b", "%ED%A0%80", "%C0%80", "x" * 5000, "%FF%FE", "..%2F..%2Fetc"]


def field_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value where a hostile value can go (first list items only)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += field_paths(child, (*prefix, key))
    elif isinstance(value, list) and value:
        found += field_paths(value[0], (*prefix, 0))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    copy = json.loads(json.dumps(value))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copy


def test_hostile_values_in_every_field_get_a_4xx(started_app: FastAPI) -> None:
    """Lone surrogates, NULs, huge sizes, non-finite numbers and wrong types in every field
    of every JSON body, and hostile names in every path and query parameter: never a 5xx,
    and afterwards every read still answers (nothing poisoned was stored)."""
    client = TestClient(started_app)
    failures = []
    for url, body in VALID_BODIES.items():
        for path in field_paths(body):
            for value in HOSTILE_VALUES:
                raw = json.dumps(replaced(body, path, value)).encode()
                response = client.post(
                    url, content=raw, headers={"content-type": "application/json"}
                )
                if (
                    response.status_code >= 500
                    or "error" not in response.json()
                    and (response.status_code >= 400)
                ):
                    failures.append((url, path, repr(value)[:40], response.status_code))
    for template in PATHS_WITH_NAMES:
        for name in HOSTILE_NAMES:
            response = client.get(template.format(name))
            if response.status_code >= 500:
                failures.append((template, name[:20], response.status_code))
    assert not failures, failures
    for url in ("/v1/collections", "/v1/jobs", "/v1/search?q=tea", "/metrics"):
        assert client.get(url).status_code == 200, url
