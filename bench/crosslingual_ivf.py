#!/usr/bin/env python
"""Cross-lingual search on IVF indexes: recall against exact search, unfiltered and filtered,
on real multilingual vectors.

Data: XQuAD in 12 languages embedded by the bundled model (bench/xquad_vectors.py, cached):
240 paragraphs, their sentences and 1,190 questions per language. The corpus is every
paragraph and sentence plus the questions not used as queries, each its own document with
its language and a metadata field `bucket` drawn uniformly from 0..999 (for filters of 10 %,
1 % and 0.1 % selectivity); the queries are `--queries` questions in each of the 12 languages
(their copies in every language are left out of the corpus).

Indexes: the engine's own code (search.vector_index, search.filter_table through
search.index_manager.CollectionIndex) with IVF forced at the size it would choose for the
corpus (`plan_index`), for each index type; "before" is the engine as it was: k-means on the
raw vectors, nprobe = max(8, nlist/16), filters applied after the search (fetch 16 per result,
x4 until 10 are found or 20,000 chunks were read). The reference is exact search (numpy
inner products over every vector, or every matching vector) in the same run.

Metrics: recall@10 (share of the exact top 10 found); "cross" = share of queries whose top
10 holds a paragraph or sentence of the answer's paragraph in another language than the
question; "short" = share of queries answered with fewer than 10 results although at least
10 chunks match; latency = median ms of one query at a time (`CollectionIndex.search`,
filter evaluation included), median over `--repeats` runs.

    python -m bench.crosslingual_ivf [--queries 100] [--repeats 3]
        [--corpus paragraphs,sentences,questions] [--types ivf,ivf_sq8,ivf_pq]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from bench.common import (
    XQUAD_LANGUAGES,
    code_version,
    format_table,
    log,
    machine_description,
)
from bench.xquad_vectors import DEFAULT_CACHE, Vectors, load_vectors
from search.index_manager import TRAINING_SAMPLE_SEED, CollectionIndex
from search.store.records import ChunkPage, CollectionInfo
from search.vector_index import (
    INDEX_TYPES,
    IndexSettings,
    VectorIndex,
    plan_index,
)

K = 10
SEED = 20261202
BUCKETS = 1000
METADATA_FILTERS = {
    "10 %": {"bucket": {"$lt": 100}},
    "1 %": {"bucket": {"$lt": 10}},
    "0.1 %": {"bucket": 7},
}


@dataclass
class Corpus:
    vectors: np.ndarray
    langs: list[str]
    paragraph: np.ndarray  # the XQuAD paragraph each chunk comes from (-1: a question)
    bucket: np.ndarray
    queries: np.ndarray
    query_langs: list[str]
    query_paragraph: np.ndarray


def build_corpus(vectors: Vectors, n_queries: int, kinds: Sequence[str]) -> Corpus:
    rng = np.random.default_rng(SEED)
    texts = vectors.texts
    n_questions = len(texts.questions["en"])
    asked = np.sort(rng.choice(n_questions, size=n_queries, replace=False))
    question_paragraph = np.asarray(texts.question_paragraph)
    parts, langs, paragraph = [], [], []
    for lang in XQUAD_LANGUAGES:
        if "paragraphs" in kinds:
            parts.append(vectors.paragraphs[lang])
            langs += [lang] * len(vectors.paragraphs[lang])
            paragraph.append(np.arange(len(vectors.paragraphs[lang])))
        if "sentences" in kinds:
            parts.append(vectors.sentences[lang])
            langs += [lang] * len(vectors.sentences[lang])
            paragraph.append(np.asarray(texts.sentence_paragraph[lang]))
        if "questions" in kinds:
            kept = np.setdiff1d(np.arange(n_questions), asked)
            parts.append(vectors.questions[lang][kept])
            langs += [lang] * len(kept)
            paragraph.append(np.full(len(kept), -1))
    corpus = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
    queries = np.concatenate([vectors.questions[lang][asked] for lang in XQUAD_LANGUAGES])
    return Corpus(
        vectors=corpus,
        langs=langs,
        paragraph=np.concatenate(paragraph),
        bucket=rng.integers(0, BUCKETS, len(corpus)),
        queries=np.ascontiguousarray(queries, dtype=np.float32),
        query_langs=[lang for lang in XQUAD_LANGUAGES for _ in asked],
        query_paragraph=np.tile(question_paragraph[asked], len(XQUAD_LANGUAGES)),
    )


# -- the indexes -------------------------------------------------------------------------


def engine_index(corpus: Corpus, index_type: str) -> tuple[CollectionIndex, float]:
    """The engine's index over the corpus (as IndexManager._build makes it), with IVF forced,
    and its build time in seconds."""
    started = time.perf_counter()
    plan = plan_index(len(corpus.vectors), 0, IndexSettings(type=index_type))  # type: ignore[arg-type]
    index = VectorIndex(corpus.vectors.shape[1], plan)
    if index.needs_training:
        rng = np.random.default_rng(TRAINING_SAMPLE_SEED)
        size = min(len(corpus.vectors), plan.nlist * 256)
        picked = np.sort(rng.choice(len(corpus.vectors), size=size, replace=False))
        index.train(corpus.vectors[picked], [corpus.langs[i] for i in picked])
    collection = CollectionInfo(1, "bench", "bench", corpus.vectors.shape[1], 512, 64)
    current = CollectionIndex(collection, index)
    ids = np.arange(1, len(corpus.vectors) + 1, dtype=np.int64)
    for start in range(0, len(ids), 4096):
        page = slice(start, start + 4096)
        current.index.add(ids[page], corpus.vectors[page])
        current.filters.add(ChunkPage(
            ids=ids[page],
            vectors=None,
            langs=corpus.langs[page],
            documents=ids[page].tolist(),
            document_langs=corpus.langs[page],
            metadata_json=[f'{{"bucket": {b}}}' for b in corpus.bucket[page]],
        ))
    return current, time.perf_counter() - started


class BeforeIndex:
    """The engine before this benchmark's fixes: raw k-means lists, nlist/16 probes,
    post-filtering."""

    def __init__(self, corpus: Corpus) -> None:
        plan = plan_index(len(corpus.vectors), 0)
        self.nlist = plan.nlist
        self.nprobe = max(8, plan.nlist // 16)
        started = time.perf_counter()
        rng = np.random.default_rng(TRAINING_SAMPLE_SEED)
        size = min(len(corpus.vectors), plan.nlist * 256)
        sample = corpus.vectors[rng.choice(len(corpus.vectors), size=size, replace=False)]
        quantizer = faiss.IndexFlatIP(corpus.vectors.shape[1])
        self.index = faiss.IndexIVFFlat(
            quantizer, corpus.vectors.shape[1], plan.nlist, faiss.METRIC_INNER_PRODUCT
        )
        self.index.cp.seed = 1234
        self.index.train(sample)
        self.index.add_with_ids(corpus.vectors, np.arange(1, len(corpus.vectors) + 1))
        self.index.nprobe = self.nprobe
        self._quantizer = quantizer
        self.build_s = time.perf_counter() - started
        self.corpus = corpus

    def search(
        self, query: np.ndarray, keep: Callable[[np.ndarray], np.ndarray] | None
    ) -> np.ndarray:
        fetch = K * 16 if keep is not None else K
        while True:
            _, ids = self.index.search(query, fetch)
            found = ids[0][ids[0] >= 0]
            if keep is not None:
                found = found[keep(found - 1)]
            if len(found) >= K or fetch >= min(len(self.corpus.vectors), 20_000) or keep is None:
                return found[:K]
            fetch *= 4


# -- measuring ---------------------------------------------------------------------------


TIE = 1e-6  # scores this close count as equal: XQuAD repeats some texts word for word


def exact_top(corpus: Corpus, rows: np.ndarray | None) -> np.ndarray:
    """Per query, the exact answer among `rows` (all if None): chunk ids (1-based) of the top
    k, best first, followed by any others tied with the k-th (an object array of arrays)."""
    candidates = corpus.vectors if rows is None else corpus.vectors[rows]
    scores = corpus.queries @ candidates.T
    k = min(K, scores.shape[1])
    answers = np.empty(len(scores), dtype=object)
    for q, row in enumerate(scores):
        order = np.argsort(-row, kind="stable")
        tied = order[row[order] >= row[order[k - 1]] - TIE] if k else order[:0]
        ids = tied if rows is None else rows[tied]
        answers[q] = ids + 1
    return answers


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    """Share of the exact top k found; a result tied with the k-th counts as found."""
    hits = total = 0
    for got, want in zip(found, truth, strict=True):
        wanted = min(K, len(want))
        hits += min(wanted, len(set(got.tolist()) & set(want.tolist())))
        total += wanted
    return hits / total if total else 1.0


def cross_share(corpus: Corpus, found: list[np.ndarray], queries: np.ndarray) -> float:
    """Share of `queries` whose results hold the answer's paragraph in another language."""
    reached = 0
    for q in queries:
        ids = found[q] - 1
        ids = ids[ids >= 0]
        same_paragraph = corpus.paragraph[ids] == corpus.query_paragraph[q]
        other_language = np.asarray([corpus.langs[i] for i in ids]) != corpus.query_langs[q]
        reached += bool((same_paragraph & other_language).any())
    return reached / len(queries)


