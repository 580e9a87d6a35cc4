"""Where a job's documents live: uploads streamed to disk, inline documents written as
JSONL, or a server-side path confined to the allowed roots.

An upload becomes one folder that the worker reads like any other, so a file's path in it is
its document id: an uploaded file keeps its name (`a.txt`), a ZIP entry its path inside the
archive (`pages/tea.md`), whatever order the parts came in.
"""

from __future__ import annotations

import bisect
import shutil
import stat
import uuid
import zipfile
import zlib
from collections.abc import AsyncIterator, Sequence
from functools import partial
from pathlib import Path, PurePosixPath

import anyio

from search.api.multipart import PartStart, multipart_events
from search.errors import Forbidden, InvalidInput, UnsupportedMedia
from search.file_types import (
    BINARY_SUFFIXES,
    EXTRACTED_STARTS,
    READABLE_SUFFIXES,
    ZIP_SUFFIXES,
    describe_readable,
)
from search.schemas import DocumentIn, clean_text
from search.settings import Settings
from search.store.jobs import JobStore

COPY_CHUNK = 1 << 20
SNIFF_BYTES = 8192  # where binary data is looked for in an uploaded text file
MAX_FILES, MAX_FIELDS = 10_000, 100
NAME_MAX_BYTES = 255  # one file or folder name (the file systems' limit)
ENTRY_MAX_BYTES = 1024  # a whole path inside a ZIP
SERVER_PATH_MAX_BYTES = 4096
RATIO_FREE_BYTES = 1 << 20  # an entry this small is never refused for its compression ratio
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
DAMAGED_ZIP = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
)  # what zipfile raises on damaged archives (found by fuzzing)


def new_upload_folder(upload_dir: Path) -> Path:
    folder = upload_dir / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder


def submit_upload(jobs: JobStore, collection_id: int, folder: Path, total: int) -> str:
    """Queue a job over an upload folder; the folder goes again if the job cannot be queued."""
    try:
        return jobs.submit(collection_id, {"path": str(folder), "owned": True}, total)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # no job will ever read it
        raise


def save_documents(upload_dir: Path, documents: Sequence[DocumentIn]) -> Path:
    """Inline documents as one JSONL file, read by the worker like any upload."""
    folder = new_upload_folder(upload_dir)
    with open(folder / "documents.jsonl", "w", encoding="utf-8") as handle:
        for document in documents:
            handle.write(document.model_dump_json(exclude_none=True) + "\n")
    return folder


async def save_uploads(settings: Settings, content_type: str, body: AsyncIterator[bytes]) -> Path:
    """Stream the files of multipart field `file` (repeatable) into a new folder, then unpack
    the ZIP archives among them there, in a worker thread (the event loop keeps serving).

    Refuses unknown types, binary data in text files, unsafe or clashing names, and archives
    that are damaged, encrypted, hold links, escape the folder or unpack to more than
    `max_unpacked_bytes` or `max_zip_ratio` times their size. The folder is removed again on
    any refusal, and when the client goes away or the body times out.
    """
    folder = await anyio.to_thread.run_sync(new_upload_folder, settings.upload_dir)
    try:
        names = _Names()
        archives = await _receive_files(folder, names, content_type, body)
        await anyio.to_thread.run_sync(_unpack_all, archives, folder, names, settings)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(partial(shutil.rmtree, folder, ignore_errors=True))
        raise
    return folder


async def _receive_files(
    folder: Path, names: _Names, content_type: str, body: AsyncIterator[bytes]
) -> list[tuple[Path, str]]:
    """Write each file part to the folder as it arrives; ZIPs are kept aside to unpack."""
    archives: list[tuple[Path, str]] = []
    files = fields = 0
    sink: _FileSink | None = None
    try:
        async for event in multipart_events(content_type, body):
            if isinstance(event, PartStart):
                if event.field != "file" or event.filename is None:
                    fields += 1
                    if fields > MAX_FIELDS:
                        raise InvalidInput(f"more than {MAX_FIELDS} form fields; send files only")
                    continue  # other fields carry nothing for a job
                files += 1
                if files > MAX_FILES:
                    raise InvalidInput(f"more than {MAX_FILES} files; put them in a ZIP")
                name = _upload_name(event.filename)
                is_zip = name.lower().endswith(".zip")
                if is_zip:
                    target = folder / f".archive-{files}.zip"  # no upload name starts with '.'
                    archives.append((target, name))
                else:
                    names.claim(PurePosixPath(name), repr(name))
                    target = folder / name
                binary = is_zip or PurePosixPath(name).suffix.lower() in BINARY_SUFFIXES
                sink = _FileSink(target, name, sniff=not binary)
            elif isinstance(event, bytes):
                if sink is not None:
                    await sink.write(event)
            elif sink is not None:
                await sink.finish()
                sink = None
    finally:
        if sink is not None:
            sink.close()
    if not files:
        raise InvalidInput("send the documents as multipart field 'file'")
    return archives


