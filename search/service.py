"""The query side: question -> query embedding -> FAISS -> best chunk per document -> results."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from search.collections import check_model
from search.embedders import Embedder
from search.errors import XlsearchError
from search.index_manager import IndexManager
from search.language import QUERY_TRIALS, detect_language
from search.schemas import SearchRequest, SearchResponse, SearchResult, Snippet
from search.store.repository import Store

log = logging.getLogger(__name__)
# Most chunks one search reads while looking for `k` documents (documents with many matching
# chunks each): beyond it the search answers with what it found.
MAX_FETCH = 20_000


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

        Languages and metadata filters are applied inside the index (the k best matching
        chunks, however few match). Chunks are over-fetched because several may belong to
        one document; the fetch grows until the page's documents (and one more, to know if a
        next page exists) are found, every matching chunk was read or `MAX_FETCH` chunks were.
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
        wanted = request.offset + request.k + 1  # one more tells whether a next page exists
        fetch = wanted * self._overfetch
        results: dict[str, SearchResult] = {}
        while True:
            with watch.stage("index"):
                scores, ids, matching = index.search(
                    query_vector, fetch, request.nprobe, request.languages, request.filter
                )
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            with watch.stage("fetch"):
                hits = self._store.chunk_hits([i for i, _ in pairs])
            results.clear()
            for chunk_id, score in pairs:
                hit = hits.get(chunk_id)
                if hit is None or hit.document_id in results:
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
                if len(results) == wanted:
                    break
            if len(results) == wanted or fetch >= min(matching, MAX_FETCH):
                break
            fetch *= 4
        with watch.stage("language"):
            query_language = detect_language(request.query, QUERY_TRIALS)
        response = SearchResponse(
            query_language=query_language,
            took_ms=round(watch.total_ms(), 2),
            results=list(results.values())[request.offset : request.offset + request.k],
            next_offset=request.offset + request.k if len(results) == wanted else None,
        )
        return response, watch
