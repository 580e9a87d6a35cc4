"""The FAISS index, its size policy, snapshots and catch-up from the database."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pytest

from search.engine import Engine
from search.index_manager import IndexManager
from search.store.records import ChunkRecord, DocumentRecord
from search.store.repository import Store
from search.vector_index import (
    IndexPlan,
    IndexSettings,
    Selection,
    VectorIndex,
    _one_thread_for,
    filtered_nprobe,
    gpu_count,
    plan_index,
)

DIM = 32


def clustered(n: int, seed: int = 0, clusters: int = 20) -> np.ndarray:
    """Normalised vectors from a Gaussian mixture: clustered like real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    points = centres[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_plan_is_exact_while_small() -> None:
    assert plan_index(0, 50_000) == IndexPlan("flat")
    assert plan_index(49_999, 50_000).kind == "flat"


@pytest.mark.parametrize("n", [50_000, 1_000_000, 10_000_000])
def test_plan_uses_ivf_with_about_four_sqrt_n_lists(n: int) -> None:
    plan = plan_index(n, 50_000)
    assert plan.kind == "ivf"
    assert plan.nlist == min(round(4 * n**0.5), n // 64)
    assert 1 <= plan.nprobe <= plan.nlist and plan.nprobe >= min(8, plan.nlist)


def test_plan_keeps_enough_training_points_per_list() -> None:
    assert plan_index(2_000, 1_000).nlist == 2_000 // 64


def test_flat_index_is_exact_and_removes_by_id() -> None:
    vectors = clustered(500)
    index = VectorIndex(DIM, IndexPlan("flat"))
    index.add(np.arange(1000, 1500), vectors)
    scores, ids = index.search(vectors[:3], 1)
    assert list(ids[:, 0]) == [1000, 1001, 1002]
    np.testing.assert_allclose(scores[:, 0], 1.0, rtol=1e-5)
    assert index.remove(np.array([1000, 1001])) == 2
    assert index.count == 498
    assert 1000 not in index.search(vectors[:1], 10)[1][0]


def test_ivf_recall_against_exact_search() -> None:
    vectors, queries = clustered(20_000), clustered(100, seed=1)
    exact = VectorIndex(DIM, IndexPlan("flat"))
    exact.add(np.arange(len(vectors)), vectors)
    plan = plan_index(len(vectors), 10_000)
    ivf = VectorIndex(DIM, plan)
    ivf.train(vectors[:10_000], ["en"] * 10_000)
    ivf.add(np.arange(len(vectors)), vectors)
    _, truth = exact.search(queries, 10)
    _, found = ivf.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found, strict=True)])
    assert recall >= 0.9
    _, all_lists = ivf.search(queries, 10, nprobe=plan.nlist)  # every list: exact again
    assert np.mean([set(a) == set(b) for a, b in zip(truth, all_lists, strict=True)]) > 0.95


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivf_sq8", "ivf_pq"])
@pytest.mark.parametrize("share", [0.001, 0.01, 0.3, 0.9])
def test_a_selection_is_searched_exactly_and_nothing_outside_it(kind: str, share: float) -> None:
    """Sparse selections (a hashed batch) and dense ones (a bitmap) alike; with every list
    searched, IVF answers as exact search does (SQ8 near it; PQ, lossy, a part of it)."""
    vectors, queries = clustered(6_000), clustered(20, seed=1)
    ids = np.arange(7, 7 + 3 * len(vectors), 3)  # ids with gaps, as after deletions
    chosen = np.sort(np.random.default_rng(2).choice(ids, max(1, int(share * len(ids))), False))
    plan = IndexPlan(kind, 16, 16) if kind != "flat" else IndexPlan("flat")  # type: ignore[arg-type]
    index = VectorIndex(DIM, plan)
    if index.needs_training:
        index.train(vectors, ["en"] * len(vectors))
    index.add(ids, vectors)
    _, found = index.search(queries, 10, nprobe=16, among=Selection(chosen))
    exact = vectors[np.isin(ids, chosen)] @ queries.T
    depth = 12 if kind == "ivf_sq8" else 10  # 8-bit codes: the exact top 10, give or take
    expected = chosen[np.argsort(-exact, axis=0)[:depth].T]
    overlap = []
    for got, want in zip(found, expected, strict=True):
        got = got[got >= 0]
        assert len(got) == min(10, len(chosen)) and set(got) <= set(chosen)
        overlap.append(len(set(got) & set(want[:10])) / len(got))
        if kind == "ivf_sq8":
            assert set(got) <= set(want)
        elif kind != "ivf_pq":
            assert list(got) == list(want[: len(got)])
    assert np.mean(overlap) >= (0.3 if kind == "ivf_pq" else 0.9)  # PQ codes lose most


