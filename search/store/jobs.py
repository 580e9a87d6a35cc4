"""Job rows: submit, claim, report progress, cancel, finish, and take over abandoned jobs.

Jobs are rows with explicit states. A job's `cursor` counts the source items fully handled,
so a job taken over after a crash resumes there; items between the cursor and the crash were
committed per document and are recognised by id and content hash, so nothing is embedded
twice.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.engine import CursorResult

from search.errors import JobNotFound
from search.store.records import JobStatus, as_utc, detached, storable
from search.store.repository import Store
from search.store.tables import Collection, Job, utcnow

MAX_STORED_ERRORS = 1000


@dataclass(frozen=True)
class JobInfo:
    """A job as callers see it."""

    id: str
    collection: str
    status: JobStatus
    total: int
    processed: int
    failed: int
    cursor: int
    errors: list[dict[str, Any]]
    source: dict[str, Any]
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None = None  # the worker holding it while it runs
    model: str | None = None  # the model its worker embeds with (None: the collection's)
    collection_id: int = 0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far, while it runs and has made progress."""
        done = self.processed + self.failed
        if self.status != "running" or self.started_at is None or not done:
            return None
        elapsed = (utcnow() - self.started_at).total_seconds()
        return round(max(0, self.total - done) * elapsed / done, 1)

    @property
    def is_migration(self) -> bool:
        """Whether it builds a generation (search.migrations) rather than ingesting."""
        return self.source.get("kind") == "migration"

    def discard_upload(self) -> None:
        """Remove the job's upload folder once no worker will read it (a server path the job
        was given is left alone)."""
        if self.source.get("owned"):
            shutil.rmtree(self.source["path"], ignore_errors=True)


def _info(job: Job, collection: str) -> JobInfo:
    return detached(
        JobInfo,
        job,
        collection=collection,
        errors=list(job.errors or []),
        source=dict(job.source or {}),
        created_at=cast(datetime, as_utc(job.created_at)),
        started_at=as_utc(job.started_at),
        finished_at=as_utc(job.finished_at),
    )


