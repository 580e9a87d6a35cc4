"""Path jobs whose sources cannot be read finish with their reasons; the worker never waits."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.worker import Worker
from search.embedders import Embedder
from search.engine import Engine
from search.settings import Settings
from search.store.jobs import JobInfo, JobStore


def run_one_job(engine: Engine, source: Path) -> JobInfo:
    """Submit a path job and let a worker take it, failing (not hanging) if it blocks."""
    jobs = JobStore(engine.store)
    job_id = jobs.submit(engine.store.get_collection("default").id, {"path": str(source)}, 0)
    worker = threading.Thread(target=Worker(engine).run_once, daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():
        for fifo in [source, *source.glob("*")] if source.is_dir() else [source]:
            if fifo.is_fifo():  # let a reader stuck in open() go
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("the worker did not finish the job within 60 s")
    return jobs.get(job_id)


@pytest.fixture
def engine(tmp_path: Path, bundled_embedder: Embedder) -> Iterator[Engine]:
    opened = Engine.open(
        Settings(data_dir=tmp_path / "data", max_document_bytes=1024), bundled_embedder
    )
    yield opened
    opened.close()


def test_a_fifo_job_fails_with_its_reason(engine: Engine, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jsonl")
    job = run_one_job(engine, tmp_path / "pipe.jsonl")
    assert (job.status, job.total, job.processed, job.failed) == ("failed", 1, 0, 1)
    assert [(Path(e["item"]).name, e["reason"]) for e in job.errors] == [
        ("pipe.jsonl", "a FIFO (named pipe), not a regular file; only regular files are read")
    ]


def test_a_folder_job_reports_what_it_skips_and_stores_the_rest(
    engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "bees.txt").write_text("Bees make honey.", "utf-8")
    (folder / "huge.txt").write_text("honey " * 500, "utf-8")
    os.mkfifo(folder / "pipe.txt")
    job = run_one_job(engine, folder)
    assert (job.status, job.total, job.processed, job.failed) == ("succeeded", 3, 1, 2)
    assert sorted(Path(e["item"]).name for e in job.errors) == ["huge.txt", "pipe.txt"]
    assert engine.store.find_documents(engine.store.get_collection("default").id, ["bees.txt"])
