"""PDF: text page by page through PDFium (pypdfium2), with the document's information."""

from __future__ import annotations

import ctypes
import re
from datetime import datetime
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from indexer.formats.builder import SKIPPED_NOTES, Extracted, TextBuilder

PASSWORD_ERROR = 4  # FPDF_ERR_PASSWORD
PDF_DATE = re.compile(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?")


def read_pdf(data: bytes, max_document_bytes: int) -> Extracted:
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == PASSWORD_ERROR:
            raise ValueError("the PDF is encrypted (it needs a password); remove it") from None
        raise ValueError(f"not a readable PDF ({exc}); save it again") from None
    try:
        builder = TextBuilder(max_document_bytes)
        unreadable = []  # a damaged page costs itself, not the document
        for number in range(1, len(pdf) + 1):
            try:
                text = _page_text(pdf, number)
            except pdfium.PdfiumError:
                unreadable.append(number)
                continue
            builder.begin("page", number)
            builder.add(text)
        info = pdf.get_metadata_dict(skip_empty=True)
        metadata = {
            "format": "pdf",
            "pages": len(pdf),
            "author": info.get("Author"),
            "created": _date(info.get("CreationDate")),
            "modified": _date(info.get("ModDate")),
            "language": _language(pdf),
            "unreadable_pages": unreadable[:SKIPPED_NOTES],
        }
        empty = "no extractable text (a scanned PDF without a text layer?); OCR is not supported"
        return builder.build(info.get("Title"), metadata, empty)
    finally:
        pdf.close()


def _page_text(pdf: pdfium.PdfDocument, number: int) -> str:
    page = pdf[number - 1]
    try:
        textpage = page.get_textpage()
        try:
            return str(textpage.get_text_range())
        finally:
            textpage.close()
    finally:
        page.close()


def _date(value: str | None) -> str | None:
    """A PDF date (`D:20240305101500+01'00'`) as ISO 8601, to the precision it has."""
    found = PDF_DATE.match(value or "")
    if not found:
        return None
    parts = [int(p) for p in found.groups() if p]
    try:
        moment = datetime(*(parts + [1, 1][: max(0, 3 - len(parts))]))  # type: ignore[arg-type]
    except ValueError:
        return None
    return moment.date().isoformat() if len(parts) <= 3 else moment.isoformat()


def _language(pdf: pdfium.PdfDocument) -> str | None:
    """The document's declared language (the catalogue's /Lang), if any."""
    size = pdfium_c.FPDFCatalog_GetLanguage(pdf, None, 0)
    if size <= 2:
        return None
    buffer = ctypes.create_string_buffer(size)
    pdfium_c.FPDFCatalog_GetLanguage(pdf, buffer, size)
    text: Any = buffer.raw[: size - 2].decode("utf-16-le", errors="replace")
    return text.strip() or None
