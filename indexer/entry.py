"""The ingestion side as the API sees it (implements `search.ingestion.Ingestion`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from indexer.pipeline import Ingestor, IngestResult
from indexer.worker import Worker
from search.engine import Engine
from search.schemas import DocumentIn
from search.store.records import CollectionInfo


class LocalIngestion:
    """Ingests in this process, with this process's engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def ingest_documents(
        self, collection: CollectionInfo, documents: Sequence[DocumentIn]
    ) -> list[IngestResult]:
        return Ingestor.for_engine(self._engine, collection).ingest(documents)

    def start_worker(self, on_batch: Callable[[CollectionInfo], None]) -> Worker:
        worker = Worker(self._engine, on_batch=on_batch)
        worker.start()
        return worker
