"""Migrations through the API, on SQLite and PostgreSQL: a collection moves from the bundled
model to all-MiniLM while searches go on, ends up equal to a fresh ingest with the new model,
and rolls back; a dimension change reuses the stored vectors; replicas switch together."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from search.api import create_app
from search.collections import default_chunk_tokens
from search.embedders import Embedder
from search.engine import Engine
from search.schemas import DocumentIn
from search.settings import Settings
from tests.api.conftest import add_now, wait_for_job
from tests.conftest import SAMPLE, Databases
from tests.search.test_migrations import QUESTIONS, answers, ingest
from tests.waiting import wait_until

DOCUMENTS = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
Server = tuple[TestClient, Settings]


@pytest.fixture
def make_server(tmp_path: Path, databases: Databases) -> Iterator[Callable[..., Server]]:
    """Started apps with any model; `database_url` makes one share another's database."""
    stack: list[TestClient] = []

    def factory(embedder: Embedder, worker: bool = True, **overrides: Any) -> Server:
        overrides.setdefault("data_dir", tmp_path / f"server{len(stack)}")
        settings = databases.settings(overrides)
        client = TestClient(create_app(settings, embedder, worker=worker))
        client.__enter__()
        stack.append(client)
        wait_until(lambda: client.get("/ready").status_code == 200, 60, "the app to be ready")
        return client, settings

    yield factory
    for client in reversed(stack):
        client.__exit__(None, None, None)


def ranked(client: TestClient, question: str, collection: str = "default") -> list[Any]:
    response = client.post(f"/v1/collections/{collection}/search",
                           json={"query": question, "k": 5, "collapse": "none"})
    assert response.status_code == 200, response.text
    return [(r["id"], round(r["score"], 4)) for r in response.json()["results"]]


def fresh_ranking(folder: Path, embedder: Embedder, documents: list[dict[str, Any]],
                  **settings: Any) -> dict[str, list[Any]]:
    """What a collection ingested from scratch with `embedder` (in data folder `folder`)
    answers to QUESTIONS."""
    engine = Engine.open(Settings(data_dir=folder, **settings), embedder)
    try:
        ingest(engine, [DocumentIn.model_validate(doc) for doc in documents])
        return answers(engine)
    finally:
        engine.close()


class Searching:
    """Searches one server without pause from a thread, recording every failure."""

    def __init__(self, client: TestClient) -> None:
        self.client, self.answered, self.failures = client, 0, list[str]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Searching:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            for question in QUESTIONS:
                response = self.client.post("/v1/collections/default/search",
                                            json={"query": question, "k": 3})
                if response.status_code != 200 or not response.json()["results"]:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")
                self.answered += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def searched_generation(client: TestClient) -> int | None:
    """The generation of `default` the server searches, as its /ready says."""
    searched: int | None = client.get("/ready").json()["generations"].get("default")
    return searched


def test_a_new_model_takes_over_with_no_gap_and_equals_a_fresh_ingest_then_rolls_back(
    make_server: Callable[..., Server], bundled_embedder: Embedder, minilm: Embedder,
    tmp_path: Path,
) -> None:
    old, old_settings = make_server(bundled_embedder)
    add_now(old, *DOCUMENTS[:-2])
    with Searching(old) as searching:
        started = old.post("/v1/collections/default/migrations", json={
            "model": minilm.name, "chunk_tokens": default_chunk_tokens(minilm),  # 512 > 256
        })
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]
        assert started.json()["generation"]["generation"] == 2
        assert old.get(f"/v1/jobs/{job_id}").json()["model"] == minilm.name
        add_now(old, DOCUMENTS[-2])  # while the migration waits for a worker: to both
        new, _ = make_server(minilm, database_url=old_settings.resolved_database_url)
        finished = wait_for_job(old, job_id)
        assert finished["status"] == "succeeded", finished["errors"]
        wait_until(lambda: searched_generation(new) == 2, 30, "the new server to switch")
        add_now(new, DOCUMENTS[-1])  # after the switch: only the new generation has it
        answered = searching.answered
        wait_until(lambda: searching.answered > answered + 6, 60, "searches after the switch")
    assert not searching.failures, searching.failures[:3]

    assert {q: ranked(new, q) for q in QUESTIONS} == fresh_ranking(
        tmp_path / "fresh-minilm", minilm, DOCUMENTS)
    collection = new.get("/v1/collections/default").json()
    assert (collection["model"], collection["generation"]) == (minilm.name, 2)
    assert [(g["generation"], g["state"], g["searched_here"])
            for g in collection["generations"]] == [(1, "retired", False), (2, "active", True)]
    assert collection["chunks"] == len(DOCUMENTS)  # the active generation's
    # The old server answers from the generation it can embed questions for, as of the switch.
    assert searched_generation(old) == 1
    assert {q: ranked(old, q) for q in QUESTIONS} == fresh_ranking(
        tmp_path / "as-switched", bundled_embedder, DOCUMENTS[:-1])

    rollback = old.post("/v1/collections/default/migrations/2/rollback")
    assert rollback.status_code == 202, rollback.text
    assert wait_for_job(old, rollback.json()["job_id"])["status"] == "succeeded"
    assert old.get("/v1/collections/default").json()["generation"] == 1
    wait_until(lambda: searched_generation(new) == 2, 30, "the new server to keep its own")
    assert {q: ranked(old, q) for q in QUESTIONS} == fresh_ranking(
        tmp_path / "fresh-bundled", bundled_embedder, DOCUMENTS)
    assert old.get("/v1/collections/default").json()["chunks"] == len(DOCUMENTS)


