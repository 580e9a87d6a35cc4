"""Turns documents into stored chunks and vectors: detect language, chunk, embed, write.

Each document is written in its own transaction with all its chunks and vectors. A document
whose text is unchanged is never embedded again; only changed fields are updated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Literal, TypeVar

from indexer.chunking import Chunk, Chunker
from indexer.readers import ReadError
from search.collections import check_model
from search.embedders import Embedder
from search.errors import XlsearchError
from search.language import detect_language
from search.schemas import DocumentIn
from search.store.repository import ChunkRecord, CollectionInfo, DocumentRecord, Store

Outcome = Literal["created", "replaced", "updated", "unchanged"]
T = TypeVar("T")


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

    items: int = 0
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


@dataclass(frozen=True)
class BatchReport:
    """One handled batch: how many source items it consumed and which of them failed."""

    items: int
    errors: list[tuple[str, str]]


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def ingest_stream(
    items: Iterable[DocumentIn | ReadError],
    ingestor: Ingestor,
    batch_size: int,
    on_batch: Callable[[IngestSummary, BatchReport], bool] | None = None,
) -> IngestSummary:
    """Ingest readers' output in batches of `batch_size` items, in order.

    Read errors and documents that fail are reported and the rest goes on. After each batch
    `on_batch(summary, report)` is called once the batch is committed; returning True stops.
    Items are consumed strictly in order, so a caller can resume after `summary.items`.
    """
    summary = IngestSummary()
    for batch in batched(items, batch_size):
        errors = [(item.source, item.reason) for item in batch if isinstance(item, ReadError)]
        documents = [item for item in batch if isinstance(item, DocumentIn)]
        try:
            for result in ingestor.ingest(documents):
                summary.add(result)
        except XlsearchError as exc:
            errors.extend((document_id(doc), str(exc)) for doc in documents)
        summary.items += len(batch)
        summary.errors.extend(errors)
        if on_batch and on_batch(summary, BatchReport(len(batch), errors)):
            break
    return summary
