"""API fixtures: a real app (FastAPI TestClient) on the bundled model, each test once on a
temp SQLite file and once on a PostgreSQL database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from search.api import create_app
from search.embedders import Embedder
from tests.conftest import BACKENDS, Databases, both_databases
from tests.waiting import wait_until

MakeClient = Callable[..., TestClient]


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest) -> Databases:
    return both_databases(request)


@pytest.fixture
def make_client(
    tmp_path: Path, bundled_embedder: Embedder, databases: Databases
) -> Iterator[MakeClient]:
    """Factory for started apps; keyword arguments override settings, `worker=False` too."""
    stack: list[TestClient] = []

    def factory(worker: bool = True, **overrides: Any) -> TestClient:
        overrides.setdefault("data_dir", tmp_path / f"api{len(stack)}")
        app = create_app(databases.settings(overrides), bundled_embedder, worker=worker)
        client = TestClient(app)
        client.__enter__()
        stack.append(client)
        # the first catch-up runs in the background
        wait_until(lambda: client.get("/ready").status_code == 200, 30, "the app to be ready")
        return client

    yield factory
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


def wait_for_job(client: TestClient, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """Poll a job until it finishes; returns its last state."""
    job: dict[str, Any] = {}

    def finished() -> bool:
        job.update(client.get(f"/v1/jobs/{job_id}").json())
        return job["status"] in ("succeeded", "failed", "cancelled")

    wait_until(finished, timeout_s, f"job {job_id} to finish", every_s=0.1)
    return job


def add_now(client: TestClient, *documents: dict[str, Any], collection: str = "default") -> Any:
    response = client.post(
        f"/v1/collections/{collection}/documents", json={"documents": list(documents), "wait": True}
    )
    assert response.status_code == 200, response.text
    return response.json()["results"]


def search_ids(client: TestClient, query: str, **body: Any) -> list[str]:
    response = client.post("/v1/collections/default/search", json={"query": query, **body})
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["results"]]
