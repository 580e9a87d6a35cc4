"""Backups and restores as the README describes them, on SQLite and PostgreSQL: a database
restored from a backup older than the index snapshot is served its own vectors (the snapshot is
rebuilt from them), `xlsearch db backup` copies a database that is being written to."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import faiss
import numpy as np
import pytest
from sqlalchemy.engine import URL, make_url

from indexer.pipeline import Ingestor
from search.embedders import Embedder
from search.engine import Engine
from search.index_manager import CollectionIndex, IndexManager
from search.schemas import DocumentIn, SearchRequest
from search.service import SearchService
from search.settings import Settings
from search.store.backup import backup_database
from tests.conftest import BACKENDS, REPO, Databases, both_databases
from tests.postgres import postgres_bin
from tests.search.test_snapshots import restore_sqlite
from tests.search.test_vector_index import clustered, put, small_collection


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest) -> Databases:
    return both_databases(request)


def restore(settings: Settings, backup: Path) -> None:
    """Put a backup back, every process being stopped (README, Backup and restore)."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        restore_sqlite(backup, Path(url.database or ""))
        return
    dsn = URL.create("postgresql", url.username, None, url.host, url.port, url.database)
    restored = subprocess.run(
        [str(postgres_bin() / "pg_restore"), "--clean", "--if-exists", "--single-transaction",
         f"--dbname={dsn.render_as_string()}", str(backup)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr


def index_contents(current: CollectionIndex, scratch: Path) -> dict[int, np.ndarray]:
    """Every (id, vector) the index holds, read back from what it saves."""
    current.index.save(scratch)
    saved = faiss.read_index(str(scratch))
    return {int(i): saved.reconstruct(int(i)) for i in faiss.vector_to_array(saved.id_map)}


def test_a_restored_backup_is_served_its_own_vectors_not_a_newer_snapshots(
    databases: Databases,
    bundled_embedder: Embedder,
    sample_documents: list[DocumentIn],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PATH", f"{postgres_bin()}{os.pathsep}{os.environ['PATH']}")  # pg_dump
    settings = databases.settings({"data_dir": tmp_path / "data"})
    backup = tmp_path / "backup"
    first, second = sample_documents[:18], sample_documents[18:36]

    def ingest(engine: Engine, documents: list[DocumentIn]) -> set[int]:
        collection = engine.store.get_collection("default")
        Ingestor(engine.store, engine.embedder, collection).ingest(documents)
        pages = engine.store.chunks_after(collection, 0)
        return {int(i) for page in pages for i in page.ids}

    with closing(Engine.open(settings, bundled_embedder)) as engine:
        backup_database(settings.resolved_database_url, backup)
        first_chunks = ingest(engine, first)
        engine.indexes.snapshot(engine.indexes.get(engine.store.get_collection("default")))
    restore(settings, backup)
    with closing(Engine.open(settings, bundled_embedder)) as engine:
        second_chunks = ingest(engine, second)
    assert first_chunks & second_chunks  # the ids the snapshot holds, with other vectors

    with closing(Engine.open(settings, bundled_embedder)) as engine:
        collection = engine.store.get_collection("default")
        with caplog.at_level(logging.WARNING, logger="search.index_manager"):
            current = engine.indexes.get(collection)
        assert "this database has no record of it" in caplog.text
        stored = {
            int(i): vector
            for page in engine.store.chunks_after(collection, 0)
            for i, vector in zip(page.ids, page.vectors_read, strict=True)
        }
        held = index_contents(current, tmp_path / "check.faiss")
        assert held.keys() == stored.keys() == second_chunks
        for chunk_id, vector in stored.items():
            np.testing.assert_array_equal(held[chunk_id], vector)

        rebuilt = IndexManager(engine.store, tmp_path / "fresh", settings.ivf_min_vectors)
        oracle = SearchService(engine.store, engine.embedder, rebuilt, settings.search_overfetch)
        second_ids = {doc.id for doc in second}
        for doc in first[:3] + second[:3]:
            request = SearchRequest(query=doc.title or doc.text, k=5)
            served = engine.searcher.search("default", request).results
            expected = oracle.search("default", request).results
            assert [r.id for r in served] == [r.id for r in expected]
            assert {r.id for r in served} <= second_ids
            assert [r.score for r in served] == pytest.approx([r.score for r in expected])


def test_a_sqlite_backup_taken_while_documents_are_written_is_consistent(
    bundled_embedder: Embedder, tmp_path: Path
) -> None:
    engine = Engine.open(Settings(data_dir=tmp_path / "data"), bundled_embedder)
    store, cid = small_collection(engine)
    vectors = clustered(400)
    stop = threading.Event()

    def write_all_the_time() -> None:
        for i, vector in enumerate(vectors):
            if stop.is_set():
                return
            put(store, cid, f"d{i}", vector[None])

    writer = threading.Thread(target=write_all_the_time)
    writer.start()
    try:
        for n in range(5):
            backup_database(engine.settings.resolved_database_url, tmp_path / f"backup-{n}.db")
    finally:
        stop.set()
        writer.join()
        engine.close()
    for n in range(5):
        with closing(sqlite3.connect(tmp_path / f"backup-{n}.db")) as copy:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            documents, chunks = copy.execute(
                "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)"
            ).fetchone()
            assert documents == chunks  # one chunk each: no document without its chunk
            assert copy.execute("SELECT count(*) FROM database_identity").fetchone() == (1,)
    assert not list(tmp_path.glob(".backup-*"))  # no temporary file left behind


def test_the_backup_command(tmp_path: Path) -> None:
    environment = {**os.environ, "XLSEARCH_DATA_DIR": str(tmp_path / "data")}

    def xlsearch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "search", *args],
            capture_output=True, text=True, env=environment, cwd=REPO, timeout=120,
        )  # fmt: skip

    missing = xlsearch("db", "backup", str(tmp_path / "nothing.db"))
    assert missing.returncode == 2 and "no SQLite database file" in missing.stderr
    assert xlsearch("db", "upgrade").returncode == 0
    done = xlsearch("db", "backup", str(tmp_path / "copies" / "xlsearch.db"))
    assert done.returncode == 0, done.stderr
    assert "backed up sqlite:///" in done.stdout
    identities = []
    for database in (tmp_path / "data" / "xlsearch.db", tmp_path / "copies" / "xlsearch.db"):
        with closing(sqlite3.connect(database)) as connection:
            identities.append(connection.execute("SELECT id FROM database_identity").fetchall())
    assert len(identities[0]) == 1 and identities[1] == identities[0]
    again = xlsearch("db", "backup", str(tmp_path / "copies" / "xlsearch.db"))
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'copies' / 'xlsearch.db'} already exists; name a new file for the "
        "backup"
    ]
