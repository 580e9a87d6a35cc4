"""Source readers: text, Markdown, HTML and JSONL files (folders recursively) into documents.

Every problem is reported per item (a file, or a line of a JSONL file) with its reason, and
reading goes on with the rest. Only regular files are read (a FIFO, a socket or a device
would block or never end), opened without blocking so that one swapped in after the check
cannot hang the reader, and no document is larger than `max_document_bytes`: a text file as
a whole, a JSONL file line by line (the file itself may be of any size, streamed).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from search.file_types import HTML_SUFFIXES, JSONL_SUFFIXES, READABLE_SUFFIXES
from search.schemas import DocumentIn, describe_validation_error
from search.settings import Settings

TITLE_LIMIT = 200
MAX_DOCUMENT_BYTES: int = Settings.model_fields["max_document_bytes"].default
SNIFF_BYTES = 8192  # how much of a file is looked at for NUL bytes (binary data)
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
OS_REASONS = {
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "no such file or folder (a part of the path is not a folder)",
    errno.ELOOP: "symbolic link loop (a link that leads back to itself)",
    errno.EACCES: "permission denied; make it readable by the server's user",
    errno.EPERM: "permission denied; make it readable by the server's user",
}


@dataclass(frozen=True)
class ReadError:
    """An item that could not be read: `source` is a path, or `path:line` for JSONL."""

    source: str
    reason: str


def read_sources(
    paths: Iterable[Path], max_document_bytes: int = MAX_DOCUMENT_BYTES
) -> Iterator[DocumentIn | ReadError]:
    """Documents from files and folders, in a stable order."""
    for path in paths:
        for entry in _entries(path):
            if isinstance(entry, ReadError):
                yield entry
            else:
                yield from read_file(*entry, max_document_bytes)


def count_items(paths: Iterable[Path], max_document_bytes: int = MAX_DOCUMENT_BYTES) -> int:
    """How many items `read_sources` will yield (JSONL lines counted), for progress bars and
    for resuming a job at an item; it reads no more than `read_sources` would."""
    total = 0
    for path in paths:
        for entry in _entries(path):
            if isinstance(entry, ReadError) or not _is_jsonl(entry[0]):
                total += 1
            else:
                total += _count_jsonl(entry[0], max_document_bytes)
    return total


def _entries(path: Path) -> Iterator[tuple[Path, str] | ReadError]:
    """The files `path` stands for with their document ids: itself, or the supported files
    of a folder; a path or a subfolder that cannot be looked at is an item of its own."""
    try:
        is_folder = stat.S_ISDIR(os.stat(path).st_mode)
    except OSError as exc:
        yield ReadError(str(path), _os_reason(exc))
        return
    if not is_folder:
        yield path, path.name
        return
    root = Path(os.path.realpath(path))
    found: list[tuple[tuple[str, ...], tuple[Path, str] | ReadError]] = []

    def unlisted(exc: OSError) -> None:
        where = Path(exc.filename)
        found.append((where.relative_to(path).parts, ReadError(str(where), _os_reason(exc))))

    # Links to folders are not followed (as `rglob` did not): no loops, no way out.
    for folder, _, names in os.walk(path, onerror=unlisted):
        for name in names:
            file = Path(folder, name)
            if not _decodable(name):  # the id, and what a job reports, must be text
                shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                reason = "the file name is not valid UTF-8; rename the file"
                found.append((file.relative_to(path).parts, ReadError(shown, reason)))
                continue
            # A link that leads out of the folder is not part of it.
            if _is_supported(file) and Path(os.path.realpath(file)).is_relative_to(root):
                relative = file.relative_to(path)
                found.append((relative.parts, (file, relative.as_posix())))
    for _, entry in sorted(found, key=lambda item: item[0]):
        yield entry


def _decodable(name: str) -> bool:
    """Whether a name from the file system was valid UTF-8 (Python keeps the bytes of one
    that was not as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_supported(path: Path) -> bool:
    return path.suffix.lower() in READABLE_SUFFIXES


def _is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in JSONL_SUFFIXES


def read_file(
    path: Path, doc_id: str, max_document_bytes: int = MAX_DOCUMENT_BYTES
) -> Iterator[DocumentIn | ReadError]:
    """One file: JSONL gives a document per line (streamed), other formats one document."""
    if not _is_supported(path):
        supported = ", ".join(sorted(READABLE_SUFFIXES))
        suffix = path.suffix.lower() or "(none)"
        yield ReadError(str(path), f"unsupported file type {suffix}; use {supported}")
        return
    if _is_jsonl(path):
        yield from read_jsonl(path, max_document_bytes)
        return
    try:
        with open_regular(path) as handle:
            text = _decode(_read_document(handle, max_document_bytes))
    except (OSError, ValueError) as exc:
        yield ReadError(str(path), _reason(exc))
        return
    is_html = path.suffix.lower() in HTML_SUFFIXES
    try:
        title, body = _html_to_text(text) if is_html else (_first_line(text), text)
    except Exception as exc:  # noqa: BLE001 - html.parser asserts on some broken markup
        yield ReadError(str(path), f"could not read the HTML ({type(exc).__name__}: {exc})")
        return
    try:
        yield DocumentIn(id=doc_id, text=body, title=title)
    except ValidationError as exc:
        yield ReadError(str(path), describe_validation_error(exc))


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file (after links); ValueError names
    what it is otherwise. It is opened without blocking and checked again once open, so a
    FIFO put in its place meanwhile is refused instead of waiting for a writer forever."""
    _require_regular(os.stat(path).st_mode)
    descriptor = os.open(path, OPEN_FLAGS)
    try:
        _require_regular(os.fstat(descriptor).st_mode)
    except ValueError:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "rb")


def _require_regular(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    raise ValueError(f"{kind}, not a regular file; only regular files are read")


def _read_document(handle: BinaryIO, max_document_bytes: int) -> bytes:
    """The whole file, refused without reading it when it is over the limit."""
    size = os.fstat(handle.fileno()).st_size
    data = handle.read(max_document_bytes + 1) if size <= max_document_bytes else b""
    if size > max_document_bytes or len(data) > max_document_bytes:  # or it grew meanwhile
        size = max(size, len(data))
        raise ValueError(_too_large(f"the file ({size:,} bytes)", max_document_bytes))
    return data


def _too_large(subject: str, max_document_bytes: int) -> str:
    return (
        f"{subject} is larger than the {max_document_bytes:,} bytes one document may have "
        "(XLSEARCH_MAX_DOCUMENT_BYTES); split it into smaller documents"
    )


def read_jsonl(
    path: Path, max_document_bytes: int = MAX_DOCUMENT_BYTES
) -> Iterator[DocumentIn | ReadError]:
    """A JSONL file line by line, so files of any size stream in constant memory."""
    try:
        with _open_jsonl(path) as handle:
            lines = _lines(handle, max_document_bytes)
            yield from parse_jsonl(lines, str(path), max_document_bytes)
    except (OSError, ValueError) as exc:
        yield ReadError(str(path), _reason(exc))


def _count_jsonl(path: Path, max_document_bytes: int) -> int:
    """The items `read_jsonl` gives: its non-blank lines, or 1 when it cannot be read."""
    try:
        with _open_jsonl(path) as handle:
            lines = _lines(handle, max_document_bytes)
            return sum(1 for line in lines if line is None or line.strip())
    except (OSError, ValueError):
        return 1


def _open_jsonl(path: Path) -> BinaryIO:
    """The file, opened as in `open_regular`; ValueError if it looks binary."""
    handle = open_regular(path)
    if b"\x00" in handle.read(SNIFF_BYTES):
        handle.close()
        raise ValueError("binary file (contains NUL bytes); expected JSONL text")
    handle.seek(0)
    return handle


def _lines(handle: BinaryIO, max_document_bytes: int) -> Iterator[bytes | None]:
    """The file's lines, None for one longer than `max_document_bytes` (its newline aside),
    whose rest is skipped over without being held in memory."""
    while line := handle.readline(max_document_bytes + 1):
        if len(line) <= max_document_bytes or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):
            line = handle.readline(SNIFF_BYTES)
        yield None


def parse_jsonl(
    lines: Iterable[bytes | None], source: str, max_document_bytes: int = MAX_DOCUMENT_BYTES
) -> Iterator[DocumentIn | ReadError]:
    """A document per non-blank line: `{"id", "text", "title", "lang", "url", "metadata"}`;
    None stands for a line that was too long to read."""
    for number, raw in enumerate(lines, start=1):
        where = f"{source}:{number}"
        if raw is None:
            yield ReadError(where, _too_large("the line", max_document_bytes))
            continue
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError as exc:
            yield ReadError(where, f"not valid UTF-8 (byte {exc.start})")
            continue
        except json.JSONDecodeError as exc:
            yield ReadError(where, f"invalid JSON: {exc.msg} at column {exc.colno}")
            continue
        except (ValueError, RecursionError) as exc:  # a 5000-digit number, deep nesting
            yield ReadError(where, f"invalid JSON: {str(exc)[:200] or type(exc).__name__}")
            continue
        if not isinstance(value, dict):
            yield ReadError(where, "each line must be a JSON object with at least a 'text' field")
            continue
        try:
            yield DocumentIn.model_validate(value)
        except ValidationError as exc:
            yield ReadError(where, describe_validation_error(exc))


def _reason(exc: OSError | ValueError) -> str:
    return _os_reason(exc) if isinstance(exc, OSError) else str(exc)


def _os_reason(exc: OSError) -> str:
    return OS_REASONS.get(exc.errno or 0, exc.strerror or str(exc))


def _decode(data: bytes) -> str:
    if b"\x00" in data[:SNIFF_BYTES]:
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
        # Open elements, and how many of each are open: every tag costs constant work (a
        # scan of the stack per tag made `"<a>x" * n` quadratic: 61 s for 320 KB).
        self._stack: list[str] = []
        self._open: Counter[str] = Counter()

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
            self._open[tag] += 1
        if tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if self._open[tag]:  # close it and whatever was left open inside it
            while (closed := self._stack.pop()) != tag:
                self._open[closed] -= 1
            self._open[tag] -= 1
        if tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._open["title"]:
            self.title_parts.append(data)
        elif not any(self._open[tag] for tag in self.SKIP):
            self.parts.append(data)


def _html_to_text(html: str) -> tuple[str | None, str]:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    paragraphs = (" ".join(block.split()) for block in "".join(parser.parts).split("\n\n"))
    body = "\n\n".join(p for p in paragraphs if p)
    title = " ".join("".join(parser.title_parts).split()) or _first_line(body)
    return (title[:TITLE_LIMIT] if title else None), body
