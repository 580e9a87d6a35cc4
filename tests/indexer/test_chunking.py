"""Chunking properties (hypothesis) and its behaviour on real multilingual text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.chunking import Chunker
from search.embedders import Embedder


def byte_tokens(text: str) -> int:
    """A cheap stand-in sizer with the shape of a real one: specials plus ~3 bytes a token."""
    return 2 + (len(text.encode("utf-8")) + 2) // 3


WORDS = st.sampled_from(
    [
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
)
SEPARATORS = st.sampled_from([" ", " ", ". ", "。", "、", "\n", "\n\n", "! ", "؟ ", " ๆ "])
TEXTS = st.lists(st.tuples(WORDS, SEPARATORS), max_size=120).map(
    lambda pairs: "".join(w + s for w, s in pairs)
)


@settings(max_examples=150, deadline=None)
@given(text=TEXTS, limit=st.integers(16, 120), overlap_share=st.sampled_from([0, 4, 8]))
def test_chunks_slice_back_cover_the_text_and_fit(
    text: str, limit: int, overlap_share: int
) -> None:
    overlap = limit // overlap_share if overlap_share else 0
    chunks = Chunker(byte_tokens, limit, overlap).split(text)
    covered = set()
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.token_count == byte_tokens(chunk.text) <= limit
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def test_short_document_is_one_chunk_without_surrounding_whitespace() -> None:
    text = "\n  The Eiffel Tower is 330 metres tall.  \n"
    [chunk] = Chunker(byte_tokens, 100, 10).split(text)
    assert chunk.text == "The Eiffel Tower is 330 metres tall."
    assert (chunk.start, chunk.end) == (3, 39)


def test_blank_document_has_no_chunks() -> None:
    assert Chunker(byte_tokens, 100, 10).split(" \n\t ") == []


def test_overlap_repeats_text_between_neighbours() -> None:
    text = " ".join(f"word{i}" for i in range(300))
    chunks = Chunker(byte_tokens, 40, 10).split(text)
    assert len(chunks) > 5
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
