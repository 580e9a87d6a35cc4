"""Each process's view of every collection: a FAISS index, a filter table and a lexical index,
loaded from snapshots (only those taken from this database at a position it has reached, and
intact), caught up together from the chunk log and tombstones, rebuilt from the stored
vectors and texts (never re-embedded)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from search.filter_table import FilterTable
from search.lexical_index import (
    LexicalHits,
    LexicalIndex,
    UnusableLexicalSnapshot,
    remove_stale_working_folders,
    working_folder,
)
from search.snapshots import (
    Manifest,
    UnusableSnapshot,
    publish_snapshot,
    read_manifest,
    remove_snapshots,
    verified_index_file,
    verified_lexical_folder,
    write_index_file,
)
from search.store import identity
from search.store.identity import SnapshotRecord
from search.store.records import ChunkPage, CollectionInfo, GenerationInfo
from search.store.repository import Store
from search.vector_index import (
    INDEX_FORMAT,
    MIN_PQ_TRAINING,
    IndexPlan,
    IndexSettings,
    Selection,
    VectorIndex,
    default_nprobe,
    filtered_nprobe,
    plan_index,
)

log = logging.getLogger(__name__)

TRAINING_SAMPLE_SEED = 20261128
SNAPSHOT_RECORDS_KEPT = 16  # snapshots per generation that a restored database can still use


@dataclass
class CollectionIndex:
    """One collection's FAISS index, filter table and lexical index (None where a benchmark
    builds a dense index alone), with the log position all three reflect."""

    collection: CollectionInfo
    index: VectorIndex
    chunk_watermark: int = 0
    tombstone_watermark: int = 0
    filters: FilterTable = field(default_factory=FilterTable)
    lexical: LexicalIndex | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    unsaved_changes: int = 0
    caught_up_at: float = field(default_factory=time.monotonic)
    rebuilding: threading.Thread | None = None  # a background rebuild, while one runs
    settled: bool = False  # the last catch-up ran to its end (the lexical view committed)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        nprobe: int | None = None,
        languages: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        within: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Top-k (scores, chunk ids) among the chunks that pass `languages` and
        `metadata_filter` (and are `within` these ids, when given), and how many chunks
        pass (all of them without a filter)."""
        with self.lock:
            among = self._selection(languages, metadata_filter, within)
            if among is None:
                return (*self.index.search(queries, k, nprobe), self.index.count)
            if not among.count:
                empty = np.full((len(queries), 1), -1, dtype=np.int64)
                return np.full(empty.shape, -np.inf, np.float32), empty, 0
            probes = filtered_nprobe(self.index.plan, self.index.count, among.count, nprobe)
            return (*self.index.search(queries, min(k, among.count), probes, among), among.count)

    def lexical_search(
        self,
        words: Sequence[str],
        k: int,
        languages: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        within: np.ndarray | None = None,
    ) -> LexicalHits:
        """The k best chunks by BM25 over `words` among those that pass the filters (asking
        the lexical index for more until k pass or none are left)."""
        with self.lock:
            lexical = self.lexical_view()
            among = self._selection(languages, metadata_filter, within)
            asked = k if among is None else 4 * k
            while True:
                hits = lexical.search(words, asked)
                if among is None:
                    return hits
                kept = among.contains(hits.ids)
                if kept.sum() >= k or len(hits.ids) < asked:
                    return LexicalHits(hits.ids[kept][:k], hits.scores[kept][:k])
                asked *= 4

    def documents_passing(self, spec: dict[str, Any], documents: Iterable[int]) -> set[int]:
        """Those of `documents` (row ids) whose metadata pass the filter `spec`."""
        with self.lock:
            return self.filters.documents_passing(spec, documents)

    def lexical_view(self) -> LexicalIndex:
        if self.lexical is None:
            raise ValueError(f"the index of {self.collection.name!r} has no lexical view")
        return self.lexical

    def _selection(
        self,
        languages: list[str] | None,
        metadata_filter: dict[str, Any] | None,
        within: np.ndarray | None,
    ) -> Selection | None:
        among = self.filters.select(languages, metadata_filter)
        if within is None:
            return among
        return Selection(within if among is None else within[among.contains(within)])


