"""Translation sets in the database: the documents waiting to be linked, the vectors the
linker compares, and the links it writes (search.translations decides them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import BindParameter, Select, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from search.store.chunk_log import SQL_IN_PAGE, lock_log
from search.store.records import CollectionInfo
from search.store.sessions import Sessions
from search.store.tables import Chunk, Document

T = TypeVar("T")
_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
_MEANS = (
    select(Chunk.document_id, Document.lang, Chunk.vector, Chunk.token_count)
    .join(Document, Chunk.document_id == Document.id)
    .where(Chunk.document_id.in_(_IDS), Chunk.generation == bindparam("generation"))
)
_OWNERS = select(Chunk.id, Chunk.document_id).where(Chunk.id.in_(_IDS))
_MEMBERS = select(
    Document.id, Document.external_id, Document.lang, Document.title, Document.translation_set
).where(Document.collection_id == bindparam("collection"), Document.translation_set.in_(_IDS))
_HASHES = select(Document.id, Document.content_hash).where(Document.id.in_(_IDS))
MAX_USER_SET = 1000  # documents followed through the user's keys in one linking, at most
TEXT_READ = 20_000  # characters of a document read to compare its numbers with another's
_TEXTS = select(Document.id, func.substr(Document.text, 1, TEXT_READ)).where(
    Document.id.in_(_IDS)
)


def _unlinked(generation: int, up_to_chunk: int) -> Select[int, str, str, str | None]:
    """Documents not linked yet whose chunks an index of `generation` at `up_to_chunk`
    holds."""
    return (
        select(Document.id, Document.external_id, Document.lang, Document.translation_key)
        .outerjoin(Chunk, (Chunk.document_id == Document.id) & (Chunk.generation == generation))
        .where(Document.translation_set.is_(None))
        .group_by(Document.id)
        .having(func.coalesce(func.max(Chunk.id), 0) <= up_to_chunk)
    )


@dataclass(frozen=True)
class PendingCopy:
    """A document not linked into a translation set yet."""

    id: int  # row id
    external_id: str
    lang: str
    key: str | None  # the user's own link, if any


@dataclass(frozen=True)
class DocumentMean:
    """A document's chunk vectors averaged by tokens and renormalised, with its size."""

    lang: str
    vector: np.ndarray
    tokens: int


@dataclass(frozen=True)
class Member:
    id: int
    external_id: str
    lang: str
    title: str | None
    translation_set: int


class TranslationSets:
    """Translation sets being decided: union-find over row ids, with the languages each set
    holds, the copies `waiting` to be linked and the `keyed` ones the user linked."""

    def __init__(self, waiting: set[int]) -> None:
        self.waiting = waiting
        self.keyed: set[int] = set()
        self._parent: dict[int, int] = {}
        self._langs: dict[int, set[str]] = {}
        self._members: dict[int, list[int]] = {}

    def __contains__(self, row: int) -> bool:
        return row in self._parent

    def add(self, row: int, lang: str) -> None:
        if row not in self._parent:
            self._parent[row] = row
            self._langs[row] = {lang}
            self._members[row] = [row]

    def root(self, row: int) -> int:
        while self._parent[row] != row:
            self._parent[row] = self._parent[self._parent[row]]
            row = self._parent[row]
        return row

    def members_of(self, row: int) -> list[int]:
        return self._members[self.root(row)]

    def may_join(self, a: int, b: int) -> bool:
        """Whether an automatic link may join the sets of `a` and `b`: both are known, not
        linked by the user, in different sets that share no language."""
        if a not in self or b not in self or a in self.keyed or b in self.keyed:
            return False
        a, b = self.root(a), self.root(b)
        return a != b and not self._langs[a] & self._langs[b]

    def join(self, a: int, b: int, *, disjoint_languages: bool = True) -> None:
        """Merge the sets of `a` and `b` (with `disjoint_languages`, only as `may_join`)."""
        if disjoint_languages and not self.may_join(a, b):
            return
        a, b = self.root(a), self.root(b)
        if a == b:
            return
        self._parent[b] = a
        self._langs[a] |= self._langs.pop(b)
        self._members[a] += self._members.pop(b)

    def members(self) -> dict[int, list[int]]:
        return dict(self._members)


