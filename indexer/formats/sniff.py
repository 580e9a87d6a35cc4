"""What format a file is, from its first bytes, and from its name where they do not say."""

from __future__ import annotations

import io
import zipfile

from search.file_types import (
    DOCX_SUFFIXES,
    EPUB_SUFFIXES,
    HTML_SUFFIXES,
    PDF_SUFFIXES,
    PPTX_SUFFIXES,
)

NAMED = {
    **dict.fromkeys(PDF_SUFFIXES, "pdf"),
    **dict.fromkeys(DOCX_SUFFIXES, "docx"),
    **dict.fromkeys(PPTX_SUFFIXES, "pptx"),
    **dict.fromkeys(EPUB_SUFFIXES, "epub"),
    **dict.fromkeys(HTML_SUFFIXES, "html"),
}
HTML_STARTS = (b"<!doctype html", b"<html")
MAX_RATIO = 100  # what an Office file or EPUB may unpack to, times its size...
MAX_UNPACKED = 64 * 2**20  # ...or this much, whichever is more


def sniff_format(data: bytes, suffix: str) -> str | None:
    """"pdf", "docx", "pptx", "epub" or "html" by content (a PDF named .txt is a PDF), else
    by `suffix`; a file whose name promises a binary format its content is not raises
    ValueError, with what it is instead."""
    head = data[:1024].lstrip()
    if data.startswith(b"%PDF-") or (b"%PDF-" in data[:1024] and suffix in PDF_SUFFIXES):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return _zip_format(data, suffix)
    named = NAMED.get(suffix)
    if named in ("pdf", "docx", "pptx", "epub"):
        raise ValueError(f"not a valid {named.upper()} file (it does not start like one)")
    if named == "html" or head.lower().startswith(HTML_STARTS):
        return "html"
    return None


def _check_unpacked_size(entries: list[zipfile.ZipInfo], size: int) -> None:
    """Office files and EPUBs are read whole by their libraries: refuse a ZIP bomb first."""
    if sum(entry.file_size for entry in entries) > max(MAX_UNPACKED, MAX_RATIO * size):
        raise ValueError(
            f"the file unpacks to more than {MAX_RATIO} times its size, like a ZIP bomb"
        )


def _zip_format(data: bytes, suffix: str) -> str:
    """DOCX, PPTX and EPUB are ZIP archives, told apart by the entries they must hold."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _check_unpacked_size(archive.infolist(), len(data))
            names = set(archive.namelist())
            if "mimetype" in names and archive.read("mimetype").strip() == b"application/epub+zip":
                return "epub"
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"a damaged ZIP-based file ({exc}); save it again") from None
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    named = NAMED.get(suffix)
    if named in ("docx", "pptx", "epub"):
        raise ValueError(f"not a valid {named.upper()} file (a ZIP without its parts)")
    raise ValueError("a ZIP archive inside a folder or another ZIP is not read; unpack it")
