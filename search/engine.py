"""Opens the parts a process needs (database, embedder, indexes, search) from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from search.collections import DEFAULT_COLLECTION, ensure_collection
from search.embedders import Embedder, load_embedder
from search.index_manager import IndexManager
from search.service import SearchService
from search.settings import Settings
from search.store import Store, open_store


@dataclass
class Engine:
    """Everything one xlsearch process holds; the CLI, the API and the tests build it alike."""

    settings: Settings
    store: Store
    embedder: Embedder
    indexes: IndexManager
    searcher: SearchService
    owns_embedder: bool = False

    @classmethod
    def open(cls, settings: Settings, embedder: Embedder | None = None) -> Engine:
        """Migrate the database, load the embedder (unless given) and make `default` exist."""
        store = open_store(settings.resolved_database_url)
        owns_embedder = embedder is None
        embedder = embedder or load_embedder(settings)
        ensure_collection(store, settings, embedder, DEFAULT_COLLECTION)
        indexes = IndexManager(
            store, settings.index_dir, settings.ivf_min_vectors, use_gpu=settings.device != "cpu"
        )
        searcher = SearchService(store, embedder, indexes, settings.search_overfetch)
        return cls(settings, store, embedder, indexes, searcher, owns_embedder)

    def close(self) -> None:
        """Release the database connections, and the embedder when this engine loaded it."""
        self.store.engine.dispose()
        if self.owns_embedder:
            self.embedder.close()
