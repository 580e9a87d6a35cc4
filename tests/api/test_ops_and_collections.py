"""Health, readiness, metrics, models and collections over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.conftest import MakeClient, add_now


def test_health_ready_and_models(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").status_code == 200
    models = client.get("/v1/models").json()
    assert models["data"][0]["id"] == "multilingual-e5-small-q4"


def test_metrics_report_requests_embeddings_and_vectors(client: TestClient) -> None:
    add_now(client, {"id": "a", "text": "Honey bees make honey."})
    client.get("/v1/search", params={"q": "bees"})
    text = client.get("/metrics").text
    assert 'xlsearch_http_requests_total{method="GET",route="/v1/search",status="200"} 1.0' in text
    assert 'xlsearch_embedding_batches_total{kind="query"} 1.0' in text
    assert 'xlsearch_embedding_tokens_total{kind="document"}' in text
    assert 'xlsearch_index_vectors{collection="default",generation="1"} 1.0' in text
    assert 'xlsearch_jobs{status="queued"} 0.0' in text
    assert 'xlsearch_job_items_total{outcome="processed"} 0.0' in text
    assert "xlsearch_index_catch_up_age_seconds" in text


def test_collections_lifecycle(client: TestClient) -> None:
    created = client.post("/v1/collections", json={"name": "news", "dimension": 128})
    assert created.status_code == 201
    assert created.json()["dimension"] == 128 and created.json()["chunk_tokens"] == 512
    assert client.post("/v1/collections", json={"name": "news"}).status_code == 409
    names = [c["name"] for c in client.get("/v1/collections").json()["collections"]]
    assert names == ["default", "news"]
    assert client.get("/v1/collections/news").json()["documents"] == 0
    assert client.delete("/v1/collections/news").status_code == 204
    missing = client.get("/v1/collections/news")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "collection_not_found"


def test_a_collection_keeps_its_index_settings(client: TestClient) -> None:
    body = {"name": "compact", "index": {"type": "ivf_sq8", "nprobe": 32}}
    created = client.post("/v1/collections", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["index"]["settings"] == {"type": "ivf_sq8", "nprobe": 32}
    add_now(client, {"id": "tea", "text": "Tea comes from China."}, collection="compact")
    compact = client.get("/v1/collections/compact").json()
    assert compact["index"]["settings"]["type"] == "ivf_sq8"
    assert compact["index"]["kind"] == "flat"  # one vector: too few to train an IVF
    assert (compact["documents"], compact["chunks"], compact["languages"]) == (1, 1, {"en": 1})
    default = client.get("/v1/collections/default").json()
    assert default["index"]["settings"] == {} and default["documents"] == 0


def test_a_smaller_dimension_is_searchable(client: TestClient) -> None:
    client.post("/v1/collections", json={"name": "small", "dimension": 64})
    add_now(client, {"id": "tea", "text": "Tea comes from China."}, collection="small")
    add_now(client, {"id": "bees", "text": "Bees make honey."}, collection="small")
    found = client.post("/v1/collections/small/search", json={"query": "Woher kommt Tee?"}).json()
    assert found["results"][0]["id"] == "tea"


def test_bad_collections_are_refused(client: TestClient) -> None:
    for body, status in [
        ({"name": "bad name"}, 422),
        ({"name": "x", "dimension": 4096}, 422),
        ({"name": "x", "chunk_tokens": 100_000}, 422),
        ({"name": "x", "chunk_tokens": 64, "chunk_overlap": 64}, 422),
        ({"name": "x", "colour": "red"}, 422),
        ({"name": "x", "index": {"type": "hnsw"}}, 422),
        ({"name": "x", "index": {"type": "ivf", "nlist": 0}}, 422),
        ({"name": "x", "index": {"type": "ivf", "nprobe": "8"}}, 422),
        ({"name": "x", "index": {"kind": "ivf"}}, 422),
        ({}, 422),
    ]:
        response = client.post("/v1/collections", json=body)
        assert response.status_code == status, body
        assert response.json()["error"]["message"]
    assert client.delete("/v1/collections/default").status_code == 422
    assert client.delete("/v1/collections/nope").status_code == 404


def test_shutdown_writes_a_snapshot_that_a_restart_loads(
    make_client: MakeClient, tmp_path: Path
) -> None:
    data_dir = tmp_path / "restart"
    client = make_client(data_dir=data_dir)
    add_now(client, {"id": "a", "text": "Tea."}, {"id": "b", "text": "Coffee."})
    client.__exit__(None, None, None)  # shutdown: final snapshots
    [manifest_path] = (data_dir / "indexes").glob("*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["count"] == 2 and manifest["chunk_watermark"] == 2
    restarted = make_client(data_dir=data_dir)
    assert restarted.get("/v1/collections/default").json()["index"]["count"] == 2


def test_cors_is_off_unless_origins_are_listed(make_client: MakeClient) -> None:
    preflight = {"Origin": "https://search.example", "Access-Control-Request-Method": "POST"}
    closed = make_client().options("/v1/collections/default/search", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    opened = make_client(cors_origins=["https://search.example"])
    answer = opened.options("/v1/collections/default/search", headers=preflight)
    assert answer.headers["access-control-allow-origin"] == "https://search.example"