def test_filtered_searches_probe_more_lists_the_fewer_vectors_match() -> None:
    plan = IndexPlan("ivf", nlist=1000, nprobe=50)
    assert filtered_nprobe(plan, 100_000, 100_000) == 50  # no filter
    assert filtered_nprobe(plan, 100_000, 50_000) == 85  # 50 / 0.5**0.75
    assert filtered_nprobe(plan, 100_000, 10_000) == 282
    assert filtered_nprobe(plan, 100_000, 1_000) == 1000  # few matches: every list
    assert filtered_nprobe(plan, 100_000, 50_000, nprobe=400) == 673
    assert filtered_nprobe(IndexPlan("flat"), 100, 1) == 0


def test_a_collection_chooses_its_index() -> None:
    assert plan_index(10**6, 50_000, IndexSettings(type="flat")) == IndexPlan("flat")
    pq = plan_index(12_000, 50_000, IndexSettings(type="ivf_pq"))
    assert pq.kind == "ivf_pq" and pq.nlist == 12_000 // 64  # IVF forced below the threshold
    assert plan_index(5_000, 50_000, IndexSettings(type="ivf_pq")).kind == "flat"  # codebooks
    assert plan_index(50, 50_000, IndexSettings(type="ivf")).kind == "flat"  # too few to train
    assert plan_index(10**6, 50_000, IndexSettings(nlist=100, nprobe=7)) == IndexPlan("ivf", 100, 7)
    assert plan_index(10**6, 50_000, IndexSettings(nlist=10, nprobe=70)).nprobe == 10


def put(store: Store, collection_id: int, doc_id: str, vectors: np.ndarray) -> None:
    """Write a document with ready-made vectors (no embedding needed to test indexing)."""
    record = DocumentRecord(doc_id, "text", None, None, "en", doc_id, {})
    chunks = [ChunkRecord(i, 0, 4, 1, "en", "text", v) for i, v in enumerate(vectors)]
    store.write_document(collection_id, record, chunks)


def small_collection(engine: Engine) -> tuple[Store, int]:
    from search.store.records import CollectionInfo

    info = engine.store.create_collection(CollectionInfo(0, "vectors", "test-model", DIM, 64, 0))
    return engine.store, info.id


