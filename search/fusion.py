"""Hybrid ranking that never hurts cross-lingual search.

The dense score (cosine) stays the backbone. Lexical evidence is absolute, not relative to
the other results: the share of the question's attainable BM25 weight a chunk matches
(0..1), so a stray shared word is worth little however the other results score, and a
question whose words match nothing is ranked by the dense score alone.

Evidence counts where words can mean the same thing, without favouring a language:

* identifiers (codes, numbers, versions: E-4471, 3.2.1) mean the same in every language and
  lift a result in any language: `+ LEXICAL_WEIGHT * identifiers`, the share of the
  question's identifier weight it matches;
* the question's other words only reorder the results in the question's language among
  themselves: `+ LEXICAL_WEIGHT * (words - best words among them)`, so the best-matching of
  them keeps its dense standing and the others step back; none rises above a result in
  another language that the model put ahead of it. A same-language page that shares a
  stray word with the question therefore never pushes out its answer in another language.

A question of a few words in a script shared by many languages ("Eiffel Tower", "printer
error") is a keyword query whose language cannot be told (langdetect calls those German and
Norwegian): every result counts as in its language. LEXICAL_WEIGHT (the setting
`lexical_weight`) was chosen on XQuAD and two hand-written sets (bench/hybrid.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from search.language import language_from_script

LEXICAL_WEIGHT = 0.1
KEYWORD_WORDS = 3


@dataclass(frozen=True)
class Ranked:
    """A chunk as a result: what it is ordered by, and the two sides' scores."""

    chunk_id: int
    score: float
    dense: float | None
    lexical: float | None


def same_language(chunk_lang: str, query_lang: str) -> bool:
    """Whether words of a question in `query_lang` mean the same in a chunk in `chunk_lang`
    (primary subtags compared; an undetermined language matches none)."""
    primary = chunk_lang.split("-")[0].lower()
    return primary != "und" and primary == query_lang.split("-")[0].lower()


def is_keyword_query(query: str) -> bool:
    """At most KEYWORD_WORDS words and no script that names its language."""
    return len(query.split()) <= KEYWORD_WORDS and language_from_script(query) is None


@dataclass(frozen=True)
class Evidence:
    """Lexical evidence per chunk id: the share of the question's identifiers matched (any
    candidate); the share of all its words matched by its other words (every candidate in
    the question's language, zero where none matched); and, to report, the share of all its
    words matched by the words that count."""

    identifiers: dict[int, float] = field(default_factory=dict)
    words: dict[int, float] = field(default_factory=dict)
    counted: dict[int, float] = field(default_factory=dict)


def fuse(
    dense: dict[int, float], evidence: Evidence, weight: float = LEXICAL_WEIGHT
) -> list[Ranked]:
    """Candidates (each with a dense score) ranked by the fused score above."""
    best_words = max(evidence.words.values(), default=0.0)
    ranked = []
    for chunk_id, score in dense.items():
        identifiers = evidence.identifiers.get(chunk_id, 0.0)
        words = evidence.words.get(chunk_id)
        lift = identifiers + (0.0 if words is None else words - best_words)
        ranked.append(
            Ranked(chunk_id, score + weight * lift, score, evidence.counted.get(chunk_id, 0.0))
        )
    ranked.sort(key=lambda r: (-r.score, r.chunk_id))
    return ranked
