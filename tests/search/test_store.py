"""The metadata store on real SQLite files and a real PostgreSQL server: migrations, pragmas,
one-transaction writes, replacement with tombstones, no re-embedding of unchanged documents,
and ids that become visible in order when several writers commit at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from indexer.pipeline import Ingestor
from search.embedders import Embedder
from search.engine import Engine
from search.schemas import DocumentIn
from search.store import connect, upgrade
from search.store.chunk_log import LOG_LOCK_SPACE
from search.store.database import downgrade
from search.store.tables import Base
from tests.conftest import BACKENDS, Databases, both_databases

TABLES = {"collections", "documents", "chunks", "chunk_tombstones", "jobs"}
# A trigger that fails the insert of a document's second chunk, as a full disk would.
FAILING_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER fail_chunk BEFORE INSERT ON chunks WHEN NEW.ordinal = 1 "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION fail_chunk() RETURNS trigger AS $$ BEGIN IF NEW.ordinal = 1 THEN "
        "RAISE EXCEPTION 'disk full'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER fail_chunk BEFORE INSERT ON chunks FOR EACH ROW "
        "EXECUTE FUNCTION fail_chunk()",
    ],
}


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest) -> Databases:
    return both_databases(request)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres").create_database())
    return f"sqlite:///{tmp_path / 'm.db'}"


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


def test_migrations_upgrade_and_downgrade(database_url: str) -> None:
    engine = connect(database_url)
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
    downgrade(engine, "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES


def test_the_migrations_make_the_tables_the_code_declares(database_url: str) -> None:
    """A column or index added to search.store.tables without a migration (or the other way
    round) shows here, on each database, rather than on a user's upgraded one."""
    engine = connect(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


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
    found = engine.store.find_documents(engine.store.get_collection("default").id, ["b", "a"])
    assert found == {"a": stored}  # one query for a batch; absent ids are simply missing


def test_same_id_replaces_the_document_and_buries_old_chunks(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    ingestor = ingestor_for(engine)
    collection = engine.store.get_collection("default")
    ingestor.ingest([DocumentIn(id="a", text="First version of the text.")])
    [old] = list(engine.store.chunks_after(collection, 0))
    old_ids = old.ids
    [result] = ingestor.ingest([DocumentIn(id="a", text="Second, different version.")])
    assert result.status == "replaced"
    buried, _ = engine.store.tombstones_after(collection.id, 0)
    assert list(buried) == list(old_ids)
    [new] = list(engine.store.chunks_after(collection, 0))
    assert not set(new.ids) & set(old_ids) and new.vectors_read.shape == (1, 384)
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
    with engine.store.engine.begin() as conn:
        for statement in FAILING_TRIGGER[conn.dialect.name]:
            conn.execute(text(statement))
    long_text = " ".join(f"Sentence number {i} about the Eiffel Tower." for i in range(200))
    # SQLite's ABORT is a constraint error, which fails the document alone (a result);
    # PostgreSQL's RAISE is any other error, which fails the write (an exception).
    try:
        [result] = ingestor_for(engine).ingest([DocumentIn(id="a", text=long_text)])
    except Exception as exc:  # noqa: BLE001 - either way is a failed write
        reason = str(exc)
    else:
        assert result.status == "failed"
        reason = result.error or ""
    assert "disk full" in reason
    stored = engine.store.find_document(collection.id, "a")
    assert stored is not None and stored.text == "Kept as it was."
    [page] = list(engine.store.chunks_after(collection, 0))
    assert len(page.ids) == 1 and engine.store.tombstones_after(collection.id, 0)[0].size == 0


def test_deleting_a_collection_removes_its_documents(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    ingestor_for(engine).ingest([DocumentIn(id="a", text="Something to delete.")])
    engine.store.delete_collection("default")
    with engine.store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM chunks")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM documents")).scalar() == 0


def test_writes_to_a_collection_wait_for_each_other_on_postgresql(
    make_engine: Callable[..., Engine],
) -> None:
    # Indexes catch up by "chunk ids above my watermark"; that is only safe if ids become
    # visible in id order, so a writer must not commit while another holds the collection.
    engine = make_engine()
    if engine.store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has a single writer by construction")
    collection = engine.store.get_collection("default")
    ingestor = ingestor_for(engine)
    with engine.store.engine.begin() as holder:
        holder.execute(
            text(f"SELECT pg_advisory_xact_lock({LOG_LOCK_SPACE}, {collection.id})")
        )
        writer = threading.Thread(
            target=ingestor.ingest, args=([DocumentIn(id="w", text="Waits for the lock.")],)
        )
        writer.start()
        writer.join(timeout=1.0)
        assert writer.is_alive(), "the write did not wait for the collection's lock"
        assert engine.store.find_document(collection.id, "w") is None
    writer.join(timeout=30)
    assert engine.store.find_document(collection.id, "w") is not None
