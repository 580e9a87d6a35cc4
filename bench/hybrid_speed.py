"""What the lexical side costs: indexing throughput of the lexical view, and the latency
hybrid and lexical search add to a dense search, at about 100,000 chunks.

What is measured
----------------
The corpus is XQuAD's real texts in 12 languages (2,880 paragraphs and 14,280 questions,
embedded by the bundled model: bench/xquad_vectors.py) repeated `--copies` times (6: 103k
chunks). A copy keeps its text and moves its vector by a little Gaussian noise (sigma 0.01
per component, renormalised), so the IVF index is trained on as many distinct vectors as
it holds. The engine ingests them (language given) into one collection with its default
settings (IVF from 50,000 chunks), and builds its indexes.

* Lexical indexing: chunks/s of `LexicalIndex.add` + `commit` over every stored chunk text,
  in a fresh folder (what a rebuild or the first catch-up does), median of `--repeats`.
* Search latency: 300 XQuAD questions (25 per language) searched one at a time through
  `engine.searcher` in each mode, query vectors taken from the cache (so the model's time,
  the same in dense and hybrid, is left out); the modes alternate question by question;
  p50 and p99 of `took_ms`, "added" is each mode's p50 minus dense's, and the median time of
  each stage (language detection, embedding lookup, FAISS, lexical, database fetches).

    python -m bench.hybrid_speed                 # 103k chunks
    python -m bench.hybrid_speed --copies 1      # 17k chunks, a quick look
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.common import code_version, format_table, log, machine_description
from bench.hybrid import CachedEmbedder
from bench.xquad_vectors import DEFAULT_CACHE, load_vectors
from indexer.pipeline import Ingestor, ingest_stream
from search.engine import Engine
from search.lexical_index import LexicalIndex
from search.schemas import DocumentIn, SearchRequest
from search.settings import Settings

NOISE = 0.01
SEED = 20261202


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--copies", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--questions", type=int, default=25, help="per language")
    args = parser.parse_args(argv)
    vectors = load_vectors(cache=args.cache, kinds=("paragraphs", "questions"))
    rng = np.random.default_rng(SEED)
    known: dict[tuple[bool, str], np.ndarray] = {}
    documents: list[DocumentIn] = []
    for kind in ("paragraphs", "questions"):
        for lang, texts in getattr(vectors.texts, kind).items():
            embedded = getattr(vectors, kind)[lang]
            if kind == "questions":
                known.update(((True, t), v) for t, v in zip(texts, embedded, strict=True))
            for n, (text, vector) in enumerate(zip(texts, embedded, strict=True)):
                for copy in range(args.copies):
                    # a distinct text with the same words, and a vector moved a little
                    body = text if copy == 0 else f"{text}\u2060{copy}"
                    moved = vector + (rng.normal(0, NOISE, vector.shape) if copy else 0)
                    known[(False, body)] = (moved / np.linalg.norm(moved)).astype(np.float32)
                    doc_id = f"{kind}-{lang}-{n}-{copy}"
                    documents.append(DocumentIn(id=doc_id, text=body, lang=lang))
    questions = [
        text for texts in vectors.texts.questions.values()
        for text in texts[:: max(1, len(texts) // args.questions)][: args.questions]
    ]
    with tempfile.TemporaryDirectory(prefix="xlsearch-hybrid-speed-") as folder:
        engine = Engine.open(Settings(data_dir=Path(folder)), CachedEmbedder(known))
        try:
            collection = engine.store.get_collection("default")
            started = time.perf_counter()
            summary = ingest_stream(documents, Ingestor.for_engine(engine, collection), 256)
            log(f"ingested {summary.documents} documents, {summary.chunks} chunks in "
                f"{time.perf_counter() - started:.0f} s")
            index = engine.indexes.get(collection)
            log(f"index: {index.index.describe()}")
            texts = [t for page in engine.store.chunks_after(
                collection, 0, with_vectors=False, with_texts=True
            ) for t in page.texts_read]
            ids = np.arange(1, len(texts) + 1, dtype=np.int64)
            rates = []
            for repeat in range(args.repeats):
                lexical = LexicalIndex(Path(folder) / f"lexical-bench-{repeat}")
                began = time.perf_counter()
                lexical.add(ids, texts)
                lexical.commit()
                rates.append(len(texts) / (time.perf_counter() - began))
                lexical.close()
                log(f"lexical indexing {repeat + 1}: {rates[-1]:.0f} chunks/s")
            took: dict[str, list[float]] = {"dense": [], "lexical": [], "hybrid": []}
            stages: dict[str, dict[str, list[float]]] = {mode: {} for mode in took}
            for mode in took:  # warm up each path
                engine.searcher.search("default", SearchRequest(query=questions[0], mode=mode))
            for question in questions:
                for mode, times in took.items():
                    try:
                        request = SearchRequest(query=question, mode=mode)  # type: ignore[arg-type]
                    except ValueError:
                        continue
                    answer, watch = engine.searcher.search_timed("default", request)
                    times.append(answer.took_ms)
                    for stage, ms in watch.stages_ms.items():
                        stages[mode].setdefault(stage, []).append(ms)
        finally:
            engine.close()
    print(f"# Lexical side cost ({machine_description()}; {code_version()})\n")
    print(f"{len(texts):,} chunks ({args.copies} copies of XQuAD's paragraphs and questions); "
          f"index {index.index.plan.kind} nlist {index.index.plan.nlist}\n")
    print(format_table(["lexical indexing", "chunks/s (median)", "runs"],
                       [["LexicalIndex.add + commit", f"{statistics.median(rates):,.0f}",
                         ", ".join(f"{r:,.0f}" for r in rates)]]))
    print()
    dense_p50 = percentile(took["dense"], 50)
    rows = [[mode, len(times), f"{percentile(times, 50):.2f}", f"{percentile(times, 99):.2f}",
             f"{percentile(times, 50) - dense_p50:+.2f}"] for mode, times in took.items()]
    print(format_table(["mode", "searches", "p50 ms", "p99 ms", "p50 added to dense"], rows))
    print()
    names = sorted({stage for per_mode in stages.values() for stage in per_mode})
    print(format_table(
        ["mode", *(f"{name} ms (median)" for name in names)],
        [[mode, *(f"{statistics.median(per_mode[name]):.2f}" if name in per_mode else "–"
                  for name in names)] for mode, per_mode in stages.items()],
    ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
