"""Chunking properties (hypothesis) and its behaviour on real multilingual text."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.chunking import Chunker
from search.embedders import Embedder


def byte_tokens(text: str) -> int:
    """A cheap stand-in sizer with the shape of a real one: specials plus ~3 bytes a token."""
    return 2 + (len(text.encode("utf-8")) + 2) // 3


def word_tokens(text: str) -> int:
    """A stand-in sizer that adds up over words, as SentencePiece and BPE nearly do."""
    return 1 + sum(1 + len(word.encode("utf-8")) // 4 for word in text.split())


class Tally:
    """A sizer that also adds up the characters it was given."""

    def __init__(self, count_tokens: Callable[[str], int]) -> None:
        self.count_tokens = count_tokens
        self.chars = 0

    def __call__(self, text: str) -> int:
        self.chars += len(text)
        return self.count_tokens(text)


VOCABULARY = [
    "Paris",
    "tower",
    "Eiffelturm",
    "höchste",
    "東京",
    "富士山は日本で一番高い山です",
    "กรุงเทพมหานคร",
    "ประเทศไทย",
    "القهوة",
    "Москва",
    "👩‍👩‍👧",
    "é",
    "x" * 40,
    "٣٣٠",
]
WORDS = st.sampled_from(VOCABULARY)
SEPARATORS = st.sampled_from([" ", " ", ". ", "。", "、", "\n", "\n\n", "! ", "؟ ", " ๆ "])
TEXTS = st.lists(st.tuples(WORDS, SEPARATORS), max_size=300).map(
    lambda pairs: "".join(w + s for w, s in pairs)
)


@settings(max_examples=150, deadline=None)
@given(
    text=TEXTS,
    limit=st.integers(16, 120),
    overlap_share=st.sampled_from([0, 4, 8]),
    sizer=st.sampled_from([byte_tokens, word_tokens]),  # estimates wrong, and right
)
def test_chunks_slice_back_cover_the_text_and_fit(
    text: str, limit: int, overlap_share: int, sizer: Callable[[str], int]
) -> None:
    overlap = limit // overlap_share if overlap_share else 0
    chunks = Chunker(sizer, limit, overlap).split(text)
    covered = set()
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.token_count == sizer(chunk.text) <= limit
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    assert [c.start for c in chunks] == sorted(set(c.start for c in chunks))


def one_long_paragraph(words: int, seed: int = 7) -> str:
    """Mixed-script sentences with a single line break near the end: the splitter given the
    whole text sized the rest of the line again for every chunk (quadratic)."""
    rng = random.Random(seed)
    vocabulary = [w for w in VOCABULARY if "x" not in w]
    sentences = []
    while words > 0:
        n = rng.randint(8, 30)
        sentences.append(" ".join(rng.choice(vocabulary) for _ in range(n)) + rng.choice(".。!"))
        words -= n
    return " ".join(sentences) + "\nThe end."


@pytest.mark.parametrize(("sizer", "most"), [(byte_tokens, 16), (word_tokens, 2.5)])
def test_tokens_are_counted_in_linear_time(sizer: Callable[[str], int], most: float) -> None:
    """Characters handed to the sizer per character of text stay bounded as the text grows;
    an additive sizer sees each word about once, plus each chunk once."""
    for words in (2_000, 16_000):
        text = one_long_paragraph(words)
        tally = Tally(sizer)
        chunks = Chunker(tally, 64, 8).split(text)
        assert len(chunks) > words // 100
        assert tally.chars < most * len(text), (words, tally.chars / len(text))


def test_a_window_never_ends_a_chunk_inside_a_word() -> None:
    """With very long tokens a first window holds one chunk at most: it grows instead."""
    text = " ".join(f"{'w' * 30}{i:04d}" for i in range(600))
    chunks = Chunker(lambda t: 1 + len(t) // 200, 16, 0).split(text)
    assert len(chunks) > 5
    assert all(text[c.start : c.end].split() == c.text.split() for c in chunks)
    assert all(c.end == len(text) or text[c.end] == " " for c in chunks)
    assert all(len(w) == 34 for c in chunks for w in c.text.split())


def test_short_document_is_one_chunk_without_surrounding_whitespace() -> None:
    text = "\n  The Eiffel Tower is 330 metres tall.  \n"
    [chunk] = Chunker(byte_tokens, 100, 10).split(text)
    assert chunk.text == "The Eiffel Tower is 330 metres tall."
    assert (chunk.start, chunk.end) == (3, 39)


def test_blank_document_has_no_chunks() -> None:
    assert Chunker(byte_tokens, 100, 10).split(" \n\t ") == []


def test_overlap_repeats_text_between_neighbours() -> None:
    text = " ".join(f"word{i}" for i in range(3000))  # some 40 windows
    chunks = Chunker(byte_tokens, 40, 10).split(text)
    assert len(chunks) > 200
    assert all(b.start < a.end for a, b in zip(chunks, chunks[1:], strict=False))


def test_overlap_must_be_smaller_than_the_chunk() -> None:
    with pytest.raises(ValueError, match="overlap"):
        Chunker(byte_tokens, 32, 32)


@pytest.mark.parametrize(
    ("text", "boundary"),
    [
        (
            "東京は日本の首都です。人口は約千四百万人です。東京タワーは三百三十三メートルです。"
            * 3,
            "。",
        ),
        ("ภูเขาไฟฟูจิเป็นภูเขาที่สูงที่สุดในประเทศญี่ปุ่น มีความสูง 3,776 เมตร " * 6, " "),
        ("Der Fuji ist der höchste Berg Japans. Er ist ein aktiver Vulkan. " * 8, "."),
    ],
)
def test_real_tokenizer_splits_on_sentence_boundaries(
    bundled_embedder: Embedder, text: str, boundary: str
) -> None:
    chunks = Chunker(bundled_embedder.count_tokens, 48, 0).split(text)
    assert len(chunks) > 1
    for chunk in chunks:
        assert bundled_embedder.count_tokens(chunk.text) <= 48
        assert text[chunk.start : chunk.end] == chunk.text
    assert all(c.text.endswith(boundary.strip() or c.text[-1]) for c in chunks[:-1])


def test_real_tokenizer_on_long_mixed_script_text(bundled_embedder: Embedder) -> None:
    """Many windows with the bundled tokenizer: offsets and limits hold, and the tokenizer
    sees about as many characters as the text has (plus the chunks' overlap)."""
    text = "\n\n".join(one_long_paragraph(400, seed) for seed in range(12))
    tally = Tally(bundled_embedder.count_tokens)
    chunks = Chunker(tally, 64, 8).split(text)
    assert len(chunks) > 50
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.token_count == bundled_embedder.count_tokens(chunk.text) <= 64
    assert tally.chars < 3 * len(text)
