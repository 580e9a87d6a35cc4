"""Source readers: text, Markdown, JSONL, HTML, PDF, Word, PowerPoint and EPUB files
(folders recursively) into documents.

Every problem is reported per item (a file, or a line of a JSONL file) with its reason, and
reading goes on with the rest. Only regular files are read (a FIFO, a socket or a device
would block or never end), opened without blocking so that one swapped in after the check
cannot hang the reader, and no document is larger than `max_document_bytes`: a text file as
a whole, a JSONL file line by line (the file itself may be of any size, streamed), the text
extracted from any other format. Those formats (`indexer.formats`) are read in worker
processes (`indexer.extraction`), a few files ahead, so that one damaged file can neither
crash nor stall the reader.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from indexer.extraction import ExtractionPool, Task, default_processes
from indexer.formats import extract, too_large
from indexer.formats.builder import short_title
from indexer.formats.markdown import markdown_parts
from search.file_types import (
    EXTRACTED_STARTS,
    EXTRACTED_SUFFIXES,
    JSONL_SUFFIXES,
    MARKDOWN_SUFFIXES,
    READABLE_SUFFIXES,
    ZIP_SUFFIXES,
    describe_readable,
)
from search.schemas import DocumentIn, describe_validation_error
from search.settings import Settings

MAX_DOCUMENT_BYTES: int = Settings.model_fields["max_document_bytes"].default
MAX_FILE_BYTES: int = Settings.model_fields["max_file_bytes"].default
EXTRACT_TIMEOUT_S: float = Settings.model_fields["extract_timeout_s"].default
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


@dataclass(frozen=True)
class Extraction:
    """How files whose text is extracted are read: by how many processes, for how long at
    most each, and how large they may be."""

    processes: int = field(default_factory=default_processes)
    timeout_s: float = EXTRACT_TIMEOUT_S
    max_file_bytes: int = MAX_FILE_BYTES

    @classmethod
    def of(cls, settings: Settings) -> Extraction:
        return cls(
            settings.extract_processes or default_processes(),
            settings.extract_timeout_s,
            settings.max_file_bytes,
        )


def read_sources(
    paths: Iterable[Path],
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
    extraction: Extraction | None = None,
    skip: int = 0,
) -> Iterator[DocumentIn | ReadError]:
    """Documents from files and folders, in a stable order; files to extract are read in
    worker processes, up to two per process ahead of the one yielded. The first `skip`
    items (a job resumed at its cursor) are passed over without being read."""
    extraction = extraction or Extraction()
    pool: ExtractionPool | None = None
    ahead: deque[ReadError | Future[Any] | tuple[Path, str] | _Rest] = deque()
    in_flight = 0

    def settle_first() -> Iterator[DocumentIn | ReadError]:
        nonlocal in_flight
        first = ahead.popleft()
        if isinstance(first, ReadError):
            yield first
        elif isinstance(first, _Rest):
            yield from islice(read_file(*first.entry, max_document_bytes), first.skip, None)
        elif isinstance(first, Future):
            in_flight -= 1
            yield first.result()
        else:
            yield from read_file(*first, max_document_bytes)

    try:
        for path in paths:
            for entry in _entries(path):
                if skip:
                    items = _items_in(entry, max_document_bytes)
                    if items <= skip:
                        skip -= items
                        continue
                    assert not isinstance(entry, ReadError)  # a JSONL file: items > 1
                    ahead.append(_Rest(entry, skip))
                    skip = 0
                    continue
                if not isinstance(entry, ReadError) and _extracted(entry[0]):
                    if pool is None:
                        pool = ExtractionPool(
                            _failed_task, extraction.processes, extraction.timeout_s
                        )
                    task = (str(entry[0]), entry[1], max_document_bytes, extraction.max_file_bytes)
                    ahead.append(pool.submit(task))
                    in_flight += 1
                else:
                    ahead.append(entry)
                while ahead and (in_flight > 2 * extraction.processes
                                 or len(ahead) > 4 * extraction.processes
                                 or not isinstance(ahead[0], Future)):
                    yield from settle_first()
        while ahead:
            yield from settle_first()
    finally:
        if pool is not None:
            pool.close()


def extract_task(task: Task) -> DocumentIn | ReadError:
    """What a worker process does with a file: read it and extract its text."""
    path, doc_id, max_document_bytes, max_file_bytes = task
    return read_extracted(Path(path), doc_id, max_document_bytes, max_file_bytes)


def _failed_task(task: Task, reason: str) -> ReadError:
    return ReadError(task[0], reason)


def _extracted(path: Path) -> bool:
    """Whether a file's text is extracted: by its name, or because it is a PDF or an Office
    file under another name (looked at without blocking; unreadable ones are left to the
    text reader, which says why)."""
    if path.suffix.lower() in EXTRACTED_SUFFIXES:
        return True
    if _is_jsonl(path) or path.suffix.lower() in ZIP_SUFFIXES:
        return False
    try:
        with open_regular(path) as handle:
            return handle.read(8).startswith(EXTRACTED_STARTS)
    except (OSError, ValueError):
        return False


def count_items(paths: Iterable[Path], max_document_bytes: int = MAX_DOCUMENT_BYTES) -> int:
    """How many items `read_sources` will yield (JSONL lines counted), for progress bars and
    for resuming a job at an item; it reads no more than `read_sources` would."""
    return sum(
        _items_in(entry, max_document_bytes) for path in paths for entry in _entries(path)
    )


def _items_in(entry: tuple[Path, str] | ReadError, max_document_bytes: int) -> int:
    """How many items one entry of `_entries` gives: a JSONL file's lines, else one."""
    if isinstance(entry, ReadError) or not _is_jsonl(entry[0]):
        return 1
    return _count_jsonl(entry[0], max_document_bytes)


