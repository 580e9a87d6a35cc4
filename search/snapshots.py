"""Atomic on-disk snapshots of a collection's view: the FAISS index file (temp file, fsync,
rename) and the lexical index folder (search.lexical_index); a manifest names both with their
sizes and checksums, the log position they hold and the database they were taken from."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import get_type_hints

from search.lexical_index import folder_digest

MANIFEST = "manifest.json"


class UnusableSnapshot(Exception):
    """A snapshot on disk that must not be used; the message says why. Callers rebuild the
    index from the database, which always holds every vector."""


@dataclass(frozen=True)
class Manifest:
    """What a snapshot holds: whose vectors, up to which chunk id and tombstone, taken from
    which database (its identity, and this snapshot's record there: search.store.identity)."""

    collection_id: int
    model: str
    dimension: int
    kind: str
    nlist: int
    nprobe: int
    chunk_watermark: int
    tombstone_watermark: int
    count: int
    database_id: str
    snapshot_id: str
    index_format: int  # search.vector_index.INDEX_FORMAT when it was written
    # the index file and the lexical folder, as publish_snapshot found them
    index_file: str = ""
    index_bytes: int = 0
    index_sha256: str = ""
    lexical_folder: str = ""
    lexical_bytes: int = 0
    lexical_sha256: str = ""


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(temporary)
    with open(temporary, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_index_file(folder: Path, snapshot_id: str, write_index: Callable[[Path], None]) -> Path:
    """Write a snapshot's index file atomically; no manifest names it yet."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"index-{snapshot_id}.faiss"
    _write_atomically(path, write_index)
    return path


def publish_snapshot(
    folder: Path, manifest: Manifest, index_path: Path, lexical_path: Path
) -> Manifest:
    """Switch the manifest to `index_path` and `lexical_path` (with their sizes and
    checksums), then drop older index files and lexical folders. Returns the manifest written.

    A crash at any point leaves the previous manifest and the files it names intact.
    """
    lexical_bytes, lexical_sha256 = folder_digest(lexical_path)
    written = replace(
        manifest,
        index_file=index_path.name,
        index_bytes=index_path.stat().st_size,
        index_sha256=_sha256(index_path),
        lexical_folder=lexical_path.name,
        lexical_bytes=lexical_bytes,
        lexical_sha256=lexical_sha256,
    )

    def write_manifest(target: Path) -> None:
        target.write_text(json.dumps(asdict(written), indent=2))

    _write_atomically(folder / MANIFEST, write_manifest)
    for stale in folder.glob("index-*.faiss"):
        if stale.name != index_path.name:
            stale.unlink(missing_ok=True)
    for stale in folder.glob("lexical-*"):
        if stale.name != lexical_path.name:
            shutil.rmtree(stale, ignore_errors=True)
    return written


def read_manifest(folder: Path) -> Manifest | None:
    """The snapshot's manifest, or None where there is no snapshot.

    Raises UnusableSnapshot for a manifest that cannot be read, is not JSON, has fields of
    the wrong type, or lacks fields (one written before snapshots were verified).
    """
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise UnusableSnapshot(f"{path} cannot be read: {error}") from error
    if not isinstance(data, dict):
        raise UnusableSnapshot(f"{path} is not a JSON object")
    missing = [f.name for f in fields(Manifest) if f.name not in data]
    if missing:
        raise UnusableSnapshot(
            f"{path} lacks {', '.join(missing)} (written by an older version)"
        )
    types = get_type_hints(Manifest)
    wrong = [name for name, wanted in types.items() if type(data[name]) is not wanted]
    if wrong:
        raise UnusableSnapshot(f"{path} has fields of the wrong type: {', '.join(wrong)}")
    return Manifest(**{name: data[name] for name in types})


def verified_index_file(folder: Path, manifest: Manifest) -> Path:
    """The manifest's index file, once its size and SHA-256 match what was written.

    Raises UnusableSnapshot for a missing, truncated or overwritten file.
    """
    return _verified(
        folder, manifest.index_file, "index-*.faiss", "an index file",
        (manifest.index_bytes, manifest.index_sha256),
        lambda path: (path.stat().st_size, _sha256(path)),
    )


def verified_lexical_folder(folder: Path, manifest: Manifest) -> Path:
    """The manifest's lexical folder, once its size and digest match what was written.

    Raises UnusableSnapshot for a missing, truncated or altered folder.
    """
    return _verified(
        folder, manifest.lexical_folder, "lexical-*", "a lexical folder",
        (manifest.lexical_bytes, manifest.lexical_sha256), folder_digest,
    )


def _verified(
    folder: Path,
    name: str,
    pattern: str,
    what: str,
    written: tuple[int, str],
    measure: Callable[[Path], tuple[int, str]],
) -> Path:
    """`folder / name`, once `measure` gives the bytes and SHA-256 it was `written` with."""
    if Path(name).name != name or not fnmatch(name, pattern):
        raise UnusableSnapshot(f"the manifest names {name!r}, not {what} of its folder")
    path = folder / name
    try:
        size, digest = measure(path)
    except OSError as error:
        raise UnusableSnapshot(f"{path} cannot be read: {error}") from error
    if size != written[0]:
        raise UnusableSnapshot(
            f"{path} has {size} bytes where {written[0]} were written (truncated?)"
        )
    if digest != written[1]:
        raise UnusableSnapshot(f"{path} does not match the SHA-256 it was written with")
    return path


def remove_snapshots(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