def index_key(collection: CollectionInfo) -> tuple[int, int]:
    """What an index is held by: its collection and generation."""
    return collection.id, collection.generation


class IndexManager:
    """Holds this process's CollectionIndex of each collection generation it serves (and of
    a generation being built that it will serve once switched to)."""

    def __init__(
        self,
        store: Store,
        index_dir: Path,
        ivf_min_vectors: int,
        use_gpu: bool = False,
        *,
        catch_up_on_read: bool = True,
        model: str | None = None,
    ) -> None:
        """`catch_up_on_read=False` is the server's role: its IndexKeeper catches every index
        up in the background, so `get` and `named` answer from memory without asking the
        database; writes still make themselves searchable through `refresh`.

        `model` is the one this process embeds questions with: a collection is searched in
        the generation that model made (`served`); None serves every active generation."""
        self._store = store
        self.model = model
        self._use_gpu = use_gpu
        self._catch_up_on_read = catch_up_on_read
        self._index_dir = index_dir
        self._lexical_working = index_dir / "lexical-working"
        remove_stale_working_folders(self._lexical_working)
        self._ivf_min_vectors = ivf_min_vectors
        self._indexes: dict[tuple[int, int], CollectionIndex] = {}
        self._serving: dict[int, tuple[int, int]] = {}  # collection id -> the index searched
        # Refreshes counted, and each collection's last one (its count, the index it chose):
        # the keeper's choice, made from what it read before a refresh, never undoes it.
        self._refreshes = 0
        self._refreshed: dict[int, tuple[int, tuple[int, int]]] = {}
        self._lock = threading.Lock()
        self._rebuild_lock = threading.Lock()
        # One snapshot at a time: one publishing could delete the file another is about to.
        self._snapshot_lock = threading.Lock()

    def folder(self, collection: CollectionInfo) -> Path:
        suffix = "" if collection.generation == 1 else f"-g{collection.generation}"
        return self._index_dir / f"{collection.id}-{collection.name}{suffix}"

    def can_serve(self, made: GenerationInfo | CollectionInfo) -> bool:
        """Whether this process embeds questions with the model of a generation (or of a
        collection in one)."""
        return self.model is None or made.model == self.model

    @staticmethod
    def active(
        collection: CollectionInfo, generations: Sequence[GenerationInfo]
    ) -> CollectionInfo:
        """`collection` in its active generation as `generations` (read in one statement,
        so consistent with each other, unlike a collection row read before them) say."""
        active = next((g for g in generations
                       if g.collection_id == collection.id and g.state == "active"), None)
        return collection if active is None else active.of(collection)

    def served(
        self, collection: CollectionInfo, generations: Sequence[GenerationInfo]
    ) -> CollectionInfo:
        """The generation of `collection` that this process searches, as `generations` say
        (the collection's row may have been read before them, in an older generation): the
        active one if its model is this process's, else the newest retired one this
        process's model made (a process not restarted yet after a migration keeps answering,
        as of the switch, until that generation expires), else the active one (whose
        searches then say which model they need)."""
        collection = self.active(collection, generations)
        kept = [g for g in generations if g.collection_id == collection.id]
        active = next((g for g in kept if g.number == collection.generation), None)
        if active is None or self.can_serve(active):
            return collection
        retired = [  # also one being switched back to: it holds all it held when left
            g for g in kept if self.can_serve(g) and (
                g.state == "retired" or (g.state == "building" and g.switched_at is not None))
        ]
        return max(retired, key=lambda g: g.number).of(collection) if retired else collection

    def refreshes(self) -> int:
        """The refreshes so far: what the keeper notes before it reads the database."""
        with self._lock:
            return self._refreshes

    def serve(self, serving: Sequence[CollectionInfo], as_of: int) -> set[tuple[int, int]]:
        """Search these generations from now on (the keeper's choice, once they are held,
        from what it read after `as_of` refreshes), except where a refresh came since: it
        read the database as late, and the next round decides again. Returns the keys of
        the indexes searched."""
        with self._lock:
            self._refreshed = {collection_id: last for collection_id, last
                               in self._refreshed.items() if last[0] > as_of}
            chosen = {c.id: index_key(c) for c in serving}
            chosen.update({collection_id: key for collection_id, (_, key)
                           in self._refreshed.items()})
            self._serving = chosen
            return set(chosen.values())

    def searched(self) -> dict[str, int]:
        """The generation this process searches, by collection name (as the keeper or the
        latest refresh chose)."""
        with self._lock:
            return {self._indexes[key].collection.name: key[1]
                    for key in self._serving.values() if key in self._indexes}

    def get(self, collection: CollectionInfo) -> CollectionIndex:
        """The index of the collection's generation: loaded (and caught up) the first time,
        and caught up again on every call unless the manager was built with
        `catch_up_on_read=False`."""
        with self._lock:
            current = self._indexes.get(index_key(collection))
            if current is None:
                current = self._load_or_build(collection)
                self._indexes[index_key(collection)] = current
                self.catch_up(current)
                return current
        if self._catch_up_on_read:
            self.catch_up(current)
        return current

    def named(self, name: str) -> CollectionIndex:
        """The index searched for the collection called `name`, as `get` gives it.

        With `catch_up_on_read=False` a loaded index answers without asking the database
        (searches run this every time): the keeper follows generation switches and drops
        deleted collections each round. An alias is asked of the database every time, so
        that a switch is seen at once everywhere. Raises CollectionNotFound for a name the
        database does not know.
        """
        if not self._catch_up_on_read:
            with self._lock:
                current = next(
                    (self._indexes[key] for key in self._serving.values()
                     if key in self._indexes and self._indexes[key].collection.name == name),
                    None,
                )
            if current is not None:
                return current
        collection = self._store.get_collection(name)
        return self.get(self.served(collection, self._store.generations(collection.id)))

    def refresh(self, collection: CollectionInfo) -> CollectionIndex:
        """Catch the index this process searches for the collection up now, whatever the
        role, and return it: what a write that answers "searchable" (`wait: true`, a delete,
        a job's batch, a migration's switch) calls before answering.

        The generation is read again after the write, as `served` picks it (a switch may
        have come between the write and this call: a migration's is one), and searched from
        now on; a keeper round that read the database before this refresh keeps it."""
        collection = self.served(collection, self._store.generations(collection.id))
        current = self.get(collection)
        if not self._catch_up_on_read:
            self.catch_up(current)
        with self._lock:
            self._refreshes += 1
            self._refreshed[collection.id] = (self._refreshes, index_key(collection))
            self._serving[collection.id] = index_key(collection)
        return current

    def loaded(self) -> list[CollectionIndex]:
        """The indexes this process holds now."""
        with self._lock:
            return list(self._indexes.values())

    def catch_up(self, current: CollectionIndex) -> int:
        """Add chunks newer than the watermark, drop tombstoned ones; returns the changes.

        When the collection has outgrown its index (past the IVF threshold, or an IVF that
        has grown about 4x since it was trained, so that it wants twice the lists), a fresh
        index is built and trained in the background and swapped in; searches keep using
        the current one meanwhile.
        """
        changes = self._apply_log(current)
        if self._outgrown(current):
            self._start_rebuild(current)
        return changes

    def wait_for_rebuilds(self, timeout_s: float = 600.0) -> None:
        """Block until the background rebuilds started so far have swapped in."""
        for current in self.loaded():
            thread = current.rebuilding
            if thread is not None:
                thread.join(timeout_s)

    def _apply_log(self, current: CollectionIndex) -> int:
        """Chunks are read before tombstones so that a chunk added and removed meanwhile is
        either never added or added and then removed. An index already at the log's head
        (what most searches find) reads nothing more and takes no lock."""
        collection = current.collection
        newest_chunk, newest_tombstone = self._store.log_head(collection)
        if (current.settled and newest_chunk <= current.chunk_watermark
                and newest_tombstone <= current.tombstone_watermark):
            current.caught_up_at = time.monotonic()
            return 0
        with current.lock:
            current.settled = False  # until this round has committed all it added
            changes = 0
            for page in self._store.chunks_after(
                collection, current.chunk_watermark,
                with_texts=current.lexical is not None,
            ):
                self._add_page(current, page)
                changes += len(page.ids)
            removed, seq = self._store.tombstones_after(collection.id, current.tombstone_watermark)
            current.index.remove(removed)
            current.filters.remove(removed)
            if current.lexical is not None:
                current.lexical.remove(removed)
                current.lexical.commit()
            current.tombstone_watermark = seq
            changes += len(removed)
            current.unsaved_changes += changes
            current.caught_up_at = time.monotonic()
            current.settled = True
        return changes

    @staticmethod
    def _add_page(current: CollectionIndex, page: ChunkPage) -> None:
        current.filters.add(page)  # first: it refuses a page out of id order
        current.index.add(page.ids, page.vectors_read)
        if current.lexical is not None:
            current.lexical.add(page.ids, page.texts_read)
        current.chunk_watermark = int(page.ids[-1])

    def _outgrown(self, current: CollectionIndex) -> bool:
        plan = current.index.plan
        wanted = self._plan(current.collection, current.index.count)
        if wanted.kind != plan.kind:
            return True
        return wanted.is_ivf and wanted.nlist >= 2 * plan.nlist

    def _plan(self, collection: CollectionInfo, n_vectors: int) -> IndexPlan:
        settings = IndexSettings.of(collection.index_settings)
        return plan_index(n_vectors, self._ivf_min_vectors, settings)

    def _start_rebuild(self, current: CollectionIndex) -> None:
        with self._rebuild_lock:
            if current.rebuilding is not None and current.rebuilding.is_alive():
                return
            current.rebuilding = threading.Thread(
                target=self._rebuild_and_swap,
                args=(current,),
                name=f"xlsearch-rebuild-{current.collection.name}",
                daemon=True,
            )
            current.rebuilding.start()

    def _rebuild_and_swap(self, current: CollectionIndex) -> None:
        collection = current.collection
        try:
            log.info(
                "collection %s outgrew its %s index at %d vectors: rebuilding in the background",
                collection.name,
                current.index.plan.kind,
                current.index.count,
            )
            fresh = self._build(collection)  # no lock held: searches go on meanwhile
            self._apply_log(fresh)  # what was committed while it trained
            with current.lock:  # the last few, with catch-ups of `current` waiting
                self._apply_log(fresh)
                self._replace(current, fresh)
                current.unsaved_changes += 1  # the keeper snapshots the new index
            log.info(
                "collection %s: swapped in a %s index (nlist %d) with %d vectors",
                collection.name,
                fresh.index.plan.kind,
                fresh.index.plan.nlist,
                fresh.index.count,
            )
        except Exception:  # noqa: BLE001 - keep serving the old index; a later catch-up retries
            log.exception("background rebuild of collection %s failed", collection.name)

    def rebuild(self, collection: CollectionInfo) -> CollectionIndex:
        """Build the index afresh from stored vectors (retraining IVF) and snapshot it."""
        fresh = self._build(collection)
        with self._lock:
            current = self._indexes.setdefault(index_key(collection), fresh)
        if current is not fresh:
            self._replace(current, fresh)
        self.catch_up(current)
        self.snapshot(current)
        return current

    def snapshot(self, current: CollectionIndex) -> None:
        """Write the index and its watermarks to disk atomically, recorded in the database
        before the manifest names it (search.store.identity) so that only this database's
        history can load it.

        Only the index file is written under the index's lock: the database write may wait
        for ingesting writers, and searches must not wait with it. A crash before the
        manifest switches leaves the previous snapshot in use (and at most an unused record).
        """
        with self._snapshot_lock:
            collection = current.collection
            folder = self.folder(collection)
            snapshot_id = uuid.uuid4().hex
            with current.lock:
                plan = current.index.plan
                position = SnapshotRecord(collection.id, collection.generation,
                                          current.chunk_watermark, current.tombstone_watermark)
                count, saved_changes = current.index.count, current.unsaved_changes
                index_path = write_index_file(folder, snapshot_id, current.index.save)
                lexical_path = folder / f"lexical-{snapshot_id}"
                current.lexical_view().save(lexical_path)
            manifest = Manifest(
                collection_id=collection.id,
                model=collection.model,
                dimension=collection.dimension,
                kind=plan.kind,
                nlist=plan.nlist,
                nprobe=plan.nprobe,
                chunk_watermark=position.chunk_watermark,
                tombstone_watermark=position.tombstone_watermark,
                count=count,
                database_id=identity.database_id(self._store),
                snapshot_id=snapshot_id,
                index_format=INDEX_FORMAT,
            )
            identity.record_snapshot(self._store, snapshot_id, position, SNAPSHOT_RECORDS_KEPT)
            publish_snapshot(folder, manifest, index_path, lexical_path)
            with current.lock:  # changes caught up meanwhile still count as unsaved
                current.unsaved_changes -= saved_changes

    def forget(self, collection: CollectionInfo, *, keep_snapshots: bool = False) -> None:
        """Drop the index of a collection's generation, and its snapshots unless
        `keep_snapshots` (a generation this process no longer serves, that others may)."""
        with self._lock:
            dropped = self._indexes.pop(index_key(collection), None)
        if dropped is not None and dropped.lexical is not None:
            with dropped.lock:
                dropped.lexical.close()
        if not keep_snapshots:
            remove_snapshots(self.folder(collection))

    def forget_collection(self, collection: CollectionInfo) -> None:
        """Drop a deleted collection's indexes and snapshots, in every generation."""
        for current in self.loaded():
            if current.collection.id == collection.id:
                self.forget(current.collection)
        first = self.folder(replace(collection, generation=1))
        for folder in [first, *self._index_dir.glob(f"{first.name}-g*")]:
            remove_snapshots(folder)

    def _load_or_build(self, collection: CollectionInfo) -> CollectionIndex:
        folder = self.folder(collection)
        try:
            loaded = self._load(collection, folder)
        except UnusableSnapshot as reason:
            log.warning(
                "collection %s: not using the snapshot in %s: %s; rebuilding the index from "
                "the vectors in the database",
                collection.name,
                folder,
                reason,
            )
            rebuilt = self._build(collection)
            rebuilt.unsaved_changes = 1  # the keeper's next snapshot replaces the unusable one
            return rebuilt
        return loaded or self._build(collection)

    def _load(self, collection: CollectionInfo, folder: Path) -> CollectionIndex | None:
        """The snapshot's index, or None without a snapshot; raises UnusableSnapshot for one
        of another collection or database, of a position this database's history does not
        hold (a restored backup), or whose files are damaged."""
        manifest = read_manifest(folder)
        if manifest is None:
            return None
        self._check_binding(collection, manifest)
        path = verified_index_file(folder, manifest)
        settings = IndexSettings.of(collection.index_settings)
        nprobe = min(manifest.nlist, settings.nprobe or default_nprobe(manifest.nlist))
        plan = IndexPlan(manifest.kind, manifest.nlist, nprobe)  # type: ignore[arg-type]
        try:
            index = VectorIndex.load(path, collection.dimension, plan, self._use_gpu)
        except RuntimeError as error:
            raise UnusableSnapshot(f"faiss cannot read {path}: {error}") from error
        if index.count != manifest.count:
            raise UnusableSnapshot(
                f"{path} holds {index.count} vectors where the manifest says {manifest.count}"
            )
        lexical_path = verified_lexical_folder(folder, manifest)
        try:
            lexical = LexicalIndex.open_copy(
                lexical_path, working_folder(self._lexical_working, collection.id)
            )
        except UnusableLexicalSnapshot as error:
            raise UnusableSnapshot(str(error)) from error
        if lexical.count != manifest.count:
            lexical.close()
            raise UnusableSnapshot(
                f"{lexical_path} holds {lexical.count} chunks where the manifest says "
                f"{manifest.count}"
            )
        filters = FilterTable()
        for page in self._store.chunks_after(
            collection, 0, with_vectors=False,
            up_to=manifest.chunk_watermark,
        ):
            filters.add(page)
        return CollectionIndex(
            collection, index, manifest.chunk_watermark, manifest.tombstone_watermark, filters,
            lexical,
        )

    def _check_binding(self, collection: CollectionInfo, manifest: Manifest) -> None:
        """Two point lookups: the database's identity, and this snapshot's record in it."""
        if manifest.index_format != INDEX_FORMAT:
            raise UnusableSnapshot(
                f"it is an index of format {manifest.index_format}; this version builds format "
                f"{INDEX_FORMAT} (with a lexical index beside the vectors)"
            )
        held = (manifest.collection_id, manifest.model, manifest.dimension)
        wanted = (collection.id, collection.model, collection.dimension)
        if held != wanted:
            raise UnusableSnapshot(
                f"it holds (collection id, model, dimensions) {held}; the database has {wanted}"
            )
        here = identity.database_id(self._store)
        if manifest.database_id != here:
            raise UnusableSnapshot(
                f"it was taken from database {manifest.database_id}, this is database {here}"
            )
        position = SnapshotRecord(collection.id, collection.generation,
                                  manifest.chunk_watermark, manifest.tombstone_watermark)
        if identity.recorded_snapshot(self._store, manifest.snapshot_id) != position:
            raise UnusableSnapshot(
                f"this database has no record of it (at chunk {position.chunk_watermark}, "
                f"removal {position.tombstone_watermark}): the database was restored from a "
                "backup older than the snapshot, the snapshot was copied from elsewhere, or "
                f"it is older than the {SNAPSHOT_RECORDS_KEPT} newest snapshots"
            )

    def _build(self, collection: CollectionInfo) -> CollectionIndex:
        """A new index from every stored vector and text of the collection."""
        tombstone_watermark = self._store.newest_tombstone(collection.id)
        pages = list(
            self._store.chunks_after(collection, 0, with_texts=True)
        )
        vectors = (
            np.concatenate([p.vectors_read for p in pages])
            if pages
            else np.zeros((0, collection.dimension), np.float32)
        )
        index = VectorIndex(
            collection.dimension, self._plan(collection, len(vectors)), use_gpu=self._use_gpu
        )
        if index.needs_training:
            rng = np.random.default_rng(TRAINING_SAMPLE_SEED)
            size = min(len(vectors), max(index.plan.nlist * 256, MIN_PQ_TRAINING))
            picked = np.sort(rng.choice(len(vectors), size=size, replace=False))
            langs = [lang for page in pages for lang in page.langs]
            index.train(vectors[picked], [langs[i] for i in picked])
        lexical = LexicalIndex(working_folder(self._lexical_working, collection.id))
        fresh = CollectionIndex(collection, index, 0, tombstone_watermark, lexical=lexical)
        for page in pages:
            self._add_page(fresh, page)
        lexical.commit()
        return fresh

    @staticmethod
    def _replace(current: CollectionIndex, fresh: CollectionIndex) -> None:
        with current.lock:
            current.index = fresh.index
            current.filters = fresh.filters
            if current.lexical is not None and current.lexical is not fresh.lexical:
                current.lexical.close()
            current.lexical = fresh.lexical
            current.chunk_watermark = fresh.chunk_watermark
            current.tombstone_watermark = fresh.tombstone_watermark
