"""The query side: question -> query embedding -> FAISS -> best chunk per document -> results."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.collections import check_model
from search.embedders import Embedder
from search.errors import DocumentNotFound, XlsearchError
from search.fusion import (
    LEXICAL_WEIGHT,
    Evidence,
    Ranked,
    fuse,
    is_keyword_query,
    same_language,
)
from search.index_manager import CollectionIndex, IndexManager
from search.language import QUERY_TRIALS, detect_language
from search.languages import language_matches
from search.lexical_index import LexicalIndex
from search.lexical_query import LexicalQuery, highlights, parse_query
from search.locators import locate
from search.schemas import (
    Group,
    GroupMember,
    SearchRequest,
    SearchResponse,
    SearchResult,
    SimilarRequest,
    Snippet,
    Translation,
)
from search.store.records import ChunkHit
from search.store.repository import Store
from search.store.translations import Member

log = logging.getLogger(__name__)
# Most chunks one search reads while looking for `k` documents (documents with many matching
# chunks each): beyond it the search answers with what it found.
MAX_FETCH = 20_000
GROUP_SIZE = 3  # documents per group when `group_by` names no `group_size`


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
        self,
        store: Store,
        embedder: Embedder,
        indexes: IndexManager,
        overfetch: int = 4,
        lexical_weight: float = LEXICAL_WEIGHT,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._indexes = indexes
        self._overfetch = overfetch
        self._lexical_weight = lexical_weight

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
        """`search`, with the time each stage took (embed, index, lexical, fetch, ...).

        Languages and metadata filters are applied inside the indexes (the k best matching
        chunks, however few match), and so are "quoted phrases" in lexical mode; in hybrid
        mode a phrase binds the chunks in the question's language (the only ones that could
        hold it) and leaves the others to the model.
        """
        watch = Stopwatch()
        index = self._indexes.named(collection_name)
        check_model(index.collection, self._embedder)
        with watch.stage("language"):
            query_language = detect_language(request.query, QUERY_TRIALS)
        plan = _Plan(request, query_language)
        if plan.lexical is not None and plan.lexical.phrases:
            with watch.stage("lexical"):
                plan.with_phrases = index.lexical_view().with_phrases(plan.lexical.phrases)
        if request.mode != "lexical":
            with watch.stage("embed"):
                plan.vector = self._embedder.embed_queries(
                    [request.query],
                    instruction=request.instruction or index.collection.query_instruction,
                    dimension=index.collection.dimension,
                )
        return self._answer(index, plan, watch, query_language), watch

    def similar(
        self, collection_name: str, document_id: str, request: SimilarRequest
    ) -> SearchResponse:
        """Documents like `document_id` in any language ("more like this"), best first,
        found with its stored vectors (their mean, weighted by tokens): nothing is embedded,
        so a process with another model can answer too. The document itself is left out."""
        watch = Stopwatch()
        index = self._indexes.named(collection_name)
        collection = index.collection
        record = self._store.find_document(collection.id, document_id)
        with watch.stage("fetch"):  # an id the database could not hold finds no record
            mean = None if record is None else self._store.document_mean(collection, document_id)
        if record is None or mean is None:
            raise DocumentNotFound(
                f"document {document_id!r} is not in collection {collection_name!r}"
            )
        vector = mean.vector[None, :]
        # A dense search whose question is the document's vector (no text to parse).
        as_search = SearchRequest.model_construct(
            query="", k=request.k, offset=request.offset, languages=request.languages,
            filter=request.filter, nprobe=request.nprobe, instruction=None, mode="dense",
            group_by=None, group_size=None, collapse=request.collapse,
            prefer_languages=request.prefer_languages,
        )
        plan = _Plan(as_search, record.lang, vector=vector)
        left_out = {document_id}
        if request.collapsing:
            copies = self._store.copies_of(collection.id, document_id) or []
            left_out |= {copy.external_id for copy in copies}
        return self._answer(index, plan, watch, record.lang, leave_out=left_out)

    def _answer(
        self, index: CollectionIndex, plan: _Plan, watch: Stopwatch, language: str,
        leave_out: Collection[str] = (),
    ) -> SearchResponse:
        """The page of results `plan` asks for (one per document, or per translation set
        when collapsing, or per group; each at its best chunk), none of `leave_out` (ids).

        Chunks are over-fetched because several may belong to one result; the fetch grows
        until the page's results (and one more, to know if a next page exists) are found,
        every matching chunk was read or `MAX_FETCH` chunks were."""
        request = plan.request
        wanted = request.offset + request.k + 1  # one more tells whether a next page exists
        grouping = _Grouping.of(request)
        fetch = wanted * self._overfetch * grouping.fetch_factor
        while True:
            ranked, matching, hits = self._rank(index, plan, fetch, watch)
            groups = _grouped(ranked, hits, grouping, wanted, set(leave_out))
            if len(groups) == wanted or fetch >= min(matching, MAX_FETCH):
                break
            fetch *= 4
        shown = [grouping.shown(members) for members in groups.values()]
        page = slice(request.offset, request.offset + request.k)
        with watch.stage("fetch"):
            texts = self._store.with_texts([hit for _, hit in shown[page]])
        on_show = [(ranked, hit) for (ranked, _), hit in zip(shown[page], texts, strict=True)]
        results = _results(shown, on_show, plan)
        on_page = list(groups.items())[page]
        if request.group_by:
            for result, (value, members) in zip(results, on_page, strict=True):
                result.group = Group(value=json.loads(value), more=[
                    GroupMember(id=hit.document_id, title=hit.title, lang=hit.lang,
                                score=round(ranked.score, 6))
                    for ranked, hit in members[1:]
                ])
        elif grouping.collapsing:
            with watch.stage("translations"):
                self._fill_translations(index, request, results, [m for _, m in on_page])
        response = SearchResponse(
            query_language=language,
            took_ms=0.0,
            results=results,
            next_offset=request.offset + request.k if len(groups) == wanted else None,
        )
        response.took_ms = round(watch.total_ms(), 2)
        return response

    def _fill_translations(
        self, index: CollectionIndex, request: SearchRequest, results: list[SearchResult],
        sets: list[list[tuple[Ranked, ChunkHit]]],
    ) -> None:
        """Each result's other copies, with their scores where the search read them. With a
        metadata filter, only copies that pass it are named (a filter may be a boundary)."""
        linked = [s for members in sets if (s := members[0][1].translation_set) is not None]
        copies = self._store.translation_members(index.collection.id, linked) if linked else []
        if request.filter and copies:
            passing = index.documents_passing(request.filter, [c.id for c in copies])
            copies = [c for c in copies if c.id in passing]
        by_set: dict[int, list[Member]] = {}
        for copy in copies:
            by_set.setdefault(copy.translation_set, []).append(copy)
        for result, members in zip(results, sets, strict=True):
            scores = {hit.document_id: round(ranked.score, 6) for ranked, hit in members}
            others = [
                Translation(id=c.external_id, lang=c.lang, title=c.title,
                            score=scores.get(c.external_id))
                for c in by_set.get(members[0][1].translation_set or 0, [])  # 0: no set
                if c.external_id != result.id
            ]
            others.sort(key=lambda t: -t["score"] if t["score"] is not None else float("inf"))
            result.translations = others[:MAX_TRANSLATIONS]

    def _rank(
        self, index: CollectionIndex, plan: _Plan, fetch: int, watch: Stopwatch
    ) -> tuple[list[Ranked], float, dict[int, ChunkHit]]:
        """The best `fetch` or so chunks in the request's mode with their texts and
        documents, and how many chunks match (infinite where the lexical side may hold
        more)."""
        request, lexical = plan.request, plan.lexical
        dense: dict[int, float] = {}
        matching: float = 0
        if plan.vector is not None:
            with watch.stage("index"):
                scores, ids, matching = index.search(
                    plan.vector, fetch, request.nprobe, request.languages, request.filter
                )
            dense = {int(i): float(s) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0}
        if lexical is None or not lexical.words:
            return fuse(dense, Evidence(), 0.0), matching, self._hits(dense, watch, plan)
        # In hybrid mode the dense side brings `fetch` candidates; the lexical side adds its
        # best few, for a page's worth of documents (identifier matches the model missed).
        asked = fetch if plan.vector is None else max(1, fetch // self._overfetch)
        with watch.stage("lexical"):
            found = index.lexical_search(
                lexical.words, asked, request.languages, request.filter,
                plan.with_phrases if plan.vector is None else None,
            )
            view = index.lexical_view()
            counts, chunks = view.document_frequencies(lexical.words)
            frequencies = dict(zip(lexical.words, counts, strict=True))
            attainable = lexical.attainable(lexical.words, frequencies, chunks)
        if plan.vector is None:  # lexical mode: BM25 order, as a share of the attainable
            if len(found.ids) == fetch:
                matching = float("inf")  # there may be more
            shares = found.scores.astype(np.float64) / attainable
            ranked = [Ranked(int(i), float(e), None, float(e)) for i, e in zip(found.ids, shares,
                                                                              strict=True)]
            return ranked, max(matching, len(ranked)), self._hits(found.ids.tolist(), watch, plan)
        with watch.stage("fetch"):
            missing = [int(i) for i in found.ids if int(i) not in dense]
            for chunk_id, vector in self._store.chunk_vectors(
                missing, index.collection.dimension
            ).items():
                dense[chunk_id] = float(vector @ plan.vector[0])
        hits = self._hits(dense, watch, plan)
        langs = {chunk_id: hit.chunk_lang for chunk_id, hit in hits.items()}
        if plan.with_phrases is not None:
            holding = set(plan.with_phrases.tolist())
            dense = {
                i: score for i, score in dense.items()
                if i in holding or not plan.in_question_language(langs.get(i, "und"))
            }
        with watch.stage("lexical"):
            evidence = self._evidence(
                view, plan, dense, langs,
                (attainable, lexical.attainable(lexical.identifiers, frequencies, chunks)),
            )
        return fuse(dense, evidence, self._lexical_weight), matching, hits

    def _hits(
        self, chunks: Iterable[int], watch: Stopwatch, plan: _Plan
    ) -> dict[int, ChunkHit]:
        with watch.stage("fetch"):
            return self._store.chunk_hits(list(chunks), plan.request.group_by is not None)

    @staticmethod
    def _evidence(
        view: LexicalIndex,
        plan: _Plan,
        candidates: dict[int, float],
        langs: dict[int, str],
        attainable: tuple[float, float],
    ) -> Evidence:
        """Each candidate's BM25 over the question's identifiers and, in the question's
        language, over its other words, as shares of what those could attain (`attainable`:
        all the question's words, its identifiers)."""
        lexical = plan.lexical_read
        ids = np.fromiter(candidates, np.int64, len(candidates))
        alike = np.array([plan.in_question_language(langs.get(i, "und")) for i in candidates],
                         bool)
        of_all, of_identifiers = attainable
        identifiers = view.scores(lexical.identifiers, ids)
        same = ids[alike]
        words = np.maximum(view.scores(lexical.words, same) - identifiers[alike], 0)
        counted = identifiers.copy()
        counted[alike] += words
        return Evidence(
            identifiers=_shares(ids, identifiers, of_identifiers),
            words=dict(zip(same.tolist(), (words / of_all).tolist(), strict=True)),
            counted=_shares(ids, counted, of_all),
        )


MAX_TRANSLATIONS = 100  # copies a result names, at most (a user's set may be far larger)
COLLAPSE_FETCH = 2  # chunks read per result wanted when collapsing (copies match alike)
Candidate = tuple[Ranked, ChunkHit]


@dataclass(frozen=True)
class _Grouping:
    """What makes one result out of several documents: a translation set (collapsing), a
    value of `group_by`, or nothing (each document alone); and which member is shown."""

    group_by: str | None
    size: int  # members kept per result
    collapsing: bool
    prefer_languages: tuple[str, ...]
    fetch_factor: int

    @classmethod
    def of(cls, request: SearchRequest) -> _Grouping:
        if request.group_by:
            size = request.group_size or GROUP_SIZE
            return cls(request.group_by, size, False, (), size)
        if request.collapsing:
            return cls(None, MAX_FETCH, True, tuple(request.prefer_languages or ()),
                       COLLAPSE_FETCH)
        return cls(None, 1, False, (), 1)

    def key(self, hit: ChunkHit) -> str:
        if self.group_by:
            return group_value(hit, self.group_by)
        if self.collapsing and hit.translation_set is not None:
            return f"set {hit.translation_set}"
        return f"document {hit.document_id}"

    def shown(self, members: list[Candidate]) -> Candidate:
        """The member a result shows: the best in the first preferred language that has
        one, else the best."""
        for lang in self.prefer_languages:
            for member in members:
                if language_matches(lang, member[1].lang):
                    return member
        return members[0]


def _grouped(
    ranked: list[Ranked], hits: dict[int, ChunkHit], grouping: _Grouping, wanted: int,
    leave_out: set[str],
) -> dict[str, list[Candidate]]:
    """Documents in rank order (each at its best chunk, none of `leave_out`), in groups of
    at most `grouping.size` by their key, until `wanted` groups are found; later documents
    still join the groups found (a group keeps the place of its best document)."""
    groups: dict[str, list[Candidate]] = {}
    seen: set[str] = set()
    for candidate in ranked:
        hit = hits.get(candidate.chunk_id)
        if hit is None or hit.document_id in seen or hit.document_id in leave_out:
            continue
        seen.add(hit.document_id)
        key = grouping.key(hit)
        members = groups.get(key)
        if members is None:
            if len(groups) == wanted:
                if grouping.size == 1:
                    break
                continue
            groups[key] = members = []
        if len(members) < grouping.size:
            members.append((candidate, hit))
    return groups


def group_value(hit: ChunkHit, group_by: str) -> str:
    """A document's value of `group_by` (`lang` or `metadata.a.b`; null when it has none)
    as canonical JSON, so that JSON's types stay apart (`true` is not `1`, as in filters)."""
    node: Any = hit.metadata
    if group_by == "lang":
        node = hit.lang
    else:
        for key in group_by.split(".")[1:]:
            node = node.get(key) if isinstance(node, dict) else None
    return json.dumps(node, sort_keys=True, ensure_ascii=False)


def _shares(ids: np.ndarray, scores: np.ndarray, attainable: float) -> dict[int, float]:
    """Non-zero BM25 scores as shares of `attainable`, by chunk id."""
    found = scores > 0
    return dict(zip(ids[found].tolist(), (scores[found] / attainable).tolist(), strict=True))


@dataclass
class _Plan:
    """What one search needs beyond the request: the question as the lexical side reads
    it (None in dense mode), its language, its vector (None in lexical mode), and the
    chunks that hold all its "quoted phrases" (None without phrases)."""

    request: SearchRequest
    language: str
    lexical: LexicalQuery | None = None
    vector: np.ndarray | None = None
    with_phrases: np.ndarray | None = None
    keywords: bool = False

    def __post_init__(self) -> None:
        if self.request.mode != "dense":
            self.lexical = parse_query(self.request.query)
        self.keywords = is_keyword_query(self.request.query)

    @property
    def lexical_read(self) -> LexicalQuery:
        if self.lexical is None:
            raise ValueError("a dense search has no lexical side")
        return self.lexical

    def in_question_language(self, chunk_lang: str) -> bool:
        """Whether the question's words mean the same in a chunk in `chunk_lang`: a
        keyword query's everywhere, a sentence's in its detected language."""
        return self.keywords or same_language(chunk_lang, self.language)

    def counted_words(self, chunk_lang: str) -> tuple[str, ...]:
        """The question's words that count for a chunk in `chunk_lang` (to highlight)."""
        if self.lexical is None:
            return ()
        if self.vector is None or self.in_question_language(chunk_lang):
            return self.lexical.words
        return self.lexical.identifiers


def _results(
    found: list[tuple[Ranked, ChunkHit]], page: list[tuple[Ranked, ChunkHit]], plan: _Plan
) -> list[SearchResult]:
    """The page's results, with each side's rank among every document found."""
    dense_order = sorted((r.dense, -n) for n, (r, _) in enumerate(found) if r.dense is not None)
    lexical_order = sorted((r.lexical, -n) for n, (r, _) in enumerate(found) if r.lexical)
    dense_rank = {-n: rank for rank, (_, n) in enumerate(reversed(dense_order), 1)}
    lexical_rank = {-n: rank for rank, (_, n) in enumerate(reversed(lexical_order), 1)}
    where = {id(pair[0]): n for n, pair in enumerate(found)}
    results = []
    for ranked, hit in page:
        n = where[id(ranked)]
        text = hit.text
        results.append(
            SearchResult(
                id=hit.document_id,
                title=hit.title,
                lang=hit.lang,
                url=hit.url,
                metadata=hit.metadata,
                locator=locate(hit.parts, hit.start, hit.end),
                score=round(ranked.score, 6),
                dense_score=None if ranked.dense is None else round(ranked.dense, 6),
                dense_rank=dense_rank.get(n),
                lexical_score=None if plan.lexical is None else round(ranked.lexical or 0.0, 6),
                lexical_rank=lexical_rank.get(n),
                snippet=Snippet(
                    text=text,
                    start=hit.start,
                    end=hit.end,
                    highlights=highlights(text, plan.counted_words(hit.chunk_lang)),
                ),
            )
        )
    return results