class JobStore:
    """Job rows in the shared database; every method is one short transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def submit(self, collection_id: int, source: dict[str, Any], total: int) -> str:
        job_id = uuid.uuid4().hex
        with self._store.writing() as session:
            session.add(
                Job(
                    id=job_id,
                    collection_id=collection_id,
                    status="queued",
                    total=total,
                    source=source,
                    errors=[],
                )
            )
        return job_id

    def get(self, job_id: str) -> JobInfo:
        if not storable(job_id):
            raise JobNotFound(job_id)
        with self._store.session() as session:
            row = session.execute(
                select(Job, Collection.name)
                .join(Collection, Job.collection_id == Collection.id)
                .where(Job.id == job_id)
            ).first()
            if row is None:
                raise JobNotFound(job_id)
            return _info(*row)

    def recent(self, status: JobStatus | None = None, limit: int = 100) -> list[JobInfo]:
        """Newest first."""
        query = select(Job, Collection.name).join(Collection, Job.collection_id == Collection.id)
        if status:
            query = query.where(Job.status == status)
        with self._store.session() as session:
            rows = session.execute(query.order_by(Job.created_at.desc()).limit(limit)).all()
            return [_info(job, name) for job, name in rows]

    def count(self, status: JobStatus) -> int:
        with self._store.session() as session:
            return int(session.scalar(select(func.count()).where(Job.status == status)) or 0)

    def items_handled(self) -> tuple[int, int]:
        """Items processed and failed over all jobs (for the items/s metric)."""
        with self._store.session() as session:
            processed, failed = session.execute(
                select(
                    func.coalesce(func.sum(Job.processed), 0),
                    func.coalesce(func.sum(Job.failed), 0),
                )
            ).one()
            return int(processed), int(failed)

    def cancel(self, job_id: str) -> JobInfo:
        """A queued job is cancelled at once; a running one when its worker next looks."""
        if not storable(job_id):
            raise JobNotFound(job_id)
        now = utcnow()
        with self._store.writing() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise JobNotFound(job_id)
            given_up = job.status == "queued"
            if given_up:
                job.status, job.finished_at = "cancelled", now
            elif job.status == "running":
                job.cancel_requested = True
        cancelled = self.get(job_id)
        if given_up and cancelled.is_migration:  # no worker will: its generation goes now
            self._store.abandon_generation(
                cancelled.collection_id, cancelled.source["generation"], job_id
            )
        return cancelled

    def claim(
        self, worker: str, model: str | None = None, job_id: str | None = None
    ) -> JobInfo | None:
        """Take the oldest queued job (or the job `job_id`, if queued) for `worker`, or None
        when there is none: one whose model is `model` (a job without one needs its
        collection's), or any job when `model` is None. A job for another model is left to a
        worker that has it.

        The conditional update makes the claim safe when several workers race for a job.
        """
        with self._store.writing() as session:
            query = select(Job.id).where(Job.status == "queued")
            if job_id is not None:
                query = query.where(Job.id == job_id)
            if model is not None:
                query = query.join(Collection, Job.collection_id == Collection.id).where(
                    func.coalesce(Job.model, Collection.model) == model
                )
            candidate = session.scalar(
                query
                .order_by(Job.created_at)
                .limit(1)
                .with_for_update(skip_locked=True, of=Job)
            )
            if candidate is None:
                return None
            now = utcnow()
            result = session.execute(
                update(Job)
                .where(Job.id == candidate, Job.status == "queued")
                .values(
                    status="running",
                    worker=worker,
                    heartbeat_at=now,
                    started_at=func.coalesce(Job.started_at, now),
                )
            )
            claimed = cast(CursorResult[Any], result).rowcount
        return self.get(candidate) if claimed else None

    def set_total(self, job_id: str, total: int) -> None:
        """Record how many items the job's source holds (counted when work starts)."""
        with self._store.writing() as session:
            session.execute(update(Job).where(Job.id == job_id).values(total=total))

    def advance(
        self,
        job_id: str,
        worker: str,
        items: int,
        failed: int,
        errors: list[dict[str, Any]],
        *,
        cursor: int | None = None,
    ) -> bool:
        """Record a batch `worker` handled (moving the cursor past its items, or to `cursor`
        when given) and beat the heartbeat.

        Returns False when the worker should stop: cancellation was requested, or the job is
        no longer its own (taken over after its heartbeat went stale), in which case nothing
        is recorded: the new holder redoes the batch, and committed documents are skipped.
        """
        with self._store.writing() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.worker != worker or job.status != "running":
                return False
            job.cursor = job.cursor + items if cursor is None else cursor
            job.processed += items - failed
            job.failed += failed
            if errors and len(job.errors) < MAX_STORED_ERRORS:
                job.errors = [*job.errors, *errors][:MAX_STORED_ERRORS]
            job.heartbeat_at = utcnow()
            return not job.cancel_requested

    def beat(self, job_id: str, worker: str) -> bool:
        """Refresh the heartbeat of a job `worker` holds; False if it holds it no longer."""
        with self._store.writing() as session:
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker == worker, Job.status == "running")
                .values(heartbeat_at=utcnow())
            )
            return bool(cast(CursorResult[Any], result).rowcount)

    def finish(
        self, job_id: str, worker: str, status: JobStatus, error: str | None = None
    ) -> bool:
        """End a job `worker` holds (a job taken over meanwhile is left to its new holder);
        whether it did."""
        with self._store.writing() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.worker != worker:
                return False
            job.status, job.finished_at, job.worker = status, utcnow(), None
            if error:
                job.errors = [*job.errors, {"item": None, "reason": error}][: MAX_STORED_ERRORS + 1]
            return True

    def requeue_abandoned(self, older_than: timedelta) -> int:
        """Put running jobs whose heartbeat is older than `older_than` back in the queue;
        they resume at their cursor. Returns how many were taken back."""
        limit = utcnow() - older_than
        with self._store.writing() as session:
            result = session.execute(
                update(Job)
                .where(Job.status == "running", Job.heartbeat_at < limit)
                .values(status="queued", worker=None)
            )
            return int(cast(CursorResult[Any], result).rowcount)

    def release(self, job_id: str, worker: str) -> None:
        """Hand an unfinished job back to the queue (its worker is shutting down)."""
        with self._store.writing() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker == worker, Job.status == "running")
                .values(status="queued", worker=None)
            )
