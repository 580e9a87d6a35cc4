"""The worker: claims one job at a time and ingests its source in batches, resumably.

Runs inside the API process (a supervised thread) or alone (`xlsearch worker`). Each batch's
documents are committed one transaction each, then the job's cursor moves past the batch; a
worker that dies mid-batch leaves a cursor that the next worker resumes from, and documents
it had already committed are recognised by id and content hash, so none is embedded twice.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from itertools import islice
from pathlib import Path

from indexer.pipeline import BatchReport, Ingestor, IngestSummary, ingest_stream
from indexer.readers import count_items, read_sources
from search.engine import Engine
from search.errors import XlsearchError
from search.store.jobs import JobInfo, JobStore
from search.store.repository import CollectionInfo

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class Worker:
    """Processes queued jobs; `on_batch` lets the serving process catch its index up."""

    def __init__(
        self,
        engine: Engine,
        *,
        poll_interval_s: float = 0.5,
        on_batch: Callable[[CollectionInfo], None] | None = None,
    ) -> None:
        self._engine = engine
        self._jobs = JobStore(engine.store)
        self._poll_interval_s = poll_interval_s
        self._on_batch = on_batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.name = worker_name()

    def run_once(self) -> bool:
        """Take over abandoned jobs, then process one queued job; False when there was none."""
        stale_after = timedelta(seconds=self._engine.settings.job_stale_after_s)
        requeued = self._jobs.requeue_abandoned(stale_after)
        if requeued:
            log.warning("took over %d job(s) abandoned by a stopped worker", requeued)
        job = self._jobs.claim(self.name)
        if job is None:
            return False
        try:
            self._process(job)
        except Exception as exc:  # noqa: BLE001 - a job's crash must not kill the worker
            log.exception("job %s failed", job.id)
            self._jobs.finish(job.id, "failed", f"internal error: {exc}")
        return True

    def run(self) -> None:
        """Work until `stop()` is called."""
        while not self._stop.is_set():
            if not self.run_once():
                self._stop.wait(self._poll_interval_s)

    def start(self) -> None:
        """Run in a background thread (the API's in-process worker)."""
        self._thread = threading.Thread(target=self.run, name="xlsearch-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the worker to stop after its current batch and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _process(self, job: JobInfo) -> None:
        collection = self._engine.store.get_collection(job.collection)
        ingestor = Ingestor(self._engine.store, self._engine.embedder, collection)
        source = Path(job.source["path"])
        if not job.total:
            job = replace(job, total=count_items([source]))
            self._jobs.set_total(job.id, job.total)
        items = islice(read_sources([source]), job.cursor, None)
        log.info("job %s: %s from item %d of %d", job.id, job.collection, job.cursor, job.total)

        def record(summary: IngestSummary, batch: BatchReport) -> bool:
            errors = [{"item": source, "reason": reason} for source, reason in batch.errors]
            cancel = self._jobs.advance(job.id, batch.items, len(batch.errors), errors)
            if self._on_batch:
                self._on_batch(collection)
            return cancel or self._stop.is_set()

        try:
            summary = ingest_stream(
                items, ingestor, self._engine.settings.ingest_batch_documents, record
            )
        except XlsearchError as exc:
            self._jobs.finish(job.id, "failed", str(exc))
            return
        finished = self._jobs.get(job.id)
        if self._stop.is_set() and not finished.cancel_requested and finished.cursor < job.total:
            self._jobs.release(job.id)  # resumed by the next worker
            return
        if finished.cancel_requested:
            self._jobs.finish(job.id, "cancelled")
        elif summary.items and len(summary.errors) == summary.items:
            self._jobs.finish(job.id, "failed")
        else:
            self._jobs.finish(job.id, "succeeded")
        if job.source.get("owned"):
            shutil.rmtree(source, ignore_errors=True)  # an upload, no longer needed
