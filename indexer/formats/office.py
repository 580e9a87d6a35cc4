"""Word (DOCX) and PowerPoint (PPTX) files through python-docx and python-pptx: Word's text
by section heading, PowerPoint's by slide (speaker notes included), with core properties."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from indexer.formats.builder import Extracted, TextBuilder

# What python-docx and python-pptx raise on a damaged package (found by trying).
DAMAGED = (zipfile.BadZipFile, KeyError, ValueError, AttributeError, TypeError, IndexError)


def read_docx(data: bytes, max_document_bytes: int) -> Extracted:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
    except DAMAGED as exc:
        raise ValueError(f"not a readable Word file ({_reason(exc)}); save it again") from None
    builder = TextBuilder(max_document_bytes)
    for block in blocks:
        if isinstance(block, Table):
            for line in _table_lines(block):
                builder.add(line)
            continue
        style = (block.style.name if block.style is not None else "") or ""
        if style.startswith("Heading") or style == "Title":
            builder.begin("section", block.text)
        builder.add(block.text)
    return builder.build(
        document.core_properties.title, _properties(document.core_properties, "docx"),
        "the Word file holds no text",
    )


def read_pptx(data: bytes, max_document_bytes: int) -> Extracted:
    import pptx

    try:
        presentation = pptx.Presentation(io.BytesIO(data))
        slides = list(presentation.slides)
    except DAMAGED as exc:
        reason = _reason(exc)
        raise ValueError(f"not a readable PowerPoint file ({reason}); save it again") from None
    builder = TextBuilder(max_document_bytes)
    first_title = None
    for number, slide in enumerate(slides, start=1):
        builder.begin("slide", number)
        title = slide.shapes.title
        if title is not None and title.has_text_frame and first_title is None:
            first_title = title.text_frame.text or None
        for text in _shape_texts(slide.shapes):
            builder.add(text)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            builder.add(slide.notes_slide.notes_text_frame.text)
    metadata = _properties(presentation.core_properties, "pptx")
    metadata["slides"] = len(slides)
    title = presentation.core_properties.title or first_title
    return builder.build(title, metadata, "the presentation holds no text")


def _shape_texts(shapes: Any) -> Iterator[str]:
    """The text of each shape in reading order, group shapes opened, tables row by row."""
    for shape in shapes:
        if shape.shape_type is not None and getattr(shape, "shapes", None) is not None:
            yield from _shape_texts(shape.shapes)  # a group
        elif getattr(shape, "has_table", False) and shape.has_table:
            yield from _table_lines(shape.table)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            yield shape.text_frame.text


def _table_lines(table: Any) -> Iterator[str]:
    """A table's rows as lines, cells joined by " | ", a merged cell once (one cell element
    for the columns it spans) even where neighbours hold the same text; a Word table inside
    a cell comes after its row, row by row."""
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        inner: list[Any] = []
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            text = " ".join(cell.text.split())
            if text:
                cells.append(text)
            inner.extend(getattr(cell, "tables", ()))
        if cells:
            yield " | ".join(cells)
        for nested in inner:
            yield from _table_lines(nested)


def _properties(core: Any, kind: str) -> dict[str, Any]:
    return {
        "format": kind,
        "author": core.author,
        "created": _iso(core.created),
        "modified": _iso(core.modified),
        "language": core.language,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
