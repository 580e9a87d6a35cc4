"""Atomic on-disk snapshots of an index: temp file, fsync, rename; a manifest names the file."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """What a snapshot holds: whose vectors, and up to which chunk id and tombstone."""

    collection_id: int
    model: str
    dimension: int
    kind: str
    nlist: int
    nprobe: int
    chunk_watermark: int
    tombstone_watermark: int
    count: int
    index_file: str


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


def save_snapshot(folder: Path, manifest: Manifest, write_index: Callable[[Path], None]) -> None:
    """Write the index file, then switch the manifest to it, then drop older index files.

    A crash at any point leaves the previous manifest and the file it names intact.
    """
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomically(folder / manifest.index_file, write_index)

    def write_manifest(path: Path) -> None:
        path.write_text(json.dumps(asdict(manifest), indent=2))

    _write_atomically(folder / MANIFEST, write_manifest)
    for stale in folder.glob("index-*.faiss"):
        if stale.name != manifest.index_file:
            stale.unlink(missing_ok=True)


def load_manifest(folder: Path) -> Manifest | None:
    """The snapshot's manifest, or None if there is no readable snapshot."""
    try:
        manifest = Manifest(**json.loads((folder / MANIFEST).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return manifest if (folder / manifest.index_file).is_file() else None


def remove_snapshots(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
