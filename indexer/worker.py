"""The worker: claims one job at a time and ingests its source in batches, resumably.

Runs inside the API process (a supervised thread) or alone (`xlsearch worker`). Each batch's
documents are committed one transaction each, then the job's cursor moves past the batch; a
worker that dies mid-batch leaves a cursor that the next worker resumes from, and documents
it had already committed are recognised by id and content hash, so none is embedded twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from indexer.migration import run_migration
from indexer.pipeline import BatchReport, Ingestor, IngestSummary, ingest_stream
from indexer.readers import Extraction, count_items, read_sources
from search.engine import Engine
from search.errors import ModelMismatch, XlsearchError
from search.store.jobs import JobInfo, JobStatus, JobStore
from search.store.records import CollectionInfo

log = logging.getLogger(__name__)

EXPIRY_CHECK_S = 60.0


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
        self._expiry_checked = float("-inf")
        self.name = worker_name()

    def run_once(self) -> bool:
        """Take over abandoned jobs, then process one queued job that this worker's model
        can do; False when there was none."""
        settings = self._engine.settings
        requeued = self._jobs.requeue_abandoned(timedelta(seconds=settings.job_stale_after_s))
        if requeued:
            log.warning("took over %d job(s) abandoned by a stopped worker", requeued)
        self._drop_expired_generations()
        job = self._jobs.claim(self.name, self._engine.embedder.name)
        if job is None:
            return False
        self._guarded(job)
        return True

    def run_job(self, job_id: str) -> bool:
        """Process the job `job_id` now (the CLI's `collections migrate`), if it is queued
        and needs this worker's model; False when it is not."""
        job = self._jobs.claim(self.name, self._engine.embedder.name, job_id)
        if job is None:
            return False
        self._guarded(job)
        return True

    def _guarded(self, job: JobInfo) -> None:
        try:
            self._process(job)
        except Exception as exc:  # noqa: BLE001 - a job's crash must not kill the worker
            log.exception("job %s failed", job.id)
            self._end(job, "failed", f"internal error: {exc}")

    def _end(self, job: JobInfo, status: JobStatus, reason: str | None = None) -> None:
        """Finish a job that did not succeed: a migration's generation is given up, an
        upload's folder removed."""
        if reason is not None and not job.is_migration:
            reason = hide_root(reason, Path(job.source["path"]))
        if not self._jobs.finish(job.id, self.name, status, reason):
            return  # taken over meanwhile: its new holder decides
        if job.is_migration:
            self._engine.store.abandon_generation(
                job.collection_id, job.source["generation"], job.id
            )
        job.discard_upload()

    def _drop_expired_generations(self) -> None:
        """At most once a minute: delete the chunks of generations left by a migration
        longer than `generation_keep_s` ago."""
        now = time.monotonic()
        if now - self._expiry_checked < EXPIRY_CHECK_S:
            return
        self._expiry_checked = now
        keep = timedelta(seconds=self._engine.settings.generation_keep_s)
        dropped = self._engine.store.drop_expired_generations(keep)
        if dropped:
            log.info("deleted %d generation(s) kept past their keep time", dropped)

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
        stale_after_s = self._engine.settings.job_stale_after_s
        with Heartbeat(self._jobs, job.id, self.name, interval_s=stale_after_s / 4):
            try:
                self._migrate(job) if job.is_migration else self._ingest(job)
            except ModelMismatch:
                # The collection switched model under it: a worker with that model resumes.
                log.warning("collection %s switched generation during job %s; handing it back",
                            job.collection, job.id)
                self._jobs.release(job.id, self.name)

    def _migrate(self, job: JobInfo) -> None:
        try:
            done = run_migration(
                self._engine, self._jobs, job, self.name,
                StopCheck(self._stop, self._jobs, job.id),
            )
        except ModelMismatch:
            raise
        except XlsearchError as exc:  # the generation went, or this model cannot make it
            self._end(job, "failed", str(exc))
            return
        finished = self._jobs.get(job.id)
        if finished.worker != self.name:
            log.warning("job %s was taken over by another worker; leaving it to it", job.id)
        elif done is not None:
            try:  # here first, so that a client told the job succeeded finds the new one
                self._searchable(self._engine.store.get_collection(job.collection))
            except Exception:  # noqa: BLE001 - the switch is committed: the job did succeed
                log.exception("searching %s's new generation failed here; the server's next "
                              "catch-up round tries again", job.collection)
            self._jobs.finish(job.id, self.name, "succeeded")
        elif finished.cancel_requested:
            self._end(job, "cancelled")
        else:
            self._jobs.release(job.id, self.name)  # resumed by the next worker

    def _searchable(self, collection: CollectionInfo) -> None:
        """Have this process search what the job wrote now (its server's refresh) rather
        than at the keeper's next round. The write is committed: a failure other than the
        collection's own (it went meanwhile) is logged and left to the keeper."""
        if self._on_batch is None:
            return
        try:
            self._on_batch(collection)
        except XlsearchError:
            raise
        except Exception:  # noqa: BLE001 - the keeper catches the index up later
            log.exception("making job writes to %r searchable failed; the server's next "
                          "catch-up round does it", collection.name)

    def _ingest(self, job: JobInfo) -> None:
        engine = self._engine
        collection = engine.store.get_collection(job.collection)
        ingestor = Ingestor.for_engine(engine, collection)
        source = Path(job.source["path"])
        limit = engine.settings.max_document_bytes
        if not job.total:
            job = replace(job, total=count_items([source], limit))
            self._jobs.set_total(job.id, job.total)
        items = read_sources([source], limit, Extraction.of(engine.settings), skip=job.cursor)
        log.info(
            "%s takes job %s (%s) from item %d of %d",
            self.name, job.id, job.collection, job.cursor, job.total,
        )

        def record(summary: IngestSummary, batch: BatchReport) -> bool:
            errors = [
                {"item": hide_root(item, source), "reason": hide_root(reason, source)}
                for item, reason in batch.errors
            ]
            keep_going = self._jobs.advance(
                job.id, self.name, batch.items, len(batch.errors), errors
            )
            self._searchable(collection)
            return not keep_going or self._stop.is_set()

        try:
            settings = engine.settings
            summary = ingest_stream(
                items, ingestor, settings.ingest_batch_documents, record, overlap=engine.overlap,
                should_stop=StopCheck(self._stop, self._jobs, job.id),
                batch_seconds=settings.ingest_batch_seconds,
            )
        except ModelMismatch:
            raise
        except XlsearchError as exc:
            self._end(job, "failed", str(exc))
            return
        finished = self._jobs.get(job.id)
        if finished.worker != self.name:
            log.warning("job %s was taken over by another worker; leaving it to it", job.id)
            return
        if self._stop.is_set() and not finished.cancel_requested and finished.cursor < job.total:
            self._jobs.release(job.id, self.name)  # resumed by the next worker
            return
        if finished.cancel_requested:
            self._jobs.finish(job.id, self.name, "cancelled")
        elif summary.items and len(summary.errors) == summary.items:
            self._jobs.finish(job.id, self.name, "failed")
        else:
            self._jobs.finish(job.id, self.name, "succeeded")
        job.discard_upload()


class StopCheck:
    """Whether a job's worker should stop now, asked while a batch is embedded: the worker
    is told to (SIGTERM), or the job was cancelled (read from the database at most every
    `every_s`), so either takes effect within about a second, not after the batch."""

    def __init__(
        self, stop: threading.Event, jobs: JobStore, job_id: str, every_s: float = 0.5
    ) -> None:
        self._stop, self._jobs, self._job_id, self._every_s = stop, jobs, job_id, every_s
        self._checked = 0.0

    def __call__(self) -> bool:
        if self._stop.is_set():
            return True
        now = time.monotonic()
        if now - self._checked < self._every_s:
            return False
        self._checked = now
        return self._jobs.get(self._job_id).cancel_requested


ERROR_TEXT_LIMIT = 500  # characters of a job error's item or reason that are stored


def hide_root(text: str, source: Path) -> str:
    """`text` as a job error shows it: the job's folder left out of the paths it names
    (`docs.jsonl:51`, not where the server keeps its files), printable as UTF-8 whatever
    the file system held, and cut to `ERROR_TEXT_LIMIT` characters."""
    root = str(source if source.is_dir() else source.parent).rstrip("/") + "/"
    shown = text.replace(root, "") if root != "/" else text
    shown = shown.encode("utf-8", "backslashreplace").decode("utf-8")
    return shown if len(shown) <= ERROR_TEXT_LIMIT else shown[: ERROR_TEXT_LIMIT - 1] + "…"


class Heartbeat:
    """Beats a job's heartbeat from a background thread while its worker is busy with it, so
    that only a dead worker's job goes stale (batches of long documents can outlast the
    stale timeout; per-batch progress alone would let a live job be taken over)."""

    def __init__(self, jobs: JobStore, job_id: str, worker: str, interval_s: float) -> None:
        self._jobs, self._job_id, self._worker = jobs, job_id, worker
        self._interval_s = interval_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xlsearch-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self._interval_s):
            try:
                if not self._jobs.beat(self._job_id, self._worker):
                    return  # taken over: the next advance() tells the worker to stop
            except Exception:  # noqa: BLE001 - a database hiccup; the next beat retries
                log.exception("heartbeat of job %s failed", self._job_id)
