"""The file types xlsearch reads, by suffix: one list for the readers (indexer.readers) and
for what uploads accept (search.api.uploads)."""

from __future__ import annotations

TEXT_SUFFIXES = frozenset({".txt", ".text"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
PDF_SUFFIXES = frozenset({".pdf"})
DOCX_SUFFIXES = frozenset({".docx"})
PPTX_SUFFIXES = frozenset({".pptx"})
EPUB_SUFFIXES = frozenset({".epub"})
ZIP_SUFFIXES = frozenset({".zip"})
# Binary formats: an upload of one holds NUL bytes by nature.
# How a PDF and an Office file or EPUB (a ZIP) begin: read as such whatever their name.
EXTRACTED_STARTS = (b"%PDF-", b"PK\x03\x04")
BINARY_SUFFIXES = PDF_SUFFIXES | DOCX_SUFFIXES | PPTX_SUFFIXES | EPUB_SUFFIXES
# Formats whose text a reader extracts (in a separate process: see indexer.extraction).
EXTRACTED_SUFFIXES = BINARY_SUFFIXES | HTML_SUFFIXES
READABLE_SUFFIXES = (
    TEXT_SUFFIXES | MARKDOWN_SUFFIXES | JSONL_SUFFIXES | EXTRACTED_SUFFIXES
)


def describe_readable() -> str:
    """The readable types as a user reads them in an error message."""
    return ", ".join(sorted(READABLE_SUFFIXES | ZIP_SUFFIXES))
