"""Snapshots are used only when intact and taken from this database at a position its history
holds; anything else (a damaged file or manifest, an older manifest, another database, a
restored backup) is logged and the index is rebuilt from the stored vectors."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from search.engine import Engine
from search.index_keeper import IndexKeeper
from search.index_manager import SNAPSHOT_RECORDS_KEPT, CollectionIndex, IndexManager
from search.lexical_index import folder_digest
from search.snapshots import MANIFEST, read_manifest, verified_index_file
from search.store import open_store
from search.store.backup import backup_database
from search.store.repository import Store
from search.store.tables import IndexSnapshot
from tests.search.test_vector_index import clustered, put, small_collection

DISCARDED = "not using the snapshot"


def restore_sqlite(backup: Path, database: Path) -> None:
    """As the README says: the servers are stopped; the file back, its -wal and -shm gone."""
    for leftover in ("-wal", "-shm"):
        database.with_name(database.name + leftover).unlink(missing_ok=True)
    shutil.copyfile(backup, database)


def finds_each_vector_itself(current: CollectionIndex, vectors: np.ndarray) -> None:
    """Vector i (stored as document d{i}'s one chunk, id i + 1 here) is its own nearest."""
    scores, ids, _ = current.search(vectors, 1)
    assert ids[:, 0].tolist() == list(range(1, len(vectors) + 1))
    np.testing.assert_allclose(scores[:, 0], 1.0, rtol=1e-5)


def snapshotted(engine: Engine, tmp_path: Path) -> tuple[Store, np.ndarray]:
    """A collection of 12 one-chunk documents (chunk ids 1-12) with a snapshot in tmp/idx."""
    store, cid = small_collection(engine)
    vectors = clustered(12)
    for i, vector in enumerate(vectors):
        put(store, cid, f"d{i}", vector[None])
    manager = IndexManager(store, tmp_path / "idx", 1000)
    manager.snapshot(manager.get(store.get_collection("vectors")))
    return store, vectors


def truncate(folder: Path, manifest: dict[str, Any]) -> None:
    index = folder / manifest["index_file"]
    index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])


def overwrite_vectors(folder: Path, manifest: dict[str, Any]) -> None:
    """Same size, other bytes where the vectors are: faiss would load it without a word."""
    index = folder / manifest["index_file"]
    data = bytearray(index.read_bytes())
    data[200:400] = bytes(200)
    index.write_bytes(bytes(data))


def unreadable_by_faiss(folder: Path, manifest: dict[str, Any]) -> None:
    """A file whose size and checksum the manifest agrees with, which faiss cannot read."""
    import hashlib

    garbage = b"not a faiss index" * 10
    (folder / manifest["index_file"]).write_bytes(garbage)
    manifest.update(index_bytes=len(garbage), index_sha256=hashlib.sha256(garbage).hexdigest())
    (folder / MANIFEST).write_text(json.dumps(manifest))


def remove_index_file(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / manifest["index_file"]).unlink()


def garble_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_bytes(b'{"collection_id": 1, "mod\xff\x00')


def wrong_types_in_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps({**manifest, "chunk_watermark": "12"}))


def manifest_of_an_older_version(folder: Path, manifest: dict[str, Any]) -> None:
    """As xlsearch wrote them before snapshots were verified (the file itself is fine)."""
    for newer in ("database_id", "snapshot_id", "index_bytes", "index_sha256"):
        del manifest[newer]
    (folder / MANIFEST).write_text(json.dumps(manifest))


def index_of_an_older_format(folder: Path, manifest: dict[str, Any]) -> None:
    """An intact snapshot of an index built before IVF lists were language-neutral."""
    (folder / MANIFEST).write_text(json.dumps({**manifest, "index_format": 1}))


def tear_lexical_segment(folder: Path, manifest: dict[str, Any]) -> None:
    """A segment file of the lexical index cut short (its hard link shares the bytes)."""
    lexical = folder / manifest["lexical_folder"]
    segment = next(p for p in lexical.iterdir() if p.suffix == ".term")
    data = segment.read_bytes()
    segment.unlink()  # a new file: the working copy's link keeps the old bytes
    segment.write_bytes(data[: len(data) // 2])


def remove_lexical_folder(folder: Path, manifest: dict[str, Any]) -> None:
    shutil.rmtree(folder / manifest["lexical_folder"])


def unreadable_by_tantivy(folder: Path, manifest: dict[str, Any]) -> None:
    """A lexical folder whose digest the manifest agrees with, which tantivy cannot open."""
    lexical = folder / manifest["lexical_folder"]
    (lexical / "meta.json").unlink()
    (lexical / "meta.json").write_text('{"segments": "none"}')
    size, digest = folder_digest(lexical)
    manifest.update(lexical_bytes=size, lexical_sha256=digest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (truncate, "bytes where"),
        (overwrite_vectors, "does not match the SHA-256"),
        (unreadable_by_faiss, "faiss cannot read"),
        (remove_index_file, "cannot be read"),
        (garble_manifest, "cannot be read"),
        (wrong_types_in_manifest, "wrong type: chunk_watermark"),
        (manifest_of_an_older_version, "written by an older version"),
        (index_of_an_older_format, "an index of format 1; this version builds format 3"),
        (tear_lexical_segment, "bytes where"),
        (remove_lexical_folder, "cannot be read"),
        (unreadable_by_tantivy, "tantivy cannot open"),
    ],
)
def test_a_damaged_snapshot_is_rebuilt_from_the_database_and_replaced(
    make_engine: Callable[..., Engine],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path, dict[str, Any]], None],
    reason: str,
) -> None:
    store, vectors = snapshotted(make_engine(), tmp_path)
    collection = store.get_collection("vectors")
    manager = IndexManager(store, tmp_path / "idx", 1000)
    folder = manager.folder(collection)
    damage(folder, json.loads((folder / MANIFEST).read_text()))

    with caplog.at_level(logging.WARNING, logger="search.index_manager"):
        current = manager.get(collection)
    [warning] = [r.getMessage() for r in caplog.records if DISCARDED in r.getMessage()]
    assert reason in warning and "rebuilding the index from the vectors in the database" in warning
    assert current.index.count == 12 and current.chunk_watermark == 12
    assert current.lexical is not None and current.lexical.count == 12
    finds_each_vector_itself(current, vectors)

    IndexKeeper(store, manager, 1.0, 1.0).snapshot_changed()  # nothing new, yet it replaces it
    manifest = read_manifest(folder)
    assert manifest is not None and manifest.count == 12
    verified_index_file(folder, manifest)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="search.index_manager"):
        reloaded = IndexManager(store, tmp_path / "idx", 1000).get(collection)
    assert not caplog.records
    finds_each_vector_itself(reloaded, vectors)
    assert reloaded.lexical is not None and reloaded.lexical.count == 12


