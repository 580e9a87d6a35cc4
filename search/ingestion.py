"""The narrow port through which the query side reaches the ingestion side.

`search` never imports `indexer` at module level; the app builds an implementation of this
protocol (`indexer.entry.LocalIngestion`, checked against it by mypy) in its lifespan, and
routes receive it typed (`search.api.deps.IngestionDep`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from search.schemas import DocumentIn
from search.store.records import CollectionInfo


class DocumentOutcome(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def chunks(self) -> int: ...

    @property
    def error(self) -> str | None: ...


class Stoppable(Protocol):
    def stop(self, timeout_s: float = ...) -> None: ...


class Ingestion(Protocol):
    def ingest_documents(
        self, collection: CollectionInfo, documents: Sequence[DocumentIn]
    ) -> Sequence[DocumentOutcome]:
        """Store documents now (in the caller's thread)."""
        ...

    def start_worker(self, on_batch: Callable[[CollectionInfo], None]) -> Stoppable:
        """Start an in-process job worker; `on_batch` runs after each committed batch."""
        ...
