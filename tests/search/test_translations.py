"""Linking translation sets at scale and under races, on SQLite and PostgreSQL, with vectors
written straight to the store (the rules are tested on real embeddings in the API tests):
a backlog is worked through newest first in bounded calls, and linkers racing in several
threads leave every document in exactly one consistent set."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest
from sqlalchemy import select, update

from search.engine import Engine
from search.store.records import ChunkRecord, DocumentRecord
from search.store.tables import Document
from search.translations import LANGUAGES_SEARCHED, LINK_BATCH, TranslationLinker
from tests.conftest import BACKENDS, Databases, both_databases

LANGS = ("en", "de", "fr")
TEXTS = 300  # "paragraphs", each in the three languages: 900 documents


@pytest.fixture(params=BACKENDS)
def databases(request: pytest.FixtureRequest) -> Databases:
    return both_databases(request)


def write_parallel_corpus(engine: Engine) -> None:
    """TEXTS random unit vectors, each written in three languages with a little noise
    (translations), and distinct numbers per text, 40 tokens each."""
    collection = engine.store.get_collection("default")
    chance = np.random.default_rng(3)
    base = chance.normal(size=(TEXTS, collection.dimension)).astype(np.float32)
    documents = []
    for text in range(TEXTS):
        for lang in LANGS:
            vector = base[text] + 0.15 * chance.normal(size=collection.dimension)
            vector = (vector / np.linalg.norm(vector)).astype(np.float32)
            body = f"text {text} in {lang}, written in {1000 + text}"
            documents.append((
                DocumentRecord(f"{lang}-{text}", body, None, None, lang, f"{lang}{text}", {}),
                [ChunkRecord(0, 0, len(body), 40, lang, body, vector)],
            ))
    for start in range(0, len(documents), 300):
        engine.store.write_documents(collection.id, documents[start:start + 300])


def stored_sets(engine: Engine) -> dict[str, int | None]:
    with engine.store.session() as session:
        rows = session.execute(select(Document.id, Document.external_id,
                                      Document.translation_set)).all()
    sets: dict[int | None, list[int]] = {}
    for row_id, _, linked in rows:
        sets.setdefault(linked, []).append(row_id)
    for linked, members in sets.items():  # a set is named by its smallest member
        assert linked is None or linked == min(members), (linked, members)
    return {external_id: linked for _, external_id, linked in rows}


def unlink_all(engine: Engine) -> None:
    """What the upgrade that added translation sets leaves: nothing linked."""
    with engine.store.writing() as session:
        session.execute(update(Document).values(translation_set=None))


def test_a_backlog_is_linked_newest_first_in_bounded_calls(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine(translations=False)
    write_parallel_corpus(engine)
    current = engine.indexes.get(engine.store.get_collection("default"))
    linker = TranslationLinker(engine.store)
    assert linker.link_pending(current, rounds=1) == LINK_BATCH  # one batch, no more
    sets = stored_sets(engine)
    assert sets[f"{LANGS[-1]}-{TEXTS - 1}"] is not None  # the newest first
    assert sets[f"{LANGS[0]}-0"] is None  # the oldest still waits
    while linker.link_pending(current, rounds=2):
        pass
    sets = stored_sets(engine)
    assert None not in sets.values()
    together = sum(len({sets[f"{lang}-{text}"] for lang in LANGS}) == 1 for text in range(TEXTS))
    assert together >= 0.95 * TEXTS
    for text in range(TEXTS):  # never two texts in one set
        for other in (text - 1, text + 1):
            if 0 <= other < TEXTS:
                assert sets[f"en-{text}"] != sets[f"en-{other}"]


def test_racing_linkers_give_each_document_one_set(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(translations=False)
    write_parallel_corpus(engine)
    current = engine.indexes.get(engine.store.get_collection("default"))
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def link() -> None:
        start.wait()
        try:
            linker = TranslationLinker(engine.store)
            while linker.link_pending(current, rounds=1):
                pass
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=link) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    sets = stored_sets(engine)
    assert None not in sets.values()
    together = sum(len({sets[f"{lang}-{text}"] for lang in LANGS}) == 1 for text in range(TEXTS))
    assert together >= 0.95 * TEXTS
    # What another unlinked run decides alone is what the race decided.
    unlink_all(engine)
    linker = TranslationLinker(engine.store)
    while linker.link_pending(current):
        pass
    assert stored_sets(engine) == sets


def test_past_many_languages_translations_are_still_found(
    make_engine: Callable[..., Engine],
) -> None:
    """Past LANGUAGES_SEARCHED languages, a document's translation is looked for only in the
    languages of the documents nearest to it (NEARBY_CHUNKS bounds the searches): still
    found."""
    engine = make_engine(translations=False)
    collection = engine.store.get_collection("default")
    chance = np.random.default_rng(5)
    tags = [f"{a}{b}" for a in "abcdefgh" for b in "mnopq"]  # 40 language tags
    assert len(tags) > LANGUAGES_SEARCHED

    def unit(vector: np.ndarray) -> np.ndarray:
        return (vector / np.linalg.norm(vector)).astype(np.float32)

    documents = []
    for n, lang in enumerate(tags):  # a few unrelated documents in every language
        for m in range(3):
            body = f"filler {n} {m}"
            documents.append((
                DocumentRecord(f"{lang}-{m}", body, None, None, lang, f"f{n}-{m}", {}),
                [ChunkRecord(0, 0, len(body), 40, lang, body,
                             unit(chance.normal(size=collection.dimension)))],
            ))
    for text in range(20):  # and 20 texts in two of them, as translations
        base = chance.normal(size=collection.dimension)
        for lang in ("am", "hq"):
            body = f"text {text} in {lang}, from {1900 + text}"
            vector = unit(base + 0.15 * chance.normal(size=collection.dimension))
            documents.append((
                DocumentRecord(f"{lang}-text-{text}", body, None, None, lang, f"{lang}{text}", {}),
                [ChunkRecord(0, 0, len(body), 40, lang, body, vector)],
            ))
    engine.store.write_documents(collection.id, documents)
    current = engine.indexes.get(collection)
    linker = TranslationLinker(engine.store)
    while linker.link_pending(current):
        pass
    sets = stored_sets(engine)
    assert all(sets[f"am-text-{t}"] == sets[f"hq-text-{t}"] for t in range(20))
    assert len({sets[f"am-text-{t}"] for t in range(20)}) == 20
