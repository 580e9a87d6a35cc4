"""Turns documents into stored chunks and vectors: detect language, chunk, embed, write.

Each document is written in its own transaction with all its chunks and vectors. A document
whose text is unchanged is never embedded again; only changed fields are updated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from indexer.chunking import Chunk, Chunker
from indexer.readers import ReadError
from search.collections import check_model
from search.embedders import Embedder
from search.errors import XlsearchError
from search.language import detect_language
from search.schemas import DocumentIn
from search.store.repository import ChunkRecord, CollectionInfo, DocumentRecord, Store

Outcome = Literal["created", "replaced", "updated", "unchanged"]


@dataclass(frozen=True)
class IngestResult:
    id: str
    status: Outcome
    chunks: int
    tokens: int


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_id(document: DocumentIn) -> str:
    """The caller's id, or one derived from the text so the same text is the same document."""
    return document.id or f"sha256:{content_hash(document.text)[:32]}"


@dataclass
class _Planned:
    record: DocumentRecord
    chunks: list[Chunk]
    chunk_langs: list[str]


class Ingestor:
    """Ingests batches of documents into one collection."""

    def __init__(self, store: Store, embedder: Embedder, collection: CollectionInfo) -> None:
        check_model(collection, embedder)
        self._store = store
        self._embedder = embedder
        self._collection = collection
        self._chunker = Chunker(
            embedder.count_tokens, collection.chunk_tokens, collection.chunk_overlap
        )

    def ingest(self, documents: Sequence[DocumentIn]) -> list[IngestResult]:
        """Store a batch; chunks of the whole batch are embedded together for throughput.

        Later documents with the id of an earlier one in the same batch win; the result
        list still has one entry per input document, in input order.
        """
        latest = {document_id(doc): doc for doc in documents}
        results: dict[str, IngestResult] = {}
        planned: list[_Planned] = []
        for doc_id, doc in latest.items():
            record = self._record(doc_id, doc)
            existing = self._store.find_document(self._collection.id, doc_id)
            if existing is not None and existing.content_hash == record.content_hash:
                unchanged = existing == record
                if not unchanged:
                    self._store.update_document_fields(self._collection.id, record)
                results[doc_id] = IngestResult(
                    doc_id, "unchanged" if unchanged else "updated", 0, 0
                )
                continue
            chunks = self._chunker.split(doc.text)
            chunk_langs = [
                record.lang if len(chunks) == 1 else detect_language(chunk.text) for chunk in chunks
            ]
            planned.append(_Planned(record, chunks, chunk_langs))

        vectors = self._embedder.embed_documents(
            [chunk.text for plan in planned for chunk in plan.chunks],
            instruction=self._collection.document_instruction,
            dimension=self._collection.dimension,
        )
        offset = 0
        for plan in planned:
            rows = [
                ChunkRecord(
                    ordinal=n,
                    start=chunk.start,
                    end=chunk.end,
                    token_count=chunk.token_count,
                    lang=lang,
                    text=chunk.text,
                    vector=vectors[offset + n],
                )
                for n, (chunk, lang) in enumerate(zip(plan.chunks, plan.chunk_langs, strict=True))
            ]
            offset += len(rows)
            replaced = self._store.write_document(self._collection.id, plan.record, rows)
            doc_id = plan.record.external_id
            results[doc_id] = IngestResult(
                doc_id,
                "replaced" if replaced else "created",
                len(rows),
                sum(chunk.token_count for chunk in plan.chunks),
            )
        return [results[document_id(doc)] for doc in documents]

    def _record(self, doc_id: str, doc: DocumentIn) -> DocumentRecord:
        return DocumentRecord(
            external_id=doc_id,
            text=doc.text,
            title=doc.title,
            url=doc.url,
            lang=doc.lang or detect_language(doc.text),
            content_hash=content_hash(doc.text),
            metadata=doc.metadata,
        )


@dataclass
class IngestSummary:
    """Totals of one ingestion run; `errors` pairs each failed item with its reason."""

    created: int = 0
    replaced: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    tokens: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def documents(self) -> int:
        return self.created + self.replaced + self.updated + self.unchanged

    def add(self, result: IngestResult) -> None:
        setattr(self, result.status, getattr(self, result.status) + 1)
        self.chunks += result.chunks
        self.tokens += result.tokens


def ingest_stream(
    items: Iterable[DocumentIn | ReadError],
    ingestor: Ingestor,
    batch_size: int,
    on_progress: Callable[[IngestSummary, int], None] | None = None,
) -> IngestSummary:
    """Ingest readers' output in batches; a failing batch is reported and the rest goes on.

    `on_progress(summary, items_done)` is called after every read error and every batch.
    """
    summary = IngestSummary()
    batch: list[DocumentIn] = []
    done = 0

    def flush() -> None:
        nonlocal done
        try:
            for result in ingestor.ingest(batch):
                summary.add(result)
        except XlsearchError as exc:
            summary.errors.extend((document_id(doc), str(exc)) for doc in batch)
        done += len(batch)
        batch.clear()
        if on_progress:
            on_progress(summary, done)

    for item in items:
        if isinstance(item, ReadError):
            summary.errors.append((item.source, item.reason))
            done += 1
            if on_progress:
                on_progress(summary, done)
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return summary
