"""Words for the lexical index, in every language alike, with no per-language analyzer.

Spaced scripts give their words (letters, marks and digits), lower-cased; an identifier
joined by `-`, `_`, `.` or `/` (E-4471, v2.3.1, ISO/IEC) is one token as well as its parts
of two characters or more.
Scripts written without spaces (Chinese, Japanese kana, Thai, Lao, Khmer, Myanmar) give
overlapping pairs of characters, so a two-character word is found wherever it occurs (a
single character alone is its own token). The tokenizer does not depend on the collection's
embedding model: changing the model never rebuilds the lexical index.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

_WORD = r"[\p{L}\p{M}\p{N}]+"
_RUN = regex.compile(rf"{_WORD}(?:[-_./]{_WORD})*")
_PART = regex.compile(_WORD)
_UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\u30fc\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
# A run of one script family: unspaced characters (as grapheme clusters, so a Thai vowel
# sign stays with its consonant), or everything else.
_SEGMENT = regex.compile(rf"(?P<unspaced>(?:(?=[{_UNSPACED}])\X)+)|[^{_UNSPACED}]+")
_CLUSTER = regex.compile(r"\X")
ANY_UNSPACED = regex.compile(rf"[{_UNSPACED}]")


@dataclass(frozen=True)
class Term:
    """One token of a text: its indexed form, its position (for phrases) and where it is."""

    text: str
    position: int
    start: int
    end: int


def tokenize(text: str) -> list[Term]:
    """The text's terms in order; positions count words and character pairs (a whole
    identifier shares its first part's position)."""
    terms: list[Term] = []
    for run in _RUN.finditer(text):
        parts = list(_PART.finditer(run.group()))
        if len(parts) > 1:  # an identifier: whole, then its parts
            terms.append(Term(run.group().casefold(), len(terms), run.start(), run.end()))
        for part in parts:
            if len(parts) > 1 and len(part.group()) == 1:
                continue  # the "E" of E-4471 says nothing on its own
            start = run.start() + part.start()
            for begin, end, fold in _pieces(start, part.group()):
                piece = text[begin:end]
                terms.append(Term(piece.casefold() if fold else piece, 0, begin, end))
    return _numbered(terms)


def _pieces(start: int, word: str) -> list[tuple[int, int, bool]]:
    """A word's spans from `start`: itself (to be lower-cased) where it is in a spaced
    script, else per script segment, unspaced ones as pairs of grapheme clusters."""
    if not ANY_UNSPACED.search(word):  # most words: nothing to cut
        return [(start, start + len(word), True)]
    spans: list[tuple[int, int, bool]] = []
    for segment in _SEGMENT.finditer(word):
        begin = start + segment.start()
        if segment.group("unspaced") is None:
            spans.append((begin, begin + len(segment.group()), True))
            continue
        found = _CLUSTER.finditer(segment.group())
        clusters = [(begin + c.start(), begin + c.end()) for c in found]
        if len(clusters) == 1:
            spans.append((*clusters[0], False))
        spans.extend((a, b, False) for (a, _), (_, b) in zip(clusters, clusters[1:], strict=False))
    return spans


def _numbered(terms: list[Term]) -> list[Term]:
    """Number the positions: one per term, a whole identifier sharing its first part's."""
    position = 0
    for n, term in enumerate(terms):
        following = terms[n + 1] if n + 1 < len(terms) else None
        whole = following is not None and following.start == term.start < following.end < term.end
        terms[n] = Term(term.text, position, term.start, term.end)
        position += not whole
    return terms


def is_identifier(term: str) -> bool:
    """Whether a term reads as an identifier (a code, a number, a version): such terms mean
    the same in every language, where an ordinary word shared by two languages rarely does."""
    return any(ch.isdigit() for ch in term) or any(ch in "-_./" for ch in term)
