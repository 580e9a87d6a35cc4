"""Documents: look up, write with their chunks and vectors, update fields, delete.

Every write takes the collection's log lock first (`search.store.chunk_log.lock_log`), so the
indexes that follow the chunk log never miss a write.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from search.errors import GenerationChanged
from search.store.chunk_log import bury_chunks, chunk_rows, lock_log, renew_chunks
from search.store.records import ChunkRecord, DocumentRecord, detached, storable
from search.store.sessions import Sessions
from search.store.tables import Chunk, Document

# The metadata fields by which a user links translations themselves: the id of the original,
# or any name the copies share.
TRANSLATION_KEYS = ("translation_of", "translation_group")
KEY_LENGTH = 512  # the column's width; longer keys are stored as their digest


def document_record(row: Document) -> DocumentRecord:
    return detached(DocumentRecord, row, metadata=dict(row.meta or {}))


def translation_key(metadata: dict[str, Any]) -> str | None:
    """The user's own translation link in `metadata`, if it holds one (a non-empty string)."""
    for field in TRANSLATION_KEYS:
        value = metadata.get(field)
        if isinstance(value, str) and value:
            if len(value) > KEY_LENGTH:
                return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()
            return value
    return None


def unlink_translations(session: Session, collection_id: int, row: Document) -> None:
    """Mark the document and the rest of its translation set as not linked yet: a copy that
    changed (or went) may have been what held the others together."""
    if row.translation_set is not None:
        session.execute(
            update(Document)
            .where(Document.collection_id == collection_id,
                   Document.translation_set == row.translation_set)
            .values(translation_set=None)
        )
    row.translation_set = None


class DocumentRepository(Sessions):
    """The documents table and the chunks written with each document."""

    def find_document(self, collection_id: int, external_id: str) -> DocumentRecord | None:
        if not storable(external_id):
            return None
        with self.session() as session:
            row = session.scalar(self._document_query(collection_id, external_id))
            return document_record(row) if row else None

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
            return {row.external_id: document_record(row) for row in session.scalars(query)}

    def write_document(
        self,
        collection_id: int,
        record: DocumentRecord,
        chunks: Sequence[ChunkRecord],
        generation: int | None = None,
    ) -> bool:
        """Store a document with its chunks and vectors in one transaction.

        An existing document with the same external id is replaced (its old chunks become
        tombstones for the indexes). Returns True when a document was replaced.
        """
        return self.write_documents(collection_id, [(record, chunks)], generation)[0]

    def write_documents(
        self,
        collection_id: int,
        documents: Sequence[tuple[DocumentRecord, Sequence[ChunkRecord]]],
        generation: int | None = None,
    ) -> list[bool]:
        """`write_document` for many documents (distinct ids) in one transaction: a batch
        of ingestion is a handful of statements, not a few per document. All or none of
        them are written; returns, for each, whether it replaced a stored document.

        The chunks go to the collection's active generation; when the vectors were made for
        `generation` and the collection has switched since, GenerationChanged is raised."""
        if not documents:
            return []
        wanted = [record.external_id for record, _ in documents]
        if len(set(wanted)) != len(wanted):
            raise ValueError("write_documents takes each document id once")
        with self.writing() as session:
            active = lock_log(session, collection_id)
            if generation is not None and generation != active:
                raise GenerationChanged(
                    f"the collection switched to generation {active} while these documents "
                    f"were embedded for generation {generation}; their texts were not "
                    "stored: send them again (to a process with the new generation's model)"
                )
            stored = {
                row.external_id: row
                for row in session.scalars(
                    select(Document).where(
                        Document.collection_id == collection_id,
                        Document.external_id.in_(wanted),
                    )
                )
            }
            rows = []
            for record, _ in documents:
                row = stored.get(record.external_id)
                if row is None:
                    row = Document(collection_id=collection_id, external_id=record.external_id)
                    session.add(row)
                else:
                    bury_chunks(session, collection_id, row.id)
                    unlink_translations(session, collection_id, row)
                self._apply_fields(row, record)
                row.content_hash = record.content_hash
                row.text = record.text
                rows.append(row)
            session.flush()  # the new documents' ids
            values = [
                value
                for row, (_, chunks) in zip(rows, documents, strict=True)
                for value in chunk_rows(row.id, collection_id, active, chunks)
            ]
            if values:
                session.execute(insert(Chunk), values)
            return [record.external_id in stored for record, _ in documents]

    def update_document_fields(self, collection_id: int, record: DocumentRecord) -> bool:
        """Change title, url, language and metadata of a document whose stored text is still
        `record`'s; False when it is not (replaced or deleted since it was compared), so the
        caller writes the whole document instead of mixing its fields into another's text.

        When the language or metadata change, its chunks are written anew (same texts and
        vectors, new ids; the old ones become tombstones) so that every index's filter table,
        which follows the chunk log, sees them."""
        with self.writing() as session:
            lock_log(session, collection_id)
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
                renew_chunks(session, collection_id, row.id)
                unlink_translations(session, collection_id, row)
            return True

    def delete_document(self, collection_id: int, external_id: str) -> bool:
        """Remove a document and its chunks; returns False if there was none."""
        if not storable(external_id):
            return False
        with self.writing() as session:
            lock_log(session, collection_id)
            row = session.scalar(self._document_query(collection_id, external_id))
            if row is None:
                return False
            bury_chunks(session, collection_id, row.id)
            unlink_translations(session, collection_id, row)
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
        row.parts = record.parts
        row.translation_key = translation_key(record.metadata)
