"""What filters see of each chunk in an index: its document's language and metadata, kept
beside the FAISS index in every process and caught up from the same log.

A search with `languages` or `filter` asks the table for the matching chunk ids and FAISS
searches among just those (search.vector_index.Selection), so the k results are the best k
matching chunks however selective the filter, instead of whatever survives a post-filter.

Layout, for speed and memory at millions of chunks:
- rows, one per chunk, in chunk id order (the log is read in id order): id, document slot,
  alive flag, in flat arrays; a removal finds its row by binary search;
- document slots, each one version of a document's language and metadata (kept as JSON
  text until a filter needs a field). A metadata change rewrites the document's chunks in
  the database (new ids), so a slot never changes; dead rows and slots are compacted away;
- columns, one per field a filter has used: the code of each slot's value (search.filters).
"""

from __future__ import annotations

import json
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from search.filters import MISSING, canonical, compile_filter, orderable_kind
from search.languages import language_matches
from search.store.records import ChunkPage
from search.vector_index import Selection

SELECTIONS_CACHED = 64  # recent (languages, filter) answers kept until the table changes
SELECTION_CACHED_BYTES = 4 << 20  # larger answers are not kept (a bitmap of 32M ids)
COLUMNS_KEPT = 64  # metadata fields with a column built (most recently used)


