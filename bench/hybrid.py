"""Hybrid retrieval against dense and lexical alone, through the engine's search.

What is measured
----------------
Three sets, each searched in every mode (`dense`, `lexical`, `hybrid` at several
`lexical_weight`s) and with two common fusions computed here from the engine's own dense
and lexical rankings (reciprocal rank fusion, k = 60; min-max convex 0.85/0.15):

* XQuAD, en + de es ru zh ar hi th (all 1,190 questions of each unless --questions):
  cross-lingual pairs en->X and X->en and same-language pairs X->X (corpus: the target
  language's 240 paragraphs, `languages=[target]`; one relevant paragraph), and the mixed
  corpus of all 12 languages' 2,880 paragraphs (questions in each of the 12 languages, the
  question's paragraph in all 12 languages relevant). nDCG@10, as bench/quality.py.
* Identifiers (bench/data/identifiers.jsonl, written for this benchmark): documents in 8
  languages that differ mainly by an identifier (error codes, part numbers, versions,
  tickets, models), questions mostly in another language than their document. R@1.
* Cross-lingual with distractors (bench/data/crosslingual.jsonl): every question in another
  language than its answer, and a document in the question's language that shares its words
  but answers something else. R@1.

The engine embeds with the bundled model; its vectors come from the cache of
bench/xquad_vectors.py where they are there (the same model's vectors for the same texts)
and from the model otherwise, so ingestion and search run through the engine as they do
in production, minus the model's time.

    python -m bench.hybrid                   # everything
    python -m bench.hybrid --questions 100   # 100 questions per language: a quick look

Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import (
    DEFAULT_XQUAD,
    Progress,
    code_version,
    format_table,
    log,
    machine_description,
)
from bench.quality import rank_metrics
from bench.xquad_vectors import DEFAULT_CACHE, Texts, Vectors, load_vectors
from indexer.pipeline import Ingestor, ingest_stream
from search.collections import ensure_collection
from search.embedders.bundled import BundledEmbedder
from search.engine import Engine
from search.schemas import DocumentIn, SearchRequest
from search.service import SearchService
from search.settings import Settings

DATA = Path(__file__).resolve().parent / "data"
PAIR_LANGUAGES = ("de", "es", "ru", "zh", "ar", "hi", "th")
WEIGHTS = (0.1, 0.2, 0.3)
DEPTH = 100  # how deep the dense and lexical lists go for the fusions computed here
RRF_K = 60


class CachedEmbedder(BundledEmbedder):
    """The bundled model, answering from vectors already computed for the same texts."""

    def __init__(self, known: dict[tuple[bool, str], np.ndarray]) -> None:
        super().__init__()
        self._known = known

    def _encode(self, texts: list[str], *, is_query: bool, dimension: int | None) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if (is_query, t) not in self._known]
        if missing:
            fresh = super()._encode(missing, is_query=is_query, dimension=dimension)
            self._known.update(((is_query, t), v) for t, v in zip(missing, fresh, strict=True))
        return np.stack([self._known[(is_query, t)] for t in texts])


def known_vectors(vectors: Vectors) -> dict[tuple[bool, str], np.ndarray]:
    """XQuAD's cached paragraph and question vectors, as CachedEmbedder takes them."""
    known: dict[tuple[bool, str], np.ndarray] = {}
    for kind, is_query in (("paragraphs", False), ("questions", True)):
        for lang, texts in getattr(vectors.texts, kind).items():
            known.update(((is_query, t), v) for t, v in
                         zip(texts, getattr(vectors, kind)[lang], strict=True))
    return known


@dataclass(frozen=True)
class Question:
    text: str
    relevant: frozenset[str]  # document ids
    languages: list[str] | None  # the search's language filter
    setting: str  # the row it counts in


@dataclass
class Tally:
    """Metrics per ranker and setting: (nDCG@10, R@1, R@10) of each question."""

    rows: dict[tuple[str, str], list[tuple[float, float, float]]] = field(default_factory=dict)

    def add(self, ranker: str, question: Question, ranked: Sequence[str]) -> None:
        metrics = rank_metrics(ranked, question.relevant.__contains__, len(question.relevant))
        self.rows.setdefault((ranker, question.setting), []).append(metrics)

    def mean(self, ranker: str, setting: str, metric: int) -> float:
        values = self.rows.get((ranker, setting), [])
        return float(np.mean([v[metric] for v in values])) if values else float("nan")


def ingest(engine: Engine, collection: str, documents: list[DocumentIn]) -> None:
    target = ensure_collection(engine.store, engine.settings, engine.embedder, collection)
    summary = ingest_stream(documents, Ingestor(engine.store, engine.embedder, target), 64)
    if summary.errors:
        raise SystemExit(f"ingesting {collection} failed: {summary.errors[:3]}")
    engine.indexes.get(target)
    log(f"{collection}: {summary.documents} documents, {summary.chunks} chunks")


def read_set(name: str) -> tuple[list[DocumentIn], list[Question]]:
    """A hand-written set: lines of documents `{"id", "lang", "text"}` and of questions
    `{"question", "lang", "answer"}`."""
    documents, questions = [], []
    for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if "question" in item:
            questions.append(Question(item["question"], frozenset([item["answer"]]), None, name))
        else:
            documents.append(DocumentIn(id=item["id"], text=item["text"], lang=item["lang"]))
    return documents, questions


