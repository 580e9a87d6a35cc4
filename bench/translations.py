"""Translation sets and collapse: how well xlsearch finds XQuAD's parallel paragraphs, how
often it merges different paragraphs of one article, what collapse does to the top 10, and
what both cost; beside the rules it was chosen over.

Data: XQuAD, 240 paragraphs (48 articles of 5) in 12 languages, 2,880 documents, each one
paragraph, with the bundled model's vectors (cached by `bench.xquad_vectors`). Truth: two
documents are translations when they are the same paragraph. A second corpus holds no
translations at all: paragraph p only in language p mod 12, so an article's paragraphs are
on one topic in different languages, each often the only one on its topic in its language
(the hard case); every link made there is a false merge.

1. Rules over the raw vectors. Each links pairs of documents in different languages; linked
   documents form sets (connected components); precision and recall are over pairs.
   - cosine >= t: a fixed threshold;
   - mutual best: i's nearest in j's language is j, and j's nearest in i's language is i;
   - the ratio margin of bitext mining (Artetxe & Schwenk 2019, LASER/CCMatrix), per
     language: cos(i, j) over the mean of i's average cosine to its k nearest in j's
     language and j's to its k nearest in i's, kept among mutual best pairs at >= t.
2. xlsearch, through the REST API (in process, `TestClient`): the corpus is posted in
   batches of 64 with `wait: true` (answered once searchable and linked), once with
   translation sets and once without (`XLSEARCH_TRANSLATIONS=false`), the model answering
   from the cached vectors; each document's `translations` is read back with
   `GET …/documents/{id}`. The ingest cost is the extra time of the linked run per document
   against the bundled model's real ingest time per document, measured on 64 paragraphs in
   the same run.
3. Collapse: XQuAD's questions (`--questions` per language, each language's question asked
   over all 12 languages) searched in dense mode with `collapse: translations` and `none`:
   distinct paragraphs in the top 10, R@1 (the first result is the question's paragraph, in
   any language), and the search time's p50 over the same questions, interleaved.

    python -m bench.translations [XQUAD_FOLDER] [--cache DIR] [--questions 100]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from bench.common import DEFAULT_XQUAD, code_version, format_table, log, machine_description
from bench.hybrid import CachedEmbedder, known_vectors
from bench.xquad_vectors import DEFAULT_CACHE, Vectors, load_vectors
from search.api import create_app
from search.embedders.bundled import BundledEmbedder
from search.settings import Settings

MARGIN_K = 4
MARGINS = (1.02, 1.05, 1.08)
COSINES = (0.8, 0.85, 0.9)
BATCH = 64
COLLECTION = "/v1/collections/default"


@dataclass(frozen=True)
class Corpus:
    """Documents as unit vectors with their language, paragraph and article."""

    vectors: np.ndarray
    langs: np.ndarray  # index into `languages`
    paragraphs: np.ndarray
    articles: np.ndarray
    languages: list[str]

    def ids(self) -> list[str]:
        return [f"{self.languages[lang]}-{p}" for lang, p in zip(self.langs, self.paragraphs,
                                                                   strict=True)]


def articles_of(xquad: Path) -> list[int]:
    """The article each XQuAD paragraph belongs to, in `load_xquad`'s paragraph order."""
    data = json.loads((xquad / "xquad.en.json").read_text("utf-8"))["data"]
    return [a for a, article in enumerate(data) for _ in article["paragraphs"]]


def corpora(xquad: Path, vectors: Vectors) -> dict[str, Corpus]:
    paragraphs = vectors.paragraphs
    langs = sorted(paragraphs)
    article = np.array(articles_of(xquad))
    n = len(article)
    mixed = Corpus(
        np.concatenate([paragraphs[lang] for lang in langs]),
        np.repeat(np.arange(len(langs)), n),
        np.tile(np.arange(n), len(langs)),
        np.tile(article, len(langs)),
        langs,
    )
    own = np.arange(n) % len(langs)  # paragraph p only in language p mod 12
    alone = Corpus(
        np.stack([paragraphs[langs[lang]][p] for p, lang in enumerate(own)]),
        own, np.arange(n), article, langs,
    )
    return {
        f"{len(langs)} languages mixed ({len(mixed.langs):,} documents)": mixed,
        f"no translations ({len(alone.langs):,} documents)": alone,
    }


def cross_language_cosines(corpus: Corpus) -> np.ndarray:
    """Cosines between documents, -inf within one language."""
    cos = corpus.vectors @ corpus.vectors.T
    cos[corpus.langs[:, None] == corpus.langs[None, :]] = -np.inf
    return cos


