"""One collection's lexical index: BM25 over its chunk texts, keyed by chunk id (tantivy).

Like the FAISS index beside it, it is a view of the database: chunks are added as the log
grows and removed by their tombstones, and a snapshot is a folder of hard links to the
committed, immutable segment files plus the commit's `meta.json`, written with a digest so
that a torn or altered copy is noticed. A process never writes into a snapshot: it opens a
private working copy (links again), so a crash leaves every snapshot as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tantivy

from search.lexical_tokens import Span, Term, term_spans

CHUNK, BODY = "chunk", "body"
WRITER_HEAP_BYTES = 32_000_000
_LOCKS = {".tantivy-meta.lock", ".tantivy-writer.lock"}


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field(CHUNK, stored=True, indexed=True, fast=True)
    # Tokens come from search.lexical_tokens, given with their positions (for phrases).
    builder.add_text_field(BODY, stored=False, tokenizer_name="raw", index_option="position")
    return builder.build()


SCHEMA = _schema()


class UnusableLexicalSnapshot(Exception):
    """A lexical snapshot that must not be used (the message says why)."""


@dataclass(frozen=True)
class LexicalHits:
    """Chunk ids and their BM25 scores, best first."""

    ids: np.ndarray
    scores: np.ndarray


Tokenizer = Callable[[str], Sequence[Span]]


def _document(chunk_id: int, text: str, tokenizer: Tokenizer) -> tantivy.Document:
    document = tantivy.Document()
    document.add_integer(CHUNK, chunk_id)
    tokens = [tantivy.Token(*span) for span in tokenizer(text)]
    document.add_pre_tokenized_text(BODY, tantivy.PreTokenizedString(text, tokens))
    return document


def _any_of(words: Sequence[str]) -> tantivy.Query:
    """BM25 over the words: each chunk scores the sum of the words it holds."""
    should = [(tantivy.Occur.Should, tantivy.Query.term_query(SCHEMA, BODY, w)) for w in words]
    return tantivy.Query.boolean_query(should)


def _link_all(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.name not in _LOCKS and path.is_file():
            os.link(path, target / path.name)


def folder_digest(folder: Path) -> tuple[int, str]:
    """Bytes and SHA-256 over a snapshot folder's files (names and contents, in name order)."""
    digest, size = hashlib.sha256(), 0
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            file_digest = hashlib.file_digest(handle, "sha256")
        digest.update(file_digest.digest())
        size += path.stat().st_size
    return size, digest.hexdigest()


