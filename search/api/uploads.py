"""Where a job's documents live: uploads streamed to disk, inline documents written as
JSONL, or a server-side path confined to the allowed roots."""

from __future__ import annotations

import shutil
import uuid
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from starlette.datastructures import UploadFile

from search.errors import Forbidden, InvalidInput, UnsupportedMedia
from search.schemas import DocumentIn

TEXT_SUFFIXES = {".jsonl", ".ndjson", ".txt", ".text", ".md", ".markdown", ".html", ".htm"}
COPY_CHUNK = 1 << 20


def new_upload_folder(upload_dir: Path) -> Path:
    folder = upload_dir / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder


def save_documents(upload_dir: Path, documents: Sequence[DocumentIn]) -> Path:
    """Inline documents as one JSONL file, read by the worker like any upload."""
    folder = new_upload_folder(upload_dir)
    with open(folder / "documents.jsonl", "w", encoding="utf-8") as handle:
        for document in documents:
            handle.write(document.model_dump_json(exclude_none=True) + "\n")
    return folder


async def save_uploads(upload_dir: Path, files: Sequence[UploadFile], max_bytes: int) -> Path:
    """Stream uploaded files to a new folder (ZIP archives are unpacked there).

    Refuses unknown types, binary data in text files and archive entries that would land
    outside the folder, removing the folder again on any refusal.
    """
    folder = new_upload_folder(upload_dir)
    try:
        for number, upload in enumerate(files):
            name = PurePosixPath(upload.filename or f"upload-{number}.jsonl").name
            suffix = PurePosixPath(name).suffix.lower()
            if suffix != ".zip" and suffix not in TEXT_SUFFIXES:
                raise UnsupportedMedia(
                    f"{name}: unsupported file type; upload .jsonl, .txt, .md, .html or .zip"
                )
            target = folder / f"{number:04d}-{name}"
            await _stream_to(upload, target)
            if suffix == ".zip":
                destination = folder / f"{number:04d}-{PurePosixPath(name).stem}"
                _unpack(target, destination, max_bytes, name)
                target.unlink()
            elif b"\x00" in target.read_bytes()[:8192]:
                raise InvalidInput(f"{name}: binary data; upload UTF-8 text, JSONL or a ZIP")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


async def _stream_to(upload: UploadFile, target: Path) -> None:
    with open(target, "wb") as handle:
        while chunk := await upload.read(COPY_CHUNK):
            handle.write(chunk)


def _unpack(archive: Path, destination: Path, max_bytes: int, name: str) -> None:
    if not zipfile.is_zipfile(archive):
        raise InvalidInput(f"{name}: not a valid ZIP archive")
    with zipfile.ZipFile(archive) as bundle:
        members = [m for m in bundle.infolist() if not m.is_dir()]
        if sum(m.file_size for m in members) > max_bytes:
            raise InvalidInput(f"{name}: unpacks to more than {max_bytes} bytes")
        for member in members:
            parts = PurePosixPath(member.filename).parts
            if member.filename.startswith("/") or ".." in parts:
                raise InvalidInput(f"{name}: entry {member.filename!r} escapes the archive")
            target = destination.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(member) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, COPY_CHUNK)


def resolve_server_path(raw: str, roots: Sequence[Path]) -> Path:
    """A file or folder inside one of `roots`: no '..', no link leading out, must exist."""
    if not roots:
        raise Forbidden("server-side paths are disabled; set XLSEARCH_ALLOWED_ROOTS to allow some")
    candidate = Path(raw)
    if ".." in candidate.parts:
        raise Forbidden(f"{raw!r}: '..' is not allowed in paths")
    for root in (r.resolve() for r in roots):
        resolved = (root / candidate).resolve()  # an absolute `raw` replaces `root` here
        if resolved.is_relative_to(root):
            if not resolved.exists():
                raise InvalidInput(f"{raw!r}: no such file or folder")
            return resolved
    raise Forbidden(f"{raw!r} is outside the allowed roots")