def mutual_best(cos: np.ndarray, langs: np.ndarray) -> np.ndarray:
    """Pairs (i, j), i < j, each the other's nearest in the other's language."""
    best = np.full((len(langs), int(langs.max()) + 1), -1)
    for lang in np.unique(langs):
        columns = np.flatnonzero(langs == lang)
        best[:, lang] = columns[np.argmax(cos[:, columns], axis=1)]
    i = np.arange(len(langs))
    pairs = [(a, int(b)) for a in i for b in best[a] if b > a and best[b, langs[a]] == a]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def language_margins(cos: np.ndarray, langs: np.ndarray, pairs: np.ndarray, k: int) -> np.ndarray:
    """The ratio margin of each pair, with each side's k nearest in the other's language."""
    nearest = np.zeros((len(langs), int(langs.max()) + 1))
    for lang in np.unique(langs):
        columns = np.sort(cos[:, langs == lang], axis=1)
        nearest[:, lang] = columns[:, -min(k, columns.shape[1]):].mean(axis=1)
    a, b = pairs[:, 0], pairs[:, 1]
    return cos[a, b] / ((nearest[a, langs[b]] + nearest[b, langs[a]]) / 2)


def sets_of(pairs: np.ndarray, n: int) -> np.ndarray:
    """Each document's set (connected components of the linked pairs)."""
    parent = np.arange(n)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return int(x)

    for a, b in pairs:
        parent[root(int(a))] = root(int(b))
    return np.array([root(x) for x in range(n)])


def scored(corpus: Corpus, sets: np.ndarray) -> tuple[float, float, int, int]:
    """Pairwise precision, recall, false merges in one article, and the largest set."""
    n = len(corpus.langs)
    together = sets[:, None] == sets[None, :]
    different_lang = corpus.langs[:, None] != corpus.langs[None, :]
    same = corpus.paragraphs[:, None] == corpus.paragraphs[None, :]
    upper = np.triu(np.ones((n, n), bool), 1)
    linked = together & upper
    truth = same & different_lang & upper
    right = int((linked & truth).sum())
    precision = right / max(1, int(linked.sum()))
    recall = right / int(truth.sum()) if truth.any() else float("nan")
    same_article = corpus.articles[:, None] == corpus.articles[None, :]
    false_in_article = int((linked & ~same & same_article).sum())
    return precision, recall, false_in_article, int(np.bincount(sets).max())


def raw_rules(corpus: Corpus, k: int) -> list[tuple[str, tuple[float, float, int, int]]]:
    cos = cross_language_cosines(corpus)
    n = len(corpus.langs)
    rows = []
    for threshold in COSINES:
        i, j = np.nonzero(np.triu(cos >= threshold, 1))
        rows.append((f"cosine >= {threshold}", scored(corpus, sets_of(np.stack([i, j], 1), n))))
    mutual = mutual_best(cos, corpus.langs)
    rows.append(("mutual best", scored(corpus, sets_of(mutual, n))))
    margin = language_margins(cos, corpus.langs, mutual, k)
    for threshold in MARGINS:
        kept = mutual[margin >= threshold]
        rows.append((f"mutual best, margin >= {threshold} (k = {k})",
                     scored(corpus, sets_of(kept, n))))
    return rows


@dataclass
class Timed:
    """Seconds spent in a function, however many threads call it."""

    seconds: float = 0.0

    def around(self, function: Callable[..., int]) -> Callable[..., int]:
        def timed(*args: Any, **kwargs: Any) -> int:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
        return timed


@contextmanager
def serving(known: dict[tuple[bool, str], np.ndarray], linking: Timed) -> Iterator[TestClient]:
    """The API on a fresh data folder, the model answering from `known` vectors, and the
    time its linker spends added to `linking`."""
    with tempfile.TemporaryDirectory(prefix="xlsearch-translations-") as folder:
        settings = Settings(data_dir=Path(folder))
        with TestClient(create_app(settings, CachedEmbedder(known), worker=False)) as client:
            linker = client.app.state.engine.translations  # type: ignore[attr-defined]
            linker.link_pending = linking.around(linker.link_pending)
            deadline = time.monotonic() + 60
            while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            yield client


def post_all(client: TestClient, documents: list[dict[str, str]]) -> float:
    """Post the documents in batches with `wait: true`; the seconds it took."""
    started = time.perf_counter()
    for start in range(0, len(documents), BATCH):
        response = client.post(f"{COLLECTION}/documents", json={
            "documents": documents[start:start + BATCH], "wait": True})
        response.raise_for_status()
    return time.perf_counter() - started