def test_a_replica_switches_with_the_primary_to_a_smaller_dimension(
    make_server: Callable[..., Server], bundled_embedder: Embedder, tmp_path: Path,
) -> None:
    primary, settings = make_server(bundled_embedder)
    replica, _ = make_server(bundled_embedder, worker=False,
                             database_url=settings.resolved_database_url)
    add_now(primary, *DOCUMENTS)
    wait_until(lambda: ranked(replica, QUESTIONS[0]) == ranked(primary, QUESTIONS[0]), 30,
               "the replica to catch up")
    with Searching(replica) as searching:
        started = primary.post("/v1/collections/default/migrations", json={"dimension": 128})
        assert started.status_code == 202, started.text
        finished = wait_for_job(primary, started.json()["job_id"])
        assert finished["status"] == "succeeded", finished["errors"]
        wait_until(lambda: searched_generation(replica) == 2, 30, "the replica to switch")
    assert not searching.failures, searching.failures[:3]
    assert searched_generation(primary) == 2
    answers = {q: ranked(primary, q) for q in QUESTIONS}
    assert {q: ranked(replica, q) for q in QUESTIONS} == answers
    assert answers == fresh_ranking(tmp_path / "fresh-128", bundled_embedder, DOCUMENTS,
                                    dimension=128)
    indexes = [c.get("/v1/collections/default").json()["index"] for c in (primary, replica)]
    assert indexes[0]["count"] == indexes[1]["count"] == len(DOCUMENTS)


def test_migrations_that_cannot_be_done_are_refused_with_a_reason(
    make_server: Callable[..., Server], bundled_embedder: Embedder,
) -> None:
    client, _ = make_server(bundled_embedder, worker=False)
    add_now(client, *DOCUMENTS[:3])
    route = "/v1/collections/default/migrations"
    refused = {
        "too small": ({"dimension": 16}, 422, "greater than or equal to 32"),
        "beyond the model": ({"dimension": 999}, 422, "out of range"),
        "nothing changes": ({}, 422, "already embeds this way"),
        "unknown field": ({"modle": "x"}, 422, "modle"),
        "empty model": ({"model": ""}, 422, "model: Value should have at least 1"),
        "lone surrogate": ({"model": "\ud800"}, 422, "surrogate"),
        "overlap too big": ({"chunk_tokens": 64, "chunk_overlap": 64}, 422, "chunk_overlap"),
    }
    for case, (body, code, reason) in refused.items():
        response = client.post(route, content=json.dumps(body).encode(),  # \ud800 escaped
                               headers={"content-type": "application/json"})
        assert (response.status_code, case) == (code, case), response.text
        assert reason in response.text, (case, response.text)
    assert client.post(route, content=b"{}").status_code == 415
    assert client.post("/v1/collections/nope/migrations", json={"dimension": 64}).status_code \
        == 404
    started = client.post(route, json={"model": "some/other-model"})
    assert started.status_code == 202, started.text
    again = client.post(route, json={"dimension": 64})
    assert again.status_code == 409 and "being built" in again.text
    assert [g["state"] for g in client.get(route).json()["migrations"]] == ["active", "building"]
    building = client.get(f"{route}/2").json()
    assert building["dimension"] == 0  # its worker settles it
    assert building["created_at"].endswith("Z")  # in UTC on SQLite too, like jobs
    assert client.get(f"{route}/99").status_code == 404
    assert client.get(f"{route}/x").status_code == 422
    assert client.post(f"{route}/2/rollback").status_code == 409  # not the active one
    assert client.post(f"{route}/1/rollback").status_code == 404  # nothing to go back to
    job = client.get(f"/v1/jobs/{started.json()['job_id']}").json()
    assert (job["status"], job["model"]) == ("queued", "some/other-model")  # nobody has it
    assert client.delete(f"/v1/jobs/{job['id']}").status_code in (200, 202)
    assert client.get(f"{route}/2").json()["state"] == "abandoned"
    assert client.post(route, json={"dimension": 64}).status_code == 202
    # The keeper builds the new generation's index beside the active one (same model), and
    # the metrics tell the two apart.
    both = ['xlsearch_index_vectors{collection="default",generation="1"} 3.0',
            'xlsearch_index_vectors{collection="default",generation="3"} 0.0']
    wait_until(lambda: all(line in client.get("/metrics").text for line in both), 30,
               "both generations' indexes")
