"""Token-aware chunking on semantic boundaries, with character offsets into the source text.

Segmentation (Unicode sentences and words, CJK and Thai included, never inside a grapheme) is
done by `semantic-text-splitter`; sizes are measured with the collection's own embedder.

The cost is linear in the text's length (bench/chunking.py measures it). Given a whole long
text, the splitter sized spans that grow with it (the rest of a line, again for every
chunk: a 400 kB paragraph had 35 times its length counted), so it sees windows of bounded
size instead. In a window, a span's tokens are estimated as the sum of its words' tokens,
each distinct word counted once; each chunk is then counted exactly, and a window whose
chunks come out too large by the estimate is split again by exact counts. The splitter's
own work between two calls of the sizer is bounded by the window, so it never holds the
interpreter for long while a search thread waits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from semantic_text_splitter import TextSplitter

WINDOW_CHARS_PER_TOKEN = 16  # a first window holds several chunks of any script
WORD = re.compile(r"\s*\S+")  # a word with the whitespace before it, as tokenizers see it
REMEMBERED_CHARS = 2**22  # words remembered per text, at most (CJK runs may be long)


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
        self.overlap = overlap
        self._exact = TextSplitter.from_callback(count_tokens, chunk_tokens, overlap=overlap)

    def split(self, text: str) -> list[Chunk]:
        """Chunks in reading order; surrounding whitespace is left out of every chunk."""
        start = len(text) - len(text.lstrip())
        end = len(text.rstrip())
        if start >= end:
            return []
        window = self.chunk_tokens * WINDOW_CHARS_PER_TOKEN
        if end - start <= window:
            whole = text[start:end]
            tokens = self.count_tokens(whole)
            if tokens <= self.chunk_tokens:
                return [Chunk(whole, start, end, tokens)]
        estimated = TextSplitter.from_callback(
            WordSums(self.count_tokens), self.chunk_tokens, overlap=self.overlap
        )
        chunks: list[Chunk] = []
        while True:
            stop = min(end, start + window)
            done = self._window(text, start, stop, last=stop == end, estimated=estimated)
            if done is None:  # the window holds one chunk at most: its end may be mid-word
                window *= 2
                continue
            found, start = done
            chunks.extend(found)
            if stop == end:
                return chunks

    def _window(
        self, text: str, start: int, stop: int, *, last: bool, estimated: TextSplitter
    ) -> tuple[list[Chunk], int] | None:
        """Chunks of `text[start:stop]` and where the next window starts (the start of its
        last chunk, which the window's end may have cut short, unless this is the `last`);
        None when a window that is not the last holds a single chunk."""
        span = text[start:stop]
        for splitter in (estimated, self._exact):
            pieces = splitter.chunk_indices(span)
            resume = stop
            if not last:
                if len(pieces) < 2:
                    continue
                resume = start + pieces[-1][0]
                pieces = pieces[:-1]
            chunks = [
                Chunk(piece, start + offset, start + offset + len(piece), self.count_tokens(piece))
                for offset, piece in pieces
            ]
            if splitter is self._exact or all(c.token_count <= self.chunk_tokens for c in chunks):
                return chunks, resume
        return None


class WordSums:
    """An estimate of `count_tokens(span)`: the sum of the exact counts of its words, each
    distinct word counted once, so sizing the same text again costs little.

    `per_call` is what counting a word on its own adds to it (special tokens, the prompt),
    found as `2 * count("a") - count("a a")`. Tokenizers that see a word and the whitespace
    before it as a unit (SentencePiece, byte-level BPE) give nearly exact sums; for others
    the chunks' exact counts catch the difference.
    """

    def __init__(self, count_tokens: Callable[[str], int]) -> None:
        self._count_tokens = count_tokens
        self._empty = count_tokens("")
        self._per_call = 2 * count_tokens("a") - count_tokens("a a")
        self._words: dict[str, int] = {}
        self._remembered = 0  # characters in `_words`

    def __call__(self, span: str) -> int:
        total = self._empty
        words = self._words
        for word in WORD.findall(span):
            tokens = words.get(word)
            if tokens is None:
                tokens = max(0, self._count_tokens(word) - self._per_call)
                if self._remembered + len(word) <= REMEMBERED_CHARS:
                    words[word] = tokens
                    self._remembered += len(word)
            total += tokens
        return total
