"""The ingestion pipeline with and without overlap: same stored result, same reports, real
concurrency when overlapping, and a stop that leaves nothing half-done."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy

from indexer.pipeline import (
    FIRST_BATCH,
    BatchReport,
    BatchSizer,
    Ingestor,
    IngestSummary,
    ingest_stream,
)
from indexer.readers import ReadError
from search.embedders import Embedder
from search.embedders.profiles import PROFILES
from search.engine import Engine, should_overlap
from search.language import LanguageDetector
from search.schemas import DocumentIn
from tests.waiting import wait_until

TOPICS = ["tea", "coffee", "volcanoes", "the Moon", "glaciers", "trains", "honey bees"]


def note(n: int, topic: str | None = None, **fields: Any) -> DocumentIn:
    return DocumentIn(id=f"d{n}", text=f"Note {n} is about {topic or TOPICS[n % 7]}.", **fields)


def corpus() -> list[DocumentIn | ReadError]:
    """Four batches of 3: a metadata-only change and a replacement each right after the batch
    that stored the document (so the pipeline must wait for that write), and a read error."""
    return [
        *(note(0), note(1), note(2)),
        *(note(2, title="New title"), note(3), ReadError("broken.jsonl:7", "invalid JSON")),
        *(note(4, "deserts"), note(5), note(6)),
        *(note(4), note(7), note(8)),
    ]


def stored(engine: Engine) -> list[tuple[Any, ...]]:
    collection = engine.store.get_collection("default")
    rows = []
    for n in range(9):
        found = engine.store.find_document(collection.id, f"d{n}")
        assert found is not None
        rows.append((found.external_id, found.title, found.text, found.lang))
    return rows


def totals(summary: IngestSummary) -> tuple[Any, ...]:
    return (
        summary.items,
        summary.created,
        summary.replaced,
        summary.updated,
        summary.unchanged,
        summary.chunks,
        summary.errors,
    )


def ingestor_for(
    engine: Engine, kind: type[Ingestor] = Ingestor, languages: LanguageDetector | None = None
) -> Ingestor:
    """An ingestor (or a subclass) for the engine's default collection."""
    collection = engine.store.get_collection("default")
    return kind(engine.store, engine.embedder, collection, languages or engine.languages)


def run(
    engine: Engine, overlap: bool, items: list[Any] | None = None, **kwargs: Any
) -> IngestSummary:
    """`ingest_stream` of `items` (default: the corpus) in batches of 3."""
    items = corpus() if items is None else items
    return ingest_stream(items, ingestor_for(engine), 3, overlap=overlap, **kwargs)


def test_overlapped_ingestion_stores_and_reports_what_the_serial_one_does(
    make_engine: Callable[..., Engine],
) -> None:
    serial, overlapped = make_engine(), make_engine(language_processes=2)
    reports: dict[bool, list[BatchReport]] = {False: [], True: []}
    for engine, overlap in ((serial, False), (overlapped, True)):

        def keep(summary: IngestSummary, report: BatchReport, overlap: bool = overlap) -> bool:
            reports[overlap].append(report)
            return False

        summary = run(engine, overlap, on_batch=keep)
        expected = (12, 9, 1, 1, 0, 10, [("broken.jsonl:7", "invalid JSON")])
        assert totals(summary) == expected, f"overlap={overlap}"
    assert stored(overlapped) == stored(serial)
    assert reports[True] == reports[False]
    assert [r.items for r in reports[True]] == [3, 3, 3, 3]

    # Again: d2 loses and regains its title (2 updates, nothing embedded); d4 is rewritten and
    # restored (2 replacements, 2 texts embedded); the 7 others are unchanged.
    calls: list[int] = []
    overlapped.embedder.observer = lambda kind, texts, seconds: calls.append(len(texts))
    try:
        again = run(overlapped, True)
    finally:
        overlapped.embedder.observer = None
    assert (again.unchanged, again.replaced, again.updated, sum(calls)) == (7, 2, 2, 2)


