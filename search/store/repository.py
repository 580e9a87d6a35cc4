"""Every read and write the engine makes to the database, each in its own short transaction."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, Text, cast, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from search.errors import CollectionDeleted, CollectionExists, CollectionNotFound
from search.schemas import clean_text
from search.store.database import WRITES
from search.store.tables import Chunk, ChunkTombstone, Collection, Document

SQL_IN_PAGE = 900  # ids per IN (...) query, well under every database's parameter limit
LOG_LOCK_SPACE = 0x786C  # "xl": first key of the per-collection advisory lock on PostgreSQL


@dataclass(frozen=True)
class CollectionInfo:
    """A collection's settings, detached from any database session."""

    id: int
    name: str
    model: str
    dimension: int
    chunk_tokens: int
    chunk_overlap: int
    document_instruction: str | None = None
    query_instruction: str | None = None
    index_settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectionStats:
    """A collection with what it holds: documents (in all and per language) and chunks."""

    info: CollectionInfo
    documents: int
    chunks: int
    languages: dict[str, int]


@dataclass(frozen=True)
class DocumentRecord:
    external_id: str
    text: str
    title: str | None
    url: str | None
    lang: str
    content_hash: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class ChunkRecord:
    ordinal: int
    start: int
    end: int
    token_count: int
    lang: str
    text: str
    vector: np.ndarray


@dataclass(frozen=True)
class ChunkPage:
    """Consecutive chunks in id order, as the indexes read them: vectors (None when not
    asked for), each chunk's language, and what filters need of its document (row id,
    language, metadata as JSON text, parsed only if a filter asks for a field)."""

    ids: np.ndarray
    vectors: np.ndarray | None
    langs: list[str]
    documents: list[int]
    document_langs: list[str]
    metadata_json: list[str | None]

    @property
    def vectors_read(self) -> np.ndarray:
        """The vectors, for a page read with them."""
        if self.vectors is None:
            raise ValueError("this page was read without vectors")
        return self.vectors


@dataclass(frozen=True)
class ChunkHit:
    """A chunk joined with its document, as search needs it."""

    chunk_id: int
    document_id: str
    title: str | None
    url: str | None
    lang: str
    metadata: dict[str, Any]
    chunk_lang: str
    text: str
    start: int
    end: int


def storable(key: str) -> bool:
    """Whether `key` could be stored at all: keys from URLs may hold NULs or lone surrogates,
    which PostgreSQL refuses with an error, so lookups treat them as absent."""
    try:
        clean_text(key)
    except ValueError:
        return False
    return True


def _info(row: Collection) -> CollectionInfo:
    return CollectionInfo(
        id=row.id,
        name=row.name,
        model=row.model,
        dimension=row.dimension,
        chunk_tokens=row.chunk_tokens,
        chunk_overlap=row.chunk_overlap,
        document_instruction=row.document_instruction,
        query_instruction=row.query_instruction,
        index_settings=dict(row.index_settings or {}),
    )


def _record(row: Document) -> DocumentRecord:
    return DocumentRecord(
        external_id=row.external_id,
        text=row.text,
        title=row.title,
        url=row.url,
        lang=row.lang,
        content_hash=row.content_hash,
        metadata=dict(row.meta or {}),
    )


