"""What the store hands out: plain frozen records, detached from any database session."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import numpy as np

from search.schemas import clean_text

R = TypeVar("R")
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; they were written in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


# What a generation settles: how a collection's texts become chunks and vectors.
EMBEDDING_SETTINGS = (
    "model", "dimension", "chunk_tokens", "chunk_overlap", "document_instruction",
    "query_instruction",
)


@dataclass(frozen=True)
class CollectionInfo:
    """A collection's settings in one of its generations (the active one, unless it came
    from `GenerationInfo.of`), detached from any database session."""

    id: int
    name: str
    model: str
    dimension: int
    chunk_tokens: int
    chunk_overlap: int
    document_instruction: str | None = None
    query_instruction: str | None = None
    index_settings: dict[str, Any] = field(default_factory=dict)
    generation: int = 1


@dataclass(frozen=True)
class GenerationInfo:
    """One generation of a collection (search.store.generations)."""

    collection_id: int
    number: int
    state: str  # building, active, retired or abandoned
    model: str
    dimension: int
    chunk_tokens: int
    chunk_overlap: int
    document_instruction: str | None
    query_instruction: str | None
    job_id: str | None
    created_at: datetime
    switched_at: datetime | None
    retired_at: datetime | None

    def of(self, collection: CollectionInfo) -> CollectionInfo:
        """`collection` as this generation embeds it."""
        settings = {name: getattr(self, name) for name in EMBEDDING_SETTINGS}
        return replace(collection, generation=self.number, **settings)


@dataclass(frozen=True)
class AliasInfo:
    """An alias and the collection it names now."""

    name: str
    collection: str
    updated_at: datetime


@dataclass(frozen=True)
class CollectionStats:
    """A collection with what it holds: documents (in all and per language) and chunks."""

    info: CollectionInfo
    documents: int
    chunks: int
    languages: dict[str, int]
    translation_sets: int = 0  # sets of two or more copies
    translated_documents: int = 0  # documents in those sets
    unlinked_documents: int = 0  # documents not linked into a set yet


@dataclass(frozen=True)
class DocumentRecord:
    external_id: str
    text: str
    title: str | None
    url: str | None
    lang: str
    content_hash: str
    metadata: dict[str, Any]
    parts: list[dict[str, Any]] | None = None  # where pages, slides or sections begin


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
    """Consecutive chunks in id order, as the indexes read them: vectors and texts (None when
    not asked for), each chunk's language, and what filters need of its document (row id,
    language, metadata as JSON text, parsed only if a filter asks for a field)."""

    ids: np.ndarray
    vectors: np.ndarray | None
    langs: list[str]
    documents: list[int]
    document_langs: list[str]
    metadata_json: list[str | None]
    texts: list[str] | None = None

    @property
    def vectors_read(self) -> np.ndarray:
        """The vectors, for a page read with them."""
        if self.vectors is None:
            raise ValueError("this page was read without vectors")
        return self.vectors

    @property
    def texts_read(self) -> list[str]:
        """The chunk texts, for a page read with them."""
        if self.texts is None:
            raise ValueError("this page was read without texts")
        return self.texts


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
    parts: list[dict[str, Any]] | None = None  # the document's pages, slides or sections
    document_row: int = 0  # the document's row id
    translation_set: int | None = None  # None until linked (search.translations)


def storable(key: str) -> bool:
    """Whether `key` could be stored at all: keys from URLs may hold NULs or lone surrogates,
    which PostgreSQL refuses with an error, so lookups treat them as absent."""
    try:
        clean_text(key)
    except ValueError:
        return False
    return True


def detached(record: type[R], row: object, **given: Any) -> R:
    """A `record` whose fields are read from `row`'s attributes of the same names, except
    those `given` (renamed columns, or values to copy out of the session)."""
    names = [f.name for f in fields(record)]  # type: ignore[arg-type]
    return record(**{name: getattr(row, name) for name in names if name not in given}, **given)
