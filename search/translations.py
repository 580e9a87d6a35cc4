"""Translation sets: which documents of a collection are translations of each other, so that
search can show them as one result ("also in: fr · ja").

Two documents d (language A) and c (language B) are linked when:
- each is the other's nearest document in the other's language, by the cosine of their
  mean vectors (mutual best; the vector index finds the candidates);
- their sizes in tokens are within `LENGTH_RATIO` of each other and at least `MIN_TOKENS`,
  and their numbers (digits of any script, which translations keep) do not disagree;
- their cosine reaches `link_cosine`, a little less when they share their numbers, or, to
  join a set of two or more copies, a little less again when the mean cosine of all copies
  across the two sets is high too (a set's copies vouch for each other);
- and the set they form holds no two documents in one language.
bench/translations.py measured these rules on XQuAD against fixed cosines and the ratio
margin of bitext mining (Artetxe & Schwenk 2019), which with the bundled model cannot tell a
translation from the only document on the same topic in a language.

A user's own link (`metadata.translation_of`: the original's id, or `translation_group`)
always wins over these rules. The sets are data in the database (`documents.translation_set`),
so every replica shows the same; the vector index only finds the candidates. Documents are
linked soon after they are written by a process that holds the collection's index (the
server's keeper, a `wait: true` write, the CLI after ingesting), and linked again when a
member of their set is replaced, deleted or changes language.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from search.index_manager import CollectionIndex
from search.store.records import CollectionInfo
from search.store.repository import Store
from search.store.translations import DocumentMean, PendingCopy, TranslationSets

LINK_COSINE = 0.85  # a pair of documents alone is linked from this cosine of their means
# Below it, by these amounts: a pair that shares most of its numbers; a pair that joins two
# sets (one of 2+ copies); and the mean cosine of all the copies across those two sets.
ANCHORED_EASING = 0.01
SET_PAIR_EASING = 0.05
SET_EASING = 0.04
NUMBERS_SHARED = 0.3  # the share of their numbers (Jaccard) that "anchors" a pair
NUMBERS_CONFLICT = 0.1  # below this share, two documents with numbers are not translations
LENGTH_RATIO = 2.0  # most one copy may be longer than the other, in tokens
# Fewer tokens than this and a document is never linked by the rules: short texts on any
# subject are alike to a small model ("Tea." and "Honey bees make honey." score 0.85).
MIN_TOKENS = 16
LINK_BATCH = 256  # documents linked per transaction
ROUNDS = 8  # transactions of LINK_BATCH documents per call, at most
CHALLENGE_ROUNDS = 3  # rounds per call in which a newcomer may unlink a set it beats
NEIGHBOURS = 4  # documents read per language around each document
HITS_PER_NEIGHBOUR = 3  # chunks read from the index per neighbouring document wanted
LANGUAGES_SEARCHED = 32  # beyond this many languages, only those of nearby documents
NEARBY_CHUNKS = 128  # chunks read, in any language, to find those nearby languages
NUMBER = re.compile(r"\d+")

Neighbours = list[tuple[int, float]]  # (document row id, cosine), best first


@dataclass(frozen=True)
class Candidate:
    """Two documents in different languages, each the other's nearest in its language."""

    a: int
    b: int
    cosine: float
    numbers: float | None  # the Jaccard share of their numbers; None when neither has any

    def strong(self, link_cosine: float) -> bool:
        """Enough to link two documents on their own."""
        anchored = self.numbers is not None and self.numbers >= NUMBERS_SHARED
        return self.cosine >= link_cosine or (
            anchored and self.cosine >= link_cosine - ANCHORED_EASING
        )