class TranslationRepository(Sessions):
    """Reads and writes of `documents.translation_set`."""

    def pending_translations(
        self, collection: CollectionInfo, up_to_chunk: int, limit: int
    ) -> list[PendingCopy]:
        """Of the `limit` newest documents not linked yet, those whose chunks an index at
        `up_to_chunk` holds, newest first: what was just written is linked at once even
        while older documents wait (as after the upgrade that added translation sets).
        One index range read (collection, NULL set, id), however many documents wait."""
        newest = (
            select(Document.id)
            .where(Document.collection_id == collection.id, Document.translation_set.is_(None))
            .order_by(Document.id.desc())
            .limit(limit)
        )
        with self.session() as session:
            waiting = self._waiting(
                session, list(session.scalars(newest)), collection.generation, up_to_chunk
            )
        return sorted(waiting, key=lambda copy: -copy.id)

    def document_means(
        self, document_ids: Iterable[int], collection: CollectionInfo
    ) -> dict[int, DocumentMean]:
        """The mean vector of each of these documents in the collection's generation
        (absent: a document with no chunks there)."""
        dimension = collection.dimension
        sums: dict[int, np.ndarray] = {}
        tokens: dict[int, int] = {}
        langs: dict[int, str] = {}
        for document, lang, blob, count in self._rows(
            _MEANS, sorted(set(document_ids)), generation=collection.generation
        ):
            weight = max(1, int(count))
            vector = np.frombuffer(blob, dtype="<f4", count=dimension)
            sums[document] = sums.get(document, 0) + weight * vector
            tokens[document] = tokens.get(document, 0) + weight
            langs[document] = lang
        return {
            document: DocumentMean(
                langs[document], (total / max(float(np.linalg.norm(total)), 1e-12)).astype(
                    np.float32), tokens[document],
            )
            for document, total in sums.items()
        }

    def document_mean(
        self, collection: CollectionInfo, external_id: str
    ) -> DocumentMean | None:
        """The mean vector of the document with this id (None: no such document)."""
        with self.session() as session:
            row = session.scalar(select(Document.id).where(
                Document.collection_id == collection.id, Document.external_id == external_id))
        return None if row is None else self.document_means([row], collection).get(row)

    def document_texts(self, document_ids: Iterable[int]) -> dict[int, str]:
        """The start (`TEXT_READ` characters) of each of these documents' text."""
        return dict(self._rows(_TEXTS, sorted(set(document_ids))))

    def chunk_owners(self, chunk_ids: Iterable[int]) -> dict[int, int]:
        """The document (row id) of each of these chunks."""
        return dict(self._rows(_OWNERS, sorted(set(chunk_ids))))

    def link_translations(
        self,
        collection: CollectionInfo,
        pending: Sequence[PendingCopy],
        up_to_chunk: int,
        partners: Iterable[int],
        decide: Callable[[TranslationSets], set[int]],
    ) -> tuple[int, int]:
        """Give each of `pending` that still waits, unchanged since it was read, its
        translation set; returns how many were linked, and how many unlinked.

        In one transaction: the waiting copies, the sets of their possible `partners` (row
        ids) and the user's sets are read into a TranslationSets, whose `keyed` members the
        user linked (a key always wins); `decide` joins what it finds to be translations;
        what is left is a set of its own. A set is named by its smallest row id, so every
        member carries the same value. When `decide` names documents to unlink instead (a
        set that a newcomer shows to be wrong), they are unlinked and nothing is linked, so
        that they are decided again together with the waiting copies."""
        collection_id = collection.id
        with self.writing() as session:
            if lock_log(session, collection_id) != collection.generation:
                return 0, 0  # the collection switched: the new generation's index links
            waiting = {
                row.id: row
                for row in self._waiting(
                    session, [p.id for p in pending], collection.generation, up_to_chunk
                )
            }
            if not waiting:
                return 0, 0
            sets = TranslationSets(set(waiting))
            for copy in waiting.values():
                sets.add(copy.id, copy.lang)
            sets.keyed = self._join_keyed(session, collection_id, waiting.values(), sets)
            others = {row for row in partners if row not in waiting}
            for earlier in self._automatic_sets(session, collection_id, others).values():
                for row, lang in earlier:
                    sets.add(row, lang)
                    sets.join(earlier[0][0], row, disjoint_languages=False)
            doubtful = decide(sets)
            if doubtful:
                for rows in _chunks(sorted(doubtful)):
                    session.execute(update(Document).where(Document.id.in_(rows))
                                    .values(translation_set=None))
                return 0, len(doubtful)
            linked = 0
            for members in sets.members().values():
                if any(row in waiting for row in members):
                    for rows in _chunks(sorted(members)):
                        session.execute(update(Document).where(Document.id.in_(rows))
                                        .values(translation_set=min(members)))
                    linked += sum(row in waiting for row in members)
            return linked, 0

    @staticmethod
    def _waiting(
        session: Session, ids: list[int], generation: int, up_to_chunk: int
    ) -> list[PendingCopy]:
        """Those of `ids` still unlinked whose chunks in `generation` are all at most
        `up_to_chunk`."""
        found: list[PendingCopy] = []
        for page in _chunks(ids):
            found += [PendingCopy(*row) for row in session.execute(
                _unlinked(generation, up_to_chunk).where(Document.id.in_(page))
            ).all()]
        return found

    @staticmethod
    def _join_keyed(
        session: Session, collection_id: int, waiting: Iterable[PendingCopy], sets: TranslationSets
    ) -> set[int]:
        """Join the user's sets that waiting copies belong to and return their members. A
        user set is every document linked by keys, followed both ways and through chains
        (C names B, B names A): a document is in it by its key or as the one a key names.
        Whatever else was in these documents' earlier sets is unlinked, to be decided
        again without them."""
        names = {copy.external_id for copy in waiting} | {c.key for c in waiting if c.key}
        rows: dict[int, tuple[str, str, str | None, int | None]] = {}
        asked: set[str] = set()
        while names - asked and len(rows) <= MAX_USER_SET:
            page = sorted(names - asked)[:SQL_IN_PAGE]
            asked |= set(page)
            for row, lang, external_id, key, linked in session.execute(
                select(Document.id, Document.lang, Document.external_id,
                       Document.translation_key, Document.translation_set)
                .where(Document.collection_id == collection_id,
                       or_(Document.translation_key.in_(page), Document.external_id.in_(page)))
            ).all():
                rows[row] = (lang, external_id, key, linked)
                names |= {external_id} | ({key} if key else set())
        named = {key for _, _, key, _ in rows.values() if key}
        keyed = {row for row, (_, external_id, key, _) in rows.items()
                 if key is not None or external_id in named}
        first_with: dict[str, int] = {}
        for row in sorted(keyed):
            lang, external_id, key, _ = rows[row]
            sets.add(row, lang)
            for name in {external_id, key} & named:
                sets.join(first_with.setdefault(str(name), row), row, disjoint_languages=False)
        earlier = sorted({linked for row in keyed if (linked := rows[row][3]) is not None})
        others: list[int] = []
        for page_of_sets in _chunks(earlier):
            others += [row for row in session.scalars(select(Document.id).where(
                Document.collection_id == collection_id,
                Document.translation_set.in_(page_of_sets),
            )) if row not in keyed]
        for rows_page in _chunks(others):
            session.execute(update(Document).where(Document.id.in_(rows_page))
                            .values(translation_set=None))
        return keyed

    @staticmethod
    def _automatic_sets(
        session: Session, collection_id: int, rows: set[int]
    ) -> dict[int, list[tuple[int, str]]]:
        """The linked sets holding `rows` that no user key made, with each member's language
        (members first by row id)."""
        named: set[int] = set()
        for page in _chunks(sorted(rows)):
            named |= {linked for linked in session.scalars(
                select(Document.translation_set).where(Document.id.in_(page))
            ) if linked is not None}
        found: dict[int, list[tuple[int, str]]] = {}
        user_sets: set[int] = set()
        for page in _chunks(sorted(named)):
            for row, lang, linked, key in session.execute(
                select(Document.id, Document.lang, Document.translation_set,
                       Document.translation_key)
                .where(Document.collection_id == collection_id,
                       Document.translation_set.in_(page))
                .order_by(Document.id)
            ).all():
                if linked is None:
                    continue
                found.setdefault(linked, []).append((row, lang))
                if key is not None:
                    user_sets.add(linked)
        return {name: members for name, members in found.items() if name not in user_sets}

    def copies_of(self, collection_id: int, external_id: str) -> list[Member] | None:
        """The members of a document's translation set, itself included; None while it is
        not linked yet (or there is no such document)."""
        with self.session() as session:
            linked = session.scalar(select(Document.translation_set).where(
                Document.collection_id == collection_id, Document.external_id == external_id))
        return None if linked is None else self.translation_members(collection_id, [linked])

    def translation_members(self, collection_id: int, sets: Iterable[int]) -> list[Member]:
        """The documents of these translation sets, oldest first (one statement built once:
        searches run this)."""
        rows = self._rows(_MEMBERS, sorted(set(sets)), collection=collection_id)
        return sorted((Member(*row) for row in rows), key=lambda member: member.id)

    def translation_groups(self, collection_id: int) -> Iterator[list[Member]]:
        """The collection's translation sets of two or more copies, each oldest first."""
        query = (
            select(Document.translation_set)
            .where(Document.collection_id == collection_id,
                   Document.translation_set.is_not(None))
            .group_by(Document.translation_set)
            .having(func.count() > 1)
            .order_by(Document.translation_set)
        )
        with self.session() as session:
            named = [int(n) for n in session.scalars(query) if n is not None]
        for page in _chunks(named):
            found: dict[int, list[Member]] = {}
            for member in self.translation_members(collection_id, page):
                found.setdefault(member.translation_set, []).append(member)
            yield from found.values()

    def exact_duplicates(self, collection_id: int) -> Iterator[list[Member]]:
        """Documents with the same text (content hash), in groups of two or more."""
        hashes = (
            select(Document.content_hash)
            .where(Document.collection_id == collection_id)
            .group_by(Document.content_hash)
            .having(func.count() > 1)
            .order_by(Document.content_hash)
        )
        with self.session() as session:
            shared = list(session.scalars(hashes))
        for page in _chunks(shared):  # read a page, then hand it out: no session held open
            groups: dict[str, list[Member]] = {}
            with self.session() as session:
                for row, external_id, lang, title, digest in session.execute(
                    select(Document.id, Document.external_id, Document.lang, Document.title,
                           Document.content_hash)
                    .where(Document.collection_id == collection_id,
                           Document.content_hash.in_(page))
                    .order_by(Document.id)
                ).all():
                    groups.setdefault(digest, []).append(Member(row, external_id, lang, title, 0))
            yield from groups.values()

    def document_pages(self, collection_id: int, size: int) -> Iterator[list[Member]]:
        """Every document of the collection in pages of `size`, by row id."""
        after = 0
        while True:
            with self.session() as session:
                page = [Member(row, external_id, lang, title, int(linked or 0))
                        for row, external_id, lang, title, linked in session.execute(
                    select(Document.id, Document.external_id, Document.lang, Document.title,
                           Document.translation_set)
                    .where(Document.collection_id == collection_id, Document.id > after)
                    .order_by(Document.id)
                    .limit(size)
                ).all()]
            if not page:
                return
            yield page
            after = page[-1].id

    def content_hashes(self, document_ids: Iterable[int]) -> dict[int, str]:
        return dict(self._rows(_HASHES, sorted(set(document_ids))))

    def _rows(self, statement: Any, ids: list[int], **params: Any) -> list[Any]:
        rows: list[Any] = []
        with self.engine.connect() as connection:
            for group in _chunks(ids):
                rows += connection.execute(statement, {"ids": group, **params}).all()
        return rows


def _chunks(values: Sequence[T]) -> Iterator[list[T]]:
    """`values` in pages of `SQL_IN_PAGE` (what one IN (...) takes)."""
    for start in range(0, len(values), SQL_IN_PAGE):
        yield list(values[start:start + SQL_IN_PAGE])
