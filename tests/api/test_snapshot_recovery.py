"""A server whose index snapshot was damaged on disk becomes ready and answers correctly: the
snapshot is rebuilt from the database's vectors instead of keeping /ready at 503."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import MakeClient, add_now


def truncate(index: Path) -> None:
    index.write_bytes(index.read_bytes()[:100])


def overwrite(index: Path) -> None:
    data = bytearray(index.read_bytes())
    data[-1000:] = bytes(1000)  # the vectors, same size: faiss reads it without complaint
    index.write_bytes(bytes(data))


def search(client: TestClient, query: str) -> list[tuple[str, float]]:
    response = client.post("/v1/collections/default/search", json={"query": query, "k": 3})
    assert response.status_code == 200, response.text
    return [(r["id"], r["score"]) for r in response.json()["results"]]


@pytest.mark.parametrize("damage", [truncate, overwrite])
def test_a_damaged_snapshot_is_rebuilt_and_the_server_becomes_ready(
    make_client: MakeClient, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    data_dir = tmp_path / "served"
    client = make_client(data_dir=data_dir)
    add_now(
        client,
        {"id": "tea", "text": "Green tea is brewed from the leaves of Camellia sinensis."},
        {"id": "rail", "text": "Die Eisenbahn verbindet Berlin und München."},
        {"id": "moon", "text": "La Lune est le seul satellite naturel de la Terre."},
    )
    before = search(client, "how is tea made")
    client.__exit__(None, None, None)  # shutdown: final snapshot
    [manifest] = (data_dir / "indexes").glob("*/manifest.json")
    damage(manifest.parent / json.loads(manifest.read_text())["index_file"])

    restarted = make_client(data_dir=data_dir)  # waits for /ready: 200 within 30 s
    assert restarted.get("/ready").status_code == 200
    after = search(restarted, "how is tea made")
    assert [d for d, _ in after] == [d for d, _ in before] and after[0][0] == "tea"
    assert [s for _, s in after] == pytest.approx([s for _, s in before], abs=1e-5)
    assert restarted.get("/v1/collections/default").json()["index"]["count"] == 3
