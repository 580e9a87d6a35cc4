"""The store's two kinds of sessions: reads on a consistent snapshot, and locked writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from search.store.database import WRITES


class Sessions:
    """Opens sessions on one database; each part of the store (collections, documents, the
    chunk log) builds on it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._writing_sessions = sessionmaker(
            engine.execution_options(**{WRITES: True}), expire_on_commit=False
        )

    def session(self) -> Session:
        """A session for reads (a consistent snapshot; it never waits for writers)."""
        return self._sessions()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session in a transaction that holds the write lock from its first statement
        (SQLite: BEGIN IMMEDIATE), so what it reads cannot change before it commits.

        Every read-then-write goes through here: replacing a document reads the chunks it
        buries, and a stale read there left the index out of step with the database.
        """
        with self._writing_sessions() as session, session.begin():
            yield session
