"""Collections: create, find, list with their counts, delete."""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from search.errors import CollectionExists, CollectionNotFound
from search.store.chunk_log import LOG_LOCK_SPACE
from search.store.records import (
    EMBEDDING_SETTINGS,
    CollectionInfo,
    CollectionStats,
    detached,
    storable,
)
from search.store.sessions import Sessions
from search.store.tables import Alias, Chunk, Collection, Document, Generation


def lock_names(session: Session) -> None:
    """Serialise the transactions that give out names (collections, aliases) until this one
    ends: on PostgreSQL two of them would not see each other's new row and could give one
    name to both kinds (SQLite has one writer at a time). Collection ids start at 1, so key
    0 of the log's lock space is free for this."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(LOG_LOCK_SPACE, 0)))


def collection_info(row: Collection) -> CollectionInfo:
    return detached(CollectionInfo, row, index_settings=dict(row.index_settings or {}))


class CollectionRepository(Sessions):
    """The collections table, and what each collection holds, counted."""

    def create_collection(self, spec: CollectionInfo) -> CollectionInfo:
        """Insert a collection (`spec.id` is ignored); refuses an existing name."""
        exists = CollectionExists(f"collection {spec.name!r} already exists")
        try:
            with self.writing() as session:
                lock_names(session)
                if session.scalar(select(Collection.id).where(Collection.name == spec.name)):
                    raise exists
                if session.get(Alias, spec.name) is not None:
                    raise CollectionExists(
                        f"{spec.name!r} is an alias; a collection needs a name of its own"
                    )
                return self._add_collection(session, spec)
        except IntegrityError:  # created by another process between the check and the insert
            raise exists from None

    @staticmethod
    def _add_collection(session: Session, spec: CollectionInfo) -> CollectionInfo:
        given = {f.name: getattr(spec, f.name) for f in fields(spec) if f.name != "id"}
        row = Collection(**given | {"generation": 1})
        session.add(row)
        session.flush()
        session.add(Generation(
            collection_id=row.id, number=1, state="active", switched_at=row.created_at,
            **{name: given[name] for name in EMBEDDING_SETTINGS},
        ))
        return collection_info(row)

    def find_collection(self, name: str) -> CollectionInfo | None:
        """The collection called `name`, or the one the alias `name` names."""
        if not storable(name):
            return None
        with self.session() as session:
            row = session.scalar(select(Collection).where(Collection.name == name))
            if row is None:
                row = session.scalar(
                    select(Collection).join(Alias, Alias.collection_id == Collection.id)
                    .where(Alias.name == name)
                )
            return collection_info(row) if row else None

    def get_collection(self, name: str) -> CollectionInfo:
        found = self.find_collection(name)
        if found is None:
            raise CollectionNotFound(name)
        return found

    def collections(self) -> list[CollectionInfo]:
        """Every collection's settings (no counts: cheap enough to poll)."""
        with self.session() as session:
            rows = session.scalars(select(Collection).order_by(Collection.id))
            return [collection_info(row) for row in rows]

    def list_collections(self, name: str | None = None) -> list[CollectionStats]:
        """Every collection (or only the one called `name`) with its document, language and
        chunk counts, by name."""
        collections = select(Collection).order_by(Collection.name)
        documents = select(Document.collection_id, Document.lang, func.count()).group_by(
            Document.collection_id, Document.lang
        )
        chunks_counted = (  # of the active generation
            select(Chunk.collection_id, func.count())
            .join(Collection, (Collection.id == Chunk.collection_id)
                  & (Collection.generation == Chunk.generation))
            .group_by(Chunk.collection_id)
        )
        sets = select(Document.collection_id, Document.translation_set, func.count()).group_by(
            Document.collection_id, Document.translation_set
        )
        if name is not None and not storable(name):  # no collection has it; PostgreSQL
            return []  # would refuse the NUL rather than match nothing
        if name is not None:
            wanted = select(Collection.id).where(Collection.name == name).scalar_subquery()
            collections = collections.where(Collection.name == name)
            documents = documents.where(Document.collection_id == wanted)
            chunks_counted = chunks_counted.where(Chunk.collection_id == wanted)
            sets = sets.where(Document.collection_id == wanted)
        with self.session() as session:
            languages: dict[int, dict[str, int]] = {}
            for collection_id, lang, n in session.execute(documents):
                languages.setdefault(collection_id, {})[lang] = int(n)
            chunks = dict(session.execute(chunks_counted).all())
            translations: dict[int, list[int]] = {}  # sets, their documents, unlinked
            for collection_id, linked, n in session.execute(sets):
                counts = translations.setdefault(collection_id, [0, 0, 0])
                if linked is None:
                    counts[2] += int(n)
                elif n > 1:
                    counts[0] += 1
                    counts[1] += int(n)
            found = []
            for row in session.scalars(collections):
                counted = languages.get(row.id, {})
                translation_sets, translated, unlinked = translations.get(row.id, [0, 0, 0])
                found.append(CollectionStats(
                    info=collection_info(row),
                    documents=sum(counted.values()),
                    chunks=int(chunks.get(row.id, 0)),
                    languages=dict(sorted(counted.items())),
                    translation_sets=translation_sets,
                    translated_documents=translated,
                    unlinked_documents=unlinked,
                ))
            return found

    def delete_collection(self, name: str) -> None:
        """Remove a collection with all its documents, chunks and jobs."""
        with self.writing() as session:
            row = session.scalar(select(Collection).where(Collection.name == name))
            if row is None:
                raise CollectionNotFound(name)
            session.delete(row)
