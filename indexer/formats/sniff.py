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
DAMAGED_ZIP = (zipfile.BadZipFile, OSError, EOFError, ValueError)
EPUB_MIMETYPE = b"application/epub+zip"
OLE_START = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old Office files, and encrypted new ones
MAX_RATIO = 100  # what an Office file or EPUB may unpack to, times its size...
MAX_UNPACKED = 64 * 2**20  # ...or this much, whichever is more
# Its compressed parts (XML, XHTML) may unpack to no more than this times the text a document
# may have, or MAX_UNPACKED: padding the file with incompressible data cannot raise that.
MARKUP_RATIO = 32


def sniff_format(data: bytes, suffix: str, max_document_bytes: int) -> str | None:
    """"pdf", "docx", "pptx", "epub" or "html" by content (a PDF named .txt is a PDF), else
    by `suffix`; a file whose name promises a binary format its content is not raises
    ValueError, with what it is instead."""
    head = data[:1024].lstrip()
    if data.startswith(b"%PDF-") or (b"%PDF-" in data[:1024] and suffix in PDF_SUFFIXES):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return _zip_format(data, suffix, max_document_bytes)
    named = NAMED.get(suffix)
    if named in ("docx", "pptx") and data.startswith(OLE_START):
        raise ValueError(
            "a password-protected Office file, or one in the old .doc/.ppt format; save it "
            f"as .{named} without a password"
        )
    if named in ("pdf", "docx", "pptx", "epub"):
        raise ValueError(f"not a valid {named.upper()} file (it does not start like one)")
    if named == "html" or head.lower().startswith(HTML_STARTS):
        return "html"
    return None


def _check_unpacked_size(
    entries: list[zipfile.ZipInfo], size: int, max_document_bytes: int
) -> None:
    """Office files and EPUBs are read whole by their libraries: refuse a ZIP bomb first, by
    the sizes the archive declares (zipfile never unpacks more than an entry declares)."""
    if sum(entry.file_size for entry in entries) > max(MAX_UNPACKED, MAX_RATIO * size):
        raise ValueError(
            f"the file unpacks to more than {MAX_RATIO} times its size, like a ZIP bomb"
        )
    markup = sum(e.file_size for e in entries if e.file_size > 2 * e.compress_size)
    limit = max(MAX_UNPACKED, MARKUP_RATIO * max_document_bytes)
    if markup > limit:
        raise ValueError(
            f"its compressed parts unpack to {markup:,} bytes, more than the {limit:,} bytes "
            f"read for a document ({MARKUP_RATIO} times XLSEARCH_MAX_DOCUMENT_BYTES), like a "
            "ZIP bomb; split the file"
        )


def _damaged(exc: Exception) -> ValueError:
    return ValueError(f"a damaged ZIP-based file ({exc}); save it again")


def _zip_format(data: bytes, suffix: str, max_document_bytes: int) -> str:
    """DOCX, PPTX and EPUB are ZIP archives, told apart by the entries they must hold."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except DAMAGED_ZIP as exc:
        raise _damaged(exc) from None
    with archive:
        _check_unpacked_size(archive.infolist(), len(data), max_document_bytes)
        names = set(archive.namelist())
        try:
            epub = "mimetype" in names and archive.read("mimetype").strip() == EPUB_MIMETYPE
        except DAMAGED_ZIP as exc:
            raise _damaged(exc) from None
    if epub:
        return "epub"
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    named = NAMED.get(suffix)
    if named in ("docx", "pptx", "epub"):
        raise ValueError(f"not a valid {named.upper()} file (a ZIP without its parts)")
    raise ValueError(
        "a ZIP archive that is not a Word, PowerPoint or EPUB file (Excel and OpenDocument "
        "files are not read); unpack it, or save it in a format that is"
    )