class _Column:
    """A field's codes over document slots, extended as slots are added."""

    def __init__(self) -> None:
        self._codes = array("i")
        self._values: list[Any] = [MISSING]
        self._code_by_value: dict[Any, int] = {MISSING: 0}
        # per kind: (values seen when built, codes, values), rebuilt when new values arrive
        self._orderable: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}

    def append(self, value: Any) -> None:
        key = canonical(value)
        code = self._code_by_value.get(key)
        if code is None:
            code = self._code_by_value[key] = len(self._values)
            self._values.append(value)
        self._codes.append(code)

    @property
    def values(self) -> list[Any]:
        return self._values

    @property
    def covered(self) -> int:
        return len(self._codes)

    @property
    def codes(self) -> np.ndarray:
        return np.frombuffer(self._codes, dtype=np.int32) if self._codes else np.zeros(0, np.int32)

    def code_of(self, value: Any) -> int | None:
        return self._code_by_value.get(canonical(value))

    def orderable(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        cached = self._orderable.get(kind)
        if cached is None or cached[0] < len(self._values):
            codes = [c for c, v in enumerate(self._values) if orderable_kind(v) == kind]
            values = np.empty(len(codes), dtype=object)
            values[:] = [self._values[c] for c in codes]
            cached = (len(self._values), np.asarray(codes, np.int64), values)
            self._orderable[kind] = cached
        return cached[1], cached[2]


class FilterTable:
    """Languages and metadata of the chunks an index holds. Not thread-safe: the index's
    lock covers it."""

    def __init__(self) -> None:
        self._ids = array("q")
        self._slots = array("i")
        self._alive = array("b")
        self._dead = 0
        self._slot_langs: list[str] = []
        self._slot_metadata: list[str | None] = []
        self._document_slot: dict[int, int] = {}
        self._columns: OrderedDict[str, _Column] = OrderedDict()
        self._languages = _Column()
        self._selections: OrderedDict[str, Selection] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids) - self._dead

    def add(self, page: ChunkPage) -> None:
        """Append chunks, whose ids must be above every id already here."""
        if not len(page.ids):
            return
        if self._ids and int(page.ids[0]) <= self._ids[-1]:
            raise ValueError("chunks must be added in increasing id order")
        for document, lang, metadata in zip(
            page.documents, page.document_langs, page.metadata_json, strict=True
        ):
            self._slots.append(self._slot_of(document, lang, metadata))
        self._ids.extend(np.asarray(page.ids, dtype=np.int64).tolist())
        self._alive.extend(b"\x01" * len(page.ids))
        self._selections.clear()

    def _slot_of(self, document: int, lang: str, metadata: str | None) -> int:
        slot = self._document_slot.get(document)
        if slot is not None and (self._slot_langs[slot], self._slot_metadata[slot]) == (
            lang, metadata
        ):
            return slot
        slot = self._document_slot[document] = len(self._slot_langs)
        self._slot_langs.append(lang)
        self._slot_metadata.append(metadata)
        return slot

    def remove(self, ids: np.ndarray) -> None:
        """Drop chunks (ids the table does not hold are ignored)."""
        if not len(ids) or not self._ids:
            return
        held = np.frombuffer(self._ids, dtype=np.int64)
        wanted = np.asarray(ids, dtype=np.int64)
        rows = np.searchsorted(held, wanted)
        inside = rows < len(held)
        rows = np.unique(rows[inside][held[rows[inside]] == wanted[inside]])
        alive = np.frombuffer(self._alive, dtype=np.int8)
        newly_dead = int(alive[rows].sum())
        alive[rows] = 0
        self._dead += newly_dead
        self._selections.clear()
        if self._dead > 4096 and self._dead > len(self):
            self._compact()

    def select(
        self, languages: Sequence[str] | None, spec: dict[str, Any] | None
    ) -> Selection | None:
        """The chunks whose document is in one of `languages` and passes the filter `spec`;
        None when neither narrows the search."""
        if not languages and not spec:
            return None
        key = json.dumps([sorted(languages or []), spec], sort_keys=True)
        found = self._selections.get(key)
        if found is not None:
            self._selections.move_to_end(key)
            return found
        slots = np.ones(len(self._slot_langs), dtype=bool)
        if languages:
            self._extend(self._languages, self._slot_langs)
            column = self._languages
            wanted = np.fromiter(
                (v is not MISSING and any(language_matches(lang, v) for lang in languages)
                 for v in column.values), bool, len(column.values),
            )
            slots &= wanted[column.codes]
        if spec:
            compiled = compile_filter(spec)
            self._prepare(compiled.fields())
            slots &= compiled.mask(self)
        rows = slots[np.frombuffer(self._slots, dtype=np.int32)] & np.frombuffer(
            self._alive, dtype=np.int8
        ).astype(bool)
        found = Selection(np.frombuffer(self._ids, dtype=np.int64)[rows])
        if found.nbytes <= SELECTION_CACHED_BYTES:
            self._selections[key] = found
            if len(self._selections) > SELECTIONS_CACHED:
                self._selections.popitem(last=False)
        return found

    def documents_passing(self, spec: dict[str, Any], documents: Iterable[int]) -> set[int]:
        """Those of `documents` (row ids) held here whose metadata pass the filter `spec`."""
        compiled = compile_filter(spec)
        self._prepare(compiled.fields())
        passing = compiled.mask(self)
        slots = ((d, self._document_slot.get(d)) for d in documents)
        return {d for d, slot in slots if slot is not None and passing[slot]}

    def languages(self) -> list[str]:
        """The languages of the documents held (and of some removed since)."""
        return sorted(set(self._slot_langs))

    @property
    def size(self) -> int:
        """Document slots: the length of a filter's mask (search.filters.Columns)."""
        return len(self._slot_metadata)

    def column(self, key: str) -> _Column:
        """The field `key` over every document slot (built or extended on demand)."""
        self._prepare({key})
        return self._columns[key]

    def _prepare(self, keys: set[str]) -> None:
        """Columns for `keys`, covering every slot: new ones built in one pass over the
        metadata. The COLUMNS_KEPT most recently used columns are kept."""
        for key in keys:
            if key in self._columns:
                self._columns.move_to_end(key)
            else:
                self._columns[key] = _Column()
        while len(self._columns) > max(COLUMNS_KEPT, len(keys)):
            self._columns.popitem(last=False)
        if any(self._columns[key].covered < len(self._slot_metadata) for key in keys):
            self._extend_metadata()

    def _extend_metadata(self) -> None:
        """Parse the slots the columns have not seen yet, once for all columns."""
        start = min(c.covered for c in self._columns.values())
        for slot in range(start, len(self._slot_metadata)):
            text = self._slot_metadata[slot]
            metadata = json.loads(text) if text else {}
            if not isinstance(metadata, dict):
                metadata = {}
            for key, column in self._columns.items():
                if column.covered == slot:
                    column.append(metadata.get(key, MISSING))

    @staticmethod
    def _extend(column: _Column, values: list[str]) -> None:
        for value in values[column.covered :]:
            column.append(value)

    def _compact(self) -> None:
        """Rewrite without dead rows and the slots only they used (columns start again)."""
        alive = np.frombuffer(self._alive, dtype=np.int8).astype(bool)
        ids = np.frombuffer(self._ids, dtype=np.int64)[alive]
        old_slots = np.frombuffer(self._slots, dtype=np.int32)[alive]
        kept, new_slots = np.unique(old_slots, return_inverse=True)
        renumber = {int(old): new for new, old in enumerate(kept)}
        self._ids = array("q", ids.tolist())
        self._slots = array("i", new_slots.astype(np.int32).tolist())
        self._alive = array("b", b"\x01" * len(ids))
        self._dead = 0
        self._slot_langs = [self._slot_langs[int(s)] for s in kept]
        self._slot_metadata = [self._slot_metadata[int(s)] for s in kept]
        self._document_slot = {
            document: renumber[slot]
            for document, slot in self._document_slot.items()
            if slot in renumber
        }
        self._columns.clear()
        self._languages = _Column()
        self._selections.clear()
