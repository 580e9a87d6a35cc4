"""The metadata store: SQLAlchemy tables, engine set-up and the operations the engine needs."""

from search.store.database import connect, upgrade
from search.store.repository import Store


def open_store(url: str) -> Store:
    """The store on the database at `url`, migrated to the latest schema."""
    database = connect(url)
    upgrade(database)
    return Store(database)


__all__ = ["Store", "connect", "open_store", "upgrade"]