class TranslationLinker:
    """Links the documents of a collection that are not linked yet into translation sets
    (nothing when not `enabled`)."""

    def __init__(
        self, store: Store, link_cosine: float = LINK_COSINE, *, enabled: bool = True
    ) -> None:
        self._store = store
        self.link_cosine = link_cosine
        self.enabled = enabled

    def link_pending(self, current: CollectionIndex, rounds: int = ROUNDS) -> int:
        """Link the waiting documents that `current` (caught up by the caller) holds, newest
        first, in at most `rounds` transactions of `LINK_BATCH` (so that a backlog, as after
        an upgrade, is worked through over several calls and never holds a caller for
        long); returns how many were linked. Safe to run in several processes at once:
        each document is linked by whichever writes first."""
        collection = current.collection
        linked = 0
        for round_number in range(rounds if self.enabled else 0):
            up_to = current.chunk_watermark
            pending = self._store.pending_translations(collection, up_to, LINK_BATCH)
            if not pending:
                break
            means = _Means(self._store, collection)
            candidates = self.candidates(current, means, [c for c in pending if c.key is None])
            done, undone = self._store.link_translations(
                collection, pending, up_to, {row for c in candidates for row in (c.a, c.b)},
                partial(_decide, candidates, means, self.link_cosine,
                        round_number < CHALLENGE_ROUNDS),
            )
            linked += done
            if not done and not undone:  # all of them were changed or linked meanwhile
                break
        return linked

    def candidates(
        self, current: CollectionIndex, means: _Means, copies: Sequence[PendingCopy]
    ) -> list[Candidate]:
        """The mutual nearest documents of `copies` in each other language of the
        collection, of similar size and with numbers that do not disagree."""
        means.load(copy.id for copy in copies)
        rows = [copy.id for copy in copies if copy.id in means.known]
        with current.lock:
            languages = current.filters.languages()
        searched = self._languages_near(current, means, rows, languages)
        forward: dict[tuple[int, str], int] = {}
        for lang in languages:
            sources = [row for row in rows if means.known[row].lang != lang
                       and (searched is None or lang in searched[row])]
            for row, found in zip(sources, self._nearest(current, means, sources, lang),
                                  strict=True):
                if found:
                    forward[(row, lang)] = found[0][0]
        back: dict[tuple[int, str], int] = {}
        for lang in languages:
            wanted = sorted({partner for (row, _), partner in forward.items()
                             if means.known[row].lang == lang})
            for partner, found in zip(wanted, self._nearest(current, means, wanted, lang),
                                      strict=True):
                if found:
                    back[(partner, lang)] = found[0][0]
        mutual = [(row, partner) for (row, _), partner in forward.items()
                  if back.get((partner, means.known[row].lang)) == row
                  and _similar_size(means.known[row], means.known[partner])]
        texts = self._store.document_texts(row for pair in mutual for row in pair)
        kept = []
        for row, partner in mutual:
            shared = _numbers_shared(texts.get(row, ""), texts.get(partner, ""))
            if shared is not None and shared < NUMBERS_CONFLICT:
                continue
            cosine = float(means.known[row].vector @ means.known[partner].vector)
            kept.append(Candidate(row, partner, cosine, shared))
        return kept

    def _languages_near(
        self, current: CollectionIndex, means: _Means, rows: list[int], languages: list[str]
    ) -> dict[int, set[str]] | None:
        """The languages to look for each document's translation in: all of them while the
        collection holds at most `LANGUAGES_SEARCHED`, else only those of the documents
        nearest to it in any language (so that a collection with thousands of language
        tags costs one search per document, not thousands)."""
        if len(languages) <= LANGUAGES_SEARCHED or not rows:
            return None
        queries = np.stack([means.known[row].vector for row in rows])
        _, ids, _ = current.search(queries, NEARBY_CHUNKS)
        owners = self._store.chunk_owners(int(i) for i in ids.ravel() if i >= 0)
        means.load(owners.values())
        return {
            row: {means.known[owners[int(i)]].lang for i in found
                  if int(i) in owners and owners[int(i)] in means.known}
            for row, found in zip(rows, ids, strict=True)
        }

    def _nearest(
        self, current: CollectionIndex, means: _Means, documents: Sequence[int], lang: str
    ) -> list[Neighbours]:
        """Each document's nearest documents in `lang`, by the cosine of mean vectors."""
        if not documents:
            return []
        queries = np.stack([means.known[document].vector for document in documents])
        _, ids, _ = current.search(queries, NEIGHBOURS * HITS_PER_NEIGHBOUR, None, [lang])
        owners = self._store.chunk_owners(int(i) for i in ids.ravel() if i >= 0)
        means.load(owners.values())
        found = []
        for row, document in zip(ids, documents, strict=True):
            hit = [owners[int(i)] for i in row if int(i) in owners]
            nearby = [d for d in dict.fromkeys(hit) if d in means.known
                      and means.known[d].lang == lang and d != document]
            mean = means.known[document].vector
            scored = [(d, float(means.known[d].vector @ mean)) for d in nearby]
            found.append(sorted(scored, key=lambda pair: -pair[1])[:NEIGHBOURS])
        return found


