"""Scale-out on one PostgreSQL database: two worker processes and two serving replicas.

Four jobs of 500 documents are split between the workers; one worker is killed with SIGKILL
midway. Every document must end up stored exactly once, and both replicas must answer the
same searches with the same results in every mode (their FAISS and lexical views both
caught up from the database), none missing.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
from sqlalchemy import func, select

from search.embedders import Embedder
from search.engine import Engine
from search.settings import Settings
from search.store.jobs import JobStore
from search.store.tables import Chunk, ChunkTombstone, Document
from tests.indexer.test_worker_processes import write_corpus
from tests.postgres import PostgresServer
from tests.processes import running_server, xlsearch_process
from tests.waiting import wait_until

JOBS, PER_JOB = 4, 500
QUERIES = ["Tee", "abejas", "вулканы", "月球", "glaciers and trains", "Kaffee aus Äthiopien"]


def test_two_workers_and_two_replicas_lose_nothing(
    tmp_path: Path, bundled_embedder: Embedder, postgres: PostgresServer
) -> None:
    url = postgres.create_database()
    engine = Engine.open(Settings(data_dir=tmp_path / "admin", database_url=url), bundled_embedder)
    collection = engine.store.get_collection("default")
    jobs = JobStore(engine.store)
    job_ids = []
    for number in range(JOBS):
        source = tmp_path / f"part-{number}.jsonl"
        write_corpus(source, PER_JOB, first=number * PER_JOB)
        job_ids.append(jobs.submit(collection.id, {"path": str(source)}, 0))
    env = {
        "XLSEARCH_DATABASE_URL": url,
        "XLSEARCH_INGEST_BATCH_DOCUMENTS": "25",
        "XLSEARCH_JOB_STALE_AFTER_S": "3",
    }

    def processed() -> int:
        return sum(jobs.get(job_id).processed for job_id in job_ids)

    with (
        running_server(tmp_path / "replica-a", "--no-worker", **env) as replica_a,
        running_server(tmp_path / "replica-b", "--no-worker", **env) as replica_b,
    ):
        workers = [xlsearch_process(tmp_path / f"worker-{n}", "worker", **env) for n in (1, 2)]
        try:
            wait_until(
                lambda: sum(jobs.get(j).status == "running" for j in job_ids) == 2,
                120,
                "both workers to hold a job",
            )
            wait_until(lambda: processed() >= 300, 300, "ingestion to get going")
            os.kill(workers[0].pid, signal.SIGKILL)
            workers[0].wait()
            wait_until(
                lambda: all(jobs.get(j).status == "succeeded" for j in job_ids),
                600,
                "the surviving worker to finish every job",
            )
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait()

        total = JOBS * PER_JOB
        with engine.store.session() as session:
            assert session.scalar(select(func.count()).select_from(Document)) == total
            assert session.scalar(select(func.count(func.distinct(Document.external_id)))) == total
            assert session.scalar(select(func.count()).select_from(Chunk)) == total
            assert session.scalar(select(func.count()).select_from(ChunkTombstone)) == 0
        assert sum(jobs.get(j).processed for j in job_ids) == total

        def vectors(base: str) -> int:
            described = httpx.get(f"{base}/v1/collections/default").json()
            return int(described["index"].get("count", 0))

        for replica in (replica_a, replica_b):
            wait_until(lambda r=replica: vectors(r) == total, 10, "the replica to catch up")
        for query in QUERIES:
            for mode in ("hybrid", "dense", "lexical"):  # each replica has both views
                answers = [
                    httpx.post(
                        f"{base}/v1/collections/default/search",
                        json={"query": query, "k": 20, "mode": mode},
                    ).json()["results"]
                    for base in (replica_a, replica_b)
                ]
                assert len(answers[0]) == 20 or mode == "lexical"
                assert answers[0] == answers[1], (query, mode)
        for base in (replica_a, replica_b):  # every document reached the lexical view
            found = httpx.post(
                f"{base}/v1/collections/default/search",
                json={"query": f"item number {total - 1}", "k": 1, "mode": "lexical"},
            ).json()["results"]
            assert [r["id"] for r in found] == [f"doc-{total - 1}"]
    engine.close()