class Store:
    """The database as the log: documents, chunks and vectors are written here first."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._writing_sessions = sessionmaker(
            engine.execution_options(**{WRITES: True}), expire_on_commit=False
        )

    def session(self) -> Session:
        """A session for reads (a consistent snapshot; it never waits for writers)."""
        return self._sessions()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session in a transaction that holds the write lock from its first statement
        (SQLite: BEGIN IMMEDIATE), so what it reads cannot change before it commits.

        Every read-then-write goes through here: replacing a document reads the chunks it
        buries, and a stale read there left the index out of step with the database.
        """
        with self._writing_sessions() as session, session.begin():
            yield session

    # -- collections ---------------------------------------------------------------------

    def create_collection(self, spec: CollectionInfo) -> CollectionInfo:
        """Insert a collection (`spec.id` is ignored); refuses an existing name."""
        exists = CollectionExists(f"collection {spec.name!r} already exists")
        try:
            with self.writing() as session:
                if session.scalar(select(Collection.id).where(Collection.name == spec.name)):
                    raise exists
                return self._add_collection(session, spec)
        except IntegrityError:  # created by another process between the check and the insert
            raise exists from None

    @staticmethod
    def _add_collection(session: Session, spec: CollectionInfo) -> CollectionInfo:
        row = Collection(
            name=spec.name,
            model=spec.model,
            dimension=spec.dimension,
            chunk_tokens=spec.chunk_tokens,
            chunk_overlap=spec.chunk_overlap,
            document_instruction=spec.document_instruction,
            query_instruction=spec.query_instruction,
            index_settings=spec.index_settings,
        )
        session.add(row)
        session.flush()
        return _info(row)

    def find_collection(self, name: str) -> CollectionInfo | None:
        if not storable(name):
            return None
        with self.session() as session:
            row = session.scalar(select(Collection).where(Collection.name == name))
            return _info(row) if row else None

    def get_collection(self, name: str) -> CollectionInfo:
        found = self.find_collection(name)
        if found is None:
            raise CollectionNotFound(name)
        return found

    def collections(self) -> list[CollectionInfo]:
        """Every collection's settings (no counts: cheap enough to poll)."""
        with self.session() as session:
            return [
                _info(row) for row in session.scalars(select(Collection).order_by(Collection.id))
            ]

    def list_collections(self, name: str | None = None) -> list[CollectionStats]:
        """Every collection (or only the one called `name`) with its document, language and
        chunk counts, by name."""
        collections = select(Collection).order_by(Collection.name)
        documents = select(Document.collection_id, Document.lang, func.count()).group_by(
            Document.collection_id, Document.lang
        )
        chunks_counted = select(Chunk.collection_id, func.count()).group_by(Chunk.collection_id)
        if name is not None and not storable(name):  # no collection has it; PostgreSQL
            return []  # would refuse the NUL rather than match nothing
        if name is not None:
            wanted = select(Collection.id).where(Collection.name == name).scalar_subquery()
            collections = collections.where(Collection.name == name)
            documents = documents.where(Document.collection_id == wanted)
            chunks_counted = chunks_counted.where(Chunk.collection_id == wanted)
        with self.session() as session:
            languages: dict[int, dict[str, int]] = {}
            for collection_id, lang, n in session.execute(documents):
                languages.setdefault(collection_id, {})[lang] = int(n)
            chunks = dict(session.execute(chunks_counted).all())
            return [
                CollectionStats(
                    info=_info(row),
                    documents=sum(languages.get(row.id, {}).values()),
                    chunks=int(chunks.get(row.id, 0)),
                    languages=dict(sorted(languages.get(row.id, {}).items())),
                )
                for row in session.scalars(collections)
            ]

    def delete_collection(self, name: str) -> None:
        """Remove a collection with all its documents, chunks and jobs."""
        with self.writing() as session:
            row = session.scalar(select(Collection).where(Collection.name == name))
            if row is None:
                raise CollectionNotFound(name)
            session.delete(row)

    # -- documents -----------------------------------------------------------------------

    def find_document(self, collection_id: int, external_id: str) -> DocumentRecord | None:
        if not storable(external_id):
            return None
        with self.session() as session:
            row = session.scalar(self._document_query(collection_id, external_id))
            return _record(row) if row else None

    def find_documents(
        self, collection_id: int, external_ids: Sequence[str]
    ) -> dict[str, DocumentRecord]:
        """The stored documents among `external_ids`, by id, in one query."""
        if not external_ids:
            return {}
        query = select(Document).where(
            Document.collection_id == collection_id, Document.external_id.in_(external_ids)
        )
        with self.session() as session:
            return {row.external_id: _record(row) for row in session.scalars(query)}

    def write_document(
        self, collection_id: int, record: DocumentRecord, chunks: Sequence[ChunkRecord]
    ) -> bool:
        """Store a document with its chunks and vectors in one transaction.

        An existing document with the same external id is replaced (its old chunks become
        tombstones for the indexes). Returns True when a document was replaced.
        """
        with self.writing() as session:
            self._lock_log(session, collection_id)
            row = session.scalar(self._document_query(collection_id, record.external_id))
            replaced = row is not None
            if row is None:
                row = Document(collection_id=collection_id, external_id=record.external_id)
                session.add(row)
            else:
                self._bury_chunks(session, collection_id, row.id)
            self._apply_fields(row, record)
            row.content_hash = record.content_hash
            row.text = record.text
            session.flush()
            session.add_all(
                Chunk(
                    document_id=row.id,
                    collection_id=collection_id,
                    ordinal=chunk.ordinal,
                    char_start=chunk.start,
                    char_end=chunk.end,
                    token_count=chunk.token_count,
                    lang=chunk.lang,
                    text=chunk.text,
                    vector=np.asarray(chunk.vector, dtype="<f4").tobytes(),
                )
                for chunk in chunks
            )
            return replaced

    def update_document_fields(self, collection_id: int, record: DocumentRecord) -> bool:
        """Change title, url, language and metadata of a document whose stored text is still
        `record`'s; False when it is not (replaced or deleted since it was compared), so the
        caller writes the whole document instead of mixing its fields into another's text.

        When the language or metadata change, its chunks are written anew (same texts and
        vectors, new ids; the old ones become tombstones) so that every index's filter table,
        which follows the chunk log, sees them."""
        with self.writing() as session:
            self._lock_log(session, collection_id)
            row = session.scalar(
                self._document_query(collection_id, record.external_id).where(
                    Document.content_hash == record.content_hash
                )
            )
            if row is None:
                return False
            filtered_by_changes = row.lang != record.lang or json.dumps(
                row.meta, sort_keys=True
            ) != json.dumps(record.metadata, sort_keys=True)  # as stored: 1 and true differ
            self._apply_fields(row, record)
            if filtered_by_changes:
                self._renew_chunks(session, collection_id, row.id)
            return True

    def delete_document(self, collection_id: int, external_id: str) -> bool:
        """Remove a document and its chunks; returns False if there was none."""
        if not storable(external_id):
            return False
        with self.writing() as session:
            self._lock_log(session, collection_id)
            row = session.scalar(self._document_query(collection_id, external_id))
            if row is None:
                return False
            self._bury_chunks(session, collection_id, row.id)
            session.delete(row)
            return True

    def has_documents(self) -> bool:
        """Whether any collection holds a document (one indexed row read, not a count)."""
        with self.session() as session:
            return session.scalar(select(Document.id).limit(1)) is not None

    def count_documents(self, collection_id: int) -> int:
        with self.session() as session:
            query = select(func.count()).where(Document.collection_id == collection_id)
            return int(session.scalar(query) or 0)

    @staticmethod
    def _document_query(collection_id: int, external_id: str) -> Any:
        return select(Document).where(
            Document.collection_id == collection_id, Document.external_id == external_id
        )

    @staticmethod
    def _apply_fields(row: Document, record: DocumentRecord) -> None:
        row.title = record.title
        row.url = record.url
        row.lang = record.lang
        row.meta = record.metadata

    @staticmethod
    def _lock_log(session: Session, collection_id: int) -> None:
        """Serialise a collection's chunk and tombstone writes until this transaction ends,
        and make sure the collection still exists (and stays until then).

        Indexes catch up by "ids above my watermark", which holds only if ids become visible
        in id order. SQLite has one writer at a time (`Store.writing`); on PostgreSQL two
        workers could commit out of order (ids 13-15 before 10-12) and a replica reading in
        between would skip 10-12 for good. A transaction-scoped advisory lock per collection,
        taken before any id is drawn, makes commit order follow id order. Transactions are
        short (embedding happens before), so workers still embed in parallel. The shared row
        lock on the collection makes a concurrent delete of it wait for this write.
        """
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select(func.pg_advisory_xact_lock(LOG_LOCK_SPACE, collection_id)))
        found = session.scalar(
            select(Collection.id).where(Collection.id == collection_id).with_for_update(read=True)
        )
        if found is None:
            raise CollectionDeleted()

    @staticmethod
    def _bury_chunks(session: Session, collection_id: int, document_id: int) -> None:
        """Delete a document's chunks, leaving a tombstone for each so indexes drop them."""
        ids = session.scalars(select(Chunk.id).where(Chunk.document_id == document_id)).all()
        session.add_all(ChunkTombstone(collection_id=collection_id, chunk_id=i) for i in ids)
        session.execute(delete(Chunk).where(Chunk.document_id == document_id))

    @classmethod
    def _renew_chunks(cls, session: Session, collection_id: int, document_id: int) -> None:
        """Replace a document's chunks by copies under new ids."""
        copied = ("ordinal", "char_start", "char_end", "token_count", "lang", "text", "vector")
        copies = [
            Chunk(document_id=document_id, collection_id=collection_id,
                  **{name: getattr(chunk, name) for name in copied})
            for chunk in session.scalars(
                select(Chunk).where(Chunk.document_id == document_id).order_by(Chunk.ordinal)
            )
        ]
        cls._bury_chunks(session, collection_id, document_id)
        session.add_all(copies)

    # -- vectors for the indexes ---------------------------------------------------------

    def chunks_after(
        self,
        collection_id: int,
        after_chunk_id: int,
        dimension: int,
        *,
        with_vectors: bool = True,
        up_to: int | None = None,
        page_size: int = 4096,
    ) -> Iterator[ChunkPage]:
        """Pages of chunks with ids above `after_chunk_id` (and at most `up_to`), in id order."""
        columns = [Chunk.id, Chunk.lang, Chunk.document_id, Document.lang,
                   cast(Document.meta, Text)]
        if with_vectors:
            columns.append(Chunk.vector)
        cursor = after_chunk_id
        while True:
            query = (
                select(*columns)
                .join(Document, Chunk.document_id == Document.id)
                .where(Chunk.collection_id == collection_id, Chunk.id > cursor)
                .order_by(Chunk.id)
                .limit(page_size)
            )
            if up_to is not None:
                query = query.where(Chunk.id <= up_to)
            with self.session() as session:
                rows: list[Any] = list(session.execute(query).all())
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = None
            if with_vectors:
                blob = b"".join(r[5] for r in rows)
                vectors = np.frombuffer(blob, dtype="<f4").reshape(len(rows), dimension)
            yield ChunkPage(
                ids=ids,
                vectors=vectors,
                langs=[r[1] for r in rows],
                documents=[r[2] for r in rows],
                document_langs=[r[3] for r in rows],
                metadata_json=[r[4] for r in rows],
            )
            cursor = int(ids[-1])

    def tombstones_after(self, collection_id: int, after_seq: int) -> tuple[np.ndarray, int]:
        """Chunk ids removed since `after_seq`, and the newest sequence number seen."""
        with self.session() as session:
            rows = session.execute(
                select(ChunkTombstone.seq, ChunkTombstone.chunk_id)
                .where(
                    ChunkTombstone.collection_id == collection_id, ChunkTombstone.seq > after_seq
                )
                .order_by(ChunkTombstone.seq)
            ).all()
        if not rows:
            return np.zeros(0, dtype=np.int64), after_seq
        return np.array([r[1] for r in rows], dtype=np.int64), int(rows[-1][0])

    def newest_tombstone(self, collection_id: int) -> int:
        with self.session() as session:
            query = select(func.max(ChunkTombstone.seq)).where(
                ChunkTombstone.collection_id == collection_id
            )
            return int(session.scalar(query) or 0)

    def chunk_hits(self, chunk_ids: Sequence[int]) -> dict[int, ChunkHit]:
        """Chunks with their documents' metadata, keyed by chunk id; missing ids are absent.

        Selects plain columns rather than ORM objects: this runs on every search.
        """
        columns = (
            Chunk.id,
            Document.external_id,
            Document.title,
            Document.url,
            Document.lang,
            Document.meta,
            Chunk.lang,
            Chunk.text,
            Chunk.char_start,
            Chunk.char_end,
        )
        hits: dict[int, ChunkHit] = {}
        with self.engine.connect() as connection:
            for page in range(0, len(chunk_ids), SQL_IN_PAGE):
                rows = connection.execute(
                    select(*columns)
                    .join(Document, Chunk.document_id == Document.id)
                    .where(Chunk.id.in_(list(chunk_ids[page : page + SQL_IN_PAGE])))
                )
                hits.update(
                    (
                        chunk_id,
                        ChunkHit(
                            chunk_id=chunk_id,
                            document_id=external_id,
                            title=title,
                            url=url,
                            lang=lang,
                            metadata=dict(meta or {}),
                            chunk_lang=chunk_lang,
                            text=text,
                            start=start,
                            end=end,
                        ),
                    )
                    for chunk_id, external_id, title, url, lang, meta, chunk_lang, text, start, end
                    in rows
                )
        return hits