def documents_of(corpus: Corpus, texts: dict[str, list[str]]) -> list[dict[str, str]]:
    """The corpus as documents, in a shuffled order (not language by language)."""
    order = np.random.default_rng(7).permutation(len(corpus.langs))
    ids = corpus.ids()
    return [{"id": ids[i], "lang": corpus.languages[corpus.langs[i]],
             "text": texts[corpus.languages[corpus.langs[i]]][corpus.paragraphs[i]]}
            for i in order]


def read_sets(client: TestClient, corpus: Corpus) -> np.ndarray:
    """Each document's set, from its `translations` (the smallest index in it)."""
    ids = corpus.ids()
    where = {doc_id: n for n, doc_id in enumerate(ids)}
    sets = np.arange(len(ids))
    for n, doc_id in enumerate(ids):
        found = client.get(f"{COLLECTION}/documents/{doc_id}").json()["translations"] or []
        sets[n] = min([n] + [where[t["id"]] for t in found])
    return sets


def real_seconds_per_document(texts: dict[str, list[str]]) -> float:
    """The bundled model's ingest time per document through the same API, on 64 paragraphs."""
    sample = [{"id": f"{lang}-{p}", "lang": lang, "text": texts[lang][p]}
              for p in range(min(16, len(texts["en"]))) for lang in ("en", "de", "zh", "ar")]
    model = BundledEmbedder()
    try:
        with tempfile.TemporaryDirectory(prefix="xlsearch-translations-") as folder:
            settings = Settings(data_dir=Path(folder))
            with TestClient(create_app(settings, model, worker=False)) as client:
                return post_all(client, sample) / len(sample)
    finally:
        model.close()


@dataclass
class Collapse:
    distinct: list[float]
    first_right: list[float]
    ms: list[float]


def collapse_rows(
    client: TestClient, vectors: Vectors, per_language: int
) -> dict[str, Collapse]:
    """Distinct paragraphs in the top 10, R@1 and search time, collapsed and not."""
    owner = vectors.texts.question_paragraph
    step = max(1, len(owner) // per_language)
    tally = {mode: Collapse([], [], []) for mode in ("none", "translations")}
    for q in range(0, len(owner), step)[:per_language]:
        for questions in vectors.texts.questions.values():
            for mode, counted in tally.items():
                started = time.perf_counter()
                response = client.post(f"{COLLECTION}/search", json={
                    "query": questions[q], "k": 10, "mode": "dense", "collapse": mode})
                counted.ms.append((time.perf_counter() - started) * 1000)
                paragraphs = [int(r["id"].split("-")[1]) for r in response.json()["results"]]
                counted.distinct.append(len(set(paragraphs)))
                counted.first_right.append(float(paragraphs[:1] == [owner[q]]))
    return tally


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("xquad", type=Path, nargs="?", default=DEFAULT_XQUAD)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--k", type=int, default=MARGIN_K, help="neighbours in the margin")
    parser.add_argument("--questions", type=int, default=100, help="questions per language")
    args = parser.parse_args(argv)
    vectors = load_vectors(args.xquad, args.cache, kinds=("paragraphs", "questions"))
    known = known_vectors(vectors)
    print(f"# Translation sets ({machine_description()}; {code_version()})")
    headers = ["rule", "precision", "recall", "false merges in one article", "largest set"]
    costs = []
    collapse: dict[str, Collapse] = {}
    for name, corpus in corpora(args.xquad, vectors).items():
        rows = raw_rules(corpus, args.k)
        documents = documents_of(corpus, vectors.texts.paragraphs)
        linking = Timed()
        with serving(known, linking) as client:
            post_all(client, documents)
            log(f"{name}: posted")
            rows.append(("xlsearch (through the API)", scored(corpus, read_sets(client, corpus))))
            if "mixed" in name:
                collapse = collapse_rows(client, vectors, args.questions)
        costs.append((name, linking.seconds / len(documents)))
        print(f"\n{name}\n")
        print(format_table(headers, [(r, f"{p:.3f}", f"{c:.3f}", f, s)
                                     for r, (p, c, f, s) in rows]))
    real = real_seconds_per_document(vectors.texts.paragraphs)
    print("\nIngest cost of translation sets (linking time per document, and against the "
          f"bundled model's {real * 1000:.0f} ms per document)\n")
    print(format_table(["corpus", "linking ms per document", "share of ingest time"],
                       [(n, f"{extra * 1000:.2f}", f"{extra / real:.1%}") for n, extra in costs]))
    print(f"\nCollapse ({len(collapse['none'].ms)} questions, dense, k = 10, 12 languages)\n")
    print(format_table(
        ["collapse", "distinct paragraphs in top 10", "R@1", "search p50 ms"],
        [(mode, f"{np.mean(t.distinct):.2f}", f"{np.mean(t.first_right):.3f}",
          f"{np.median(t.ms):.2f}") for mode, t in collapse.items()],
    ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