def test_snapshot_then_catch_up_adds_and_removes(
    make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    store, cid = small_collection(make_engine())
    collection = store.get_collection("vectors")
    vectors = clustered(30)
    for i in range(10):
        put(store, cid, f"d{i}", vectors[i : i + 1])
    first = IndexManager(store, tmp_path / "idx", 1000)
    first.snapshot(first.get(collection))
    manifest = json.loads((first.folder(collection) / "manifest.json").read_text())
    assert manifest["count"] == 10 and manifest["kind"] == "flat"

    for i in range(10, 20):
        put(store, cid, f"d{i}", vectors[i : i + 1])
    store.delete_document(cid, "d0")
    put(store, cid, "d1", vectors[25:26])  # replaced: old vector out, new one in

    second = IndexManager(store, tmp_path / "idx", 1000)
    current = second.get(collection)
    assert current.chunk_watermark > manifest["chunk_watermark"]
    assert current.index.count == 19
    [best] = current.search(vectors[25:26], 1)[1][0]
    assert best > manifest["chunk_watermark"]  # d1's new chunk, added by catch-up
    removed, _ = store.tombstones_after(cid, 0)
    assert len(removed) == 2  # d0's chunk and d1's old one
    assert not np.isin(current.search(vectors[0:1], 19)[1][0], removed).any()


def test_growing_past_the_threshold_switches_to_ivf_and_rebuild_is_stable(
    make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    store, cid = small_collection(make_engine())
    collection = store.get_collection("vectors")
    vectors = clustered(3000)
    manager = IndexManager(store, tmp_path / "idx", 2000)
    put(store, cid, "small", vectors[:100])
    assert manager.get(collection).index.plan.kind == "flat"
    put(store, cid, "big", vectors[100:])
    current = manager.get(collection)
    manager.wait_for_rebuilds()  # the switch is built in the background, then swapped in
    assert current.index.plan.kind == "ivf" and current.index.count == 3000
    before = current.search(vectors[:5], 5, nprobe=current.index.plan.nlist)
    rebuilt = manager.rebuild(collection)
    after = rebuilt.search(vectors[:5], 5, nprobe=rebuilt.index.plan.nlist)
    np.testing.assert_array_equal(before[1], after[1])


def test_an_ivf_grown_four_times_is_retrained_while_searches_go_on(
    make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    store, cid = small_collection(make_engine())
    collection = store.get_collection("vectors")
    vectors = clustered(12_000, seed=3)
    manager = IndexManager(store, tmp_path / "idx", 2000)
    put(store, cid, "first", vectors[:3000])
    current = manager.get(collection)
    trained = current.index.plan
    assert trained.kind == "ivf"

    answered: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def search_all_the_time() -> None:
        while not stop.is_set():
            try:
                _, ids, _ = current.search(vectors[:8], 10)
                assert (ids >= 0).all()
                answered.append(len(ids))
            except BaseException as error:  # noqa: BLE001 - reported below
                failures.append(error)
                return

    searcher = threading.Thread(target=search_all_the_time)
    searcher.start()
    put(store, cid, "more", vectors[3000:])
    manager.catch_up(current)  # 4x the vectors it was trained on: a retrain starts
    assert current.rebuilding is not None
    during = len(answered)
    manager.wait_for_rebuilds()
    stop.set()
    searcher.join()
    assert not failures, failures
    assert len(answered) > during  # searches went on while the new index trained
    assert current.index.plan.kind == "ivf" and current.index.plan.nlist >= 2 * trained.nlist
    assert current.index.count == 12_000
    _, nearest, _ = current.search(vectors[5000:5005], 1, nprobe=current.index.plan.nlist)
    assert nearest[:, 0].tolist() == list(range(5001, 5006))  # each vector finds itself


def test_a_torn_snapshot_write_keeps_the_previous_one(
    make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    store, cid = small_collection(make_engine())
    collection = store.get_collection("vectors")
    put(store, cid, "a", clustered(5))
    manager = IndexManager(store, tmp_path / "idx", 1000)
    manager.snapshot(manager.get(collection))
    folder = manager.folder(collection)
    (folder / ".manifest.json.tmp-999").write_text("{half a manif")  # a crash mid-write
    (folder / "index-9-9.faiss").write_bytes(b"garbage")  # an orphaned index file
    reloaded = IndexManager(store, tmp_path / "idx", 1000).get(collection)
    assert reloaded.index.count == 5


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="needs faiss with GPU support and a CUDA GPU")
def test_gpu_index_agrees_with_the_cpu() -> None:
    vectors, queries = clustered(20_000), clustered(50, seed=1)
    plan = plan_index(len(vectors), 10_000)
    results = []
    for use_gpu in (False, True):
        index = VectorIndex(DIM, plan, use_gpu=use_gpu)
        index.train(vectors[:10_000], ["en"] * 10_000)
        index.add(np.arange(len(vectors)), vectors)
        index.remove(np.arange(100))
        results.append(index.search(queries, 10, nprobe=plan.nlist)[1])
        assert index.on_gpu is use_gpu and index.count == len(vectors) - 100
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(*results, strict=True)])
    assert overlap > 0.95


def test_a_single_query_searches_on_its_own_thread_and_the_setting_comes_back() -> None:
    threads = faiss.omp_get_max_threads()
    with _one_thread_for(1):
        assert faiss.omp_get_max_threads() == 1
    with _one_thread_for(16):  # a batch of queries keeps the OpenMP team
        assert faiss.omp_get_max_threads() == threads
    assert faiss.omp_get_max_threads() == threads