def xquad_questions(texts: Texts, limit: int | None) -> list[Question]:
    """The XQuAD settings of the module docstring, `limit` questions per language."""
    owner = texts.question_paragraph
    step = 1 if limit is None else max(1, len(owner) // limit)
    languages = list(texts.questions)
    questions: list[Question] = []
    for q in range(0, len(owner), step):
        paragraph = owner[q]
        for x in PAIR_LANGUAGES:
            for src, target, setting in (("en", x, "en->X"), (x, "en", "X->en"), (x, x, "X->X")):
                relevant = frozenset([f"{target}-{paragraph}"])
                questions.append(Question(texts.questions[src][q], relevant, [target], setting))
        everywhere = frozenset(f"{lang}-{paragraph}" for lang in languages)
        for lang in languages:
            questions.append(Question(texts.questions[lang][q], everywhere, None, "mixed"))
    return questions


def searcher_with(engine: Engine, weight: float) -> SearchService:
    return SearchService(
        engine.store, engine.embedder, engine.indexes, engine.settings.search_overfetch, weight
    )


def ranked(searcher: SearchService, collection: str, question: Question, mode: str,
           k: int = 10) -> list[tuple[str, float]]:
    """(document id, score) best first; nothing where the mode cannot read the question."""
    try:
        request = SearchRequest(query=question.text, k=k, languages=question.languages,
                                mode=mode)  # type: ignore[arg-type]
    except ValueError:  # lexical mode and a question with no words, or an unclosed quote
        return []
    return [(r.id, r.score) for r in searcher.search(collection, request).results]


def rrf(dense: list[tuple[str, float]], lexical: list[tuple[str, float]]) -> list[str]:
    scores: dict[str, float] = {}
    for results in (dense, lexical):
        for rank, (doc, _) in enumerate(results, 1):
            scores[doc] = scores.get(doc, 0.0) + 1 / (RRF_K + rank)
    return sorted(scores, key=lambda d: -scores[d])


def min_max(dense: list[tuple[str, float]], lexical: list[tuple[str, float]],
            dense_weight: float = 0.85) -> list[str]:
    def normalised(results: list[tuple[str, float]]) -> dict[str, float]:
        if not results:
            return {}
        values = [s for _, s in results]
        low, span = min(values), (max(values) - min(values)) or 1.0
        return {doc: (s - low) / span for doc, s in results}

    d, lex = normalised(dense), normalised(lexical)
    scores = {doc: dense_weight * d.get(doc, 0.0) + (1 - dense_weight) * lex.get(doc, 0.0)
              for doc in {**d, **lex}}
    return sorted(scores, key=lambda doc: -scores[doc])


def evaluate(engine: Engine, collection: str, questions: list[Question], tally: Tally,
             weights: Sequence[float]) -> None:
    searchers = {w: searcher_with(engine, w) for w in weights}
    progress = Progress(f"search {collection}", len(questions))
    for question in questions:
        dense = ranked(engine.searcher, collection, question, "dense", DEPTH)
        lexical = ranked(engine.searcher, collection, question, "lexical", DEPTH)
        tally.add("dense", question, [d for d, _ in dense])
        tally.add("lexical", question, [d for d, _ in lexical])
        tally.add("RRF k=60", question, rrf(dense, lexical))
        tally.add("min-max 0.85/0.15", question, min_max(dense, lexical))
        for weight, searcher in searchers.items():
            hybrid = ranked(searcher, collection, question, "hybrid")
            tally.add(f"hybrid {weight:g}", question, [d for d, _ in hybrid])
        progress.advance()


SETTINGS = (
    ("XQuAD en->X", "en->X", 0),
    ("XQuAD X->en", "X->en", 0),
    ("XQuAD X->X", "X->X", 0),
    ("XQuAD mixed, 12 languages", "mixed", 0),
    ("identifiers", "identifiers", 1),
    ("cross-lingual with distractors", "crosslingual", 1),
)


def report(tally: Tally, weights: Sequence[float]) -> str:
    rankers = ["dense", "lexical", "RRF k=60", "min-max 0.85/0.15",
               *(f"hybrid {w:g}" for w in weights)]
    headers = ["ranker", *(f"{name} ({'nDCG@10' if metric == 0 else 'R@1'})"
                           for name, _, metric in SETTINGS)]
    rows = [[ranker, *(round(tally.mean(ranker, setting, metric), 3)
                       for _, setting, metric in SETTINGS)] for ranker in rankers]
    return format_table(headers, rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xquad", type=Path, default=DEFAULT_XQUAD)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--questions", type=int, default=None,
                        help="XQuAD questions per language (default: all 1,190)")
    parser.add_argument("--weights", default=",".join(f"{w:g}" for w in WEIGHTS),
                        help="lexical_weight values of hybrid mode to compare")
    parser.add_argument("--skip-xquad", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")]
    vectors = load_vectors(args.xquad, args.cache, kinds=("paragraphs", "questions"))
    known = known_vectors(vectors)
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="xlsearch-hybrid-") as folder:
        engine = Engine.open(Settings(data_dir=Path(folder)), CachedEmbedder(known))
        try:
            for name in ("identifiers", "crosslingual"):
                documents, questions = read_set(name)
                ingest(engine, name, documents)
                evaluate(engine, name, questions, tally, weights)
            if not args.skip_xquad:
                documents = [
                    DocumentIn(id=f"{lang}-{p}", text=text, lang=lang)
                    for lang, paragraphs in vectors.texts.paragraphs.items()
                    for p, text in enumerate(paragraphs)
                ]
                ingest(engine, "xquad", documents)
                questions = xquad_questions(vectors.texts, args.questions)
                evaluate(engine, "xquad", questions, tally, weights)
        finally:
            engine.close()
    print(f"# Hybrid retrieval ({machine_description()}; {code_version()})\n")
    print(report(tally, weights))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