class _FileSink:
    """One uploaded file being written: buffered, and written in a worker thread."""

    def __init__(self, path: Path, name: str, *, sniff: bool) -> None:
        self._handle = open(path, "xb")  # noqa: SIM115 (closed by finish or close)
        self._name, self._sniff = name, sniff
        self._buffer = bytearray()
        self._offset = 0

    async def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= COPY_CHUNK:
            await self._flush()

    async def finish(self) -> None:
        await self._flush()
        self.close()

    def close(self) -> None:
        self._handle.close()

    async def _flush(self) -> None:
        # A PDF or Office file under a text name is read as what it is, as in a folder.
        if (self._sniff and self._offset == 0 and b"\x00" in self._buffer[:SNIFF_BYTES]
                and not self._buffer.startswith(EXTRACTED_STARTS)):
            raise InvalidInput(
                f"{self._name}: binary data; upload UTF-8 text, JSONL, a document format "
                "or a ZIP"
            )
        data, self._buffer = self._buffer, bytearray()
        await anyio.to_thread.run_sync(self._handle.write, data)
        self._offset += len(data)


def _upload_name(raw: str) -> str:
    """The name a client sent for a file, without any folder, checked to be a safe name."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    _check_name(name, f"file name {raw!r}")
    if name.startswith("."):
        raise InvalidInput(f"file name {raw!r}: hidden names (starting with '.') are refused")
    suffix = PurePosixPath(name).suffix.lower()
    if suffix != ".zip" and suffix not in READABLE_SUFFIXES:
        raise UnsupportedMedia(f"{name}: unsupported file type; upload {describe_readable()}")
    return name


def _check_name(name: str, where: str) -> None:
    """One file or folder name: not empty, no control characters, at most 255 bytes."""
    if not name or name in (".", ".."):
        raise InvalidInput(f"{where}: the name is empty; name the file")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidInput(f"{where}: control characters in the name; rename it")
    size = _utf8_size(name, f"{where}: the name")
    if size > NAME_MAX_BYTES:
        raise InvalidInput(f"{where}: a name is {size} bytes, over {NAME_MAX_BYTES}; shorten it")


class _Names:
    """The paths one upload has claimed, each with where it came from: no two parts may
    become the same document, and no part may be a file where another needs a folder."""

    def __init__(self) -> None:
        self._files: dict[PurePosixPath, str] = {}
        self._folders: dict[PurePosixPath, str] = {}

    def claim(self, path: PurePosixPath, origin: str) -> None:
        if len(self._files) >= MAX_FILES:  # all parts and ZIP entries of one upload together
            raise InvalidInput(f"more than {MAX_FILES} files in one upload; split it")
        if path in self._files:
            raise InvalidInput(
                f"{origin} and {self._files[path]} would both be document {str(path)!r}; "
                "rename one of them"
            )
        files_above = [self._files[p] for p in path.parents if p in self._files]
        if path in self._folders or files_above:
            other = self._folders.get(path) or files_above[0]
            raise InvalidInput(
                f"{origin} and {other} clash: one is a file where the other is a folder; "
                "rename one of them"
            )
        self._files[path] = origin
        for parent in path.parents:
            self._folders.setdefault(parent, origin)


def _unpack_all(
    archives: Sequence[tuple[Path, str]], folder: Path, names: _Names, settings: Settings
) -> None:
    """Unpack each archive into `folder`; `max_unpacked_bytes` bounds them all together."""
    unpacked = 0
    for archive, name in archives:
        unpacked = _unpack(archive, name, folder, names, settings, unpacked)
        archive.unlink()


def _unpack(
    archive: Path, name: str, folder: Path, names: _Names, settings: Settings, unpacked: int
) -> int:
    """Check every entry on its headers first, then unpack, counting the bytes really
    written (headers lie). Returns `unpacked` plus this archive's bytes."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            plan = _plan(bundle, archive.stat().st_size, name, names, settings, unpacked)
            for member, path, compressed in plan:
                where = f"{name}: entry {member.filename!r}"
                target = folder.joinpath(*path.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with bundle.open(member) as source, open(target, "xb") as sink:
                    while chunk := source.read(COPY_CHUNK):
                        written += len(chunk)
                        _check_size(where, written, compressed, unpacked + written, settings)
                        sink.write(chunk)
                if written != member.file_size:
                    raise InvalidInput(
                        f"{name}: not a valid ZIP archive ({member.filename!r} holds {written} "
                        f"bytes, its header says {member.file_size}); create it again"
                    )
                unpacked += written
    except DAMAGED_ZIP as exc:
        raise InvalidInput(f"{name}: not a valid ZIP archive ({exc}); create it again") from None
    return unpacked


def _plan(
    bundle: zipfile.ZipFile,
    archive_size: int,
    name: str,
    names: _Names,
    settings: Settings,
    unpacked: int,
) -> list[tuple[zipfile.ZipInfo, PurePosixPath, int]]:
    """The entries to unpack, with where they go and their compressed size (the smaller of
    what the header says and the bytes that really lie between it and the next entry)."""
    members = bundle.infolist()
    if len(members) > MAX_FILES:  # each entry becomes a file and a job item
        raise InvalidInput(f"{name}: more than {MAX_FILES} entries; split the archive")
    offsets = sorted({m.header_offset for m in members} | {archive_size})
    plan = []
    for member in members:
        path = None if member.is_dir() else _entry_path(member.filename, name)
        if path is None:
            continue
        where = f"{name}: entry {member.filename!r}"
        kind = stat.S_IFMT(member.external_attr >> 16)
        if kind not in (0, stat.S_IFREG):
            raise InvalidInput(f"{where} is a link or a special file; archive the file itself")
        if member.flag_bits & 0x1:
            raise InvalidInput(f"{where} is encrypted; upload an unencrypted ZIP")
        if member.compress_type not in ZIP_METHODS:
            raise InvalidInput(
                f"{where} uses compression method {member.compress_type}; "
                "create the archive with ordinary ZIP (Deflate) compression"
            )
        following = offsets[bisect.bisect_right(offsets, member.header_offset)]
        compressed = min(member.compress_size, following - member.header_offset)
        unpacked += member.file_size
        _check_size(where, member.file_size, compressed, unpacked, settings)
        names.claim(path, f"{member.filename!r} in {name!r}")
        plan.append((member, path, compressed))
    return plan


def _entry_path(filename: str, archive: str) -> PurePosixPath | None:
    """Where an entry goes in the upload folder, or None for one the readers would skip
    anyway (hidden files, macOS metadata, types it cannot read). A ZIP inside the archive is
    written as it is, for the reader to report as an item it does not unpack."""
    raw = filename.replace("\\", "/")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if raw.startswith("/") or ".." in parts:
        raise InvalidInput(f"{archive}: entry {filename!r} escapes the archive")
    if not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
        return None
    if PurePosixPath(parts[-1]).suffix.lower() not in READABLE_SUFFIXES | ZIP_SUFFIXES:
        return None
    for part in parts:
        _check_name(part, f"{archive}: entry {filename!r}")
    if len(raw.encode("utf-8")) > ENTRY_MAX_BYTES:
        raise InvalidInput(f"{archive}: entry {filename!r} is over {ENTRY_MAX_BYTES} bytes long")
    return PurePosixPath(*parts)


def _check_size(where: str, size: int, compressed: int, unpacked: int, settings: Settings) -> None:
    """One entry of `size` bytes from `compressed` ones, `unpacked` bytes in all so far."""
    if size > max(RATIO_FREE_BYTES, settings.max_zip_ratio * compressed):
        raise InvalidInput(
            f"{where} unpacks to more than {settings.max_zip_ratio:g} times its compressed "
            "size (XLSEARCH_MAX_ZIP_RATIO), like a ZIP bomb; upload it uncompressed"
        )
    if unpacked > settings.max_unpacked_bytes:
        raise InvalidInput(
            f"{where}: the upload unpacks to more than {settings.max_unpacked_bytes} bytes "
            "(XLSEARCH_MAX_UNPACKED_BYTES); split it"
        )


def resolve_server_path(raw: str, roots: Sequence[Path]) -> Path:
    """A regular file or folder inside one of `roots`: no '..', no link leading out, must
    exist; FIFOs, sockets and devices are refused (reading them could block forever)."""
    if not roots:
        raise Forbidden("server-side paths are disabled; set XLSEARCH_ALLOWED_ROOTS to allow some")
    try:
        clean_text(raw)
    except ValueError as exc:
        raise InvalidInput(f"the path {exc}") from None
    size = len(raw.encode("utf-8"))
    if size > SERVER_PATH_MAX_BYTES:
        raise InvalidInput(f"the path is {size} bytes long, over {SERVER_PATH_MAX_BYTES}")
    candidate = Path(raw)
    if ".." in candidate.parts:
        raise Forbidden(f"{raw!r}: '..' is not allowed in paths")
    for root in (r.resolve() for r in roots):
        try:
            resolved = (root / candidate).resolve()  # an absolute `raw` replaces `root` here
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop
            raise InvalidInput(f"{raw!r}: the path cannot be resolved ({exc})") from None
        if resolved.is_relative_to(root):
            _check_readable(raw, resolved)
            return resolved
    raise Forbidden(f"{raw!r} is outside the allowed roots")


def _check_readable(raw: str, resolved: Path) -> None:
    try:
        mode = resolved.stat().st_mode
    except FileNotFoundError:
        raise InvalidInput(f"{raw!r}: no such file or folder") from None
    except PermissionError:
        raise Forbidden(f"{raw!r}: the server is not allowed to read it") from None
    except OSError as exc:
        raise InvalidInput(f"{raw!r}: cannot be read ({exc.strerror})") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InvalidInput(f"{raw!r} is not a regular file or folder (a FIFO, socket or device)")


def _utf8_size(text: str, what: str) -> int:
    """Bytes of `text` as UTF-8; a 422 saying `what` is not valid Unicode otherwise."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid Unicode; rename it") from None
