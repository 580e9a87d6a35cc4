"""The lexical tokenizer: what each term is, on any text (its fast paths included)."""

from __future__ import annotations

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from search.lexical_tokens import ANY_UNSPACED, term_spans, tokenize

CLUSTER = regex.compile(r"\X")

# Pieces of the scripts and joiners the tokenizer treats apart, and the characters that make
# grapheme clusters (Thai vowel signs, a Devanagari sign, combining accents, ZWJ, emoji).
ALPHABET = st.sampled_from(
    list("aZß9 -_./,\"'") + list("東京大学タワーひら") + list("ภาษาไทยเป็นกำ") + ["\u0e31", "\u0e48"]
    + list("हिंदी") + ["e\u0301", "\u200d", "👍🏽", "Ω", "ｶﾞ", "\U00016ff0"]
)


def test_identifiers_are_whole_and_in_parts() -> None:
    terms = [(t.text, t.position) for t in tokenize("Error E-4471 on v2.3.1")]
    # a one-character part ("E", "3") is left out; a whole identifier shares its first
    # part's position, so a phrase over the parts also matches the whole
    assert terms == [("error", 0), ("e-4471", 1), ("4471", 2), ("on", 3), ("v2.3.1", 4),
                     ("v2", 4)]


def test_scripts_without_spaces_give_pairs_of_grapheme_clusters() -> None:
    assert [t.text for t in tokenize("東京タワー")] == ["東京", "京タ", "タワ", "ワー"]
    assert [t.text for t in tokenize("กำลัง")] == ["กำลั", "ลัง"]  # clusters กำ ลั ง
    assert [t.text for t in tokenize("中")] == ["中"]


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_every_term_is_its_span_of_the_text(text: str) -> None:
    terms = tokenize(text)
    assert [tuple(term) for term in terms] == term_spans(text)
    positions = [term.position for term in terms]
    assert all(0 <= b - a <= 1 for a, b in zip(positions, positions[1:], strict=False))
    for term in terms:
        span = text[term.start:term.end]
        assert term.text in (span, span.casefold())
        clusters = CLUSTER.findall(span)
        if all(ANY_UNSPACED.match(cluster) for cluster in clusters):
            assert len(clusters) in (1, 2)  # a pair of grapheme clusters, or one alone
