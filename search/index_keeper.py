"""Keeps a serving process's indexes fresh: catch-up every fraction of a second, snapshots
now and then and at shutdown, so a document is searchable about a second after it commits
(whichever process wrote it) and a restart does not replay the whole log."""

from __future__ import annotations

import logging
import threading
import time

from search.errors import CollectionDeleted
from search.index_manager import CollectionIndex, IndexManager, index_key
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
        """Catch every index up with the database and link new documents into translation
        sets. Follows the collections: loads the indexes of new ones (and of a generation
        being built that this process will serve, so that a switch to it is instant), drops
        those of deleted collections and of generations no longer served, and searches each
        collection in the generation `IndexManager.served` picks. Returns the number of
        vectors added and removed."""
        as_of = self._indexes.refreshes()
        generations = self._store.generations()
        existing = {info.id: self._indexes.active(info, generations)
                    for info in self._store.collections()}
        served = [self._indexes.served(info, generations) for info in existing.values()]
        wanted = {index_key(view): view for view in served}
        for generation in generations:
            info = existing.get(generation.collection_id)
            if info is not None and generation.state == "building" and generation.dimension \
                    and self._indexes.can_serve(generation):
                wanted.setdefault(index_key(generation.of(info)), generation.of(info))
        for current in self._indexes.loaded():
            if current.collection.id not in existing:
                self._indexes.forget_collection(current.collection)
        for view in wanted.values():
            self._indexes.get(view)
        changes = sum(self._indexes.catch_up(current) for current in self._indexes.loaded())
        searched = self._indexes.serve(served, as_of)  # caught up first: a seamless switch
        kept = {(g.collection_id, g.number) for g in generations}
        for current in self._indexes.loaded():
            key = index_key(current.collection)
            if key not in wanted and key not in searched:
                self._indexes.forget(current.collection, keep_snapshots=key in kept)
        for current in self._indexes.loaded():
            active = existing.get(current.collection.id)
            if active is not None and current.collection.generation == active.generation:
                self._link(current)  # the active generation's index decides the sets
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
