"""Generations: a collection's chunks and vectors as one model, dimension, prompt and chunking
make them. A migration builds a new generation beside the active one, from the chunk texts
already stored, and switches to it in one transaction under the collection's log lock, so
that every process sees the switch at the same point of the log; the generation left is
kept for a while so that a rollback can switch back.

States: `building` (a migration job is making its chunks), `active` (what searches and writes
use; one per collection), `retired` (left by a switch, kept for a rollback), `abandoned` (a
cancelled or expired generation, its chunks deleted).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete, exists, func, insert, null, select, update
from sqlalchemy.orm import Session, aliased

from search.errors import CollectionDeleted, MigrationConflict, MigrationNotFound
from search.store.chunk_log import chunk_rows, lock_log
from search.store.records import (
    EMBEDDING_SETTINGS,
    FINISHED,
    ChunkRecord,
    CollectionInfo,
    GenerationInfo,
    as_utc,
    detached,
)
from search.store.sessions import Sessions
from search.store.tables import (
    Chunk,
    Collection,
    Document,
    Generation,
    IndexSnapshot,
    Job,
    utcnow,
)

BUILDING, ACTIVE, RETIRED, ABANDONED = "building", "active", "retired", "abandoned"
KEPT_STATES = (BUILDING, ACTIVE, RETIRED)


@dataclass(frozen=True)
class SourceDocument:
    """A document as a migration reads it: its chunks in the active generation (vectors
    only when asked for, else empty) and, when asked for, its text to chunk anew."""

    row: int
    lang: str
    chunk_ids: tuple[int, ...]
    chunks: list[ChunkRecord]
    text: str | None = None


# What a migration makes of a batch of documents: for each, its chunks in the new generation.
Made = list[tuple[SourceDocument, list[ChunkRecord]]]


def generation_info(row: Generation) -> GenerationInfo:
    """The row as a record, its times in UTC (SQLite hands them back without a zone)."""
    return detached(
        GenerationInfo, row, created_at=as_utc(row.created_at),
        switched_at=as_utc(row.switched_at), retired_at=as_utc(row.retired_at),
    )


def _missing(collection_id: int, active: int, target: int) -> Any:
    """Documents of the collection with chunks in `active` and none in `target`."""
    has = aliased(Chunk)
    return (
        select(Document.id)
        .where(
            Document.collection_id == collection_id,
            exists().where(has.document_id == Document.id, has.generation == active),
            ~exists().where(Chunk.document_id == Document.id, Chunk.generation == target),
        )
        .order_by(Document.id)
    )


class GenerationRepository(Sessions):
    """The generations table, and the chunk copies a migration writes."""

    def generations(self, collection_id: int | None = None) -> list[GenerationInfo]:
        """Every generation that is not abandoned (of one collection, when given)."""
        query = select(Generation).where(Generation.state.in_(KEPT_STATES))
        if collection_id is not None:
            query = query.where(Generation.collection_id == collection_id)
        with self.session() as session:
            rows = session.scalars(query.order_by(Generation.collection_id, Generation.number))
            return [generation_info(row) for row in rows]

    def generation(self, collection_id: int, number: int) -> GenerationInfo:
        with self.session() as session:
            row = session.get(Generation, (collection_id, number))
            if row is None:
                raise MigrationNotFound(
                    f"the collection has no generation {number}; GET its migrations to see "
                    "which it has"
                )
            return generation_info(row)

    def start_migration(self, collection_id: int, target: CollectionInfo) -> GenerationInfo:
        """A new generation with `target`'s settings, building, and the queued job that
        builds it (its worker must embed with `target.model`)."""
        with self.writing() as session:
            lock_log(session, collection_id)
            self._refuse_second(session, collection_id)
            number = 1 + int(session.scalar(
                select(func.max(Generation.number)).where(Generation.collection_id == collection_id)
            ) or 0)
            job_id = self._queue_job(session, collection_id, target.model, number)
            row = Generation(
                collection_id=collection_id, number=number, state=BUILDING, job_id=job_id,
                **{name: getattr(target, name) for name in EMBEDDING_SETTINGS},
            )
            session.add(row)
            session.flush()
            return generation_info(row)

    def start_rollback(self, collection_id: int) -> GenerationInfo:
        """Make the generation the last switch left (retired, within its keep time) building
        again, with a job that adds what was written since, then switches back to it."""
        with self.writing() as session:
            active = lock_log(session, collection_id)
            row = session.scalars(
                select(Generation)
                .where(Generation.collection_id == collection_id, Generation.state == RETIRED)
                .order_by(Generation.retired_at.desc(), Generation.number.desc())
                .limit(1)
            ).first()
            if row is None:
                raise MigrationNotFound(
                    "the collection keeps no generation to switch back to: none was left by "
                    "a switch, or it was deleted after XLSEARCH_GENERATION_KEEP_S"
                )
            self._refuse_second(session, collection_id)
            missing = select(func.count()).select_from(
                _missing(collection_id, active, row.number).subquery()
            )
            row.state, row.job_id = BUILDING, self._queue_job(
                session, collection_id, row.model, row.number, total=session.scalar(missing)
            )
            return generation_info(row)

    def settle_dimension(self, collection_id: int, target: int, dimension: int) -> GenerationInfo:
        """Give a building generation that asked for its model's full dimension (0) that
        dimension: its worker, which has the model, knows it."""
        with self.writing() as session:
            row = self._building(session, collection_id, target)
            if row.dimension == 0:
                row.dimension = dimension
            return generation_info(row)

    def sources_after(
        self,
        collection: CollectionInfo,
        target: int,
        after_row: int,
        limit: int,
        *,
        with_vectors: bool,
        with_texts: bool,
    ) -> list[SourceDocument]:
        """Up to `limit` documents above row `after_row`, in row order, that have chunks in
        the active generation (`collection.generation`) and none in `target` yet."""
        query = _missing(collection.id, collection.generation, target)
        query = query.where(Document.id > after_row).limit(limit)
        with self.session() as session:
            rows = list(session.scalars(query))
            return self._sources(session, collection, rows, with_vectors, with_texts)

    def missing(
        self, collection: CollectionInfo, target: int, limit: int, *,
        with_vectors: bool, with_texts: bool,
    ) -> list[SourceDocument]:
        """Documents written (or written anew) since a migration passed them: those with
        chunks in the active generation and none in `target`, up to `limit`."""
        return self.sources_after(collection, target, 0, limit, with_vectors=with_vectors,
                                  with_texts=with_texts)

    def add_generation_chunks(self, collection_id: int, target: int, made: Made) -> int:
        """Store the new generation's chunks of documents that have not changed since they
        were read (same chunks in the active generation, none in `target`); returns how many
        documents were stored. Raises MigrationConflict if the generation stopped building."""
        with self.writing() as session:
            active = lock_log(session, collection_id)
            self._building(session, collection_id, target)
            return self._insert(session, collection_id, active, target, made)

    def switch_generation(
        self,
        collection: CollectionInfo,
        target: int,
        make: Callable[[list[SourceDocument]], Made],
        *,
        max_gaps: int,
        with_vectors: bool,
        with_texts: bool,
    ) -> GenerationInfo | None:
        """Make `target` the active generation, in one transaction under the log lock: the
        documents still missing from it are made (by `make`) and stored first, so that it
        holds every document, then the collection row takes its settings. The generation
        left becomes retired. None, and nothing done, when more than `max_gaps` documents
        are missing (writers wait while the switch embeds: the caller makes them first)."""
        with self.writing() as session:
            active = lock_log(session, collection.id)
            row = self._building(session, collection.id, target)
            if active != collection.generation:
                raise MigrationConflict("the collection switched generation meanwhile")
            missing = _missing(collection.id, active, target).limit(max_gaps + 1)
            gaps = list(session.scalars(missing))
            if len(gaps) > max_gaps:
                return None
            if gaps:
                sources = self._sources(session, collection, gaps, with_vectors, with_texts)
                self._insert(session, collection.id, active, target, make(sources))
            now = utcnow()
            session.execute(
                update(Generation)
                .where(Generation.collection_id == collection.id, Generation.number == active)
                .values(state=RETIRED, retired_at=now)
            )
            row.state, row.switched_at, row.retired_at = ACTIVE, now, None
            session.execute(
                update(Collection).where(Collection.id == collection.id).values(
                    generation=target,
                    **{name: getattr(row, name) for name in EMBEDDING_SETTINGS},
                )
            )
            session.flush()
            return generation_info(row)

    def abandon_generation(self, collection_id: int, target: int, job_id: str) -> None:
        """Stop building `target` (if the job `job_id` builds it): a generation that was
        never active is abandoned and its chunks deleted; one being switched back to is
        retired again (its chunks kept)."""
        with self.writing() as session:
            lock_log(session, collection_id)
            row = session.get(Generation, (collection_id, target))
            if row is not None and row.state == BUILDING and row.job_id == job_id:
                self._give_up(session, row)

    @staticmethod
    def _give_up(session: Session, row: Generation) -> None:
        """A building generation whose job ended without it: retired again if it was active
        before (a rollback's), else abandoned."""
        if row.switched_at is not None:
            row.state, row.job_id = RETIRED, None
        else:
            GenerationRepository._abandon(session, row)

    @staticmethod
    def _abandon(session: Session, row: Generation) -> None:
        """Mark the generation abandoned and delete its chunks and snapshot records (no
        index follows them any more: every process drops the indexes of a generation not
        kept)."""
        row.state = ABANDONED
        for table in (Chunk, IndexSnapshot):
            session.execute(delete(table).where(
                table.collection_id == row.collection_id, table.generation == row.number
            ))

    def drop_expired_generations(self, keep: timedelta) -> int:
        """Abandon the retired generations left longer than `keep` ago, deleting their
        chunks; returns how many. Each under its collection's log lock, checked again
        there (a rollback may have taken it back meanwhile)."""
        expiring = select(Generation.collection_id, Generation.number).where(
            Generation.state == RETIRED, Generation.retired_at < utcnow() - keep
        )
        with self.session() as session:  # a read first: most calls find none
            expired = session.execute(expiring).all()
        dropped = 0
        for collection_id, number in expired:
            with self.writing() as session:
                try:
                    lock_log(session, collection_id)
                except CollectionDeleted:
                    continue
                row = session.get(Generation, (collection_id, number))
                left = None if row is None or row.state != RETIRED else as_utc(row.retired_at)
                if row is not None and left is not None and left < utcnow() - keep:
                    self._abandon(session, row)
                    dropped += 1
        return dropped

    @staticmethod
    def _refuse_second(session: Session, collection_id: int) -> None:
        building = session.scalar(
            select(Generation).where(
                Generation.collection_id == collection_id, Generation.state == BUILDING
            )
        )
        job = None if building is None else session.get(Job, building.job_id)
        if building is not None and (job is None or job.status in FINISHED):
            GenerationRepository._give_up(session, building)  # its job ended without it
            return
        if building is not None:
            raise MigrationConflict(
                f"generation {building.number} is being built (job {building.job_id}); wait "
                "for it to finish or cancel that job first"
            )

    @staticmethod
    def _queue_job(
        session: Session, collection_id: int, model: str, number: int, total: int | None = None
    ) -> str:
        """A queued migration job for `number`, counting `total` documents (default: all)."""
        job_id = uuid.uuid4().hex
        if total is None:
            total = session.scalar(
                select(func.count()).where(Document.collection_id == collection_id)
            )
        session.add(Job(
            id=job_id, collection_id=collection_id, status="queued", model=model,
            total=int(total or 0), source={"kind": "migration", "generation": number},
            errors=[],
        ))
        return job_id

    @staticmethod
    def _building(session: Session, collection_id: int, target: int) -> Generation:
        row = session.get(Generation, (collection_id, target))
        if row is None or row.state != BUILDING:
            raise MigrationConflict(f"generation {target} is no longer being built")
        return row

    @staticmethod
    def _sources(
        session: Session,
        collection: CollectionInfo,
        rows: Sequence[int],
        with_vectors: bool,
        with_texts: bool,
    ) -> list[SourceDocument]:
        if not rows:
            return []
        # Chunks before texts: a document replaced in between (PostgreSQL reads each
        # statement afresh) then has chunk ids that `_insert` finds gone, never new chunk
        # ids with its old text.
        chunks: dict[int, list[tuple[int, ChunkRecord]]] = {row: [] for row in rows}
        empty = np.zeros(0, np.float32)
        read = (
            select(Chunk.id, Chunk.document_id, Chunk.ordinal, Chunk.char_start, Chunk.char_end,
                   Chunk.token_count, Chunk.lang, Chunk.text,
                   Chunk.vector if with_vectors else null())
            .where(Chunk.document_id.in_(rows), Chunk.generation == collection.generation)
            .order_by(Chunk.document_id, Chunk.ordinal)
        )
        for chunk_id, document_id, ordinal, start, end, tokens, lang, text, blob in (
            session.execute(read)
        ):
            vector = (np.frombuffer(blob, dtype="<f4", count=collection.dimension)
                      if blob is not None else empty)
            chunks[document_id].append(
                (chunk_id, ChunkRecord(ordinal, start, end, tokens, lang, text, vector))
            )
        documents = {
            row_id: (lang, text)
            for row_id, lang, text in session.execute(
                select(Document.id, Document.lang, Document.text if with_texts else Document.lang)
                .where(Document.id.in_(rows))
            )
        }
        return [
            SourceDocument(
                row=row, lang=documents[row][0],
                chunk_ids=tuple(chunk_id for chunk_id, _ in chunks[row]),
                chunks=[record for _, record in chunks[row]],
                text=documents[row][1] if with_texts else None,
            )
            for row in rows if row in documents
        ]

    @staticmethod
    def _insert(session: Session, collection_id: int, active: int, target: int, made: Made) -> int:
        if not made:
            return 0
        rows = [source.row for source, _ in made]
        made_before: set[int] = set()
        active_chunks: dict[int, list[int]] = {}
        for document_id, generation, chunk_id in session.execute(
            select(Chunk.document_id, Chunk.generation, Chunk.id)
            .where(Chunk.document_id.in_(rows), Chunk.generation.in_((active, target)))
            .order_by(Chunk.document_id, Chunk.ordinal)
        ):
            if generation == target:
                made_before.add(document_id)  # by another worker: never stored twice
            else:
                active_chunks.setdefault(document_id, []).append(chunk_id)
        stored = [  # a document replaced or changed since it was read is made again later
            (source, chunks) for source, chunks in made
            if source.row not in made_before
            and tuple(active_chunks.get(source.row, ())) == source.chunk_ids
        ]
        values = [
            row
            for source, chunks in stored
            for row in chunk_rows(source.row, collection_id, target, chunks)
        ]
        if values:
            session.execute(insert(Chunk), values)
        return len(stored)
