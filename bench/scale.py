#!/usr/bin/env python
"""Scale-out: ingestion with 1 and 2 workers on PostgreSQL against 1 worker on SQLite, and how
long a serving replica takes to see a commit.

1. Ingestion: the same mixed XQuAD paragraphs (12 languages round-robin) as jobs of equal
   size (one per worker), processed by `xlsearch worker` processes; docs/s from the first
   job's creation to the last one's end (the server's timestamps). A throwaway PostgreSQL
   server is started like the tests do (`initdb`/`pg_ctl`, as `nobody` when run as root).
   On one machine with 2 cores two workers share the same cores, so this shows what the
   database and the job split cost, not the speed-up of two GPU hosts.
2. Replica lag: a replica (`xlsearch serve --no-worker`) on PostgreSQL; this process writes
   short documents one at a time and polls the replica's vector count until it includes
   each one: commit → searchable, p50/p99.

    python -m bench.scale                    # 240 documents per setting, 100 lag samples

Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.common import DEFAULT_XQUAD, format_table, log, machine_description
from bench.serve import mixed_documents
from search.engine import Engine
from search.schemas import DocumentIn
from search.settings import Settings
from search.store.jobs import JobStore
from tests.postgres import postgres_server  # the tests' throwaway server
from tests.processes import running_server, xlsearch_process


def ingest_with_workers(
    workdir: Path, database_url: str | None, workers: int, documents: list[dict[str, str]]
) -> float:
    """Docs/s for `documents` split into one job per worker, processed by `workers` processes."""
    settings = Settings(data_dir=workdir / "admin", database_url=database_url)
    engine = Engine.open(settings)
    jobs = JobStore(engine.store)
    collection = engine.store.get_collection("default")
    job_ids = []
    share = len(documents) // workers
    for number in range(workers):
        part = documents[number * share : (number + 1) * share]
        source = workdir / f"part-{number}.jsonl"
        source.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in part), "utf-8")
        job_ids.append(jobs.submit(collection.id, {"path": str(source)}, 0))
    env = {"XLSEARCH_DATABASE_URL": database_url} if database_url else {}
    data_dirs = [workdir / f"worker-{n}" for n in range(workers)]
    if not database_url:
        data_dirs = [settings.data_dir] * workers  # SQLite: the file in the data folder
    processes = [xlsearch_process(folder, "worker", **env) for folder in data_dirs]
    try:
        while not all(jobs.get(j).status == "succeeded" for j in job_ids):
            time.sleep(1.0)
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    finished = [jobs.get(j) for j in job_ids]
    first = min(job.created_at for job in finished)
    last = max(job.finished_at for job in finished if job.finished_at)
    engine.close()
    return sum(job.processed for job in finished) / (last - first).total_seconds()


def replica_lag(workdir: Path, database_url: str, samples: int) -> list[float]:
    """Seconds from a document's commit to the replica's index holding it."""
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=workdir / "writer", database_url=database_url)
    writer = Engine.open(settings)
    from indexer.pipeline import Ingestor

    ingestor = Ingestor(writer.store, writer.embedder, writer.store.get_collection("default"))
    lags = []
    with (
        running_server(workdir / "replica", "--no-worker", XLSEARCH_DATABASE_URL=database_url)
        as base,
        httpx.Client(base_url=base) as http,
    ):

        def vectors() -> int:
            index: dict[str, Any] = http.get("/v1/collections/default").json()["index"]
            return int(index.get("count", 0))

        for number in range(samples):
            before = vectors()
            ingestor.ingest([DocumentIn(id=f"lag-{number}", text=f"Lag probe number {number}.")])
            committed = time.perf_counter()
            while vectors() <= before:
                time.sleep(0.005)
            lags.append(time.perf_counter() - committed)
            time.sleep(0.05)  # spread the commits over the catch-up cycle
    writer.close()
    return lags


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=240)
    parser.add_argument("--lag-samples", type=int, default=100)
    args = parser.parse_args(argv)
    documents = mixed_documents(DEFAULT_XQUAD, args.documents)

    rows = []
    with tempfile.TemporaryDirectory(prefix="xlsearch-scale-") as tmp, postgres_server() as pg:
        workdir = Path(tmp)
        for name, url, workers in (
            ("SQLite, 1 worker", None, 1),
            ("PostgreSQL, 1 worker", pg.create_database(), 1),
            ("PostgreSQL, 2 workers", pg.create_database(), 2),
        ):
            log(f"ingestion: {name} ...")
            folder = workdir / name.replace(" ", "").replace(",", "-")
            folder.mkdir()
            rate = ingest_with_workers(folder, url, workers, documents)
            rows.append([name, f"{rate:.2f}"])
            log(f"ingestion: {name}: {rate:.2f} docs/s")
        log("replica lag ...")
        lags = np.array(replica_lag(workdir / "lag", pg.create_database(), args.lag_samples))

    base_rate = float(rows[0][1])
    for row in rows:
        row.append(f"{float(row[1]) / base_rate:.2f}")
    print(f"# xlsearch scale-out benchmark\n\nMachine: {machine_description()}\n")
    print(f"Ingestion of {args.documents} mixed XQuAD paragraphs (one job per worker):\n")
    print(format_table(["setting", "docs/s", "vs SQLite"], rows))
    p50, p99 = np.percentile(lags * 1000, [50, 99])
    print(
        f"\nReplica lag, commit → in the replica's index, {len(lags)} single-document commits "
        f"(catch-up every {Settings().catch_up_interval_s} s): p50 {p50:.0f} ms, p99 "
        f"{p99:.0f} ms, max {lags.max() * 1000:.0f} ms; median {statistics.median(lags):.3f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
