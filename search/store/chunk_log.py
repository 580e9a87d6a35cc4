"""The chunk log the indexes follow: chunks in id order, tombstones of removed ones, and the
lock that makes ids visible in the order they were drawn."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from sqlalchemy import BindParameter, Text, bindparam, cast, delete, func, null, select
from sqlalchemy.orm import Session

from search.errors import CollectionDeleted
from search.store.records import ChunkHit, ChunkPage, ChunkRecord, CollectionInfo
from search.store.sessions import Sessions
from search.store.tables import Chunk, ChunkTombstone, Collection, Document

SQL_IN_PAGE = 900  # ids per IN (...) query, well under every database's parameter limit
_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
_VECTORS = select(Chunk.id, Chunk.vector).where(Chunk.id.in_(_IDS))
# What a search reads of every candidate chunk (its metadata only to group by it), and of
# the few it shows.
_HITS = (
    select(
        Chunk.id, Document.external_id, Document.title, Document.lang, Chunk.lang,
        Chunk.char_start, Chunk.char_end, Document.translation_set, Chunk.document_id,
    )
    .join(Document, Chunk.document_id == Document.id)
    .where(Chunk.id.in_(_IDS))
)
_HITS_WITH_METADATA = _HITS.add_columns(Document.meta)
_SHOWN = (
    select(Chunk.id, Chunk.text, Document.url, Document.meta)
    .join(Document, Chunk.document_id == Document.id)
    .where(Chunk.id.in_(_IDS))
)
# A document's parts (up to 10,000 pages or sections) are read once per document, not once
# for each of its chunks among the hits.
_PARTS = select(Document.id, Document.parts).where(Document.id.in_(_IDS))
_COLLECTION: BindParameter[int] = bindparam("collection")
_GENERATION: BindParameter[int] = bindparam("generation")
_HEAD = select(
    select(func.max(Chunk.id))
    .where(Chunk.collection_id == _COLLECTION, Chunk.generation == _GENERATION)
    .scalar_subquery(),
    select(func.max(ChunkTombstone.seq))
    .where(ChunkTombstone.collection_id == _COLLECTION)
    .scalar_subquery(),
)
LOG_LOCK_SPACE = 0x786C  # "xl": first key of the per-collection advisory lock on PostgreSQL


def lock_log(session: Session, collection_id: int) -> int:
    """Serialise a collection's chunk and tombstone writes until this transaction ends,
    and make sure the collection still exists (and stays until then).

    Indexes catch up by "ids above my watermark", which holds only if ids become visible
    in id order. SQLite has one writer at a time (`Store.writing`); on PostgreSQL two
    workers could commit out of order (ids 13-15 before 10-12) and a replica reading in
    between would skip 10-12 for good. A transaction-scoped advisory lock per collection,
    taken before any id is drawn, makes commit order follow id order. Transactions are
    short (embedding happens before), so workers still embed in parallel. The shared row
    lock on the collection makes a concurrent delete of it wait for this write.

    Returns the collection's active generation, which cannot change until this transaction
    ends (a switch takes this lock too).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(LOG_LOCK_SPACE, collection_id)))
    found = session.scalar(
        select(Collection.generation)
        .where(Collection.id == collection_id)
        .with_for_update(read=True)
    )
    if found is None:
        raise CollectionDeleted()
    return int(found)


def chunk_rows(
    document_id: int, collection_id: int, generation: int, chunks: Sequence[ChunkRecord]
) -> list[dict[str, Any]]:
    """The rows that store `chunks` of a document in one generation."""
    return [
        {
            "document_id": document_id,
            "collection_id": collection_id,
            "generation": generation,
            "ordinal": chunk.ordinal,
            "char_start": chunk.start,
            "char_end": chunk.end,
            "token_count": chunk.token_count,
            "lang": chunk.lang,
            "text": chunk.text,
            "vector": np.asarray(chunk.vector, dtype="<f4").tobytes(),
        }
        for chunk in chunks
    ]


def bury_chunks(session: Session, collection_id: int, document_id: int) -> None:
    """Delete a document's chunks (in every generation: a migration makes the new ones
    again), leaving a tombstone for each so indexes drop them."""
    ids = session.scalars(select(Chunk.id).where(Chunk.document_id == document_id)).all()
    session.add_all(ChunkTombstone(collection_id=collection_id, chunk_id=i) for i in ids)
    session.execute(delete(Chunk).where(Chunk.document_id == document_id))


