"""Table definitions. The schema itself is created and changed only by Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class EmbeddingSettings:
    """The columns that say how a collection's texts become chunks and vectors
    (records.EMBEDDING_SETTINGS): a generation's, and the active one's on the collection."""

    model: Mapped[str] = mapped_column(String(512))
    dimension: Mapped[int] = mapped_column(Integer)
    chunk_tokens: Mapped[int] = mapped_column(Integer)
    chunk_overlap: Mapped[int] = mapped_column(Integer)
    document_instruction: Mapped[str | None] = mapped_column(Text)
    query_instruction: Mapped[str | None] = mapped_column(Text)


class Collection(EmbeddingSettings, Base):
    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    index_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The generation searches and writes use; the columns above are its settings, copied
    # here by the switch (search.store.generations).
    generation: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Generation(EmbeddingSettings, Base):
    """One way of embedding a collection (model, dimension, prompts, chunking) with its own
    chunks; states are building, active, retired (kept for a rollback) and abandoned."""

    __tablename__ = "generations"

    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(36))  # the job building it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    switched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Alias(Base):
    """A second name for a collection; switching it is one row's update."""

    __tablename__ = "aliases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("collection_id", "external_id"),
        Index(
            "ix_documents_collection_id_translation_set", "collection_id", "translation_set", "id"
        ),
        Index("ix_documents_collection_id_translation_key", "collection_id", "translation_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(512))
    title: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    lang: Mapped[str] = mapped_column(String(16))
    content_hash: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # Where each page, slide or section begins in `text` (search.locators), for files read so.
    parts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # The smallest row id among the document's translations and itself; None until linked
    # (search.translations). The key is the user's own link (metadata.translation_of/_group).
    translation_set: Mapped[int | None] = mapped_column(Integer)
    translation_key: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    chunks: Mapped[list[Chunk]] = relationship(
        back_populates="document", cascade="all, delete-orphan", passive_deletes=True
    )


class Chunk(Base):
    """A span of a document with its vector in one generation; its id is the vector's id in
    that generation's FAISS index."""

    __tablename__ = "chunks"
    __table_args__ = (
        Index("ix_chunks_collection_id_generation_id", "collection_id", "generation", "id"),
        Index("uq_chunks_document_id_generation_ordinal", "document_id", "generation",
              "ordinal", unique=True),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(Integer, default=1)
    ordinal: Mapped[int] = mapped_column(Integer)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    token_count: Mapped[int] = mapped_column(Integer)
    lang: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    vector: Mapped[bytes] = mapped_column(LargeBinary)

    document: Mapped[Document] = relationship(back_populates="chunks")


class ChunkTombstone(Base):
    """A removed chunk id, in removal order, so indexes can drop it when they catch up."""

    __tablename__ = "chunk_tombstones"
    __table_args__ = (
        Index("ix_chunk_tombstones_collection_id_seq", "collection_id", "seq"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    chunk_id: Mapped[int] = mapped_column(Integer)


class Job(Base):
    """A bulk ingestion job; states are queued, running, succeeded, failed, cancelled."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    model: Mapped[str | None] = mapped_column(String(512))  # None: the collection's own
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(128))
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    source: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DatabaseIdentity(Base):
    """One row: a random id written once by migration 0003, so that a snapshot can tell the
    database it was taken from from another one (a backup copies it, on purpose)."""

    __tablename__ = "database_identity"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IndexSnapshot(Base):
    """A snapshot on disk, recorded here once its log position was read, before its manifest
    names it: a database holds this row only if it reached that position by the same history
    (a backup restored from before the snapshot does not)."""

    __tablename__ = "index_snapshots"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    generation: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    chunk_watermark: Mapped[int] = mapped_column(Integer)
    tombstone_watermark: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