def _decide(
    candidates: list[Candidate], means: _Means, link_cosine: float, challenge: bool,
    sets: TranslationSets,
) -> set[int]:
    """Join the sets that `candidates` show to be translations: strong pairs first, best
    first; then pairs that join a set of two or more copies to another set when all their
    copies are alike (a set's copies vouch for each other, so a weaker pair suffices).

    With `challenge`, first: a set linked before this copy arrived may hold another
    document in its language that its partner now likes less. Such sets are returned (their
    rows) to be unlinked and decided again, with everything now known; nothing is joined."""
    ordered = sorted(candidates, key=lambda c: -c.cosine)
    if challenge:
        beaten = _beaten_sets(ordered, means, link_cosine - SET_PAIR_EASING, sets)
        if beaten:
            return beaten
    for candidate in ordered:
        if candidate.strong(link_cosine):
            sets.join(candidate.a, candidate.b)
    weaker = [c for c in ordered if c.cosine >= link_cosine - SET_PAIR_EASING]
    joined = True
    while joined:
        joined = False
        for candidate in weaker:
            if not sets.may_join(candidate.a, candidate.b):
                continue
            first, second = sets.members_of(candidate.a), sets.members_of(candidate.b)
            if len(first) + len(second) < 3:
                continue
            means.load(first + second)
            alike = np.stack([means.known[r].vector for r in first if r in means.known])
            other = np.stack([means.known[r].vector for r in second if r in means.known])
            if float((alike @ other.T).mean()) >= link_cosine - SET_EASING:
                sets.join(candidate.a, candidate.b)
                joined = True
    return set()


def _beaten_sets(
    ordered: list[Candidate], means: _Means, lowest: float, sets: TranslationSets
) -> set[int]:
    """The members of linked sets in which a candidate's partner is held with a copy in
    the candidate's language that the partner is less alike than the candidate."""
    beaten: set[int] = set()
    for candidate in ordered:
        a, b = candidate.a, candidate.b
        if candidate.cosine < lowest or b not in sets or b in sets.keyed or a not in sets:
            continue
        members = sets.members_of(b)
        if a in members or len(members) < 2:
            continue
        means.load(members)
        lang = means.known[a].lang
        rivals = [m for m in members if m in means.known and means.known[m].lang == lang]
        partner = means.known[b].vector
        if any(float(means.known[r].vector @ partner) < candidate.cosine for r in rivals):
            beaten |= set(members)
    return beaten


class _Means:
    """Documents' mean vectors, read from the database once per linking round."""

    def __init__(self, store: Store, collection: CollectionInfo) -> None:
        self._store = store
        self._collection = collection
        self.known: dict[int, DocumentMean] = {}

    def load(self, documents: Iterable[int]) -> None:
        missing = {d for d in documents if d not in self.known}
        if missing:
            self.known.update(self._store.document_means(missing, self._collection))


def _similar_size(a: DocumentMean, b: DocumentMean) -> bool:
    small = min(a.tokens, b.tokens)
    return small >= MIN_TOKENS and max(a.tokens, b.tokens) <= LENGTH_RATIO * small


def _numbers_shared(first: str, second: str) -> float | None:
    """The Jaccard share of the numbers (digits of any script, as values) in two texts;
    None when neither has a number. Translations keep their numbers."""
    a, b = _numbers(first), _numbers(second)
    if not a and not b:
        return None
    return len(a & b) / len(a | b)


def _numbers(text: str) -> set[int]:
    return {int(match) for match in NUMBER.findall(text) if len(match) <= 18}