def run_engine(current: CollectionIndex, corpus: Corpus, languages: list[str] | None,
               spec: dict | None, queries: np.ndarray) -> tuple[list[np.ndarray], float]:
    """Results of the engine's index for `queries` and the median ms per query."""
    found: list[np.ndarray] = [np.zeros(0, np.int64)] * len(corpus.queries)
    timings = []
    for q in queries:
        current.filters._selections.clear()  # time the filter's evaluation too, not a cache hit
        started = time.perf_counter()
        _, ids, _ = current.search(corpus.queries[q : q + 1], K, None, languages, spec)
        timings.append((time.perf_counter() - started) * 1000)
        found[q] = ids[0][ids[0] >= 0]
    return found, statistics.median(timings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100, help="questions per language")
    parser.add_argument("--repeats", type=int, default=3, help="latency runs (median)")
    parser.add_argument("--corpus", default="paragraphs,sentences,questions",
                        help="which texts are chunks (comma-separated)")
    parser.add_argument("--types", default=",".join(t for t in INDEX_TYPES if t != "flat"))
    parser.add_argument("--cache", default=str(DEFAULT_CACHE))
    args = parser.parse_args(argv)
    faiss.omp_set_num_threads(1)  # one query at a time, as the API searches

    kinds = tuple(args.corpus.split(","))
    vectors = load_vectors(cache=Path(args.cache), kinds={*kinds, "questions"})
    corpus = build_corpus(vectors, args.queries, kinds)
    n, all_queries = len(corpus.vectors), np.arange(len(corpus.queries))
    langs = np.asarray(corpus.langs)
    query_langs = np.asarray(corpus.query_langs)
    plan = plan_index(n, 0)
    print("# Cross-lingual IVF benchmark\n")
    print(f"Machine: {machine_description()}; {code_version()}; FAISS on 1 thread.\n")
    print(f"Corpus: {n:,} chunks ({', '.join(kinds)}) in 12 languages; {len(all_queries):,} "
          f"queries ({args.queries} questions x 12 languages); IVF nlist {plan.nlist}.\n")

    log("exact search (the reference) ...")
    truth = exact_top(corpus, None)
    exact_found = [t[:K] for t in truth]

    log("before: raw k-means lists, nlist/16 probes, post-filter ...")
    before = BeforeIndex(corpus)
    engines = {}
    for index_type in args.types.split(","):
        log(f"engine: building {index_type} ...")
        engines[index_type] = engine_index(corpus, index_type)

    # -- unfiltered
    rows = []
    found_before = [before.search(corpus.queries[q : q + 1], None) for q in all_queries]
    flat_bytes = corpus.vectors.nbytes + 8 * n  # as saved: the vectors and their ids
    rows.append(["exact (flat)", "-", 1.0, "-", cross_share(corpus, exact_found, all_queries),
                 "-", "-", f"{flat_bytes / 2**20:.1f}", f"{flat_bytes / n:.0f}"])
    rows.append([f"before (ivf, nprobe {before.nprobe})", before.nlist,
                 recall(found_before, truth), worst_language(found_before, truth, query_langs),
                 cross_share(corpus, found_before, all_queries), "-", f"{before.build_s:.1f}",
                 "-", "-"])
    latencies: dict[str, float] = {}
    for index_type, (current, build_s) in engines.items():
        runs = [run_engine(current, corpus, None, None, all_queries) for _ in range(args.repeats)]
        found, latency = runs[0][0], statistics.median(r[1] for r in runs)
        latencies[index_type] = latency
        p = current.index.plan
        size = current.index.memory_bytes()
        rows.append([f"{index_type} (nprobe {p.nprobe})", p.nlist, recall(found, truth),
                     worst_language(found, truth, query_langs),
                     cross_share(corpus, found, all_queries), latency, f"{build_s:.1f}",
                     f"{size / 2**20:.1f}", f"{size / n:.0f}"])
    print("## Unfiltered\n")
    print(format_table(("index", "nlist", "recall@10", "worst language", "cross", "ms p50",
                        "build s", "MiB", "bytes/chunk"), rows))
    print()

    print("## nprobe: unfiltered recall@10 by lists searched\n")
    print("The engine's lists (language-neutral k-means) against the raw k-means lists of "
          "before, on the same vectors and queries.\n")
    current, _ = engines["ivf"]
    sweep = []
    for nprobe in (8, 16, 24, 32, 48, 64, 96, 128):
        if nprobe > current.index.plan.nlist:
            break
        found_n = [current.index.search(corpus.queries[q : q + 1], K, nprobe)[1][0]
                   for q in all_queries]
        before.index.nprobe = nprobe
        found_r = [before.search(corpus.queries[q : q + 1], None) for q in all_queries]
        sweep.append([nprobe, f"{nprobe / current.index.plan.nlist:.1%}",
                      recall(found_n, truth), worst_language(found_n, truth, query_langs),
                      cross_share(corpus, found_n, all_queries),
                      recall(found_r, truth), worst_language(found_r, truth, query_langs),
                      cross_share(corpus, found_r, all_queries)])
    before.index.nprobe = before.nprobe
    print(format_table(("nprobe", "lists", "recall@10", "worst language", "cross",
                        "raw lists: recall@10", "worst language", "cross"), sweep))
    print()

    # -- language filters, every (query language, filter language) pair
    current, _ = engines["ivf"]
    pair_rows = []
    worst_pair = (1.0, "")
    short_total = [0, 0]
    before_worst = (1.0, "")
    for filter_lang in XQUAD_LANGUAGES:
        rows_in = np.flatnonzero(langs == filter_lang)
        truth_f = exact_top(corpus, rows_in)
        found, _ = run_engine(current, corpus, [filter_lang], None, all_queries)
        keep = lambda ids, lang=filter_lang: langs[ids] == lang  # noqa: E731
        found_b = [before.search(corpus.queries[q : q + 1], keep) for q in all_queries]
        line = [filter_lang]
        for query_lang in XQUAD_LANGUAGES:
            qs = np.flatnonzero(query_langs == query_lang)
            r = recall([found[q] for q in qs], truth_f[qs])
            rb = recall([found_b[q] for q in qs], truth_f[qs])
            line.append(r)
            worst_pair = min(worst_pair, (r, f"{query_lang}→{filter_lang}"))
            before_worst = min(before_worst, (rb, f"{query_lang}→{filter_lang}"))
            short_total[0] += sum(len(found[q]) < K for q in qs)
            short_total[1] += len(qs)
        pair_rows.append(line)
    print("## Language filters: recall@10 against exact filtered search\n")
    print("Rows: the filter's language; columns: the question's language. IVF as the engine "
          "builds it.\n")
    print(format_table(["filter \\ query", *XQUAD_LANGUAGES], pair_rows))
    print(f"\nWorst pair: {worst_pair[1]} at {worst_pair[0]:.3f} (before: worst "
          f"{before_worst[1]} at {before_worst[0]:.3f}); queries with fewer than 10 results: "
          f"{short_total[0]} of {short_total[1]}.\n")

    # -- metadata filters
    meta_rows = []
    for label, spec in METADATA_FILTERS.items():
        selected = np.flatnonzero(select_rows(corpus, spec))
        truth_f = exact_top(corpus, selected)
        chosen = np.zeros(len(corpus.vectors), bool)
        chosen[selected] = True
        keep = chosen.__getitem__
        found_b = [before.search(corpus.queries[q : q + 1], keep) for q in all_queries]
        for index_type, (current, _) in engines.items():
            runs = [run_engine(current, corpus, None, spec, all_queries)
                    for _ in range(args.repeats)]
            found, latency = runs[0][0], statistics.median(r[1] for r in runs)
            short = np.mean([len(f) < min(K, len(selected)) for f in found])
            meta_rows.append([f"{label} ({len(selected):,} chunks)", index_type,
                              recall(found, truth_f), short, latency,
                              latency / latencies[index_type]])
        short_b = np.mean([len(f) < min(K, len(selected)) for f in found_b])
        meta_rows.append([f"{label} ({len(selected):,} chunks)", "before",
                          recall(found_b, truth_f), short_b, "-", "-"])
    print("## Metadata filters\n")
    print(format_table(("filter", "index", "recall@10", "short", "ms p50", "x unfiltered"),
                       meta_rows))
    print()
    return 0


def select_rows(corpus: Corpus, spec: dict) -> np.ndarray:
    """Which chunks the bench's own bucket filters keep (the reference, written apart from the
    engine's filter evaluation)."""
    test = spec["bucket"]
    if isinstance(test, dict):
        return corpus.bucket < test["$lt"]
    return corpus.bucket == test


def worst_language(found: list[np.ndarray], truth: np.ndarray, query_langs: np.ndarray) -> str:
    by_lang = {
        lang: recall([found[q] for q in np.flatnonzero(query_langs == lang)],
                     truth[query_langs == lang])
        for lang in XQUAD_LANGUAGES
    }
    lang = min(by_lang, key=by_lang.__getitem__)
    return f"{lang} {by_lang[lang]:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
