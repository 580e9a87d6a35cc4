"""Which documents are translations of each other: how well each rule finds XQuAD's parallel
paragraphs from the bundled model's vectors, and how many different paragraphs of the same
article (same topic, different content: the hard case) it merges.

Data: XQuAD, 240 paragraphs (48 articles of 5) in 12 languages, 2,880 documents, each one
paragraph embedded as a document by the bundled model (cached by `bench.xquad_vectors`).
Truth: two documents are translations when they are the same paragraph. Each rule links
pairs of documents in different languages; linked documents form sets (connected
components). Precision and recall are over pairs: a pair in one set is right when it is
one paragraph. A second corpus holds no translations at all: paragraph p only in language
p mod 12, so an article's paragraphs are on one topic in different languages; every link
made there is a false merge.

Rules:
- cosine >= t: the fixed threshold that does not work;
- mutual best by cosine: i's best in j's language is j and j's best in i's language is i;
- mutual best by ratio margin (Artetxe & Schwenk 2019, as in LASER/CCMatrix): cos(i, j)
  divided by the mean of i's and j's average cosine to their k nearest other-language
  neighbours, kept at margin >= t.

    python -m bench.translations [XQUAD_FOLDER] [--cache DIR] [--k 4]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import DEFAULT_XQUAD, format_table
from bench.xquad_vectors import DEFAULT_CACHE, load_vectors

MARGIN_K = 4
MARGINS = (1.0, 1.02, 1.05, 1.08, 1.1, 1.15)
COSINES = (0.8, 0.85, 0.9)


@dataclass(frozen=True)
class Corpus:
    """Documents as unit vectors with their language, paragraph and article."""

    vectors: np.ndarray
    langs: np.ndarray
    paragraphs: np.ndarray
    articles: np.ndarray


def articles_of(xquad: Path) -> list[int]:
    """The article each XQuAD paragraph belongs to, in `load_xquad`'s paragraph order."""
    data = json.loads((xquad / "xquad.en.json").read_text("utf-8"))["data"]
    return [a for a, article in enumerate(data) for _ in article["paragraphs"]]


def corpora(xquad: Path, cache: Path) -> dict[str, Corpus]:
    vectors = load_vectors(xquad, cache, kinds=("paragraphs",)).paragraphs
    langs = sorted(vectors)
    article = np.array(articles_of(xquad))
    n = len(article)
    mixed = Corpus(
        np.concatenate([vectors[lang] for lang in langs]),
        np.repeat(np.arange(len(langs)), n),
        np.tile(np.arange(n), len(langs)),
        np.tile(article, len(langs)),
    )
    own = np.arange(n) % len(langs)  # paragraph p only in language p mod 12
    alone = Corpus(
        np.stack([vectors[langs[lang]][p] for p, lang in enumerate(own)]),
        own, np.arange(n), article,
    )
    return {
        f"{len(langs)} languages mixed ({len(mixed.langs):,} documents)": mixed,
        f"no translations ({len(alone.langs):,} documents)": alone,
    }


def margins(corpus: Corpus, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosines between documents in different languages (-inf within one language) and
    their ratio margins."""
    cos = corpus.vectors @ corpus.vectors.T
    cos[corpus.langs[:, None] == corpus.langs[None, :]] = -np.inf
    k = max(1, min(k, int(np.isfinite(cos).sum(axis=1).min())))  # a tiny corpus has fewer
    nearest = np.sort(cos, axis=1)[:, -k:].mean(axis=1)
    return cos, cos / ((nearest[:, None] + nearest[None, :]) / 2)


def mutual_best(score: np.ndarray, langs: np.ndarray) -> np.ndarray:
    """Pairs (i, j), i < j, each the other's best in the other's language by `score`."""
    best = np.full((len(langs), int(langs.max()) + 1), -1)
    for lang in np.unique(langs):
        columns = np.flatnonzero(langs == lang)
        best[:, lang] = columns[np.argmax(score[:, columns], axis=1)]
    i = np.arange(len(langs))
    pairs = [(a, int(b)) for a in i for b in best[a] if b > a and best[b, langs[a]] == a]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


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


def scored(corpus: Corpus, pairs: np.ndarray) -> tuple[float, float, int, int]:
    """Pairwise precision, recall, false merges in one article, and the largest set."""
    n = len(corpus.langs)
    sets = sets_of(pairs, n)
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
    largest = int(np.bincount(sets).max())
    return precision, recall, false_in_article, largest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("xquad", type=Path, nargs="?", default=DEFAULT_XQUAD)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--k", type=int, default=MARGIN_K, help="neighbours in the margin")
    args = parser.parse_args(argv)
    for name, corpus in corpora(args.xquad, args.cache).items():
        cos, margin = margins(corpus, args.k)
        rows = []
        for threshold in COSINES:
            i, j = np.nonzero(np.triu(cos >= threshold, 1))
            rows.append((f"cosine >= {threshold}", *scored(corpus, np.stack([i, j], 1))))
        mutual_cos = mutual_best(cos, corpus.langs)
        rows.append(("mutual best, cosine", *scored(corpus, mutual_cos)))
        mutual = mutual_best(margin, corpus.langs)
        for threshold in MARGINS:
            kept = mutual[margin[mutual[:, 0], mutual[:, 1]] >= threshold]
            rows.append((f"mutual best, margin >= {threshold}", *scored(corpus, kept)))
        print(f"\n{name}, margin over k = {args.k} neighbours\n")
        print(format_table(
            ["rule", "precision", "recall", "false merges in one article", "largest set"],
            [(r, f"{p:.3f}", f"{c:.3f}", f, s) for r, p, c, f, s in rows],
        ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
