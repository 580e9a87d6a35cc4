"""Database engines (SQLite in WAL mode with foreign keys; any SQLAlchemy URL) and migrations."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

import migrations

# Execution option of the connections that write: on SQLite their transaction starts with
# BEGIN IMMEDIATE (see `connect`); other databases ignore it.
WRITES = "xlsearch_writes"
# Alembic keeps the migration context in a module-level global, so two threads migrating at
# once (two engines opened together) would run on each other's connections and deadlock.
_MIGRATING = threading.Lock()


def connect(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL, foreign keys and a generous busy timeout.

    Other databases (PostgreSQL through psycopg 3: `postgresql+psycopg://…`) get a connection
    pool whose connections are checked before use, so a restarted server is not an error.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # The sqlite3 module would begin a transaction only at the first INSERT/UPDATE/DELETE,
        # so what a writer read before it (the chunks it is about to replace) came from no
        # transaction at all and could be stale by the time it wrote. Transactions are
        # begun explicitly instead (`_sqlite_begin`).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: Connection) -> None:
        # A writer takes the write lock before its first read, so everything it reads is
        # current until it commits; readers get a consistent snapshot and never wait.
        writes = connection.get_execution_options().get(WRITES, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def alembic_config(engine: Engine) -> Any:
    """Alembic's configuration pointing at the packaged `migrations/` and at `engine`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (the latest by default); safe to run on every start."""
    from alembic import command

    with _MIGRATING:
        command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to `revision` (used by migration tests and rollbacks)."""
    from alembic import command

    with _MIGRATING:
        command.downgrade(alembic_config(engine), revision)
