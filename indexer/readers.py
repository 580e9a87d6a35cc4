"""Source readers: text, Markdown, HTML and JSONL files (folders recursively) into documents.

Every problem is reported per item (a file, or a line of a JSONL file) with its reason, and
reading goes on with the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from pydantic import ValidationError

from search.schemas import DocumentIn, describe_validation_error

TEXT_SUFFIXES = {".txt", ".text"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
SUPPORTED = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES
TITLE_LIMIT = 200


@dataclass(frozen=True)
class ReadError:
    """An item that could not be read: `source` is a path, or `path:line` for JSONL."""

    source: str
    reason: str


def read_sources(paths: Iterable[Path]) -> Iterator[DocumentIn | ReadError]:
    """Documents from files and folders, in a stable order."""
    for path in paths:
        if path.is_dir():
            for file in _supported_files(path):
                yield from read_file(file, file.relative_to(path).as_posix())
        elif path.exists():
            yield from read_file(path, path.name)
        else:
            yield ReadError(str(path), "no such file or folder")


def _supported_files(folder: Path) -> list[Path]:
    """Readable files below `folder`, skipping links that lead outside it."""
    root = folder.resolve()
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in SUPPORTED and p.resolve().is_relative_to(root)
    )


def read_file(path: Path, doc_id: str) -> Iterator[DocumentIn | ReadError]:
    """One file: JSONL gives a document per line (streamed), other formats one document."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        supported = ", ".join(sorted(SUPPORTED))
        yield ReadError(str(path), f"unsupported file type {suffix or '(none)'}; use {supported}")
        return
    if suffix in JSONL_SUFFIXES:
        yield from read_jsonl(path)
        return
    try:
        text = _decode(path.read_bytes())
    except (OSError, ValueError) as exc:
        yield ReadError(str(path), str(exc))
        return
    title, body = _html_to_text(text) if suffix in HTML_SUFFIXES else (_first_line(text), text)
    try:
        yield DocumentIn(id=doc_id, text=body, title=title)
    except ValidationError as exc:
        yield ReadError(str(path), describe_validation_error(exc))


def read_jsonl(path: Path) -> Iterator[DocumentIn | ReadError]:
    """A JSONL file line by line, so files of any size stream in constant memory."""
    try:
        with open(path, "rb") as handle:
            if b"\x00" in handle.read(8192):
                yield ReadError(str(path), "binary file (contains NUL bytes); expected JSONL text")
                return
            handle.seek(0)
            yield from parse_jsonl(handle, str(path))
    except OSError as exc:
        yield ReadError(str(path), str(exc))


def parse_jsonl(lines: Iterable[bytes], source: str) -> Iterator[DocumentIn | ReadError]:
    """A document per non-blank line: `{"id", "text", "title", "lang", "url", "metadata"}`."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{source}:{number}"
        try:
            value = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError as exc:
            yield ReadError(where, f"not valid UTF-8 (byte {exc.start})")
            continue
        except json.JSONDecodeError as exc:
            yield ReadError(where, f"invalid JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(value, dict):
            yield ReadError(where, "each line must be a JSON object with at least a 'text' field")
            continue
        try:
            yield DocumentIn.model_validate(value)
        except ValidationError as exc:
            yield ReadError(where, describe_validation_error(exc))


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise ValueError("binary file (contains NUL bytes); only UTF-8 text is read")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte {exc.start}); convert the file to UTF-8") from exc


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:TITLE_LIMIT]
    return None


class _TextExtractor(HTMLParser):
    """Visible text of an HTML page, with block elements on their own lines, and its title."""

    SKIP = {"script", "style", "noscript", "template", "head"}
    BLOCKS = {
        "p",
        "div",
        "br",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
        "pre",
        "table",
        "ul",
        "ol",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._stack: list[str] = []

    VOID = {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    }

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self._stack.append(tag)
        if tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._stack:
            while self._stack and self._stack.pop() != tag:
                pass
        if tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if "title" in self._stack:
            self.title_parts.append(data)
        elif not self.SKIP.intersection(self._stack):
            self.parts.append(data)


def _html_to_text(html: str) -> tuple[str | None, str]:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    paragraphs = (" ".join(block.split()) for block in "".join(parser.parts).split("\n\n"))
    body = "\n\n".join(p for p in paragraphs if p)
    title = " ".join("".join(parser.title_parts).split()) or _first_line(body)
    return (title[:TITLE_LIMIT] if title else None), body


def count_items(paths: Iterable[Path]) -> int:
    """How many items `read_sources` will yield (JSONL lines counted), for progress bars."""
    total = 0
    for path in paths:
        for file in _supported_files(path) if path.is_dir() else [path]:
            total += _count_lines(file) if file.suffix.lower() in JSONL_SUFFIXES else 1
    return total


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return max(1, sum(1 for line in handle if line.strip()))
    except OSError:
        return 1
