"""Hybrid ranking that never hurts cross-lingual search.

The dense score (cosine) stays the backbone. Lexical evidence is absolute, not relative to
the other results: the share of the question's attainable BM25 weight a chunk matches
(0..1), so a stray shared word is worth little however the other results score, and a
question whose words match nothing is ranked by the dense score alone. Words count only
where they can mean the same thing: every word when the chunk is in the question's language,
only identifiers (codes, numbers, versions) across languages. A question of a few words in a
script shared by many languages ("Eiffel Tower", "printer error") is a keyword query whose
language cannot be told (langdetect calls those German and Norwegian): its words count in
every language. The fused score is

    score = dense + LEXICAL_WEIGHT * evidence

so lexical evidence reorders results whose dense scores are close (within LEXICAL_WEIGHT)
and cannot lift a result the model finds unrelated. LEXICAL_WEIGHT (the setting
`lexical_weight`) was chosen on XQuAD and the identifier set (bench/hybrid.py).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def fuse(
    dense: dict[int, float], evidence: dict[int, float], weight: float = LEXICAL_WEIGHT
) -> list[Ranked]:
    """Candidates (each with a dense score) ranked by `dense + weight * evidence`."""
    ranked = [
        Ranked(chunk_id, score + weight * evidence.get(chunk_id, 0.0), score,
               evidence.get(chunk_id, 0.0))
        for chunk_id, score in dense.items()
    ]
    ranked.sort(key=lambda r: (-r.score, r.chunk_id))
    return ranked
