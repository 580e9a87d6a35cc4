"""Duplicates in a collection, in bulk: exact copies (the same text), near-duplicates in one
language (mean vectors at least `near_cosine` alike) and translation sets, one group at a
time, for `POST …/duplicates` and `xlsearch duplicates` to write as JSON lines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from search.index_manager import CollectionIndex
from search.store.repository import Store
from search.store.translations import Member, TranslationSets

NEAR_COSINE = 0.95
DOCUMENTS_PER_ROUND = 256  # documents whose neighbours are searched together
NEIGHBOURS = 8  # chunks read per document when looking for its near-duplicates

Kind = Literal["exact", "near", "translations"]
KINDS: tuple[Kind, ...] = ("exact", "near", "translations")
Progress = Callable[[int, int], None]  # (documents done, documents in all)


@dataclass(frozen=True)
class DuplicateGroup:
    """Documents that are copies of each other in one sense (`kind`); `score` is how alike
    they are: 1 for exact copies, the lowest linking cosine for near-duplicates, the mean
    cosine of every two copies for a translation set."""

    kind: Kind
    score: float
    documents: list[dict[str, str | None]] = field(default_factory=list)  # id, lang, title

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "score": round(self.score, 6), "documents": self.documents}


def find_duplicates(
    store: Store,
    current: CollectionIndex,
    kinds: tuple[Kind, ...] = KINDS,
    near_cosine: float = NEAR_COSINE,
    progress: Progress | None = None,
) -> Iterator[DuplicateGroup]:
    """The collection's groups of `kinds`, exact copies first, then translation sets, then
    near-duplicates (the search over every document, reported to `progress`)."""
    collection = current.collection
    if "exact" in kinds:
        for members in store.exact_duplicates(collection.id):
            yield DuplicateGroup("exact", 1.0, _described(members))
    if "translations" in kinds:
        for members in store.translation_groups(collection.id):
            means = store.document_means([m.id for m in members], collection)
            vectors = np.array([means[m.id].vector for m in members if m.id in means])
            if len(vectors) < 2:  # a user's set of documents without chunks
                yield DuplicateGroup("translations", 0.0, _described(members))
                continue
            alike = vectors @ vectors.T
            pairs = len(vectors) * (len(vectors) - 1)
            score = float((alike.sum() - np.trace(alike)) / max(1, pairs))
            yield DuplicateGroup("translations", score, _described(members))
    if "near" in kinds:
        yield from _near_duplicates(store, current, near_cosine, progress)


def _near_duplicates(
    store: Store, current: CollectionIndex, near_cosine: float, progress: Progress | None
) -> Iterator[DuplicateGroup]:
    """Each document's nearest other document in its language, when at least `near_cosine`
    alike and not the same text; linked documents form groups."""
    collection = current.collection
    total = store.count_documents(collection.id)
    sets = TranslationSets(set())
    links: dict[tuple[int, int], float] = {}
    described: dict[int, Member] = {}
    done = 0
    for page in store.document_pages(collection.id, DOCUMENTS_PER_ROUND):
        means = store.document_means([m.id for m in page], collection)
        hashes = store.content_hashes([m.id for m in page])
        for lang in sorted({m.lang for m in page}):
            rows = [m for m in page if m.lang == lang and m.id in means]
            if not rows:
                continue
            queries = np.stack([means[m.id].vector for m in rows])
            _, ids, _ = current.search(queries, NEIGHBOURS, None, [lang])
            owners = store.chunk_owners(int(i) for i in ids.ravel() if i >= 0)
            nearby = store.document_means(set(owners.values()), collection)
            other_hashes = store.content_hashes(nearby)
            for member, found in zip(rows, ids, strict=True):
                for chunk in found:
                    other = owners.get(int(chunk))
                    if other is None or other == member.id or other not in nearby:
                        continue
                    if other_hashes.get(other) == hashes.get(member.id):
                        continue  # the same text: an exact copy, listed as such
                    cosine = float(nearby[other].vector @ means[member.id].vector)
                    if cosine >= near_cosine:
                        links[(min(member.id, other), max(member.id, other))] = cosine
                    break  # its nearest other document decides
        described.update((m.id, m) for m in page)
        done += len(page)
        if progress is not None:
            progress(done, total)
    for a, b in links:
        sets.add(a, "")
        sets.add(b, "")
        sets.join(a, b, disjoint_languages=False)
    lowest: dict[int, float] = {}
    for (a, _), cosine in links.items():
        root = sets.root(a)
        lowest[root] = min(cosine, lowest.get(root, 1.0))
    for root, members in sets.members().items():
        yield DuplicateGroup(
            "near", lowest[root], _described([described[m] for m in sorted(members)])
        )


def _described(members: list[Member]) -> list[dict[str, str | None]]:
    return [{"id": m.external_id, "lang": m.lang, "title": m.title} for m in members]
