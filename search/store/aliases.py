"""Aliases: second names for collections, resolved wherever a collection is looked up by name."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from search.errors import AliasNotFound, CollectionExists, CollectionNotFound
from search.store.collections import lock_names
from search.store.records import AliasInfo, storable
from search.store.sessions import Sessions
from search.store.tables import Alias, Collection, utcnow


class AliasRepository(Sessions):
    """The aliases table."""

    def put_alias(self, name: str, collection_name: str) -> AliasInfo:
        """Point alias `name` at the collection `collection_name` (created, or switched in one
        transaction: every search after the commit, in any process, uses the new one)."""
        try:
            return self._put_alias(name, collection_name)
        except IntegrityError:  # created by another process at the same moment: switch it
            return self._put_alias(name, collection_name)

    def _put_alias(self, name: str, collection_name: str) -> AliasInfo:
        with self.writing() as session:
            lock_names(session)
            if session.scalar(select(Collection.id).where(Collection.name == name)):
                raise CollectionExists(
                    f"{name!r} is a collection's name; an alias needs a name of its own"
                )
            target = session.scalar(select(Collection).where(Collection.name == collection_name))
            if target is None:
                raise CollectionNotFound(collection_name)
            row = session.get(Alias, name)
            if row is None:
                row = Alias(name=name, collection_id=target.id, updated_at=utcnow())
                session.add(row)
            else:
                row.collection_id = target.id
                row.updated_at = utcnow()
            return AliasInfo(name, target.name, row.updated_at)

    def delete_alias(self, name: str) -> None:
        if not storable(name):
            raise AliasNotFound(name)
        with self.writing() as session:
            row = session.get(Alias, name)
            if row is None:
                raise AliasNotFound(name)
            session.delete(row)

    def aliases(self, name: str | None = None) -> list[AliasInfo]:
        """Every alias (or only `name`) with the collection it names, by alias."""
        query = (
            select(Alias.name, Collection.name, Alias.updated_at)
            .join(Collection, Alias.collection_id == Collection.id)
            .order_by(Alias.name)
        )
        if name is not None:
            if not storable(name):
                return []
            query = query.where(Alias.name == name)
        with self.session() as session:
            return [AliasInfo(*row) for row in session.execute(query).all()]
