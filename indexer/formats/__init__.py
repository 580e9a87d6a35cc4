"""Readers of file formats that are not plain text: each turns a file's bytes into text with
where its pages, slides or sections begin (`Extracted`), its title and the metadata the
format carries. `extract` picks the reader by the file's content, then by its name."""

from __future__ import annotations

from pathlib import Path

from indexer.formats.builder import Extracted, too_large
from indexer.formats.sniff import sniff_format

__all__ = ["Extracted", "extract", "preload", "sniff_format", "too_large"]
READER_LIBRARIES = ("pypdfium2", "docx", "pptx", "trafilatura", "trafilatura.utils")


def preload() -> None:
    """Import every reader and its library now (a worker process, before its first file,
    so that no file's time limit pays for the imports); a caller otherwise imports them
    only when a file needs them."""
    import importlib

    for module in ("pdf", "office", "epub", "html"):
        importlib.import_module(f"indexer.formats.{module}")
    for library in READER_LIBRARIES:
        importlib.import_module(library)


def extract(path: Path, data: bytes, max_document_bytes: int) -> Extracted:
    """The text of a PDF, DOCX, PPTX, EPUB, HTML or Markdown file; ValueError says why not."""
    kind = sniff_format(data, path.suffix.lower(), max_document_bytes)
    if kind == "pdf":
        from indexer.formats.pdf import read_pdf

        return read_pdf(data, max_document_bytes)
    if kind in ("docx", "pptx"):
        from indexer.formats.office import read_docx, read_pptx

        return (read_docx if kind == "docx" else read_pptx)(data, max_document_bytes)
    if kind == "epub":
        from indexer.formats.epub import read_epub

        return read_epub(data, max_document_bytes)
    if kind == "html":
        from indexer.formats.html import read_html

        return read_html(data, max_document_bytes)
    raise ValueError(f"{path.name} is not a PDF, Word, PowerPoint, EPUB or HTML file")
