"""Alembic environment: runs against the engine xlsearch hands over (see search.store.database)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from search.store.chunk_log import LOG_LOCK_SPACE
from search.store.database import WRITES
from search.store.tables import Base

engine = context.config.attributes["engine"]

# On SQLite the write lock is taken at once (BEGIN IMMEDIATE), so processes starting together
# wait for each other's migration instead of failing with "database is locked".
with engine.execution_options(**{WRITES: True}).connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # processes starting together (workers, replicas) migrate one at a time
            # (key 0 of the store's lock space: collection ids, the other keys, start at 1)
            connection.execute(text(f"SELECT pg_advisory_xact_lock({LOG_LOCK_SPACE}, 0)"))
        context.run_migrations()
