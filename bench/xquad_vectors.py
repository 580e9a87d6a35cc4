"""XQuAD embedded by the bundled model, cached on disk: paragraphs, their sentences and the
questions of all 12 languages (about 32,000 texts; about an hour on 2 cores the first time,
seconds afterwards).

Vectors are the engine's own (`BundledEmbedder.embed_documents` / `embed_queries`), so an
index built from them is the index the engine would build. Each (kind, language) is saved as
soon as it is done, named by a digest of its texts, so an interrupted run loses little and a
change of texts never reuses stale vectors.

    python -m bench.xquad_vectors [--cache DIR]     # fill the cache ahead of a benchmark
"""

from __future__ import annotations

import argparse
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from bench.common import DEFAULT_XQUAD, REPO_ROOT, Progress, XQuAD, load_xquad, log

DEFAULT_CACHE = REPO_ROOT / "bench-cache" / "xquad-vectors"
BATCH = 32
# A sentence ends at terminal punctuation followed by space, or right after CJK punctuation.
SENTENCE_END = re.compile(r"(?<=[.!?;؟।])\s+|(?<=[。！？；])")
THAI_SENTENCE_CHARS = 120  # Thai has no sentence punctuation: group space-separated phrases


def sentences(text: str, lang: str) -> list[str]:
    """`text` split into sentences (Thai: runs of phrases of about 120 characters)."""
    if lang != "th":
        return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]
    grouped: list[str] = []
    current = ""
    for phrase in text.split():
        current = f"{current} {phrase}".strip()
        if len(current) >= THAI_SENTENCE_CHARS:
            grouped.append(current)
            current = ""
    if current:
        grouped.append(current)
    return grouped


@dataclass(frozen=True)
class Texts:
    """What gets embedded, per language: `paragraphs` and `questions` as in XQuAD, and
    `sentences` with `sentence_paragraph[lang][s]`, the paragraph sentence `s` comes from."""

    paragraphs: dict[str, list[str]]
    sentences: dict[str, list[str]]
    sentence_paragraph: dict[str, list[int]]
    questions: dict[str, list[str]]
    question_paragraph: list[int]  # the paragraph each question was written for


def texts_of(data: XQuAD) -> Texts:
    split: dict[str, list[str]] = {}
    origin: dict[str, list[int]] = {}
    for lang in data.languages:
        pairs = [
            (s, p) for p, text in enumerate(data.paragraphs[lang]) for s in sentences(text, lang)
        ]
        split[lang] = [s for s, _ in pairs]
        origin[lang] = [p for _, p in pairs]
    return Texts(data.paragraphs, split, origin, data.questions, data.question_paragraph)


def digest(texts: Sequence[str]) -> str:
    return hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16]


def cached_vectors(
    cache: Path | None,
    kind: str,
    texts_by_lang: dict[str, list[str]],
    embed: Callable[[list[str]], np.ndarray],
    batch_size: int = BATCH,
) -> dict[str, np.ndarray]:
    """Vectors per language for `texts_by_lang`, embedded `batch_size` texts at a time; with
    a `cache` folder, read from it where there and saved to it as each language is done."""
    progress = Progress(f"embed {kind}", sum(len(t) for t in texts_by_lang.values()))
    vectors: dict[str, np.ndarray] = {}
    for lang, texts in texts_by_lang.items():
        path = cache / f"{kind}-{lang}-{digest(texts)}.npy" if cache else None
        if path is not None and path.exists():
            vectors[lang] = np.load(path)
            progress.advance(len(texts))
            continue
        parts = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            parts.append(np.asarray(embed(batch), dtype=np.float32))
            progress.advance(len(batch))
        vectors[lang] = np.concatenate(parts)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial.npy")
            np.save(partial, vectors[lang])
            partial.replace(path)
    return vectors


@dataclass(frozen=True)
class Vectors:
    """The embedded XQuAD texts: `texts`, and per kind and language a (n, 384) array (empty
    for a kind not loaded)."""

    texts: Texts
    paragraphs: dict[str, np.ndarray]
    sentences: dict[str, np.ndarray]
    questions: dict[str, np.ndarray]


KINDS = ("paragraphs", "questions", "sentences")


def load_vectors(
    xquad: Path = DEFAULT_XQUAD, cache: Path = DEFAULT_CACHE, kinds: Sequence[str] = KINDS
) -> Vectors:
    """The XQuAD texts of `kinds` embedded by the bundled model; embeds what the cache lacks."""
    texts = texts_of(load_xquad(xquad))
    model = None

    def embed(kind: str, batch: list[str]) -> np.ndarray:
        nonlocal model
        if model is None:  # loaded only when something is missing from the cache
            from search.embedders.bundled import BundledEmbedder

            model = BundledEmbedder()
        if kind == "questions":
            return model.embed_queries(batch)
        return model.embed_documents(batch)

    loaded = {
        kind: cached_vectors(cache, kind, getattr(texts, kind), partial(embed, kind))
        if kind in kinds else {}
        for kind in KINDS
    }
    return Vectors(texts, **loaded)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xquad", type=Path, default=DEFAULT_XQUAD)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    vectors = load_vectors(args.xquad, args.cache)
    for kind in ("paragraphs", "sentences", "questions"):
        total = sum(len(v) for v in getattr(vectors, kind).values())
        log(f"{kind}: {total} vectors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