def test_a_stop_after_a_batch_writes_nothing_further(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    summary = run(engine, True, on_batch=lambda summary, report: summary.items >= 6)
    assert summary.items == 6
    collection = engine.store.get_collection("default")
    ids = {f"d{n}" for n in range(9) if engine.store.find_document(collection.id, f"d{n}")}
    assert ids == {"d0", "d1", "d2", "d3"}  # the first two batches, nothing of the third


class RecordingIngestor(Ingestor):
    """Notes when and in which thread each step ran."""

    events: list[tuple[str, str, float, float]]

    def _timed(self, step: str, call: Callable[[Any], Any], argument: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(argument)
        finally:
            self.events.append(
                (step, threading.current_thread().name, started, time.perf_counter())
            )

    def prepare(self, documents: Any) -> Any:
        return self._timed("prepare", super().prepare, documents)

    def embed(self, batch: Any, should_stop: Any = None) -> Any:
        return self._timed("embed", partial(super().embed, should_stop=should_stop), batch)

    def write(self, batch: Any) -> Any:
        return self._timed("write", super().write, batch)


def test_overlap_prepares_and_writes_in_their_own_threads_while_embedding(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    ingestor = ingestor_for(engine, RecordingIngestor)
    assert isinstance(ingestor, RecordingIngestor)
    ingestor.events = []
    documents = [DocumentIn(id=f"n{i}", text=f"Note {i} about {t}.") for i, t in enumerate(TOPICS)]
    readers: set[str] = set()

    def read() -> Iterator[DocumentIn]:
        for document in documents * 2:
            readers.add(threading.current_thread().name.split("_")[0])
            yield document

    ingest_stream(read(), ingestor, 2, overlap=True)
    assert readers == {"xlsearch-prepare"}  # files are read off the thread that embeds
    threads = {step: {e[1].split("_")[0] for e in ingestor.events if e[0] == step}
               for step in ("prepare", "embed", "write")}
    assert threads == {
        "prepare": {"xlsearch-prepare"},
        "embed": {threading.current_thread().name},
        "write": {"xlsearch-write"},
    }
    embeds = [(s, e) for step, _, s, e in ingestor.events if step == "embed"]
    prepares = [(s, e) for step, _, s, e in ingestor.events if step == "prepare"]
    assert any(ps < ee and es < pe for ps, pe in prepares for es, ee in embeds)


def test_overlap_is_on_when_the_model_is_elsewhere(bundled_embedder: Embedder) -> None:
    assert bundled_embedder.runs_on_local_cpu
    assert not should_overlap("auto", bundled_embedder)
    assert should_overlap("on", bundled_embedder)
    assert not should_overlap("off", bundled_embedder)


@pytest.mark.parametrize("overlap", [False, True])
def test_empty_input(make_engine: Callable[..., Engine], overlap: bool) -> None:
    assert run(make_engine(), overlap, []).items == 0


def _child_pids() -> set[int]:
    """This process's live multiprocessing children (finished ones are reaped)."""
    return {child.pid for child in multiprocessing.active_children() if child.pid is not None}


def test_language_processes_detect_what_the_thread_does(
    sample_documents: list[DocumentIn],
) -> None:
    texts = [doc.text for doc in sample_documents]
    texts += [sentence for text in texts for sentence in text.split(". ")[:2]]
    before = _child_pids()
    detector = LanguageDetector(processes=2)
    try:
        assert _child_pids() == before  # nothing started until there is work
        pooled = detector.detect(texts)
        pids = _child_pids() - before
        assert len(pids) == 2
        # A process dies: this call detects in the thread, the next starts new processes.
        victim = next(iter(pids))
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in _child_pids(), 10, "the killed process to exit")
        assert detector.detect(texts) == pooled
        assert detector.detect(texts) == pooled
        assert len(_child_pids() - before - pids) == 2
    finally:
        detector.close()
    assert pooled == LanguageDetector().detect(texts)
    assert len(set(pooled)) >= 12  # the sample corpus's 12 languages, at least
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_overlap_with_a_sentence_transformers_model_matches_serial(
    make_engine: Callable[..., Engine], qwen3: Embedder
) -> None:
    # The chunker counts tokens in the prepare thread while this thread tokenises padded
    # batches for the model (one shared tokenizer failed here: "Unable to create tensor"),
    # and chunk languages are detected in other processes.
    paragraphs = [doc.text for doc in corpus() if isinstance(doc, DocumentIn)]
    documents = [DocumentIn(id=f"p{n}", text=text) for n, text in enumerate(paragraphs * 4)]
    documents += [DocumentIn(id=f"long{n}", text=" ".join(paragraphs * 12)) for n in range(3)]
    stored_vectors = []
    for overlap in (False, True):
        engine = make_engine(embedder=qwen3, language_processes=2 if overlap else 0)
        collection = engine.store.get_collection("default")
        summary = ingest_stream(documents, ingestor_for(engine), 4, overlap=overlap)
        assert summary.documents == len(documents) and summary.chunks > len(documents)
        pages = list(engine.store.chunks_after(collection, 0))
        stored_vectors.append(np.vstack([page.vectors_read for page in pages]))
    np.testing.assert_allclose(stored_vectors[0], stored_vectors[1], atol=1e-5)


@pytest.mark.parametrize("overlap", [False, True])
def test_a_stop_leaves_later_metadata_changes_unwritten(
    make_engine: Callable[..., Engine], overlap: bool
) -> None:
    engine = make_engine()
    ingestor = ingestor_for(engine)
    ingestor.ingest([note(0)])
    items = [note(1), note(2), note(0, title="Retitled")]  # batches [1, 2] and [0]
    summary = ingest_stream(items, ingestor, 2, lambda *_: True, overlap=overlap)
    assert summary.items == 2
    stored = engine.store.find_document(engine.store.get_collection("default").id, "d0")
    assert stored is not None and stored.title is None


class FailingIngestor(Ingestor):
    """Embeds the first batch, then fails with an unexpected error."""

    embedded = 0

    def embed(self, batch: Any) -> Any:
        self.embedded += 1
        if self.embedded > 1:
            raise RuntimeError("the GPU fell off the bus")
        return super().embed(batch)


@pytest.mark.parametrize("overlap", [False, True])
def test_a_committed_batch_is_reported_before_an_error(
    make_engine: Callable[..., Engine], overlap: bool
) -> None:
    engine = make_engine()
    reported: list[int] = []
    with pytest.raises(RuntimeError, match="fell off"):
        ingest_stream(
            [note(n) for n in range(4)],
            ingestor_for(engine, FailingIngestor),
            2,
            lambda summary, report: reported.append(summary.items) is not None,
            overlap=overlap,
        )
    assert reported == [2]  # the first batch was written: its items count for a resume
    assert engine.store.count_documents(engine.store.get_collection("default").id) == 2


class CountingDetector(LanguageDetector):
    texts = 0

    def detect(self, texts: Any, trials: int = 7) -> list[str]:
        self.texts += len(texts)
        return super().detect(texts, trials)


def test_unchanged_documents_are_neither_chunked_nor_detected_again(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    detector = CountingDetector()
    ingestor = ingestor_for(engine, languages=detector)
    documents = [note(n) for n in range(6)]
    ingest_stream(documents, ingestor, 3, overlap=True)
    first = detector.texts
    again = ingest_stream(documents, ingestor, 3, overlap=True)
    assert (first, detector.texts - first, again.unchanged) == (6, 0, 6)


def test_a_metadata_change_never_lands_on_text_replaced_meanwhile(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    ingestor = ingestor_for(engine)
    ingestor.ingest([DocumentIn(id="d", text="Tea grows in China.", metadata={"v": "0"})])
    # Client A changes the metadata only; it is compared and embedded ...
    embedded = ingestor.embed(
        ingestor.prepare([DocumentIn(id="d", text="Tea grows in China.", metadata={"v": "A"})])
    )
    # ... while client B replaces the text; then A's write lands.
    ingestor.ingest([DocumentIn(id="d", text="Coffee grows in Brazil.", metadata={"v": "B"})])
    [result] = ingestor.write(embedded)
    stored = engine.store.find_document(engine.store.get_collection("default").id, "d")
    assert stored is not None and (stored.text, stored.metadata) == (
        "Tea grows in China.",
        {"v": "A"},
    )
    assert result.status == "replaced"


def test_a_batch_is_one_write_and_a_document_the_database_refuses_fails_alone(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    database = engine.settings.resolved_database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as connection:  # a real refusal, by the database itself
        connection.execute(
            "CREATE TRIGGER refuse_d1 BEFORE INSERT ON documents WHEN NEW.external_id = 'd1' "
            "BEGIN SELECT RAISE(ABORT, 'd1 is refused'); END"
        )
    statements: list[str] = []
    sqlalchemy.event.listen(engine.store.engine, "before_cursor_execute",
                            lambda *args: statements.append(args[2]))
    ingestor = ingestor_for(engine)
    ingestor.ingest([note(3), note(4), note(5)])
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO CHUNKS")]
    assert len(inserts) == 1, "the batch's chunks in one statement"
    results = ingestor.ingest([note(0), note(1), note(2)])
    assert [r.status for r in results] == ["created", "failed", "created"]
    assert results[1].error == "the database refused it: d1 is refused"
    summary = ingest_stream([note(1), note(6)], ingestor, 8)  # a job: the rest goes on
    assert (summary.created, summary.errors) == (1, [("d1", results[1].error)])
    collection = engine.store.get_collection("default")
    assert [engine.store.find_document(collection.id, f"d{n}") is not None
            for n in range(7)] == [True, False, True, True, True, True, True]


def test_batches_are_sized_to_the_models_rate() -> None:
    sizer = BatchSizer(32, seconds=4.0)
    assert sizer.size == FIRST_BATCH
    sizer.observe(8, 2.0)  # 4 items a second: 4 s holds 16
    assert sizer.size == 16
    sizer.observe(16, 16.0)  # 1 a second would be 4: never fewer than FIRST_BATCH
    assert sizer.size == FIRST_BATCH
    sizer.observe(8, 0.001)  # a fast model gets whole batches
    assert sizer.size == 32
    sizer.observe(32, 0.0)
    assert sizer.size == 32
    fixed = BatchSizer(32)
    fixed.observe(32, 60.0)
    assert fixed.size == 32


def batch_sizes(engine: Engine, count: int, batch_seconds: float) -> list[int]:
    """The sizes of the batches that ingest `count` paragraphs with `batch_seconds`."""
    filler = "The river ran high all spring, and the mills worked day and night. " * 4
    documents = [DocumentIn(id=f"d{n}", text=f"{n}. {filler}", lang="en") for n in range(count)]
    sizes: list[int] = []

    def keep_size(summary: IngestSummary, report: BatchReport) -> bool:
        sizes.append(report.items)
        return False

    summary = ingest_stream(documents, ingestor_for(engine), 32, keep_size,
                            batch_seconds=batch_seconds)
    assert summary.created == count and sum(sizes) == count
    return sizes


def test_a_model_on_this_cpu_gets_batches_it_embeds_in_the_time_asked(
    make_engine: Callable[..., Engine],
) -> None:
    # The bundled model embeds a few of these paragraphs a second: 0.1 s holds fewer than
    # FIRST_BATCH, 60 s more than 32. The second batch is read before the first is measured.
    assert batch_sizes(make_engine(), 24, batch_seconds=0.1) == [FIRST_BATCH] * 3
    assert batch_sizes(make_engine(), 60, batch_seconds=60) == [FIRST_BATCH] * 2 + [32, 12]


class SlowServer(Embedder):
    """An embedding server 0.3 s away: every call waits, whatever its size."""

    name = "slow-server"
    dimension = 64
    max_tokens = 512
    profile = PROFILES["plain"]

    @property
    def runs_on_local_cpu(self) -> bool:
        return False

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2

    def _encode(self, texts: list[str], *, is_query: bool, dimension: int | None) -> np.ndarray:
        time.sleep(0.3)
        return np.random.default_rng(len(texts)).random((len(texts), self.dimension))


def test_a_model_elsewhere_gets_whole_batches_however_long_a_call_takes(
    make_engine: Callable[..., Engine],
) -> None:
    # Sizing by time would shrink these batches to one document: a call's latency does not
    # shrink with it.
    assert batch_sizes(make_engine(SlowServer()), 40, batch_seconds=0.1) == [32, 8]
