"""Alembic environment: runs against the engine xlsearch hands over (see search.store.database)."""

from __future__ import annotations

from alembic import context

from search.store.tables import Base

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
