"""A question as the lexical side reads it: its terms, its quoted phrases, and how to mark
the terms it matched in a snippet."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import regex

from search.lexical_tokens import ANY_UNSPACED, Term, is_identifier, tokenize

QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"'})
_WORD_CHAR = r"[\p{L}\p{M}\p{N}]"
# tantivy's BM25: a term scores at most idf * (1 + k1), however often it occurs.
BM25_K1 = 1.2


class QuerySyntaxError(ValueError):
    """A question the lexical side cannot read (the message says how to write it)."""


@dataclass(frozen=True)
class LexicalQuery:
    terms: tuple[Term, ...]  # every term of the question, phrases' included
    phrases: tuple[tuple[Term, ...], ...]  # each "quoted phrase", which results must hold

    @cached_property
    def words(self) -> tuple[str, ...]:
        """The distinct terms, in order."""
        return tuple(dict.fromkeys(t.text for t in self.terms))

    @cached_property
    def identifiers(self) -> tuple[str, ...]:
        """The distinct terms that mean the same in every language (codes, numbers)."""
        return tuple(word for word in self.words if is_identifier(word))

    def attainable(self, words: tuple[str, ...], frequencies: dict[str, int], chunks: int) -> float:
        """The most BM25 a chunk could score over `words` (some of this question's, with
        their document frequencies): the share of it a chunk reaches is its evidence,
        comparable across questions and collections."""
        return sum(idf(frequencies[word], chunks) for word in words) * (1 + BM25_K1)


def idf(document_frequency: int, chunks: int) -> float:
    """BM25's inverse document frequency, as tantivy computes it."""
    return math.log(1 + (chunks - document_frequency + 0.5) / (document_frequency + 0.5))


def parse_query(query: str) -> LexicalQuery:
    """Terms and "quoted phrases" of a question; raises QuerySyntaxError for an unclosed
    quote or an empty phrase."""
    pieces = query.translate(QUOTES).split('"')
    if len(pieces) % 2 == 0:
        raise QuerySyntaxError(
            'query has an unclosed quote: write a phrase as "two words", or drop the quote'
        )
    phrases = tuple(tuple(tokenize(piece)) for piece in pieces[1::2])
    if any(not phrase for phrase in phrases):
        raise QuerySyntaxError('query has a quoted phrase with no words in it ("")')
    return LexicalQuery(tuple(tokenize(" ".join(pieces))), phrases)


@lru_cache(maxsize=256)
def _whole_words(words: tuple[str, ...]) -> regex.Pattern[str]:
    """A pattern for any of `words` as a whole word, ignoring case (compiled once for the
    results of a search, which share their question's words)."""
    alternatives = "|".join(regex.escape(w) for w in sorted(words, key=len, reverse=True))
    pattern = rf"(?<!{_WORD_CHAR})(?:{alternatives})(?!{_WORD_CHAR})"
    return regex.compile(pattern, regex.IGNORECASE | regex.FULLCASE)


def highlights(text: str, words: tuple[str, ...]) -> list[tuple[int, int]]:
    """Character spans of `text` where `words` (query terms) occur, merged where they touch:
    whole words, ignoring case; character pairs of unspaced scripts wherever they are."""
    spaced = tuple(w for w in words if not ANY_UNSPACED.search(w))
    spans: list[tuple[int, int]] = []
    if spaced:
        spans += [m.span() for m in _whole_words(spaced).finditer(text)]
    for word in words:
        if word in spaced:
            continue
        at = text.find(word)
        while at >= 0:
            spans.append((at, at + len(word)))
            at = text.find(word, at + 1)
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged
