"""Token-aware chunking on semantic boundaries, with character offsets into the source text.

Segmentation (Unicode sentences and words, CJK and Thai included, never inside a grapheme) is
done by `semantic-text-splitter`; sizes are measured with the collection's own embedder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from semantic_text_splitter import TextSplitter


@dataclass(frozen=True)
class Chunk:
    """A span of a document: `text == document[start:end]`."""

    text: str
    start: int
    end: int
    token_count: int


class Chunker:
    """Packs paragraphs, then sentences, then words into chunks of at most `chunk_tokens`."""

    def __init__(self, count_tokens: Callable[[str], int], chunk_tokens: int, overlap: int) -> None:
        if not 0 <= overlap < chunk_tokens:
            raise ValueError("overlap must be at least 0 and smaller than chunk_tokens")
        self.count_tokens = count_tokens
        self.chunk_tokens = chunk_tokens
        self._splitter = TextSplitter.from_callback(count_tokens, chunk_tokens, overlap=overlap)

    def split(self, text: str) -> list[Chunk]:
        """Chunks in reading order; surrounding whitespace is left out of every chunk."""
        start = len(text) - len(text.lstrip())
        end = len(text.rstrip())
        if start >= end:
            return []
        whole = text[start:end]
        tokens = self.count_tokens(whole)
        if tokens <= self.chunk_tokens:
            return [Chunk(whole, start, end, tokens)]
        return [
            Chunk(piece, offset, offset + len(piece), self.count_tokens(piece))
            for offset, piece in self._splitter.chunk_indices(text)
        ]
