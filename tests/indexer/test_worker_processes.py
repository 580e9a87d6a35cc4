"""Workers as real processes: SIGKILL midway and a takeover, and a server seeing another
process's commits within two seconds."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from search.api import create_app
from search.collections import migration_target
from search.embedders import Embedder
from search.engine import Engine
from search.index_manager import IndexManager
from search.settings import Settings
from search.store.jobs import JobInfo, JobStore
from search.store.records import CollectionInfo
from search.store.tables import Chunk, ChunkTombstone
from tests.processes import xlsearch_process
from tests.waiting import wait_until

TOPICS = ["tea", "coffee", "honey bees", "volcanoes", "the Moon", "glaciers", "trains"]


def write_corpus(path: Path, count: int, first: int = 0, filler: str = "") -> None:
    """`count` JSONL documents with ids doc-FIRST … on a handful of topics (each one chunk),
    made longer by `filler`."""
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(first, first + count):
            text = f"Note {i}: a few words about {TOPICS[i % len(TOPICS)]} and item number {i}."
            if filler:
                text = f"{text} {filler}"
            handle.write(json.dumps({"id": f"doc-{i}", "text": text}) + "\n")


@dataclass
class QueuedJob:
    """A job over a written corpus, queued on a fresh SQLite data folder."""

    data_dir: Path
    engine: Engine
    collection: CollectionInfo
    jobs: JobStore
    id: str

    @classmethod
    def of(cls, tmp_path: Path, embedder: Embedder, count: int, filler: str = "") -> QueuedJob:
        data_dir = tmp_path / "data"
        engine = Engine.open(Settings(data_dir=data_dir), embedder)
        collection = engine.store.get_collection("default")
        source = tmp_path / "docs.jsonl"
        write_corpus(source, count, filler=filler)
        jobs = JobStore(engine.store)
        return cls(data_dir, engine, collection, jobs, jobs.submit(collection.id,
                                                                    {"path": str(source)}, 0))

    @property
    def state(self) -> JobInfo:
        return self.jobs.get(self.id)

    def finish_with_a_new_worker(self, env: dict[str, str]) -> None:
        second = xlsearch_process(self.data_dir, "worker", **env)
        try:
            wait_until(lambda: self.state.status == "succeeded", 300, "the job to finish")
        finally:
            second.terminate()
            second.wait()

    def assert_stored_once(self, count: int, index_dir: Path) -> None:
        """Every document stored once (one chunk each), none replaced, and a fresh index
        holding exactly the stored chunks."""
        done = self.state
        assert (done.total, done.processed, done.failed, done.cursor) == (count,) * 2 + (0, count)
        assert self.engine.store.count_documents(self.collection.id) == count
        with self.engine.store.session() as session:
            chunk_ids = set(session.scalars(select(Chunk.id)))
            assert len(chunk_ids) == count  # nothing stored twice
            assert session.scalar(select(func.count()).select_from(ChunkTombstone)) == 0
        index = IndexManager(self.engine.store, index_dir, 50_000).get(self.collection)
        _, found, _ = index.search(np.ones((1, 384), np.float32) / np.sqrt(384), 2 * count)
        assert set(found[0][found[0] >= 0].tolist()) == chunk_ids


def test_a_killed_worker_is_taken_over_without_loss_or_duplicates(
    tmp_path: Path, bundled_embedder: Embedder
) -> None:
    job = QueuedJob.of(tmp_path, bundled_embedder, 80)
    env = {"XLSEARCH_INGEST_BATCH_DOCUMENTS": "4", "XLSEARCH_JOB_STALE_AFTER_S": "2"}
    first = xlsearch_process(job.data_dir, "worker", **env)
    wait_until(lambda: job.state.processed >= 12, 180, "the first worker to start")
    first.kill()
    first.wait()
    midway = job.state
    assert midway.status == "running" and 12 <= midway.cursor < 80

    job.finish_with_a_new_worker(env)  # once the killed worker's heartbeat is stale
    job.assert_stored_once(80, tmp_path / "fresh-indexes")
    job.engine.close()


def test_sigterm_stops_a_worker_within_its_batch_and_the_job_resumes(
    tmp_path: Path, bundled_embedder: Embedder
) -> None:
    filler = "The harvest came in late, and the river ran high. " * 25  # ~10 s a batch
    job = QueuedJob.of(tmp_path, bundled_embedder, 48, filler)
    env = {"XLSEARCH_INGEST_BATCH_DOCUMENTS": "16", "XLSEARCH_INGEST_BATCH_SECONDS": "0"}
    first = xlsearch_process(job.data_dir, "worker", **env)
    wait_until(lambda: job.state.processed >= 16, 180, "the first batch to commit")
    first.terminate()
    started = time.monotonic()
    first.wait(timeout=60)
    assert time.monotonic() - started < 5, "the worker finished its batch before stopping"
    assert (job.state.status, job.state.processed) == ("queued", 16)

    job.finish_with_a_new_worker(env)
    job.assert_stored_once(48, tmp_path / "fresh-indexes")
    job.engine.close()


def test_a_server_sees_another_process_commit_within_two_seconds(
    tmp_path: Path, bundled_embedder: Embedder
) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    with TestClient(create_app(settings, bundled_embedder, worker=False)) as client:
        worker = xlsearch_process(data_dir, "worker")
        try:
            accepted = client.post(
                "/v1/collections/default/documents",
                json={"documents": [{"id": "bees", "text": "Honey bees make honey."}]},
            )
            job_id = accepted.json()["job_id"]
            wait_until(
                lambda: client.get(f"/v1/jobs/{job_id}").json()["processed"] == 1, 120, "commit"
            )

            def found() -> bool:
                results = client.get("/v1/search", params={"q": "Bienen"}).json()["results"]
                return [r["id"] for r in results] == ["bees"]

            assert wait_until(found, 2.0, "the document to become searchable") < 2.0
        finally:
            worker.terminate()
            worker.wait()
        other = Engine.open(settings, bundled_embedder)  # another writer deletes it
        other.store.delete_document(other.store.get_collection("default").id, "bees")
        gone = wait_until(
            lambda: client.get("/v1/search", params={"q": "Bienen"}).json()["results"] == [],
            2.0,
            "the deletion to show",
        )
        assert gone < 2.0
        other.close()


def test_one_worker_per_device_shares_the_queue_and_stops_together(
    tmp_path: Path, bundled_embedder: Embedder
) -> None:
    # Two "cpu" entries stand in for two GPUs: the supervisor does not care what a device is.
    data_dir = tmp_path / "data"
    engine = Engine.open(Settings(data_dir=data_dir), bundled_embedder)
    collection = engine.store.get_collection("default")
    jobs = JobStore(engine.store)
    supervisor = xlsearch_process(
        data_dir,
        "worker",
        XLSEARCH_DEVICES='["cpu", "cpu"]',
        XLSEARCH_MULTI_DEVICE="processes",
        XLSEARCH_INGEST_BATCH_DOCUMENTS="4",
    )
    log_file = next(data_dir.parent.glob(f"{data_dir.name}-worker-*.log"))
    try:
        wait_until(
            lambda: log_file.read_text().count("waiting for jobs") == 2, 120, "two workers"
        )
        job_ids = []
        for n in range(2):
            source = tmp_path / f"part-{n}.jsonl"
            write_corpus(source, 24, first=24 * n)
            job_ids.append(jobs.submit(collection.id, {"path": str(source)}, 0))
        wait_until(
            lambda: all(jobs.get(j).status == "succeeded" for j in job_ids), 180, "both jobs"
        )
    finally:
        supervisor.terminate()
        assert supervisor.wait(timeout=60) == 0
    log = log_file.read_text()
    child_pids = [
        int(line.rsplit("pid ", 1)[1].rstrip(")"))
        for line in log.splitlines()
        if "started a worker on cpu" in line
    ]
    assert len(child_pids) == 2
    assert not any(Path(f"/proc/{pid}").exists() for pid in child_pids)
    # The second job was claimed while the first was running: two processes, one queue.
    takers = {
        line.split(" takes job ")[0].rsplit(" ", 1)[1]
        for line in log.splitlines()
        if " takes job " in line
    }
    assert len(takers) == 2
    assert engine.store.count_documents(collection.id) == 48


def test_a_worker_spreads_documents_over_a_pool_of_devices(
    tmp_path: Path, qwen3_folder: Path, qwen3: Embedder
) -> None:
    # `python -m search worker` with a sentence-transformers pool of two (CPU) processes.
    data_dir = tmp_path / "data"
    env = {
        "XLSEARCH_EMBEDDER": "sentence-transformers",
        "XLSEARCH_MODEL": str(qwen3_folder),
        "XLSEARCH_DEVICE": "cpu",
        "XLSEARCH_DEVICES": '["cpu", "cpu"]',
        "XLSEARCH_MULTI_DEVICE": "pool",
        "XLSEARCH_BATCH_TOKENS": "64",  # several batches a call, so the pool is used
    }
    engine = Engine.open(Settings(data_dir=data_dir), qwen3)  # the worker's model, loaded
    collection = engine.store.get_collection("default")
    jobs = JobStore(engine.store)
    source = tmp_path / "docs.jsonl"
    write_corpus(source, 24)
    job_id = jobs.submit(collection.id, {"path": str(source)}, 0)
    worker = xlsearch_process(data_dir, "worker", **env)
    try:
        wait_until(lambda: jobs.get(job_id).status == "succeeded", 180, "the job")
    finally:
        worker.terminate()
        assert worker.wait(timeout=60) == 0
    log = next(data_dir.parent.glob(f"{data_dir.name}-worker-*.log")).read_text()
    assert "Embedding documents on cpu, cpu" in log
    assert log.count("waiting for jobs") == 1  # one worker: the pool's processes only embed
    assert engine.store.count_documents(collection.id) == 24
    engine.close()


def test_a_killed_migration_worker_is_taken_over_and_nothing_is_stored_twice(
    tmp_path: Path, bundled_embedder: Embedder
) -> None:
    data_dir = tmp_path / "data"
    engine = Engine.open(Settings(data_dir=data_dir), bundled_embedder)
    source = tmp_path / "docs.jsonl"
    write_corpus(source, 60)
    collection = engine.store.get_collection("default")
    jobs = JobStore(engine.store)
    ingested = jobs.submit(collection.id, {"path": str(source)}, 0)
    env = {"XLSEARCH_INGEST_BATCH_DOCUMENTS": "4", "XLSEARCH_JOB_STALE_AFTER_S": "2"}
    first = xlsearch_process(data_dir, "worker", **env)
    try:
        wait_until(lambda: jobs.get(ingested).status == "succeeded", 300, "the ingestion")
        target = migration_target(collection, {"document_instruction": "passage of a note: "},
                                  bundled_embedder)
        migration = engine.store.start_migration(collection.id, target)
        job_id = str(migration.job_id)
        wait_until(lambda: jobs.get(job_id).processed >= 12, 180, "the migration to start")
    finally:
        first.kill()
        first.wait()
    midway = jobs.get(job_id)
    assert midway.status == "running" and 12 <= midway.processed < 60
    second = xlsearch_process(data_dir, "worker", **env)
    try:
        wait_until(lambda: jobs.get(job_id).status == "succeeded", 300, "the takeover")
    finally:
        second.terminate()
        second.wait()
    done = jobs.get(job_id)
    assert 60 - 4 <= done.processed <= 60  # a batch stored just before the kill is not redone
    with engine.store.session() as session:
        rows = session.execute(
            select(Chunk.document_id, Chunk.generation, Chunk.text).order_by(Chunk.id)
        ).all()
    texts = {generation: sorted((document, text) for document, g, text in rows
                                if g == generation) for generation in (1, 2)}
    assert len(texts[2]) == 60 and texts[2] == texts[1]  # each chunk once, the same text
    assert engine.store.get_collection("default").generation == 2
    engine.close()