@dataclass(frozen=True)
class _Rest:
    """A JSONL file whose first `skip` lines a resumed job has already taken."""

    entry: tuple[Path, str]
    skip: int


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
            listed = _is_supported(file) or file.suffix.lower() in ZIP_SUFFIXES  # to report
            if listed and Path(os.path.realpath(file)).is_relative_to(root):
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
    suffix = path.suffix.lower()
    if suffix in ZIP_SUFFIXES:
        reason = "a ZIP archive inside a folder or another ZIP is not read; unpack it"
        yield ReadError(str(path), reason)
        return
    if not _is_supported(path):
        reason = f"unsupported file type {suffix or '(none)'}; use {describe_readable()}"
        yield ReadError(str(path), reason)
        return
    if _is_jsonl(path):
        yield from read_jsonl(path, max_document_bytes)
        return
    if suffix in EXTRACTED_SUFFIXES:
        yield read_extracted(path, doc_id, max_document_bytes)
        return
    try:
        with open_regular(path) as handle:
            text = _decode(_read_document(handle, max_document_bytes))
    except (OSError, ValueError) as exc:
        yield ReadError(str(path), _reason(exc))
        return
    parts = markdown_parts(text) if suffix in MARKDOWN_SUFFIXES else None
    yield _document(path, doc_id, text=text, title=_first_line(text), parts=parts or None)


def read_extracted(
    path: Path, doc_id: str, max_document_bytes: int, max_file_bytes: int = MAX_FILE_BYTES
) -> DocumentIn | ReadError:
    """A PDF, Word, PowerPoint, EPUB or HTML file's text, parts, title and metadata."""
    try:
        with open_regular(path) as handle:
            data = _read_document(handle, max_file_bytes, "XLSEARCH_MAX_FILE_BYTES")
        found = extract(path, data, max_document_bytes)
    except (OSError, ValueError) as exc:
        return ReadError(str(path), _reason(exc))
    except Exception as exc:  # noqa: BLE001 - a reader's library failing on a damaged file
        return ReadError(str(path), f"could not read it ({type(exc).__name__}: {exc})"[:300])
    return _document(
        path, doc_id, text=found.text, title=found.title, parts=found.parts or None,
        metadata=found.metadata,
    )


def _document(path: Path, doc_id: str, **fields: Any) -> DocumentIn | ReadError:
    try:
        return DocumentIn(id=doc_id, **fields)
    except ValidationError as exc:
        return ReadError(str(path), describe_validation_error(exc))


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


def _read_document(handle: BinaryIO, limit: int, setting: str | None = None) -> bytes:
    """The whole file, refused without reading it when it is over `limit` bytes (the
    document limit, or the file limit named `setting`)."""
    size = os.fstat(handle.fileno()).st_size
    data = handle.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:  # or it grew meanwhile
        size = max(size, len(data))
        if setting is None:
            raise ValueError(too_large(f"the file ({size:,} bytes)", limit))
        raise ValueError(
            f"the file ({size:,} bytes) is larger than the {limit:,} bytes a file may have "
            f"({setting}); split it"
        )
    return data


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
            yield ReadError(where, too_large("the line", max_document_bytes))
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
            return short_title(line)
    return None
