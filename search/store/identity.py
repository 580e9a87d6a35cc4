"""What binds an index snapshot on disk to the database it came from: the database's identity
(a random id written once by migration 0003) and a row for every snapshot taken from it.

A snapshot's row is committed after the snapshot has read the log up to its watermarks and
before its manifest names it, so a database that holds the row has reached that position by
the same history. A backup restored from before the snapshot lacks the row, although it has
the same identity and, once new documents arrive, reuses the very chunk ids the snapshot holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select

from search.store.repository import Store
from search.store.tables import DatabaseIdentity, IndexSnapshot


@dataclass(frozen=True)
class SnapshotRecord:
    """The log position a snapshot was recorded at, in the database."""

    collection_id: int
    generation: int
    chunk_watermark: int
    tombstone_watermark: int


def database_id(store: Store) -> str:
    """The database's identity (a backup has the same one as its original)."""
    with store.session() as session:
        return session.execute(select(DatabaseIdentity.id)).scalar_one()


def record_snapshot(
    store: Store, snapshot_id: str, position: SnapshotRecord, keep: int
) -> None:
    """Record a snapshot's log position before its manifest names it, keeping the records
    of the `keep` newest snapshots of the collection's generation. Older ones stay usable
    while recorded: a copy of the index folder taken before a backup is one of them, and it
    loads after a restore of that backup instead of forcing a rebuild."""
    with store.writing() as session:
        session.add(
            IndexSnapshot(
                id=snapshot_id,
                collection_id=position.collection_id,
                generation=position.generation,
                chunk_watermark=position.chunk_watermark,
                tombstone_watermark=position.tombstone_watermark,
            )
        )
        session.flush()
        same_index = (IndexSnapshot.collection_id == position.collection_id,
                      IndexSnapshot.generation == position.generation)
        kept = (
            select(IndexSnapshot.id)
            .where(*same_index)
            .order_by(
                IndexSnapshot.chunk_watermark.desc(), IndexSnapshot.tombstone_watermark.desc()
            )
            .limit(keep)
        )
        session.execute(
            delete(IndexSnapshot).where(
                *same_index, IndexSnapshot.id.not_in(kept.scalar_subquery()),
            )
        )


def recorded_snapshot(store: Store, snapshot_id: str) -> SnapshotRecord | None:
    """The position `snapshot_id` was recorded at, or None if this database never saw it."""
    with store.session() as session:
        row = session.get(IndexSnapshot, snapshot_id)
        if row is None:
            return None
        return SnapshotRecord(row.collection_id, row.generation, row.chunk_watermark,
                              row.tombstone_watermark)
