"""Lexical and hybrid search through the engine: the lexical view follows the database like
the FAISS view, words are found in every script, phrases bind, highlights point at the words,
and hybrid search keeps what dense search finds across languages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from indexer.pipeline import Ingestor
from search.engine import Engine
from search.index_manager import IndexManager
from search.lexical_index import LexicalIndex
from search.lexical_tokens import tokenize
from search.schemas import DocumentIn, SearchRequest, SearchResponse

CODES = [
    DocumentIn(id="e4471", lang="en", text="Printer error E-4471: paper is jammed in tray 2."),
    DocumentIn(id="e4417", lang="de", text="Druckerfehler E-4417: Die Tonerkartusche ist leer."),
    DocumentIn(id="e4714", lang="fr", text="Erreur d'imprimante E-4714 : le capot est ouvert."),
]
UNSPACED = [
    DocumentIn(id="zh", lang="zh", text="东京塔是日本东京的一座电波塔，高三百三十三米。"),
    DocumentIn(id="ja", lang="ja", text="富士山は日本でいちばん高い山です。"),
    DocumentIn(id="th", lang="th", text="กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย"),
    DocumentIn(id="en", lang="en", text="Tokyo Tower is a communications tower in Tokyo."),
]


def search(engine: Engine, query: str, mode: str = "hybrid", **options: object) -> SearchResponse:
    request = SearchRequest(query=query, mode=mode, **options)  # type: ignore[arg-type]
    return engine.searcher.search("default", request)


def ids(response: SearchResponse) -> list[str]:
    return [r.id for r in response.results]


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    engine = make_engine()
    collection = engine.store.get_collection("default")
    Ingestor.for_engine(engine, collection).ingest([*CODES, *UNSPACED])
    return engine


@pytest.mark.parametrize(("query", "found"), [("东京", "zh"), ("富士", "ja"), ("ไทย", "th")])
def test_two_characters_find_a_word_in_scripts_without_spaces(
    engine: Engine, query: str, found: str
) -> None:
    assert ids(search(engine, query, mode="lexical")) == [found]


def test_an_identifier_decides_across_languages(engine: Engine) -> None:
    question = "¿Qué significa el error de impresora E-4417?"
    hybrid = search(engine, question, k=3)
    assert ids(hybrid)[0] == "e4417"
    best = hybrid.results[0]
    assert best.lexical_rank == 1 and best.lexical_score is not None and best.lexical_score > 0
    assert best.dense_score is not None and best.score > best.dense_score
    assert [best.snippet.text[a:b] for a, b in best.snippet.highlights] == ["E-4417"]


def test_highlights_point_at_the_matched_words(engine: Engine) -> None:
    [result] = search(engine, "PAPER jammed", mode="lexical").results
    marked = [result.snippet.text[a:b] for a, b in result.snippet.highlights]
    assert marked == ["paper", "jammed"]
    [tower] = search(engine, "东京", mode="lexical").results
    assert [tower.snippet.text[a:b] for a, b in tower.snippet.highlights] == ["东京", "东京"]


def test_dense_mode_has_no_lexical_side(engine: Engine) -> None:
    results = search(engine, "printer error", mode="dense", k=3).results
    assert all(r.lexical_score is None and r.lexical_rank is None for r in results)
    assert all(r.snippet.highlights == [] for r in results)
    assert [r.dense_rank for r in results] == [1, 2, 3]


def test_a_question_whose_words_match_nothing_ranks_as_dense(engine: Engine) -> None:
    question = "Welcher Turm steht in der Hauptstadt?"
    dense, hybrid = search(engine, question, mode="dense"), search(engine, question)
    assert ids(hybrid) == ids(dense)
    assert [r.score for r in hybrid.results] == [r.score for r in dense.results]


def test_phrases_bind(engine: Engine) -> None:
    assert ids(search(engine, '"paper is jammed"', mode="lexical")) == ["e4471"]
    assert ids(search(engine, '"jammed is paper"', mode="lexical")) == []
    # hybrid: the phrase binds results in the question's language, the others stay
    hybrid = ids(search(engine, 'printer "toner is empty"', k=10))
    assert "e4471" not in hybrid and {"e4417", "e4714"} <= set(hybrid)


@pytest.mark.parametrize(
    ("query", "mode", "message"),
    [
        ('the "unclosed phrase', "hybrid", "unclosed quote"),
        ('an "" empty phrase', "lexical", "no words in it"),
        ("?!", "lexical", "no words to match"),
    ],
)
def test_unreadable_questions_are_refused_with_the_reason(
    query: str, mode: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        SearchRequest(query=query, mode=mode)  # type: ignore[arg-type]
    SearchRequest(query=query, mode="dense")  # dense reads any text


def test_the_lexical_view_follows_inserts_replacements_and_deletes(engine: Engine) -> None:
    collection = engine.store.get_collection("default")
    ingestor = Ingestor.for_engine(engine, collection)
    ingestor.ingest([DocumentIn(id="new", lang="en", text="Zebra crossings are striped.")])
    assert ids(search(engine, "zebra", mode="lexical")) == ["new"]
    ingestor.ingest([DocumentIn(id="new", lang="en", text="Giraffes have long necks.")])
    assert ids(search(engine, "zebra", mode="lexical")) == []
    assert ids(search(engine, "giraffes", mode="lexical")) == ["new"]
    assert engine.store.delete_document(collection.id, "new")
    assert ids(search(engine, "giraffes", mode="lexical")) == []


def test_a_snapshot_reloads_the_same_lexical_view(engine: Engine, tmp_path: object) -> None:
    collection = engine.store.get_collection("default")
    engine.indexes.snapshot(engine.indexes.get(collection))
    before = search(engine, "Tokyo tower 东京", mode="lexical")
    reloaded = IndexManager(engine.store, engine.settings.index_dir, 1000).get(collection)
    assert reloaded.lexical is not None and reloaded.lexical.count == len(CODES) + len(UNSPACED)
    words = tuple(dict.fromkeys(t.text for t in tokenize("Tokyo tower 东京")))
    hits = reloaded.lexical_search(words, 10)
    assert [int(i) for i in hits.ids] == [
        int(i) for i in engine.indexes.get(collection).lexical_search(words, 10).ids
    ]
    assert len(before.results) == len(hits.ids)


def test_filters_apply_to_the_lexical_side(engine: Engine) -> None:
    found = search(engine, "E-4471 E-4417 E-4714", mode="lexical", languages=["de", "fr"])
    assert set(ids(found)) == {"e4417", "e4714"}


def test_ties_are_broken_by_chunk_id_however_segments_were_written(tmp_path: Path) -> None:
    index = LexicalIndex(tmp_path / "lexical")
    for first in (30, 10, 20, 0):  # four commits: four segments, written out of id order
        index.add(np.arange(first + 1, first + 11), ["the same words"] * 10)
        index.commit()
    hits = index.search(["words"], 5)
    assert hits.ids.tolist() == [1, 2, 3, 4, 5] and len(set(hits.scores.tolist())) == 1
