"""The metadata store on real SQLite files: migrations, pragmas, one-transaction writes,
replacement with tombstones, and no re-embedding of unchanged documents."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import inspect, text

from indexer.pipeline import Ingestor
from search.embedders import Embedder
from search.engine import Engine
from search.schemas import DocumentIn
from search.store import connect, upgrade
from search.store.database import downgrade

TABLES = {"collections", "documents", "chunks", "chunk_tombstones", "jobs"}


class CountingEmbedder(Embedder):
    """The real bundled model, counting how many documents it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name, self.dimension, self.max_tokens = inner.name, inner.dimension, inner.max_tokens
        self.profile = inner.profile
        self.embedded: list[str] = []

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed_documents(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        self.embedded.extend(texts)
        return self.inner.embed_documents(texts, **kwargs)

    def _encode(self, texts: list[str], *, is_query: bool, dimension: int | None) -> np.ndarray:
        return self.inner._encode(texts, is_query=is_query, dimension=dimension)


def test_migrations_upgrade_and_downgrade(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
    downgrade(engine, "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_default_collection_always_exists(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    [stats] = engine.store.list_collections()
    info = stats.info
    assert (info.name, info.model, info.dimension) == ("default", engine.embedder.name, 384)
    assert (info.chunk_tokens, info.chunk_overlap, stats.documents, stats.chunks) == (512, 64, 0, 0)
    assert stats.languages == {}


def ingestor_for(engine: Engine, embedder: Embedder | None = None) -> Ingestor:
    collection = engine.store.get_collection("default")
    return Ingestor(engine.store, embedder or engine.embedder, collection)


def test_same_content_is_not_embedded_again(
    make_engine: Callable[..., Engine], bundled_embedder: Embedder
) -> None:
    counting = CountingEmbedder(bundled_embedder)
    engine = make_engine(embedder=counting)
    ingestor = ingestor_for(engine, counting)
    doc = DocumentIn(id="a", text="Der Eiffelturm ist 330 Meter hoch.", title="Eiffelturm")
    assert [r.status for r in ingestor.ingest([doc])] == ["created"]
    assert [r.status for r in ingestor.ingest([doc])] == ["unchanged"]
    retitled = doc.model_copy(update={"title": "Der Eiffelturm", "metadata": {"city": "Paris"}})
    assert [r.status for r in ingestor.ingest([retitled])] == ["updated"]
    assert len(counting.embedded) == 1
    stored = engine.store.find_document(engine.store.get_collection("default").id, "a")
    assert stored is not None and stored.title == "Der Eiffelturm"
    assert stored.metadata == {"city": "Paris"}


def test_same_id_replaces_the_document_and_buries_old_chunks(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    ingestor = ingestor_for(engine)
    collection = engine.store.get_collection("default")
    ingestor.ingest([DocumentIn(id="a", text="First version of the text.")])
    [(old_ids, _)] = list(engine.store.vectors_after(collection.id, 0, 384))
    [result] = ingestor.ingest([DocumentIn(id="a", text="Second, different version.")])
    assert result.status == "replaced"
    buried, _ = engine.store.tombstones_after(collection.id, 0)
    assert list(buried) == list(old_ids)
    [(new_ids, vectors)] = list(engine.store.vectors_after(collection.id, 0, 384))
    assert not set(new_ids) & set(old_ids) and vectors.shape == (1, 384)
    assert engine.store.count_documents(collection.id) == 1


def test_documents_without_id_are_keyed_by_content(make_engine: Callable[..., Engine]) -> None:
    ingestor = ingestor_for(make_engine())
    first, second = ingestor.ingest([DocumentIn(text="Same text."), DocumentIn(text="Same text.")])
    assert first.id == second.id and first.id.startswith("sha256:")
    assert [r.status for r in ingestor.ingest([DocumentIn(text="Same text.")])] == ["unchanged"]


def test_a_failed_write_leaves_nothing_half_written(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    collection = engine.store.get_collection("default")
    ingestor_for(engine).ingest([DocumentIn(id="a", text="Kept as it was.")])
    with engine.store.engine.begin() as conn:  # a trigger that fails the second chunk insert
        conn.execute(
            text(
                "CREATE TRIGGER fail_chunk BEFORE INSERT ON chunks WHEN NEW.ordinal = 1 "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    long_text = " ".join(f"Sentence number {i} about the Eiffel Tower." for i in range(200))
    with pytest.raises(Exception, match="disk full"):
        ingestor_for(engine).ingest([DocumentIn(id="a", text=long_text)])
    stored = engine.store.find_document(collection.id, "a")
    assert stored is not None and stored.text == "Kept as it was."
    [(ids, _)] = list(engine.store.vectors_after(collection.id, 0, 384))
    assert len(ids) == 1 and engine.store.tombstones_after(collection.id, 0)[0].size == 0


def test_deleting_a_collection_removes_its_documents(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    ingestor_for(engine).ingest([DocumentIn(id="a", text="Something to delete.")])
    engine.store.delete_collection("default")
    with engine.store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM chunks")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM documents")).scalar() == 0
