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
from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.orm import Session, aliased

from search.errors import MigrationConflict, MigrationNotFound
from search.store.chunk_log import chunk_rows, lock_log
from search.store.records import (
    EMBEDDING_SETTINGS,
    ChunkRecord,
    CollectionInfo,
    GenerationInfo,
    detached,
)
from search.store.sessions import Sessions
from search.store.tables import Chunk, Collection, Document, Generation, Job, utcnow

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
    return detached(GenerationInfo, row)


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
            lock_log(session, collection_id)
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
            row.state, row.job_id = BUILDING, self._queue_job(
                session, collection_id, row.model, row.number
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
        with_vectors: bool,
        with_texts: bool,
    ) -> GenerationInfo:
        """Make `target` the active generation, in one transaction under the log lock: the
        documents still missing from it are made (by `make`) and stored first, so that it
        holds every document, then the collection row takes its settings. The generation
        left becomes retired."""
        with self.writing() as session:
            active = lock_log(session, collection.id)
            row = self._building(session, collection.id, target)
            if active != collection.generation:
                raise MigrationConflict("the collection switched generation meanwhile")
            gaps = list(session.scalars(_missing(collection.id, active, target)))
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

    def abandon_generation(self, collection_id: int, target: int) -> None:
        """Stop building `target`: a generation that was never active is abandoned and its
        chunks deleted; one being switched back to is retired again (its chunks kept)."""
        with self.writing() as session:
            lock_log(session, collection_id)
            row = session.get(Generation, (collection_id, target))
            if row is None or row.state != BUILDING:
                return
            if row.switched_at is not None:
                row.state, row.job_id = RETIRED, None
                return
            row.state = ABANDONED
            session.execute(delete(Chunk).where(
                Chunk.collection_id == collection_id, Chunk.generation == target
            ))

    def drop_expired_generations(self, keep: timedelta) -> int:
        """Abandon the retired generations left longer than `keep` ago, deleting their
        chunks; returns how many."""
        expiring = select(Generation).where(
            Generation.state == RETIRED, Generation.retired_at < utcnow() - keep
        )
        with self.session() as session:  # a read first: most calls find none
            if session.scalars(expiring.limit(1)).first() is None:
                return 0
        with self.writing() as session:
            expired = session.scalars(expiring).all()
            for row in expired:
                row.state = ABANDONED
                session.execute(delete(Chunk).where(
                    Chunk.collection_id == row.collection_id, Chunk.generation == row.number
                ))
            return len(expired)

    @staticmethod
    def _refuse_second(session: Session, collection_id: int) -> None:
        building = session.scalar(
            select(Generation).where(
                Generation.collection_id == collection_id, Generation.state == BUILDING
            )
        )
        if building is not None:
            raise MigrationConflict(
                f"generation {building.number} is being built (job {building.job_id}); wait "
                "for it to finish or cancel that job first"
            )

    @staticmethod
    def _queue_job(session: Session, collection_id: int, model: str, number: int) -> str:
        job_id = uuid.uuid4().hex
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
        documents = {
            row_id: (lang, text)
            for row_id, lang, text in session.execute(
                select(Document.id, Document.lang, Document.text if with_texts else Document.lang)
                .where(Document.id.in_(rows))
            )
        }
        chunks: dict[int, list[tuple[int, ChunkRecord]]] = {row: [] for row in rows}
        empty = np.zeros(0, np.float32)
        for chunk in session.scalars(
            select(Chunk)
            .where(Chunk.document_id.in_(rows), Chunk.generation == collection.generation)
            .order_by(Chunk.document_id, Chunk.ordinal)
        ):
            vector = (np.frombuffer(chunk.vector, dtype="<f4", count=collection.dimension)
                      if with_vectors else empty)
            chunks[chunk.document_id].append((chunk.id, ChunkRecord(
                chunk.ordinal, chunk.char_start, chunk.char_end, chunk.token_count, chunk.lang,
                chunk.text, vector,
            )))
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
