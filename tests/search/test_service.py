"""Search end to end on the sample corpus: cross-lingual ranking, grouping, filters, snippets."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from indexer.pipeline import Ingestor
from search.engine import Engine
from search.errors import CollectionNotFound, ModelMismatch
from search.schemas import DocumentIn, SearchRequest
from search.store.records import CollectionInfo


def search(engine: Engine, query: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return engine.searcher.search("default", SearchRequest(query=query, **kwargs))


def test_a_german_question_finds_the_eiffel_tower_in_other_languages(sample_engine: Engine) -> None:
    response = search(sample_engine, "Wie hoch ist der Eiffelturm?", k=5)
    assert response.query_language == "de"
    assert {r.id for r in response.results[:3]} == {"eiffel-en", "eiffel-fr", "eiffel-ja"}
    assert response.took_ms > 0
    scores = [r.score for r in response.results]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    ("query", "topic"),
    [
        ("Who was the first person on the Moon?", "moon-landing"),
        ("¿Dónde se originó el café?", "coffee"),
        ("Какой высоты гора Фудзи?", "mount-fuji"),
        ("长城有多长？", "great-wall"),
        ("ताजमहल किसने बनवाया?", "taj-mahal"),
    ],
)
def test_questions_in_many_languages_find_their_topic(
    sample_engine: Engine, query: str, topic: str
) -> None:
    [best] = search(sample_engine, query, k=1).results
    assert best.metadata["topic"] == topic


def test_one_result_per_document_and_k_is_respected(sample_engine: Engine) -> None:
    results = search(sample_engine, "volcano eruption", k=100).results
    assert len(results) == len({r.id for r in results}) == 36  # every sample document
    assert len(search(sample_engine, "volcano eruption", k=3).results) == 3


def test_language_filter(sample_engine: Engine) -> None:
    results = search(sample_engine, "How tall is the Eiffel Tower?", k=5, languages=["ja"]).results
    assert results[0].id == "eiffel-ja"
    assert {r.lang for r in results} == {"ja"}


def test_metadata_filter(sample_engine: Engine) -> None:
    results = search(sample_engine, "mountain", k=10, filter={"topic": "coffee"}).results
    assert sorted(r.id for r in results) == ["coffee-ar", "coffee-en", "coffee-it"]


def test_snippet_offsets_point_into_the_document(sample_engine: Engine) -> None:
    collection = sample_engine.store.get_collection("default")
    for result in search(sample_engine, "Apollo 11", k=5).results:
        stored = sample_engine.store.find_document(collection.id, result.id)
        assert stored is not None
        assert stored.text[result.snippet.start : result.snippet.end] == result.snippet.text


def test_the_best_chunk_of_a_long_document_is_the_snippet(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine(chunk_tokens=64, chunk_overlap=0)
    filler = "The weather report for the coast says rain and wind all week. " * 12
    text = filler + "\n\nHoney bees make honey from the nectar of flowers in their hive."
    collection = engine.store.get_collection("default")
    Ingestor(engine.store, engine.embedder, collection).ingest([DocumentIn(id="long", text=text)])
    [result] = engine.searcher.search(
        "default", SearchRequest(query="Wie machen Bienen Honig?", k=1)
    ).results
    assert "Honey bees" in result.snippet.text and result.snippet.start > 0


def test_deleted_documents_disappear(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    collection = engine.store.get_collection("default")
    ingestor = Ingestor(engine.store, engine.embedder, collection)
    ingestor.ingest(
        [DocumentIn(id="a", text="Tea is a drink."), DocumentIn(id="b", text="Coffee.")]
    )
    assert {r.id for r in search(engine, "tea").results} == {"a", "b"}
    engine.store.delete_document(collection.id, "a")
    assert {r.id for r in search(engine, "tea").results} == {"b"}


def test_unknown_collection(sample_engine: Engine) -> None:
    with pytest.raises(CollectionNotFound, match="'nope' does not exist"):
        sample_engine.searcher.search("nope", SearchRequest(query="tea"))


def test_a_collection_of_another_model_is_refused(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    engine.store.create_collection(CollectionInfo(0, "other", "some/other-model", 384, 256, 0))
    with pytest.raises(ModelMismatch, match="some/other-model"):
        engine.searcher.search("other", SearchRequest(query="tea"))


@pytest.mark.parametrize(
    "body",
    [
        {"query": ""},
        {"query": "   "},
        {"query": "tea", "k": 0},
        {"query": "tea", "k": 101},
        {"query": "tea", "colour": "red"},
    ],
)
def test_bad_requests_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SearchRequest.model_validate(body)


def test_pages_follow_one_another_without_overlap(sample_engine: Engine) -> None:
    whole = search(sample_engine, "mountain", k=12)
    first = search(sample_engine, "mountain", k=5)
    second = search(sample_engine, "mountain", k=5, offset=5)
    assert [r.id for r in first.results + second.results] == [r.id for r in whole.results[:10]]
    assert first.next_offset == 5 and second.next_offset == 10
    last = search(sample_engine, "mountain", k=10, offset=30)
    assert len(last.results) == 6 and last.next_offset is None  # 36 documents in all
    assert search(sample_engine, "mountain", k=10, offset=40).results == []


def test_a_page_deeper_than_the_limit_is_refused() -> None:
    with pytest.raises(ValidationError, match="pages reach the first 1000 results"):
        SearchRequest(query="tea", k=10, offset=991)


def test_filters_see_metadata_changed_without_new_text(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    collection = engine.store.get_collection("default")
    ingestor = Ingestor(engine.store, engine.embedder, collection)
    ingestor.ingest([DocumentIn(id="a", text="Tea is a drink.", metadata={"shelf": 1})])
    assert [r.id for r in search(engine, "tea", filter={"shelf": 1}).results] == ["a"]
    [result] = ingestor.ingest([DocumentIn(id="a", text="Tea is a drink.", metadata={"shelf": 2})])
    assert result.status == "updated"
    assert search(engine, "tea", filter={"shelf": 1}).results == []
    [found] = search(engine, "tea", filter={"shelf": {"$gte": 2}}).results
    assert found.id == "a" and found.metadata == {"shelf": 2}
    index = engine.indexes.get(collection)
    assert index.index.count == len(index.filters) == 1  # the old chunk left both
    buried = len(engine.store.tombstones_after(collection.id, 0)[0])
    retitled = DocumentIn(id="a", text="Tea is a drink.", title="Tea", metadata={"shelf": 2})
    ingestor.ingest([retitled])
    assert len(engine.store.tombstones_after(collection.id, 0)[0]) == buried  # title only


@pytest.mark.parametrize("index_type", ["ivf", "ivf_sq8"])
def test_filters_inside_an_ivf_index_find_every_match(
    make_engine: Callable[..., Engine], sample_documents: list[DocumentIn], index_type: str
) -> None:
    """On IVF (forced on the small sample, cut in short chunks, with 2 lists and 1 probed) a
    filter still finds the k best of its matching documents, as exact search does."""
    engine = make_engine()
    settings = {"type": index_type, "nlist": 2, "nprobe": 1}
    ivf = engine.store.create_collection(
        CollectionInfo(0, "ivf", engine.embedder.name, 384, 16, 0, index_settings=settings)
    )
    flat = engine.store.create_collection(
        CollectionInfo(0, "flat", engine.embedder.name, 384, 16, 0)
    )
    for collection in (ivf, flat):
        Ingestor(engine.store, engine.embedder, collection).ingest(sample_documents)
    assert engine.indexes.get(ivf).index.plan.kind == index_type
    for languages, spec in [(["ja"], None), (["ar", "hi"], None), (None, {"topic": "coffee"}),
                            (None, {"topic": {"$in": ["great-wall", "mount-fuji"]}})]:
        request = SearchRequest(query="How tall is it?", k=5, languages=languages, filter=spec)
        got = engine.searcher.search("ivf", request).results
        want = engine.searcher.search("flat", request).results
        assert [r.id for r in got] == [r.id for r in want], (languages, spec)
        assert len(got) == min(5, len(want))
