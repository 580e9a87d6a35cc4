"""Writers racing on the same document ids, from threads and from processes, on SQLite and
PostgreSQL: afterwards the database holds each document once, every replaced chunk has
exactly one tombstone, and an index that caught up all along equals the database."""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from search.engine import Engine
from search.errors import CollectionNotFound
from search.index_manager import IndexManager
from search.store import open_store
from search.store.records import ChunkRecord, CollectionInfo, DocumentRecord
from search.store.tables import Chunk, ChunkTombstone, Document
from tests.conftest import BACKENDS, Databases, both_databases

IDS = ["same", "other"]
DIMENSION = 8
ROUNDS = 40


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest) -> Databases:
    return both_databases(request)


def churn(url: str, collection_id: int, writer: int, rounds: int) -> None:
    """Replace (and now and then delete) the same few documents as fast as possible."""
    store = open_store(url)
    chance = random.Random(writer)
    for n in range(rounds):
        doc_id = chance.choice(IDS)
        if n % 7 == 3:
            store.delete_document(collection_id, doc_id)
            continue
        text = f"{doc_id} written by {writer} in round {n}"
        record = DocumentRecord(doc_id, text, None, None, "en", f"{writer}-{n}", {})
        chunks = [
            ChunkRecord(i, 0, len(text), 3, "en", text, np.full(DIMENSION, 0.5, np.float32))
            for i in range(chance.randint(1, 3))
        ]
        store.write_document(collection_id, record, chunks)
    store.engine.dispose()


def test_racing_replacements_keep_the_index_equal_to_the_database(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    url = engine.settings.resolved_database_url
    collection = engine.store.create_collection(
        CollectionInfo(0, "race", "test", DIMENSION, 64, 8)
    )
    indexes = IndexManager(engine.store, engine.settings.index_dir / "race", 50_000)
    index = indexes.get(collection)
    stop = threading.Event()

    def keep_catching_up() -> None:
        while not stop.is_set():
            indexes.catch_up(index)

    catcher = threading.Thread(target=keep_catching_up)
    catcher.start()
    spawn = multiprocessing.get_context("spawn")
    processes = [
        spawn.Process(target=churn, args=(url, collection.id, 100 + n, ROUNDS)) for n in range(2)
    ]
    for process in processes:
        process.start()
    with ThreadPoolExecutor(4) as threads:
        list(threads.map(lambda n: churn(url, collection.id, n, ROUNDS), range(4)))
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    stop.set()
    catcher.join()
    indexes.catch_up(index)

    with engine.store.session() as session:
        live = session.scalars(select(Chunk.id).where(Chunk.collection_id == collection.id)).all()
        buried = session.scalars(
            select(ChunkTombstone.chunk_id).where(ChunkTombstone.collection_id == collection.id)
        ).all()
        documents = session.scalars(
            select(Document.external_id).where(Document.collection_id == collection.id)
        ).all()
    assert sorted(Counter(documents).values()) in ([], [1], [1, 1])
    twice = [chunk for chunk, n in Counter(buried).items() if n > 1]
    assert not twice, f"chunks tombstoned more than once: {twice}"
    assert not set(buried) & set(live), "live chunks were tombstoned"
    # A chunk deleted without a tombstone would stay in the index for good.
    assert index.index.ids().tolist() == sorted(live)
    assert indexes.rebuild(collection).index.ids().tolist() == sorted(live)


def test_writes_to_a_deleted_collection_are_refused(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    spec = CollectionInfo(0, "gone", "test", DIMENSION, 64, 8)
    collection = engine.store.create_collection(spec)
    engine.store.delete_collection("gone")
    record = DocumentRecord("a", "text", None, None, "en", "h", {})
    with pytest.raises(CollectionNotFound, match="deleted"):
        engine.store.write_document(collection.id, record, [])
    with pytest.raises(CollectionNotFound):
        engine.store.update_document_fields(collection.id, record)


def test_racing_creations_of_one_collection_give_one_and_a_409(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    spec = CollectionInfo(0, "twice", "test", DIMENSION, 64, 8)
    barrier = threading.Barrier(6)

    def create(_: int) -> str:
        barrier.wait()
        try:
            engine.store.create_collection(spec)
            return "created"
        except Exception as exc:  # noqa: BLE001 - the kind of error is what is checked
            return type(exc).__name__

    with ThreadPoolExecutor(6) as threads:
        outcomes = Counter(threads.map(create, range(6)))
    assert outcomes == {"created": 1, "CollectionExists": 5}


def test_processes_starting_together_migrate_one_after_another(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=open_store, args=(url,)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [process.exitcode for process in processes] == [0, 0, 0]


def test_an_index_at_the_log_head_reads_nothing_and_sees_the_next_change(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    store = engine.store
    collection = store.create_collection(CollectionInfo(0, "head", "test", DIMENSION, 64, 8))
    indexes = IndexManager(store, engine.settings.index_dir / "head", 50_000)
    index = indexes.get(collection)
    assert store.log_head(collection) == (0, 0)
    text = "one chunk"
    record = DocumentRecord("a", text, None, None, "en", "h", {})
    chunk = ChunkRecord(0, 0, len(text), 2, "en", text, np.full(DIMENSION, 0.5, np.float32))
    store.write_document(collection.id, record, [chunk])
    assert indexes.catch_up(index) == 1
    assert store.log_head(collection) == (index.chunk_watermark, index.tombstone_watermark)
    assert indexes.catch_up(index) == 0
    store.delete_document(collection.id, "a")  # a tombstone and no new chunk
    assert indexes.catch_up(index) == 1
    assert index.index.ids().tolist() == []
