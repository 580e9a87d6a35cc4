"""Turns documents into stored chunks and vectors: detect language, chunk, embed, write.

A batch's documents are written with all their chunks and vectors in one transaction (a
document the database refuses is written alone and fails alone). A document whose text is
unchanged is never embedded again; only changed fields are updated.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any, Literal, TypeVar

import numpy as np
from sqlalchemy.exc import DataError, IntegrityError

from indexer.chunking import Chunk, Chunker
from indexer.readers import ReadError
from search.collections import check_model
from search.embedders import Embedder
from search.engine import Engine
from search.errors import ModelMismatch, XlsearchError
from search.language import LanguageDetector
from search.schemas import DocumentIn
from search.store.records import ChunkRecord, CollectionInfo, DocumentRecord
from search.store.repository import Store

log = logging.getLogger(__name__)

Outcome = Literal["created", "replaced", "updated", "unchanged", "failed"]
T = TypeVar("T")
R = TypeVar("R")


# Chunks per embedder call when the model runs on this CPU (about a second of work here), so
# that a job told to stop stops within about that long; a GPU or a server gets the batch.
LOCAL_EMBED_SLICE = 8
# Items in a stream's first sized batch, before the model's rate is known, and the fewest a
# sized batch holds: smaller batches cost more in commits and job updates than they save.
FIRST_BATCH = 8


class IngestionStopped(Exception):
    """A batch was abandoned before anything of it was written (`should_stop` said so)."""


@dataclass(frozen=True)
class IngestResult:
    id: str
    status: Outcome
    chunks: int
    tokens: int
    error: str | None = None  # why, when the status is "failed"


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_id(document: DocumentIn) -> str:
    """The caller's id, or one derived from the text so the same text is the same document."""
    return document.id or f"sha256:{content_hash(document.text)[:32]}"


@dataclass(frozen=True)
class Draft:
    """One document's text-only work: its record (language detected) and its chunks."""

    record: DocumentRecord
    chunks: list[Chunk]
    chunk_langs: list[str]


@dataclass(frozen=True)
class PreparedBatch:
    """A batch after the work that needs no model and writes nothing."""

    documents: list[DocumentIn]  # as given: the results follow this order
    latest: dict[str, DocumentIn]  # by id; a later duplicate id wins
    drafts: dict[str, Draft]  # documents whose text looked new: chunked
    kept: dict[str, DocumentRecord]  # documents whose text looked stored: not chunked


@dataclass(frozen=True)
class EmbeddedBatch:
    """A batch compared with what is stored, changed documents embedded, ready to write."""

    documents: list[DocumentIn]
    settled: dict[str, IngestResult]  # unchanged, or only title/url/lang/metadata changed
    updates: list[DocumentRecord]  # those metadata-only changes, applied by `write`
    to_write: list[Draft]
    vectors: np.ndarray  # rows follow the chunks of `to_write`, in order


