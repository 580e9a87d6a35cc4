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

from typing import NamedTuple

import regex

_WORD = r"[\p{L}\p{M}\p{N}]+"
_RUN = regex.compile(rf"{_WORD}(?:[-_./]{_WORD})*")
_PART = regex.compile(_WORD)
_UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\u30fc\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
# A run of one script family: unspaced characters (as grapheme clusters, so a Thai vowel
# sign stays with its consonant), or everything else.
_SEGMENT = regex.compile(rf"(?P<unspaced>(?:(?=[{_UNSPACED}])\X)+)|[^{_UNSPACED}]+")
_CLUSTER = regex.compile(r"\X")
# Han and kana characters that never join a neighbour into one grapheme cluster.
_ONE_CODE_POINT_CLUSTERS = regex.compile(
    r"[[\p{Han}\p{Hiragana}\p{Katakana}\u30fc]&&\p{Grapheme_Cluster_Break=Other}]+",
    regex.VERSION1,
)
ANY_UNSPACED = regex.compile(rf"[{_UNSPACED}]")
# A plain word (no joiner, no unspaced script: most words) or else a whole run.
_TOKEN = regex.compile(
    rf"(?P<word>[[\p{{L}}\p{{M}}\p{{N}}]--[{_UNSPACED}]]++)(?![-_./]?[\p{{L}}\p{{M}}\p{{N}}])"
    rf"|(?P<run>{_RUN.pattern})",
    regex.VERSION1,
)


class Term(NamedTuple):
    """One token of a text: its indexed form, its position (for phrases) and where it is.
    (A named tuple: indexing makes one per word, and a tuple is the cheapest to build.)"""

    text: str
    position: int
    start: int
    end: int


Span = tuple[str, int, int, int]  # a term as a plain tuple: text, position, start, end


def tokenize(text: str) -> list[Term]:
    """The text's terms in order; positions count words and character pairs (a whole
    identifier shares its first part's position, unless that part is a single character)."""
    return [Term(*span) for span in term_spans(text)]


def term_spans(text: str) -> list[Span]:
    """`tokenize` as plain tuples, what indexing needs (it makes one per word of every
    chunk, so this is written for speed)."""
    spans: list[Span] = []
    position = 0
    for run in _TOKEN.finditer(text):
        start = run.start()
        if run.lastgroup == "word":  # most words: the word, lower-cased
            spans.append((run.group().casefold(), position, start, run.end()))
            position += 1
            continue
        word = run.group()
        parts = list(_PART.finditer(word))
        shared = False
        if len(parts) > 1:  # an identifier: whole, then its parts of two characters or more
            spans.append((word.casefold(), position, start, run.end()))
            shared = len(parts[0].group()) > 1
            position += not shared
            parts = [part for part in parts if len(part.group()) > 1]
        for part in parts:
            for begin, end, fold in _pieces(start + part.start(), part.group()):
                piece = text[begin:end]
                spans.append((piece.casefold() if fold else piece, position, begin, end))
                position += 1
    return spans


def _pieces(start: int, word: str) -> list[tuple[int, int, bool]]:
    """A word's spans from `start`: itself (to be lower-cased) where it is in a spaced
    script, else per script segment, unspaced ones as pairs of grapheme clusters."""
    if not ANY_UNSPACED.search(word):
        return [(start, start + len(word), True)]
    spans: list[tuple[int, int, bool]] = []
    for segment in _SEGMENT.finditer(word):
        begin, characters = start + segment.start(), segment.group()
        if segment.group("unspaced") is None:
            spans.append((begin, begin + len(characters), True))
            continue
        if _ONE_CODE_POINT_CLUSTERS.fullmatch(characters):  # Chinese, Japanese: no marks
            bounds = list(range(begin, begin + len(characters) + 1))
        else:
            bounds = [begin]
            for cluster in _CLUSTER.findall(characters):
                bounds.append(bounds[-1] + len(cluster))
        if len(bounds) == 2:
            spans.append((bounds[0], bounds[1], False))
        spans.extend((a, b, False) for a, b in zip(bounds, bounds[2:], strict=False))
    return spans


def is_identifier(term: str) -> bool:
    """Whether a term reads as an identifier (a code, a number, a version): such terms mean
    the same in every language, where an ordinary word shared by two languages rarely does."""
    return any(ch.isdigit() for ch in term) or any(ch in "-_./" for ch in term)
