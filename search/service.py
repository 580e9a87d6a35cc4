"""The query side: question -> query embedding -> FAISS -> best chunk per document -> results."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from search.collections import check_model
from search.embedders import Embedder
from search.errors import XlsearchError
from search.filters import compile_filter
from search.index_manager import IndexManager
from search.language import QUERY_TRIALS, detect_language
from search.languages import language_matches
from search.schemas import SearchRequest, SearchResponse, SearchResult, Snippet
from search.store.repository import ChunkHit, Store

log = logging.getLogger(__name__)
# Most chunks one search reads while a selective filter looks for `k` documents: beyond it
# the search answers with what it found rather than read the whole collection.
MAX_FETCH = 20_000


def _matcher(request: SearchRequest) -> Callable[[ChunkHit], bool]:
    """Whether a hit passes the request's language and metadata filters."""
    languages = request.languages or []
    metadata_filter = compile_filter(request.filter) if request.filter else None

    def matches(hit: ChunkHit) -> bool:
        if languages and not any(language_matches(lang, hit.lang) for lang in languages):
            return False
        return metadata_filter is None or metadata_filter(hit.metadata)

    return matches


class Stopwatch:
    """Milliseconds spent per named stage of one search (for the `Server-Timing` header)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stages_ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            spent = (time.perf_counter() - began) * 1000
            self.stages_ms[name] = self.stages_ms.get(name, 0.0) + spent

    def total_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


class SearchService:
    """Answers search requests for every collection from this process's indexes."""

    def __init__(
        self, store: Store, embedder: Embedder, indexes: IndexManager, overfetch: int = 4
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._indexes = indexes
        self._overfetch = overfetch

    def warm_up(self) -> None:
        """Load what the first search would otherwise wait for (language profiles take ~1 s)."""
        detect_language("warm up the language profiles", QUERY_TRIALS)
        try:
            self._embedder.embed_queries(["warm up the model"])
        except XlsearchError as exc:  # a remote embedding server may come up later
            log.warning("could not warm up the embedder: %s", exc)

    def search(self, collection_name: str, request: SearchRequest) -> SearchResponse:
        """One result per document, best first; the document's best chunk is its snippet."""
        return self.search_timed(collection_name, request)[0]

    def search_timed(
        self, collection_name: str, request: SearchRequest
    ) -> tuple[SearchResponse, Stopwatch]:
        """`search`, with the time each stage took (embed, index, fetch, language).

        Chunks are over-fetched because several may belong to one document and filters drop
        some; the fetch grows until `k` documents are found, the index is exhausted or
        `MAX_FETCH` chunks were read.
        """
        watch = Stopwatch()
        index = self._indexes.named(collection_name)
        collection = index.collection
        check_model(collection, self._embedder)
        with watch.stage("embed"):
            query_vector = self._embedder.embed_queries(
                [request.query],
                instruction=request.instruction or collection.query_instruction,
                dimension=collection.dimension,
            )
        matches = _matcher(request)
        fetch = request.k * self._overfetch * (4 if request.languages or request.filter else 1)
        results: dict[str, SearchResult] = {}
        while True:
            with watch.stage("index"):
                scores, ids = index.search(query_vector, fetch, request.nprobe)
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            with watch.stage("fetch"):
                hits = self._store.chunk_hits([i for i, _ in pairs])
            results.clear()
            for chunk_id, score in pairs:
                hit = hits.get(chunk_id)
                if hit is None or hit.document_id in results or not matches(hit):
                    continue
                results[hit.document_id] = SearchResult(
                    id=hit.document_id,
                    title=hit.title,
                    lang=hit.lang,
                    url=hit.url,
                    metadata=hit.metadata,
                    score=round(score, 6),
                    snippet=Snippet(text=hit.text, start=hit.start, end=hit.end),
                )
                if len(results) == request.k:
                    break
            if len(results) == request.k or fetch >= min(index.index.count, MAX_FETCH):
                break
            fetch *= 4
        with watch.stage("language"):
            query_language = detect_language(request.query, QUERY_TRIALS)
        response = SearchResponse(
            query_language=query_language,
            took_ms=round(watch.total_ms(), 2),
            results=list(results.values()),
        )
        return response, watch
