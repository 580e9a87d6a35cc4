"""Text assembled block by block from a file, with where each page, slide or section begins."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from search.schemas import MAX_PARTS, SECTION_LIMIT

TITLE_LIMIT = 200
SKIPPED_NOTES = 20  # pages or chapters that could not be read, listed in the metadata at most
METADATA_LIMIT = 1000  # characters of one metadata string a file gives (author, dates...)
# Control characters other than tab and newline (PDFs hold them), and lone surrogates (a
# broken font's text); U+FFFE is where PDFium saw a hyphen that breaks a word at a line end.
UNWANTED = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
SPACES = re.compile(r"[^\S\n]+")
# A page or slide ends with a deeper break than a paragraph, so that the chunker (which
# splits at the longest runs of newlines first) prefers to end a chunk there.
BREAKS = {"page": "\n\n\n", "slide": "\n\n\n", "section": "\n\n"}


def too_large(subject: str, max_document_bytes: int) -> str:
    return (
        f"{subject} is larger than the {max_document_bytes:,} bytes one document may have "
        "(XLSEARCH_MAX_DOCUMENT_BYTES); split it into smaller documents"
    )


def clean_block(text: str) -> str:
    """A block of extracted text as stored: CRLF as newlines, words joined over PDFium's
    hyphens, controls and lone surrogates gone, runs of spaces single, blank lines dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufffe", "")
    text = UNWANTED.sub(" ", text)
    lines = (SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def one_line(text: str | None, limit: int) -> str | None:
    """`text` cleaned as a block, on one line, at most `limit` characters; None when blank.
    A file's title, section names and metadata are stored so: a NUL in an author's name or
    a 70,000-character heading must not cost the whole document."""
    if not text:
        return None
    return " ".join(clean_block(str(text)).split())[:limit] or None


def short_title(text: str | None) -> str | None:
    """A title as stored: one line, at most TITLE_LIMIT characters; None when blank."""
    return one_line(text, TITLE_LIMIT)


@dataclass(frozen=True)
class Extracted:
    """A file's text, with `parts` as `search.schemas.Part` takes them."""

    text: str
    parts: list[dict[str, Any]]
    title: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


class TextBuilder:
    """Blocks (paragraphs, table rows, list items) joined by blank lines; `begin` marks where
    the next page, slide or section starts. The text is refused as soon as it grows past
    `max_document_bytes`, before the rest of a large file is read."""

    def __init__(self, max_document_bytes: int) -> None:
        self._max_bytes = max_document_bytes
        self._blocks: list[str] = []
        self._length = 0  # characters so far
        self._bytes = 0
        self._parts: list[dict[str, Any]] = []
        self._next: dict[str, Any] | None = None  # the locator of the next block
        self._current: dict[str, Any] | None = None  # that of the last part
        self.first_heading: str | None = None

    def begin(self, kind: str, value: int | str) -> None:
        if kind == "section":
            name = one_line(str(value), SECTION_LIMIT)
            if name is None:
                return
            value = name
            if self.first_heading is None:
                self.first_heading = value
        self._next = {kind: value}

    def add(self, block: str) -> None:
        block = clean_block(block)
        if not block:
            return
        gap = ""
        if self._blocks:
            gap = BREAKS[next(iter(self._next))] if self._next else "\n\n"
        if self._next is not None:
            if self._next != self._current:  # a repeated heading or page does not split
                self._current = self._next
                if len(self._parts) >= MAX_PARTS:
                    raise ValueError(
                        f"more than {MAX_PARTS:,} pages, slides or sections; split the file"
                    )
                self._parts.append({"start": self._length + len(gap), **self._next})
            self._next = None
        self._bytes += len(gap) + len(block.encode("utf-8"))
        if self._bytes > self._max_bytes:
            raise ValueError(too_large("the extracted text", self._max_bytes))
        self._blocks.append(gap + block)
        self._length += len(gap) + len(block)

    def build(self, title: str | None, metadata: dict[str, Any], empty: str) -> Extracted:
        """The document; ValueError(`empty`) when the file held no text at all."""
        text = "".join(self._blocks)
        if not text:
            raise ValueError(empty)
        fallback = self.first_heading or text.split("\n", 1)[0]
        found = {
            key: one_line(value, METADATA_LIMIT) if isinstance(value, str) else value
            for key, value in metadata.items()
        }
        found = {key: value for key, value in found.items() if value not in (None, "", [])}
        return Extracted(text, self._parts, short_title(title) or short_title(fallback), found)