def test_a_snapshot_of_another_database_in_the_same_folder_is_not_used(
    make_engine: Callable[..., Engine], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshotted(make_engine(), tmp_path)
    other, cid = small_collection(make_engine())  # the same collection and chunk ids 1-12...
    vectors = clustered(12, seed=7)  # ...with other vectors
    for i, vector in enumerate(vectors):
        put(other, cid, f"d{i}", vector[None])
    with caplog.at_level(logging.WARNING, logger="search.index_manager"):
        current = IndexManager(other, tmp_path / "idx", 1000).get(other.get_collection("vectors"))
    assert "was taken from database" in caplog.text
    finds_each_vector_itself(current, vectors)


def test_a_backup_taken_after_a_snapshot_keeps_it_usable(
    make_engine: Callable[..., Engine], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Restored to a position after the snapshot, the database holds its record: the index
    loads and catches up, nothing is rebuilt."""
    engine = make_engine()
    store, vectors = snapshotted(engine, tmp_path)
    collection = store.get_collection("vectors")
    url = engine.settings.resolved_database_url
    more = clustered(3, seed=5)
    put(store, collection.id, "later", more[:1])
    backup_database(url, tmp_path / "backup.db")
    put(store, collection.id, "lost", more[1:])  # after the backup: gone with the restore
    engine.close()
    restore_sqlite(tmp_path / "backup.db", engine.settings.data_dir / "xlsearch.db")

    reopened = open_store(url)
    try:
        with caplog.at_level(logging.WARNING, logger="search.index_manager"):
            current = IndexManager(reopened, tmp_path / "idx", 1000).get(collection)
        assert not caplog.records
        assert current.index.count == 13 and current.chunk_watermark == 13
        finds_each_vector_itself(current, np.concatenate([vectors, more[:1]]))
    finally:
        reopened.engine.dispose()


def test_an_older_snapshot_copied_before_a_backup_still_loads_after_its_restore(
    make_engine: Callable[..., Engine], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Snapshots replaced on disk keep their records (the newest SNAPSHOT_RECORDS_KEPT), so
    an index folder copied a few snapshots before a backup loads after restoring it."""
    engine = make_engine()
    store, vectors = snapshotted(engine, tmp_path)
    collection = store.get_collection("vectors")
    folder = IndexManager(store, tmp_path / "idx", 1000).folder(collection)
    shutil.copytree(folder, tmp_path / "copied")  # the first snapshot
    manager = IndexManager(store, tmp_path / "idx", 1000)
    current = manager.get(collection)
    for i in range(3):
        put(store, collection.id, f"more{i}", vectors[i : i + 1])
        manager.catch_up(current)
        manager.snapshot(current)
    url = engine.settings.resolved_database_url
    backup_database(url, tmp_path / "backup.db")
    engine.close()
    restore_sqlite(tmp_path / "backup.db", engine.settings.data_dir / "xlsearch.db")
    shutil.rmtree(folder)
    shutil.copytree(tmp_path / "copied", folder)

    reopened = open_store(url)
    try:
        with caplog.at_level(logging.WARNING, logger="search.index_manager"):
            current = IndexManager(reopened, tmp_path / "idx", 1000).get(collection)
        assert not caplog.records  # loaded and caught up, not rebuilt
        assert current.index.count == 15
        finds_each_vector_itself(current, np.concatenate([vectors, vectors[:3]])[:12])
        with reopened.session() as session:
            assert session.scalar(select(func.count()).select_from(IndexSnapshot)) == 4
    finally:
        reopened.engine.dispose()


def test_snapshot_records_are_pruned_to_the_newest(
    make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    store, vectors = snapshotted(make_engine(), tmp_path)
    collection = store.get_collection("vectors")
    manager = IndexManager(store, tmp_path / "idx", 1000)
    current = manager.get(collection)
    for i in range(SNAPSHOT_RECORDS_KEPT + 2):
        put(store, collection.id, f"more{i}", vectors[i % 12 : i % 12 + 1])
        manager.catch_up(current)
        manager.snapshot(current)
    with store.session() as session:
        ids = session.scalars(select(IndexSnapshot.id)).all()
    assert len(ids) == SNAPSHOT_RECORDS_KEPT
    manifest = read_manifest(manager.folder(collection))
    assert manifest is not None and manifest.snapshot_id in ids
