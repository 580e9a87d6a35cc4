"""Keeps a serving process's indexes fresh: catch-up every fraction of a second, snapshots
now and then and at shutdown, so a document is searchable about a second after it commits
(whichever process wrote it) and a restart does not replay the whole log."""

from __future__ import annotations

import logging
import threading
import time

from search.errors import CollectionDeleted
from search.index_manager import CollectionIndex, IndexManager
from search.store.repository import Store
from search.translations import TranslationLinker

log = logging.getLogger(__name__)


class IndexKeeper:
    """A supervised background thread; `stop()` writes final snapshots."""

    def __init__(
        self,
        store: Store,
        indexes: IndexManager,
        catch_up_interval_s: float,
        snapshot_interval_s: float,
        translations: TranslationLinker | None = None,
    ) -> None:
        self._store = store
        self._indexes = indexes
        self._translations = translations
        self._catch_up_interval_s = catch_up_interval_s
        self._snapshot_interval_s = snapshot_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xlsearch-index-keeper", daemon=True)
        self.ready = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop catching up and take a last snapshot; a shutdown never fails on it (the
        previous snapshot stays valid, and the next start catches up from the database)."""
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            self.snapshot_changed()
        except Exception:  # noqa: BLE001 - e.g. the database is gone while shutting down
            log.exception("could not take the last index snapshot before stopping")

    def catch_up_all(self) -> int:
        """Catch every index up with the database, loading new collections' indexes and
        dropping deleted ones', and link new documents into translation sets. Returns the
        number of vectors added and removed."""
        existing = {info.id: info for info in self._store.collections()}
        changes = 0
        for current in self._indexes.loaded():
            if current.collection.id not in existing:
                self._indexes.forget(current.collection)
        loaded = {current.collection.id for current in self._indexes.loaded()}
        for collection_id, info in existing.items():
            if collection_id not in loaded:
                self._indexes.get(info)
        for current in self._indexes.loaded():
            changes += self._indexes.catch_up(current)
        for current in self._indexes.loaded():
            self._link(current)
        return changes

    def _link(self, current: CollectionIndex) -> None:
        """Link some of the collection's new documents (one batch, newest first, so that a
        backlog never holds up catch-up for long); a failure there leaves them for the next
        round and never holds up the other collections' catch-up."""
        if self._translations is None:
            return
        try:
            self._translations.link_pending(current, rounds=1)
        except CollectionDeleted:
            pass  # the next round drops its index
        except Exception:  # noqa: BLE001 - keep serving; the next round retries
            log.exception("linking the translations of %r failed; retrying",
                          current.collection.name)

    def snapshot_changed(self) -> None:
        for current in self._indexes.loaded():
            if current.unsaved_changes:
                self._indexes.snapshot(current)

    def _run(self) -> None:
        last_snapshot = time.monotonic()
        while not self._stop.is_set():
            try:
                self.catch_up_all()
                self.ready.set()
                if time.monotonic() - last_snapshot >= self._snapshot_interval_s:
                    self.snapshot_changed()
                    last_snapshot = time.monotonic()
            except Exception:  # noqa: BLE001 - keep serving; the next round retries
                log.exception("index catch-up failed; retrying")
            self._stop.wait(self._catch_up_interval_s)
