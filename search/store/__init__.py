"""The metadata store: SQLAlchemy tables, engine set-up and the operations the engine needs."""

from search.store.database import connect, upgrade
from search.store.repository import Store

__all__ = ["Store", "connect", "upgrade"]
