"""Migrations on the engine (search.store.generations, indexer.migration): each kind of change
ends equal to a fresh ingest with the new settings, writes made meanwhile reach the new
generation once, a write that raced the switch is refused, and cancelling gives it all up."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from indexer.migration import run_migration
from indexer.pipeline import Ingestor
from indexer.worker import Worker
from search.collections import migration_target
from search.embedders import Embedder
from search.engine import Engine
from search.errors import GenerationChanged, InvalidInput, MigrationConflict, MigrationNotFound
from search.index_keeper import IndexKeeper
from search.index_manager import SNAPSHOT_RECORDS_KEPT, IndexManager
from search.schemas import DocumentIn, SearchRequest
from search.store import upgrade
from search.store.database import downgrade
from search.store.jobs import JobStore
from search.store.records import ChunkRecord, DocumentRecord, GenerationInfo
from search.store.tables import Chunk, IndexSnapshot
from tests.conftest import BACKENDS, SAMPLE, Databases, both_databases
from tests.search.test_snapshots import DISCARDED

DOCUMENTS = [DocumentIn.model_validate(json.loads(line))
             for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
QUESTIONS = ["Wie hoch ist der Eiffelturm?", "¿Dónde está el monte Fuji?", "Great Wall length"]


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest) -> Databases:
    return both_databases(request)


def ingest(engine: Engine, documents: list[DocumentIn]) -> None:
    collection = engine.writable("default")
    Ingestor.for_engine(engine, collection).ingest(documents)
    engine.refresh(collection)


def answers(engine: Engine) -> dict[str, list[tuple[str, float]]]:
    found = {}
    for question in QUESTIONS:
        request = SearchRequest(query=question, k=5, collapse="none")
        found[question] = [(r.id, round(r.score, 4))
                           for r in engine.searcher.search("default", request).results]
    return found


def migrate(engine: Engine, worker_engine: Engine, **changes: Any) -> None:
    """Start a migration from `engine` and run it to its end on `worker_engine`."""
    collection = engine.store.get_collection("default")
    target = migration_target(collection, changes, engine.embedder)
    generation = engine.store.start_migration(collection.id, target)
    assert Worker(worker_engine).run_job(str(generation.job_id))
    job = JobStore(engine.store).get(str(generation.job_id))
    assert job.status == "succeeded", job.errors


def chunks_per_generation(engine: Engine) -> dict[int, int]:
    with engine.store.session() as session:
        return dict(session.execute(
            select(Chunk.generation, func.count()).group_by(Chunk.generation)).all())


def documents_per_generation(engine: Engine) -> dict[int, int]:
    with engine.store.session() as session:
        return dict(session.execute(
            select(Chunk.generation, func.count(func.distinct(Chunk.document_id)))
            .group_by(Chunk.generation)).all())


def test_bundled_to_qwen3_then_a_smaller_dimension_each_equal_a_fresh_ingest(
    make_engine: Callable[..., Engine], qwen3: Embedder, monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = make_engine()
    ingest(engine, DOCUMENTS)
    on_qwen3 = make_engine(qwen3, database_url=engine.settings.resolved_database_url)
    migrate(engine, on_qwen3, model=qwen3.name, chunk_tokens=128)
    fresh = make_engine(qwen3, chunk_tokens=128)
    ingest(fresh, DOCUMENTS)
    assert answers(on_qwen3) == answers(fresh)
    rechunked = chunks_per_generation(fresh)[1]
    assert chunks_per_generation(on_qwen3) == {1: len(DOCUMENTS), 2: rechunked}

    calls: list[int] = []
    embed = qwen3.embed_documents

    def counted(texts: list[str], **options: Any) -> np.ndarray:
        calls.append(len(texts))
        return embed(texts, **options)

    monkeypatch.setattr(qwen3, "embed_documents", counted)
    migrate(on_qwen3, on_qwen3, dimension=32)  # Matryoshka: the stored vectors, cut
    assert not calls
    monkeypatch.undo()
    fresh_32 = make_engine(qwen3, chunk_tokens=128, dimension=32)
    ingest(fresh_32, DOCUMENTS)
    cut, made = answers(on_qwen3), answers(fresh_32)
    for question in QUESTIONS:
        assert [i for i, _ in cut[question]] == [i for i, _ in made[question]]
        np.testing.assert_allclose([s for _, s in cut[question]],
                                   [s for _, s in made[question]], atol=2e-4)
    info = on_qwen3.store.get_collection("default")
    assert (info.generation, info.dimension, info.model) == (3, 32, qwen3.name)


def test_new_chunk_settings_chunk_the_texts_again_like_a_fresh_ingest(
    make_engine: Callable[..., Engine],
) -> None:
    long_documents = [  # several chunks each at 32 tokens
        DocumentIn(id=doc.id, text=" ".join([doc.text] * 4), lang=doc.lang)
        for doc in DOCUMENTS[:8]
    ]
    engine = make_engine()
    ingest(engine, long_documents)
    migrate(engine, engine, chunk_tokens=32, chunk_overlap=4)
    fresh = make_engine(chunk_tokens=32, chunk_overlap=4)
    ingest(fresh, long_documents)
    assert answers(engine) == answers(fresh)
    assert chunks_per_generation(engine)[2] == chunks_per_generation(fresh)[1] > len(long_documents)


def test_writes_during_a_migration_reach_the_new_generation_once(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine(ingest_batch_documents=4)
    ingest(engine, DOCUMENTS[:12])
    collection = engine.store.get_collection("default")
    target = migration_target(collection, {"chunk_tokens": 48}, engine.embedder)
    generation = engine.store.start_migration(collection.id, target)
    jobs = JobStore(engine.store)
    job = jobs.claim("first", engine.embedder.name, generation.job_id)
    assert job is not None
    after_one_batch = lambda: jobs.get(job.id).cursor > 0  # noqa: E731
    assert run_migration(engine, jobs, job, "first", after_one_batch) is None
    jobs.release(job.id, "first")
    assert documents_per_generation(engine) == {1: 12, 2: 4}
    replaced = DocumentIn(id=DOCUMENTS[0].id, text="A new text about the Eiffel Tower.")
    ingest(engine, [replaced, *DOCUMENTS[12:]])  # one made already, replaced; new ones
    assert engine.store.delete_document(collection.id, str(DOCUMENTS[5].id))
    assert Worker(engine).run_once()
    assert jobs.get(str(generation.job_id)).status == "succeeded"
    kept = [replaced, *[d for d in DOCUMENTS[1:] if d.id != DOCUMENTS[5].id]]
    assert documents_per_generation(engine) == {1: len(kept), 2: len(kept)}
    fresh = make_engine(chunk_tokens=48)
    ingest(fresh, kept)
    assert answers(engine) == answers(fresh)


def test_a_write_embedded_before_a_switch_is_refused_and_nothing_is_stored(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    ingest(engine, DOCUMENTS[:2])
    before = engine.store.get_collection("default")
    migrate(engine, engine, dimension=64)
    record = DocumentRecord("late", "late text", None, None, "en", "hash", {})
    chunk = ChunkRecord(0, 0, 9, 3, "en", "late text", np.ones(before.dimension, np.float32))
    with pytest.raises(GenerationChanged, match="switched to generation 2"):
        engine.store.write_documents(before.id, [(record, [chunk])], before.generation)
    assert engine.store.find_document(before.id, "late") is None


def test_one_migration_at_a_time_and_cancelling_gives_it_up(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    ingest(engine, DOCUMENTS[:4])
    collection = engine.store.get_collection("default")
    with pytest.raises(InvalidInput, match="already embeds this way"):
        migration_target(collection, {"dimension": collection.dimension}, engine.embedder)
    with pytest.raises(InvalidInput, match="dimension 999 is out of range"):
        migration_target(collection, {"dimension": 999}, engine.embedder)
    target = migration_target(collection, {"dimension": 64}, engine.embedder)
    first = engine.store.start_migration(collection.id, target)
    with pytest.raises(MigrationConflict, match="being built"):
        engine.store.start_migration(collection.id, target)
    JobStore(engine.store).cancel(str(first.job_id))
    assert engine.store.generation(collection.id, 2).state == "abandoned"
    second = engine.store.start_migration(collection.id, target)
    assert second.number == 3
    assert Worker(engine).run_job(str(second.job_id))
    assert engine.store.get_collection("default").generation == 3
    assert chunks_per_generation(engine) == {1: 4, 3: 4}


def test_chunks_the_new_tokenizer_finds_too_long_are_made_again(
    make_engine: Callable[..., Engine], minilm: Embedder,
) -> None:
    hindi = next(doc for doc in DOCUMENTS if doc.lang == "hi").text
    engine = make_engine(chunk_tokens=256)
    text = max((" ".join([hindi] * n) for n in range(1, 20)
                if engine.embedder.count_tokens(" ".join([hindi] * n)) <= 250),
               key=len)
    assert minilm.count_tokens(text) > 256  # one chunk for e5, too long for MiniLM
    documents = [*DOCUMENTS[:6], DocumentIn(id="hi-long", text=text, lang="hi")]
    ingest(engine, documents)
    on_minilm = make_engine(minilm, database_url=engine.settings.resolved_database_url)
    migrate(engine, on_minilm, model=minilm.name)  # the chunk settings stay
    fresh = make_engine(minilm)
    ingest(fresh, documents)
    assert answers(on_minilm) == answers(fresh)
    assert chunks_per_generation(on_minilm)[2] == chunks_per_generation(fresh)[1]


def test_a_stop_while_embedding_keeps_what_was_built_and_the_job_resumes(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine(ingest_batch_documents=4)
    ingest(engine, DOCUMENTS[:12])
    collection = engine.store.get_collection("default")
    target = migration_target(collection, {"document_instruction": "passage: note: "},
                              engine.embedder)
    generation = engine.store.start_migration(collection.id, target)
    jobs = JobStore(engine.store)
    job = jobs.claim("first", engine.embedder.name, generation.job_id)
    assert job is not None
    asked: list[bool] = []

    def stop_in_the_second_batch() -> bool:  # asked before each batch and each model call
        asked.append(True)
        return jobs.get(job.id).cursor > 0 and len(asked) > 3

    assert run_migration(engine, jobs, job, "first", stop_in_the_second_batch) is None
    jobs.release(job.id, "first")
    assert engine.store.generation(collection.id, 2).state == "building"
    assert chunks_per_generation(engine) == {1: 12, 2: 4}
    assert Worker(engine).run_once()
    assert jobs.get(job.id).status == "succeeded"
    assert chunks_per_generation(engine) == {1: 12, 2: 12}


def test_the_switch_waits_rather_than_embed_many_documents_under_the_lock(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    ingest(engine, DOCUMENTS[:5])
    collection = engine.store.get_collection("default")
    target = migration_target(collection, {"dimension": 64}, engine.embedder)
    generation = engine.store.start_migration(collection.id, target)
    refused = engine.store.switch_generation(
        collection, generation.number, lambda gaps: pytest.fail("made under the lock"),
        max_gaps=4, with_vectors=True, with_texts=False,
    )
    assert refused is None and engine.store.get_collection("default").generation == 1


def test_a_migration_whose_job_ended_without_it_does_not_block_the_next(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    ingest(engine, DOCUMENTS[:3])
    collection = engine.store.get_collection("default")
    target = migration_target(collection, {"dimension": 64}, engine.embedder)
    stranded = engine.store.start_migration(collection.id, target)
    jobs = JobStore(engine.store)
    assert jobs.claim("crashing", engine.embedder.name, stranded.job_id) is not None
    assert jobs.finish(str(stranded.job_id), "crashing", "failed")  # then it died
    again = engine.store.start_migration(collection.id, target)
    assert engine.store.generation(collection.id, 2).state == "abandoned"
    assert again.number == 3


def test_a_process_with_another_model_refreshes_the_generation_it_searches(
    make_engine: Callable[..., Engine], qwen3: Embedder,
) -> None:
    engine = make_engine()
    ingest(engine, DOCUMENTS[:6])
    on_qwen3 = make_engine(qwen3, database_url=engine.settings.resolved_database_url)
    migrate(engine, on_qwen3, model=qwen3.name, chunk_tokens=128)
    assert engine.store.delete_document(engine.store.get_collection("default").id,
                                        str(DOCUMENTS[0].id))
    engine.refresh(engine.store.get_collection("default"))  # as the API's delete does
    assert {c.collection.generation for c in engine.indexes.loaded()} == {1}
    assert len(answers(engine)[QUESTIONS[0]]) == 5  # still answering from generation 1


@pytest.mark.parametrize("first_round", ["before", "during"])
def test_a_keeper_round_that_read_before_a_switch_does_not_undo_it(
    databases: Databases, bundled_embedder: Embedder, tmp_path: Path, first_round: str,
) -> None:
    """The worker's refresh searches the new generation before the job says it succeeded;
    a keeper round that had read the generations before the switch (the server's first
    one, too) must not put the old one back (it did, until its next round: a replica could
    be ahead of its primary), nor a refresh given the collection as it was before."""
    engine = Engine.open(databases.settings({"data_dir": tmp_path}), bundled_embedder,
                         background_catch_up=True)
    try:
        ingest(engine, DOCUMENTS[:4])
        keeper = IndexKeeper(engine.store, engine.indexes, 60.0, 60.0)
        before = engine.store.get_collection("default")
        generation = engine.store.start_migration(
            before.id, migration_target(before, {"dimension": 64}, bundled_embedder))
        if first_round == "before":
            keeper.catch_up_all()  # holds the generation being built
            assert engine.indexes.searched() == {"default": 1}
        read_generations = engine.store.generations
        switched: list[str] = []

        def read_then_switch(*args: Any) -> list[GenerationInfo]:
            read = read_generations(*args)
            if not switched:  # the migration ends between the keeper's read and its choice
                switched.append("yes")
                assert Worker(engine, on_batch=engine.refresh).run_job(str(generation.job_id))
                assert engine.indexes.searched() == {"default": 2}
            return read

        engine.store.generations = read_then_switch  # type: ignore[method-assign]
        keeper.catch_up_all()
        assert switched
        assert engine.indexes.searched() == {"default": 2}
        engine.refresh(before)  # a write's, given the collection read before the switch
        assert engine.indexes.searched() == {"default": 2}
        assert [len(found) for found in answers(engine).values()] == [4, 4, 4]
    finally:
        engine.close()


def test_an_expired_generation_is_deleted_and_cannot_be_rolled_back_to(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    ingest(engine, DOCUMENTS[:4])
    migrate(engine, engine, dimension=64)
    collection = engine.store.get_collection("default")
    assert engine.store.drop_expired_generations(timedelta(days=1)) == 0
    assert engine.store.drop_expired_generations(timedelta(0)) == 1
    assert engine.store.generation(collection.id, 1).state == "abandoned"
    assert chunks_per_generation(engine) == {2: 4}
    with pytest.raises(MigrationNotFound, match="no generation to switch back to"):
        engine.store.start_rollback(collection.id)


def test_each_generation_keeps_its_own_snapshots_for_a_rollback(
    make_engine: Callable[..., Engine], caplog: pytest.LogCaptureFixture,
) -> None:
    """The generation being built, snapshotted again and again, used to push out the
    records of the one left for a rollback, which was then rebuilt instead of loaded."""
    engine = make_engine()
    ingest(engine, DOCUMENTS[:4])
    first = engine.store.get_collection("default")
    engine.indexes.snapshot(engine.indexes.get(first))
    migrate(engine, engine, dimension=64)
    second = engine.store.get_collection("default")
    for _ in range(SNAPSHOT_RECORDS_KEPT + 2):
        engine.indexes.snapshot(engine.indexes.get(second))
    assert snapshot_records(engine) == {1: 1, 2: SNAPSHOT_RECORDS_KEPT}
    restarted = IndexManager(engine.store, engine.settings.index_dir, 1000)
    with caplog.at_level(logging.WARNING, logger="search.index_manager"):
        assert restarted.get(first).index.count == 4
    assert DISCARDED not in caplog.text  # loaded from its snapshot, not rebuilt

    assert engine.store.drop_expired_generations(timedelta(0)) == 1
    assert snapshot_records(engine) == {2: SNAPSHOT_RECORDS_KEPT}


def test_snapshot_records_made_before_they_had_a_generation_are_given_theirs(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    ingest(engine, DOCUMENTS[:3])
    engine.indexes.snapshot(engine.indexes.get(engine.store.get_collection("default")))
    migrate(engine, engine, dimension=64)
    engine.indexes.snapshot(engine.indexes.get(engine.store.get_collection("default")))
    downgrade(engine.store.engine, "0007")  # records without a generation, as 0007 kept them
    upgrade(engine.store.engine)
    assert snapshot_records(engine) == {1: 1, 2: 1}


def snapshot_records(engine: Engine) -> dict[int, int]:
    with engine.store.session() as session:
        return dict(session.execute(
            select(IndexSnapshot.generation, func.count()).group_by(IndexSnapshot.generation)
        ).all())


def test_a_rollback_counts_only_the_documents_written_since(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    ingest(engine, DOCUMENTS[:6])
    migrate(engine, engine, dimension=64)
    ingest(engine, DOCUMENTS[6:8])
    rollback = engine.store.start_rollback(engine.store.get_collection("default").id)
    assert JobStore(engine.store).get(str(rollback.job_id)).total == 2
    assert Worker(engine).run_job(str(rollback.job_id))
    assert engine.store.get_collection("default").generation == 1
    assert chunks_per_generation(engine) == {1: 8, 2: 8}