class Ingestor:
    """Ingests batches of documents into one collection, in three steps that a pipeline can
    overlap: `prepare` (stored versions, chunks, languages), `embed` (what changed, compared
    with what is stored now) and `write` (one transaction per document)."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        collection: CollectionInfo,
        languages: LanguageDetector | None = None,
    ) -> None:
        check_model(collection, embedder)
        self._store = store
        self._embedder = embedder
        self._collection = collection
        self._languages = languages or LanguageDetector()
        self._chunker = Chunker(
            embedder.count_tokens, collection.chunk_tokens, collection.chunk_overlap
        )

    @classmethod
    def for_engine(cls, engine: Engine, collection: CollectionInfo) -> Ingestor:
        """The collection's ingestor on this process's store, model and language detector
        (how the CLI, the job worker and the API's `wait: true` all build it)."""
        return cls(engine.store, engine.embedder, collection, engine.languages)

    def ingest(self, documents: Sequence[DocumentIn]) -> list[IngestResult]:
        """Store a batch; chunks of the whole batch are embedded together for throughput.

        Later documents with the id of an earlier one in the same batch win; the result
        list still has one entry per input document, in input order.
        """
        return self.write(self.embed(self.prepare(documents)))

    def prepare(self, documents: Sequence[DocumentIn]) -> PreparedBatch:
        """Chunk and detect the languages of documents whose text is not stored yet.

        What is stored is read once for the batch; it is a hint only (a write still in
        flight may change it), and `embed` looks again. A document whose text looks stored
        keeps the stored language unless it gives one.
        """
        latest = {document_id(doc): doc for doc in documents}
        stored = self._store.find_documents(self._collection.id, list(latest))
        kept: dict[str, DocumentRecord] = {}
        for doc_id, doc in latest.items():
            found = stored.get(doc_id)
            if found is not None and found.content_hash == content_hash(doc.text):
                kept[doc_id] = self._record(doc_id, doc, doc.lang or found.lang)
        fresh = {doc_id: doc for doc_id, doc in latest.items() if doc_id not in kept}
        return PreparedBatch(list(documents), latest, self.drafts(fresh), kept)

    def drafts(self, documents: dict[str, DocumentIn]) -> dict[str, Draft]:
        """Chunks and languages, detected for all documents at once (those without a `lang`,
        then each chunk of those with several) so a pool of processes can share the work."""
        chunked = {doc_id: self._chunker.split(doc.text) for doc_id, doc in documents.items()}
        wanted = [doc.text for doc in documents.values() if not doc.lang]
        wanted += [c.text for chunks in chunked.values() if len(chunks) > 1 for c in chunks]
        found = iter(self._languages.detect(wanted))
        doc_langs = {doc_id: doc.lang or next(found) for doc_id, doc in documents.items()}
        drafts: dict[str, Draft] = {}
        for doc_id, doc in documents.items():
            chunks = chunked[doc_id]
            langs = [next(found) for _ in chunks] if len(chunks) > 1 else [doc_langs[doc_id]]
            record = self._record(doc_id, doc, doc_langs[doc_id])
            drafts[doc_id] = Draft(record, chunks, langs[: len(chunks)])
        return drafts

    def count_tokens(self, text: str) -> int:
        """The length of `text` in the model's tokens."""
        return self._chunker.count_tokens(text)

    @property
    def embeds_on_local_cpu(self) -> bool:
        """Whether the model runs on this machine's CPU (its time then grows with the texts)."""
        return self._embedder.runs_on_local_cpu

    def embed(
        self, batch: PreparedBatch, should_stop: Callable[[], bool] | None = None
    ) -> EmbeddedBatch:
        """Settle documents whose text is stored; embed the chunks of the others. Writes
        nothing, so a pipeline told to stop can drop the batch: `should_stop` is asked
        before each embedder call, and IngestionStopped raised when it says so."""
        settled: dict[str, IngestResult] = {}
        updates: list[DocumentRecord] = []
        to_write: list[Draft] = []
        changed_since: dict[str, DocumentIn] = {}
        stored = self._store.find_documents(self._collection.id, list(batch.latest))
        for doc_id in batch.latest:
            draft = batch.drafts.get(doc_id)
            record = draft.record if draft else batch.kept[doc_id]
            existing = stored.get(doc_id)
            if existing is not None and existing.content_hash == record.content_hash:
                unchanged = existing == record
                if not unchanged:
                    updates.append(record)
                settled[doc_id] = IngestResult(
                    doc_id, "unchanged" if unchanged else "updated", 0, 0
                )
            elif draft is not None:
                to_write.append(draft)
            else:  # looked stored when prepared; a write in flight has changed it since
                changed_since[doc_id] = batch.latest[doc_id]
        to_write += self.drafts(changed_since).values()
        vectors = self.vectors([c for d in to_write for c in d.chunks], should_stop)
        return EmbeddedBatch(batch.documents, settled, updates, to_write, vectors)

    def vectors(self, chunks: list[Chunk], should_stop: Callable[[], bool] | None) -> np.ndarray:
        """The chunks' vectors, in calls of `LOCAL_EMBED_SLICE` chunks on this CPU (so that a
        stop is heard between them), in one call elsewhere; their token counts go along."""
        step = LOCAL_EMBED_SLICE if self.embeds_on_local_cpu else max(1, len(chunks))
        parts = []
        for start in range(0, max(1, len(chunks)), step):
            if should_stop is not None and should_stop():
                raise IngestionStopped
            part = chunks[start:start + step]
            parts.append(self._embedder.embed_documents(
                [c.text for c in part],
                instruction=self._collection.document_instruction,
                dimension=self._collection.dimension,
                token_counts=[c.token_count for c in part],
            ))
        return np.concatenate(parts)

    def write(self, batch: EmbeddedBatch) -> list[IngestResult]:
        """Write the changed documents with their chunks and vectors (one transaction for
        the batch) and the metadata-only changes."""
        stale = [
            record.external_id
            for record in batch.updates
            if not self._store.update_document_fields(self._collection.id, record)
        ]
        results = dict(batch.settled)
        if stale:  # its text changed after it was compared: write it whole, as given
            given = {document_id(doc): doc for doc in batch.documents}
            results.update((r.id, r) for r in self.ingest([given[doc_id] for doc_id in stale]))
        documents, offset = [], 0
        for draft in batch.to_write:
            rows = [
                ChunkRecord(
                    ordinal=n,
                    start=chunk.start,
                    end=chunk.end,
                    token_count=chunk.token_count,
                    lang=lang,
                    text=chunk.text,
                    vector=batch.vectors[offset + n],
                )
                for n, (chunk, lang) in enumerate(zip(draft.chunks, draft.chunk_langs, strict=True))
            ]
            offset += len(rows)
            documents.append((draft.record, rows))
        for (record, rows), written in zip(documents, self._write_all(documents), strict=True):
            if isinstance(written, str):
                results[record.external_id] = IngestResult(
                    record.external_id, "failed", 0, 0, f"the database refused it: {written}"
                )
                continue
            results[record.external_id] = IngestResult(
                record.external_id,
                "replaced" if written else "created",
                len(rows),
                sum(row.token_count for row in rows),
            )
        return [results[document_id(doc)] for doc in batch.documents]

    def _write_all(
        self, documents: list[tuple[DocumentRecord, list[ChunkRecord]]]
    ) -> list[bool | str]:
        """Write the batch's documents in one transaction; per document, whether it replaced
        a stored one, or why the database refused it. Should the database refuse a row (a
        constraint, a value it cannot store), they are written one by one, so that the
        refused document fails alone and the others are written. Any other failure (a lock
        timeout, a lost connection) is raised at once."""
        try:
            return list(self._store.write_documents(
                self._collection.id, documents, self._collection.generation
            ))
        except (IntegrityError, DataError) as error:
            if len(documents) == 1:
                return [_refused(documents[0][0], error)]
            log.warning("the database refused a row of a batch (%s); writing its %d "
                        "documents one by one", error.orig, len(documents))
        written: list[bool | str] = []
        for record, rows in documents:
            try:
                written.append(self._store.write_document(
                    self._collection.id, record, rows, self._collection.generation
                ))
            except (IntegrityError, DataError) as error:
                written.append(_refused(record, error))
        return written

    def _record(self, doc_id: str, doc: DocumentIn, lang: str) -> DocumentRecord:
        return DocumentRecord(
            external_id=doc_id,
            text=doc.text,
            title=doc.title,
            url=doc.url,
            lang=lang,
            content_hash=content_hash(doc.text),
            metadata=doc.metadata,
            parts=[part.model_dump(exclude_none=True) for part in doc.parts] if doc.parts else None,
        )


def _refused(record: DocumentRecord, error: IntegrityError | DataError) -> str:
    """The first line of the database's reason for refusing a document, logged."""
    reason = (str(error.orig).strip() or type(error.orig).__name__).splitlines()[0]
    log.warning("the database refused document %r: %s", record.external_id, reason)
    return reason


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
        if result.status == "failed":
            self.errors.append((result.id, result.error or "failed"))
            return
        setattr(self, result.status, getattr(self, result.status) + 1)
        self.chunks += result.chunks
        self.tokens += result.tokens


@dataclass(frozen=True)
class BatchReport:
    """One handled batch: how many source items it consumed and which of them failed."""

    items: int
    errors: list[tuple[str, str]]


class BatchSizer:
    """How many items the next batch takes: at most `largest`, and with `seconds`, no more
    than the model embeds in about that long at the rate it has shown so far, so that a
    job's progress moves (and is saved) that often even on a slow CPU model, and no fewer
    than FIRST_BATCH (one CPU model call: batches of one document, which a busy machine
    produced without this floor, stalled the scale-out test). A sized stream starts with
    FIRST_BATCH items at most;
    `seconds=0` keeps every batch at `largest`.
    (The batch after the first is read ahead, before the first is measured: sizes follow
    the rate one batch late.)"""

    def __init__(self, largest: int, seconds: float = 0.0) -> None:
        self.largest = largest
        self.seconds = seconds
        self.size = min(largest, FIRST_BATCH) if seconds > 0 else largest

    def observe(self, items: int, seconds: float) -> None:
        """A batch of `items` took `seconds` to embed."""
        if self.seconds <= 0 or not items:
            return
        fits = items / seconds * self.seconds if seconds > 0 else self.largest
        self.size = min(self.largest, max(FIRST_BATCH, int(fits)))

    def batches(self, items: Iterable[T]) -> Iterator[list[T]]:
        """`items` in batches of the size wanted when each is taken."""
        iterator = iter(items)
        while batch := list(islice(iterator, self.size)):
            yield batch


class _InlineExecutor(Executor):
    """Runs each task at once in the caller's thread: the pipeline without overlap."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the future
            future.set_exception(exc)
        return future


def _executor(overlap: bool, name: str) -> Executor:
    return ThreadPoolExecutor(1, thread_name_prefix=name) if overlap else _InlineExecutor()


@dataclass
class _Flight:
    """One batch of source items on its way through the steps; `failure` ends it early."""

    items: int
    read_errors: list[tuple[str, str]]
    documents: list[DocumentIn]
    failure: str | None = None

    @classmethod
    def of(cls, items: list[DocumentIn | ReadError]) -> _Flight:
        errors = [(item.source, item.reason) for item in items if isinstance(item, ReadError)]
        documents = [item for item in items if isinstance(item, DocumentIn)]
        return cls(len(items), errors, documents)

    @property
    def ids(self) -> set[str]:
        return {document_id(doc) for doc in self.documents}

    def attempt(self, step: Callable[[Any], R], argument: Any) -> R | None:
        """Run one step; a domain error fails the whole batch (its documents are reported),
        except a switch of the collection's model, which stops the stream: the documents
        are for a process with the new model to embed, not failures."""
        if argument is None:
            return None
        try:
            return step(argument)
        except ModelMismatch:
            raise
        except XlsearchError as exc:
            self.failure = str(exc)
            return None

    @property
    def errors(self) -> list[tuple[str, str]]:
        if self.failure is None:
            return self.read_errors
        return self.read_errors + [(document_id(doc), self.failure) for doc in self.documents]


Written = tuple[_Flight, Future[list[IngestResult] | None]]


def ingest_stream(
    items: Iterable[DocumentIn | ReadError],
    ingestor: Ingestor,
    batch_size: int,
    on_batch: Callable[[IngestSummary, BatchReport], bool] | None = None,
    *,
    overlap: bool = False,
    should_stop: Callable[[], bool] | None = None,
    batch_seconds: float = 0.0,
) -> IngestSummary:
    """Ingest readers' output in batches of `batch_size` items, in order; with
    `batch_seconds`, of fewer where a model on this CPU would take longer than that (see
    BatchSizer; a GPU or an embedding server always gets whole batches: a call's time there
    is mostly its latency, which smaller batches would not shorten).

    Read errors and documents that fail are reported and the rest goes on. After each batch
    `on_batch(summary, report)` is called once the batch is committed; returning True stops,
    and nothing of a later batch is written. Batches are reported strictly in order, so a
    caller can resume after `summary.items`; a batch committed before an error is reported
    before the error is raised.

    With `overlap`, batch n+1 is read and prepared (in one thread) and batch n-1 is written
    (in another) while this thread embeds batch n, so a GPU or an embedding server does not
    wait for the CPU's work. A batch that shares a document id with the batch being written
    waits for that write, so it is compared with what is really stored. Without, each step
    runs in this thread and a batch is reported as soon as it is written; the next batch is
    read and prepared ahead all the same.

    `should_stop` is asked while a batch is embedded (a job cancelled, a worker told to
    stop): when it says so, that batch is dropped unwritten and the stream ends, with the
    batches before it committed and reported.
    """
    summary = IngestSummary()
    sizer = BatchSizer(batch_size, batch_seconds if ingestor.embeds_on_local_cpu else 0.0)
    batches = sizer.batches(items)

    def take_next() -> tuple[_Flight, PreparedBatch | None] | None:
        """Read and prepare the next batch (in the preparing thread); None at the end."""
        taken = next(batches, None)
        if taken is None:
            return None
        flight = _Flight.of(taken)
        return flight, flight.attempt(ingestor.prepare, flight.documents)

    def report(written: Written) -> bool:
        flight, future = written
        results = future.result() or []
        for result in results:
            summary.add(result)  # a failed document goes to the errors
        refused = [(r.id, r.error or "failed") for r in results if r.status == "failed"]
        summary.items += flight.items
        summary.errors.extend(flight.errors)
        errors = flight.errors + refused
        return bool(on_batch and on_batch(summary, BatchReport(flight.items, errors)))

    writing: Written | None = None  # the batch whose write may still be running
    embed = ingestor.embed if should_stop is None else partial(
        ingestor.embed, should_stop=should_stop
    )

    def settle() -> bool:
        """Report the batch being written, once written; True when `on_batch` says stop."""
        nonlocal writing
        done, writing = writing, None
        return done is not None and report(done)

    with _executor(overlap, "xlsearch-prepare") as preparer, _executor(
        overlap, "xlsearch-write"
    ) as writer:
        try:
            upcoming = preparer.submit(take_next)
            while (taken := upcoming.result()) is not None:
                flight, prepared = taken
                upcoming = preparer.submit(take_next)
                if writing is not None and writing[0].ids & flight.ids and settle():
                    return summary
                started = time.perf_counter()
                embedded = flight.attempt(embed, prepared)
                if embedded is not None and len(embedded.vectors):  # the model really ran
                    sizer.observe(flight.items, time.perf_counter() - started)
                if settle():
                    return summary
                writing = flight, writer.submit(flight.attempt, ingestor.write, embedded)
                if writing[1].done() and settle():  # always done without overlap
                    return summary
            settle()
        except IngestionStopped:
            settle()
        except BaseException:
            with suppress(Exception):  # a committed batch is counted before the error
                settle()
            raise
    return summary
