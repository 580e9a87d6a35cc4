"""The sentence-transformers backend on real models: the packaged all-MiniLM-L6-v2 and a
tiny random Qwen3 built by the test (prompts, padding, batching, Matryoshka)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from search.embedders.sentence_transformers import SentenceTransformerEmbedder
from tests.random_models import QUERY_PROMPT

TEXTS = [
    "Short.",
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, about 330 metres tall.",
    "Der Fuji ist mit 3776 Metern der höchste Berg Japans und ein aktiver Vulkan.",
    "富士山は日本で一番高い山です。",
    "Coffee comes from Ethiopia; it spread to Yemen in the fifteenth century.",
]


def one_by_one(embedder: SentenceTransformerEmbedder, texts: list[str]) -> np.ndarray:
    return np.vstack([embedder.embed_documents([t]) for t in texts])


def test_qwen3_profile_is_detected_from_the_config(qwen3: SentenceTransformerEmbedder) -> None:
    assert qwen3.profile.name == "qwen3"
    assert qwen3.dimension == 64


def test_left_and_right_padding_give_the_same_vectors(qwen3: SentenceTransformerEmbedder) -> None:
    unpadded = one_by_one(qwen3, TEXTS)
    tokenizer = qwen3._model.tokenizer
    assert tokenizer.padding_side == "left"
    left = qwen3.embed_documents(TEXTS)
    tokenizer.padding_side = "right"
    try:
        right = qwen3.embed_documents(TEXTS)
    finally:
        tokenizer.padding_side = "left"
    np.testing.assert_allclose(left, unpadded, atol=1e-5)
    np.testing.assert_allclose(right, unpadded, atol=1e-5)


def test_query_prompt_is_applied_and_documents_get_none(
    qwen3: SentenceTransformerEmbedder,
) -> None:
    question = "How tall is the Eiffel Tower?"
    assert qwen3.format_query(question) == QUERY_PROMPT + question
    assert qwen3.format_document(question) == question
    raw = qwen3._model.encode([QUERY_PROMPT + question, question], prompt="")
    np.testing.assert_allclose(qwen3.embed_queries([question])[0], raw[0], atol=1e-5)
    np.testing.assert_allclose(qwen3.embed_documents([question])[0], raw[1], atol=1e-5)


def test_explicit_instruction_uses_the_qwen3_template(qwen3: SentenceTransformerEmbedder) -> None:
    formatted = qwen3.format_query("Wo steht der Eiffelturm?", "Find travel guides")
    assert formatted == "Instruct: Find travel guides\nQuery:Wo steht der Eiffelturm?"
    with_task = qwen3.embed_queries(["Wo steht der Eiffelturm?"], instruction="Find travel guides")
    default = qwen3.embed_queries(["Wo steht der Eiffelturm?"])
    assert float(with_task[0] @ default[0]) < 0.9999


def test_document_instruction_is_prepended(qwen3: SentenceTransformerEmbedder) -> None:
    assert (
        qwen3.format_document("text", "Represent this passage: ") == "Represent this passage: text"
    )


def test_matryoshka_truncation_renormalises(qwen3: SentenceTransformerEmbedder) -> None:
    full = qwen3.embed_documents(TEXTS)
    small = qwen3.embed_documents(TEXTS, dimension=32)
    assert small.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(small, axis=1), 1.0, rtol=1e-5)
    expected = full[:, :32] / np.linalg.norm(full[:, :32], axis=1, keepdims=True)
    np.testing.assert_allclose(small, expected, atol=1e-6)


def test_minilm_small_token_budget_matches_one_by_one(minilm: SentenceTransformerEmbedder) -> None:
    # A 64-token budget forces several batches of different sizes, in sorted order.
    assert minilm.profile.name == "plain"
    np.testing.assert_allclose(minilm.embed_documents(TEXTS), one_by_one(minilm, TEXTS), atol=1e-5)


def test_minilm_counts_tokens_with_its_tokenizer(minilm: SentenceTransformerEmbedder) -> None:
    assert minilm.count_tokens("hello world") == 4  # [CLS] hello world [SEP]
    assert minilm.max_tokens == 256


@pytest.mark.parametrize("name", ["minilm", "qwen3"])
def test_handed_token_counts_spare_a_tokenisation_and_change_nothing(
    request: pytest.FixtureRequest, name: str
) -> None:
    embedder: SentenceTransformerEmbedder = request.getfixturevalue(name)
    counts = [embedder.count_tokens(t) for t in TEXTS]
    assert counts == embedder._token_lengths([embedder.format_document(t) for t in TEXTS])
    expected = embedder.embed_documents(TEXTS)
    planned: list[list[str]] = []
    measure = embedder._token_lengths
    embedder._token_lengths = lambda texts: planned.append(texts) or measure(texts)  # type: ignore[method-assign]
    try:
        given = embedder.embed_documents(TEXTS, token_counts=counts)
        instructed = embedder.embed_documents(TEXTS, token_counts=counts, instruction="Find it")
    finally:
        del embedder._token_lengths
    np.testing.assert_allclose(given, expected, atol=1e-6)
    assert len(instructed) == len(TEXTS)
    assert len(planned) == 1  # only the instructed call tokenised (counts leave the prompt out)


def test_minilm_is_a_real_model(minilm: SentenceTransformerEmbedder) -> None:
    docs = minilm.embed_documents(["The cat sits on the mat.", "Stock markets fell sharply."])
    query = minilm.embed_queries(["Where is the cat?"])
    assert float(docs[0] @ query[0]) > float(docs[1] @ query[0]) + 0.2


def test_own_forward_loop_matches_sentence_transformers_encode(
    minilm: SentenceTransformerEmbedder,
) -> None:
    # The product runs its own batch loop (pinned copies, one sync a call); it must give what
    # the library's encode gives for the same texts.
    expected = minilm._model.encode(TEXTS, prompt="", convert_to_numpy=True)
    np.testing.assert_allclose(minilm.embed_documents(TEXTS), expected, atol=1e-5)


def test_describe_names_device_precision_and_attention(qwen3: SentenceTransformerEmbedder) -> None:
    described = qwen3.describe()
    assert described["device"] == "cpu"
    assert described["dtype"] == "float32"
    assert described["attention"] == "sdpa"  # transformers' choice when flash-attn is absent


def test_explicit_attention_kernel_is_used(qwen3_folder: Path) -> None:
    eager = SentenceTransformerEmbedder(str(qwen3_folder), device="cpu", attention="eager")
    assert eager.describe()["attention"] == "eager"
    sdpa = SentenceTransformerEmbedder(str(qwen3_folder), device="cpu")
    np.testing.assert_allclose(eager.embed_documents(TEXTS), sdpa.embed_documents(TEXTS), atol=1e-5)


def test_pool_spreads_documents_over_processes_and_matches_one_process(
    qwen3_folder: Path, qwen3: SentenceTransformerEmbedder
) -> None:
    # Two CPU processes stand in for two GPUs: sentence-transformers' pool is device-agnostic.
    texts = [f"{text} ({n})" for n in range(6) for text in TEXTS]
    pooled = SentenceTransformerEmbedder(
        str(qwen3_folder), device="cpu", batch_tokens=200, pool_devices=["cpu", "cpu"]
    )
    try:
        processes = pooled._pool["processes"] if pooled._pool else []
        assert len(processes) == 2 and all(p.is_alive() for p in processes)
        pids = [p.pid for p in processes]
        assert pooled.runs_on_local_cpu  # CPU processes: ingestion does not overlap
        np.testing.assert_allclose(
            pooled.embed_documents(texts), qwen3.embed_documents(texts), atol=1e-5
        )
        # Queries stay in this process (one short batch: no round trip through the pool).
        np.testing.assert_allclose(
            pooled.embed_queries(["Wo steht der Eiffelturm?"]),
            qwen3.embed_queries(["Wo steht der Eiffelturm?"]),
            atol=1e-5,
        )
        # The pool's processes die: the call still gets its vectors, from this process, and
        # the pool (whose queues could hold a dead call's results) is shut down for good.
        # (With one survivor the call may simply finish there; sentence-transformers notices
        # a dead process only when no result comes for a second.)
        for process in processes:
            process.kill()
        np.testing.assert_allclose(
            pooled.embed_documents(texts), qwen3.embed_documents(texts), atol=1e-5
        )
        assert pooled._pool is None
    finally:
        pooled.close()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_queries_and_documents_from_several_threads(qwen3: SentenceTransformerEmbedder) -> None:
    # The API's request threads embed queries while its worker thread embeds documents with
    # the same model; a batch must never be tokenised with another call's padding settings.
    documents, questions = TEXTS * 6, TEXTS[1:]
    expected = qwen3.embed_documents(documents), qwen3.embed_queries(questions)
    failures: list[BaseException] = []

    def repeat(call: Callable[[], np.ndarray], want: np.ndarray, times: int) -> None:
        try:
            for _ in range(times):
                np.testing.assert_allclose(call(), want, atol=1e-5)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    threads = [
        threading.Thread(target=repeat, args=(lambda: qwen3.embed_documents(documents),
                                              expected[0], 40)),
        *(threading.Thread(target=repeat, args=(lambda: qwen3.embed_queries(questions),
                                                expected[1], 80)) for _ in range(2)),
    ]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up at once
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failures, failures[0]
