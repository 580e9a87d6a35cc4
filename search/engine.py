"""Opens the parts a process needs (database, embedder, indexes, search) from the settings."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from search.collections import DEFAULT_COLLECTION, check_model, ensure_collection
from search.embedders import Embedder, load_embedder
from search.errors import XlsearchError
from search.index_manager import IndexManager
from search.language import LanguageDetector, default_language_processes
from search.service import SearchService
from search.settings import Settings
from search.store import Store, open_store
from search.store.records import CollectionInfo
from search.translations import TranslationLinker
from search.vector_index import gpu_count

log = logging.getLogger(__name__)


def should_overlap(setting: str, embedder: Embedder) -> bool:
    """`ingest_overlap` resolved: auto overlaps when the model does not use this CPU."""
    if setting == "auto":
        return not embedder.runs_on_local_cpu
    return setting == "on"


@dataclass
class Engine:
    """Everything one xlsearch process holds; the CLI, the API and the tests build it alike."""

    settings: Settings
    store: Store
    embedder: Embedder
    indexes: IndexManager
    searcher: SearchService
    owns_embedder: bool
    languages: LanguageDetector
    translations: TranslationLinker

    @property
    def overlap(self) -> bool:
        """Whether this process's ingestion overlaps reading and writing with the model."""
        return should_overlap(self.settings.ingest_overlap, self.embedder)

    def refresh(self, collection: CollectionInfo) -> None:
        """Make what was written searchable now: catch the collection's index up and link
        its new documents into translation sets (what a write that answers "searchable"
        calls: `wait: true`, a delete, a job's batch, the CLI's ingest)."""
        current = self.indexes.refresh(collection)
        if current.collection.generation != collection.generation:
            return  # this process searches another generation: the active one's index links
        try:
            self.translations.link_pending(current)
        except XlsearchError:
            raise  # the collection went meanwhile: the caller says so
        except Exception:  # noqa: BLE001 - the write is committed; the keeper links later
            log.exception("linking the translations of %r failed; the server's next catch-up "
                          "round tries again", collection.name)

    def writable(self, name: str) -> CollectionInfo:
        """The named collection, checked to hold this process's model's vectors: what adding
        documents (a job, or `wait: true`) needs before anything is read or queued."""
        collection = self.store.get_collection(name)
        check_model(collection, self.embedder)
        return collection

    @classmethod
    def open(
        cls,
        settings: Settings,
        embedder: Embedder | None = None,
        *,
        background_catch_up: bool = False,
    ) -> Engine:
        """Migrate the database, load the embedder (unless given) and make `default` exist.

        `background_catch_up` is the server's role: an IndexKeeper keeps the indexes caught
        up, so searches do not ask the database first (see IndexManager).
        """
        store = open_store(settings.resolved_database_url)
        owns_embedder = embedder is None
        embedder = embedder or load_embedder(settings)
        ensure_collection(store, settings, embedder, DEFAULT_COLLECTION)
        described = embedder.describe()
        log.info("embedding with %s", json.dumps(described))
        device = str(described.get("device", "cpu"))
        if device.startswith("cuda") and gpu_count() == 0:
            log.warning(
                "the model runs on %s but this faiss has no GPU support, so indexes train and "
                "search on the CPU; scripts/install-gpu.sh installs faiss-gpu-cu12",
                device,
            )
        indexes = IndexManager(
            store,
            settings.index_dir,
            settings.ivf_min_vectors,
            use_gpu=settings.device != "cpu",
            catch_up_on_read=not background_catch_up,
            model=embedder.name,
        )
        searcher = SearchService(
            store, embedder, indexes, settings.search_overfetch, settings.lexical_weight
        )
        processes = settings.language_processes
        if processes is None:
            overlap = should_overlap(settings.ingest_overlap, embedder)
            processes = default_language_processes() if overlap else 0
        languages = LanguageDetector(processes)
        return cls(settings, store, embedder, indexes, searcher, owns_embedder, languages,
                   TranslationLinker(store, settings.translation_cosine,
                                     enabled=settings.translations))

    def close(self) -> None:
        """Release the database connections, and the embedder when this engine loaded it."""
        self.store.engine.dispose()
        self.languages.close()
        if self.owns_embedder:
            self.embedder.close()