class LexicalIndex:
    """BM25 over chunk texts in a private working folder; `add`/`remove` then `commit`."""

    def __init__(self, working: Path, tokenizer: Tokenizer = term_spans) -> None:
        """Open (or create) the index in `working`, a folder no other process uses; texts
        are cut into terms by `tokenizer` (another one only to compare them, bench/)."""
        self.working = working
        self._tokenizer = tokenizer
        working.mkdir(parents=True, exist_ok=True)
        try:
            self._index = tantivy.Index(SCHEMA, path=str(working), reuse=True)
        except ValueError as error:
            raise UnusableLexicalSnapshot(f"tantivy cannot open {working}: {error}") from error
        self._writer = self._index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
        self._searcher = self._index.searcher()
        self._pending = False

    @classmethod
    def open_copy(cls, snapshot: Path, working: Path) -> LexicalIndex:
        """A working copy of a snapshot folder (hard links: nothing is copied)."""
        _link_all(snapshot, working)
        return cls(working)

    @property
    def count(self) -> int:
        return int(self._searcher.num_docs)

    def add(self, ids: np.ndarray, texts: Sequence[str]) -> None:
        for chunk_id, text in zip(ids.tolist(), texts, strict=True):
            self._writer.add_document(_document(chunk_id, text, self._tokenizer))
        self._pending = self._pending or len(texts) > 0

    def remove(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        query = tantivy.Query.term_set_query(SCHEMA, CHUNK, [int(i) for i in ids])
        self._writer.delete_documents_by_query(query)
        self._pending = True

    def commit(self) -> None:
        """Make what was added and removed searchable (and durable in the working folder)."""
        if self._pending:
            self._writer.commit()
            self._index.reload()
            self._searcher = self._index.searcher()
            self._pending = False

    def document_frequencies(self, terms: Sequence[str]) -> tuple[list[int], int]:
        """How many chunks hold each term, and how many chunks there are."""
        searcher = self._searcher
        return [searcher.doc_freq(BODY, term) for term in terms], int(searcher.num_docs)

    def search(self, words: Sequence[str], k: int) -> LexicalHits:
        """The `k` best chunks by BM25 over `words`, ties broken by chunk id (so that every
        replica answers alike, however its segments were written)."""
        if not words or k < 1:
            return LexicalHits(np.zeros(0, np.int64), np.zeros(0, np.float32))
        searcher, query, asked = self._searcher, _any_of(words), k
        while True:
            hits = searcher.search(query, asked).hits
            if len(hits) < asked or hits[-1][0] < hits[k - 1][0]:
                break  # every chunk tied with the k-th is in
            asked *= 2
        ids = np.fromiter((searcher.doc(a)[CHUNK][0] for _, a in hits), np.int64, len(hits))
        scores = np.fromiter((s for s, _ in hits), np.float32, len(hits))
        order = np.lexsort((ids, -scores))[:k]
        return LexicalHits(ids[order], scores[order])

    def scores(self, words: Sequence[str], ids: np.ndarray) -> np.ndarray:
        """BM25 over `words` of each chunk of `ids` (0 where none occurs), in `ids`' order."""
        found = np.zeros(len(ids), np.float32)
        if not words or not len(ids):
            return found
        chunks = tantivy.Query.term_set_query(SCHEMA, CHUNK, [int(i) for i in ids])
        among = tantivy.Query.const_score_query(chunks, 0.0)  # selects, adds nothing
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, among), (tantivy.Occur.Must, _any_of(words))]
        )
        searcher = self._searcher
        where = {int(chunk_id): n for n, chunk_id in enumerate(ids.tolist())}
        for score, address in searcher.search(query, len(ids)).hits:
            found[where[searcher.doc(address)[CHUNK][0]]] = score
        return found

    def with_phrases(self, phrases: Sequence[Sequence[Term]]) -> np.ndarray:
        """Every chunk holding all `phrases`, by id."""
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, self._phrase_query(p)) for p in phrases]
        )
        searcher = self._searcher
        hits = searcher.search(query, max(1, self.count)).hits
        return np.fromiter((searcher.doc(a)[CHUNK][0] for _, a in hits), np.int64, len(hits))

    @staticmethod
    def _phrase_query(phrase: Sequence[Term]) -> tantivy.Query:
        first = phrase[0].position
        if len(phrase) == 1:
            return tantivy.Query.term_query(SCHEMA, BODY, phrase[0].text)
        words: list[str | tuple[int, str]] = [(t.position - first, t.text) for t in phrase]
        return tantivy.Query.phrase_query(SCHEMA, BODY, words)

    def save(self, target: Path) -> None:
        """Write the committed state to `target` (a new folder), then its digest is known.

        Links the segment files the last commit names; a merge finishing meanwhile may
        delete one of them, and then the copy is taken again from the newer commit."""
        self.commit()
        for _ in range(10):
            meta = (self.working / "meta.json").read_bytes()
            segments = [s["segment_id"].replace("-", "") for s in json.loads(meta)["segments"]]
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            try:
                for path in self.working.iterdir():
                    if any(path.name.startswith(segment) for segment in segments):
                        os.link(path, target / path.name)
            except FileNotFoundError:
                continue
            (target / "meta.json").write_bytes(meta)
            return
        raise RuntimeError(f"could not copy a stable commit of {self.working}")

    def close(self) -> None:
        """Drop the working folder (the snapshots stay). A search still holding this index
        (it was swapped out under it) keeps reading its open segments."""
        self._writer.rollback()
        shutil.rmtree(self.working, ignore_errors=True)


def working_folder(root: Path, collection_id: int) -> Path:
    """A new private working folder for this process (see `remove_stale_working_folders`)."""
    return root / f"{collection_id}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def remove_stale_working_folders(root: Path) -> None:
    """Remove the working folders of processes that no longer run."""
    if not root.is_dir():
        return
    for folder in root.iterdir():
        parts = folder.name.split("-")
        if len(parts) == 3 and parts[1].isdigit() and not _running(int(parts[1])):
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