def renew_chunks(session: Session, collection_id: int, document_id: int) -> None:
    """Replace a document's chunks (in every generation) by copies under new ids."""
    copied = (
        "generation", "ordinal", "char_start", "char_end", "token_count", "lang", "text", "vector"
    )
    copies = [
        Chunk(document_id=document_id, collection_id=collection_id,
              **{name: getattr(chunk, name) for name in copied})
        for chunk in session.scalars(
            select(Chunk).where(Chunk.document_id == document_id)
            .order_by(Chunk.generation, Chunk.ordinal)
        )
    ]
    bury_chunks(session, collection_id, document_id)
    session.add_all(copies)


class ChunkLog(Sessions):
    """Reads of the chunk log: what the indexes catch up from and what searches show."""

    def chunks_after(
        self,
        collection: CollectionInfo,
        after_chunk_id: int,
        *,
        with_vectors: bool = True,
        with_texts: bool = False,
        up_to: int | None = None,
        page_size: int = 4096,
    ) -> Iterator[ChunkPage]:
        """Pages of the chunks of the collection's generation (`collection.generation`) with
        ids above `after_chunk_id` (and at most `up_to`), in id order."""
        dimension = collection.dimension
        columns = [Chunk.id, Chunk.lang, Chunk.document_id, Document.lang,
                   cast(Document.meta, Text), Chunk.vector if with_vectors else null(),
                   Chunk.text if with_texts else null()]
        cursor = after_chunk_id
        while True:
            query = (
                select(*columns)
                .join(Document, Chunk.document_id == Document.id)
                .where(Chunk.collection_id == collection.id,
                       Chunk.generation == collection.generation, Chunk.id > cursor)
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
                texts=[r[6] for r in rows] if with_texts else None,
            )
            cursor = int(ids[-1])

    def log_head(self, collection: CollectionInfo) -> tuple[int, int]:
        """The newest chunk id of the collection's generation and the newest tombstone
        sequence number of the collection (0 where none): one indexed lookup each, so a
        caught-up index learns it is current for little."""
        with self.engine.connect() as connection:
            newest_chunk, newest_tombstone = connection.execute(
                _HEAD, {"collection": collection.id, "generation": collection.generation}
            ).one()
        return int(newest_chunk or 0), int(newest_tombstone or 0)

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

    def chunk_vectors(self, chunk_ids: Sequence[int], dimension: int) -> dict[int, np.ndarray]:
        """The stored vectors of these chunks, by id; missing ids are absent."""
        return {
            chunk_id: np.frombuffer(blob, dtype="<f4", count=dimension)
            for chunk_id, blob in self._by_ids(_VECTORS, chunk_ids)
        }

    def chunk_hits(
        self, chunk_ids: Sequence[int], with_metadata: bool = False
    ) -> dict[int, ChunkHit]:
        """Chunks with their documents, keyed by chunk id; missing ids are absent. Their
        texts, URLs and parts are left empty, and their metadata unless `with_metadata`: a
        search reads many candidates and shows few (`with_texts` fills those in).

        Selects plain columns rather than ORM objects: this runs on every search.
        """
        statement = _HITS_WITH_METADATA if with_metadata else _HITS
        return {
            row[0]: ChunkHit(
                chunk_id=row[0],
                document_id=row[1],
                title=row[2],
                url=None,
                lang=row[3],
                metadata=dict(row[9] or {}) if with_metadata else {},
                chunk_lang=row[4],
                text="",
                start=row[5],
                end=row[6],
                document_row=row[8],
                translation_set=row[7],
            )
            for row in self._by_ids(statement, chunk_ids)
        }

    def with_texts(self, hits: Sequence[ChunkHit]) -> list[ChunkHit]:
        """`hits` with their chunks' texts, their documents' URLs, metadata and parts."""
        shown = {row[0]: row for row in self._by_ids(_SHOWN, [hit.chunk_id for hit in hits])}
        parts = dict(self._by_ids(_PARTS, sorted({hit.document_row for hit in hits})))
        filled = []
        for hit in hits:
            _, text, url, meta = shown.get(hit.chunk_id, (0, "", None, None))
            filled.append(replace(hit, text=text, url=url, metadata=dict(meta or {}),
                                  parts=parts.get(hit.document_row)))
        return filled

    def _by_ids(self, statement: Any, ids: Sequence[int]) -> list[Any]:
        """The rows of a statement built once over `:ids` (what every search runs: no
        statement is built or compiled per call), `SQL_IN_PAGE` ids at a time."""
        rows: list[Any] = []
        with self.engine.connect() as connection:
            for page in range(0, len(ids), SQL_IN_PAGE):
                wanted = [int(i) for i in ids[page : page + SQL_IN_PAGE]]
                rows += connection.execute(statement, {"ids": wanted}).all()
        return rows
