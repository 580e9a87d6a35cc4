"""Translation sets: found as documents arrive, kept right on replace, delete and language
change, overridden by the user's own links, and collapsed in search and "more like this"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import add_now
from tests.waiting import wait_until

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample.jsonl"
BASE = "/v1/collections/default"
EIFFEL = {"eiffel-en", "eiffel-fr", "eiffel-ja"}


def load_sample(client: TestClient) -> dict[str, str]:
    """The sample corpus (12 topics, each in 3 languages); each document's topic."""
    documents = [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if line]
    add_now(client, *documents)
    return {d["id"]: d["metadata"]["topic"] for d in documents}


def copies(client: TestClient, doc_id: str) -> set[str]:
    """The document and its translations, as `GET …/documents/{id}` says."""
    response = client.get(f"{BASE}/documents/{doc_id}")
    assert response.status_code == 200, response.text
    found = response.json()["translations"]
    assert found is not None, f"{doc_id} is not linked yet"
    return {doc_id} | {t["id"] for t in found}


def search(client: TestClient, **body: Any) -> list[dict[str, Any]]:
    response = client.post(f"{BASE}/search", json={"k": 10, **body})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_sample_translations_are_found_without_false_merges(client: TestClient) -> None:
    topic = load_sample(client)
    sets = {frozenset(copies(client, doc_id)) for doc_id in topic}
    for members in sets:  # never two topics in one set
        assert len({topic[m] for m in members}) == 1, members
    whole = [s for s in sets if len(s) == 3]
    assert len(whole) >= 8, sets  # measured: 10 of the 12 topics are whole
    assert frozenset(EIFFEL) in sets
    stats = client.get(BASE).json()["translations"]
    linked = [s for s in sets if len(s) > 1]
    assert stats == {"sets": len(linked), "documents": sum(map(len, linked)), "unlinked": 0}


def test_collapse_shows_one_copy_with_its_translations(client: TestClient) -> None:
    load_sample(client)
    question = "How tall is the Eiffel Tower?"
    collapsed = search(client, query=question)
    assert collapsed[0]["id"] in EIFFEL
    assert sum(r["id"] in EIFFEL for r in collapsed) == 1
    others = collapsed[0]["translations"]
    assert {t["id"] for t in others} | {collapsed[0]["id"]} == EIFFEL
    assert all(t["lang"] and t["score"] is not None for t in others)
    assert [t["score"] for t in others] == sorted((t["score"] for t in others), reverse=True)
    # Every result is its own set: no two results share a copy.
    seen: set[str] = set()
    for result in collapsed:
        members = {result["id"]} | {t["id"] for t in result["translations"]}
        assert not members & seen, result
        seen |= members
    # Without collapse the copies are results of their own; with a preferred language the
    # set keeps its place and shows that copy.
    every = search(client, query=question, collapse="none")
    assert sum(r["id"] in EIFFEL for r in every) == 3 and every[0]["translations"] is None
    preferred = search(client, query=question, prefer_languages=["ja", "fr"])
    assert preferred[0]["id"] == "eiffel-ja"
    assert {t["id"] for t in preferred[0]["translations"]} == {"eiffel-en", "eiffel-fr"}
    assert search(client, query=question, prefer_languages=["ko"])[0]["id"] == collapsed[0]["id"]
    get = client.get("/v1/search", params={"q": question, "prefer": "fr"}).json()["results"]
    assert get[0]["id"] == "eiffel-fr"
    assert client.get("/v1/search", params={"q": question, "collapse": "none"}).json()[
        "results"][0]["translations"] is None


@pytest.mark.parametrize("mode", ["dense", "hybrid", "lexical"])
def test_collapse_works_with_every_filter_and_paging(client: TestClient, mode: str) -> None:
    # An IVF collection: the sample and 30 notes make 66 chunks, enough to train one list.
    created = client.post("/v1/collections", json={"name": "ivf", "index": {"type": "ivf"}})
    assert created.status_code == 201, created.text
    documents = [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if line]
    notes = [{"id": f"note-{n}", "lang": "en", "metadata": {"topic": "notes"},
              "text": f"Note {n}: water the garden plants on day {n}."} for n in range(30)]
    add_now(client, *documents, *notes, collection="ivf")
    topic = {d["id"]: d["metadata"]["topic"] for d in documents + notes}
    wait_until(lambda: client.get("/v1/collections/ivf").json()["index"].get("kind") == "ivf",
               60, "the index to be rebuilt as an IVF")
    question = "Eiffel Tower Kremlin Wall" if mode == "lexical" else "a famous tower in Paris"
    narrowed: list[dict[str, Any]] = [
        {},
        {"languages": ["en", "ja"]},
        {"filter": {"topic": {"$in": ["eiffel-tower", "mount-fuji", "coffee"]}}},
        {"filter": {"topic": {"$ne": "eiffel-tower"}}, "languages": ["en", "fr", "ja"]},
    ]

    def ask(**body: Any) -> list[dict[str, Any]]:
        response = client.post("/v1/collections/ivf/search",
                               json={"query": question, "mode": mode, **body})
        assert response.status_code == 200, response.text
        return response.json()["results"]

    for narrowing in narrowed:
        results = ask(k=10, **narrowing)
        assert results, narrowing
        shown: set[str] = set()
        for result in results:
            members = {result["id"]} | {t["id"] for t in result["translations"]}
            assert not members & shown, (narrowing, result)  # each set once
            shown |= members
            if "languages" in narrowing:
                assert result["lang"] in narrowing["languages"]
            spec = narrowing.get("filter", {}).get("topic")
            for member in members:  # a filter bounds the copies named, too
                if spec and "$in" in spec:
                    assert topic[member] in spec["$in"], (narrowing, result)
                if spec and "$ne" in spec:
                    assert topic[member] != spec["$ne"], (narrowing, result)
        # Pages follow one another without a set on two of them.
        pages = ask(k=3, **narrowing) + ask(k=3, offset=3, **narrowing)
        assert [r["id"] for r in pages] == [r["id"] for r in results[:6]], narrowing


def test_replace_delete_and_a_language_change_relink(client: TestClient) -> None:
    documents = {d["id"]: d for d in map(json.loads, SAMPLE.read_text("utf-8").splitlines())}
    load_sample(client)
    assert copies(client, "eiffel-en") == EIFFEL
    # Delete one copy: the others stay together.
    assert client.delete(f"{BASE}/documents/eiffel-ja").status_code == 204
    assert copies(client, "eiffel-en") == {"eiffel-en", "eiffel-fr"}
    # Replace one with another text: it leaves the set, and the set is gone.
    add_now(client, {"id": "eiffel-fr", "lang": "fr",
                     "text": "Le café est une boisson préparée à partir de grains torréfiés."})
    assert copies(client, "eiffel-en") == {"eiffel-en"}
    assert "eiffel-en" not in copies(client, "eiffel-fr")
    # Give a copy the language of another copy (same text): a set holds one per language.
    wall = copies(client, "wall-en")
    assert "wall-es" in wall
    add_now(client, {**documents["wall-es"], "lang": "en"})
    assert "wall-es" not in copies(client, "wall-en")
    assert "wall-en" not in copies(client, "wall-es")
    # The collection's counts follow.
    stats = client.get(BASE).json()["translations"]
    assert stats["unlinked"] == 0 and stats["documents"] >= 2 * stats["sets"]


def test_the_users_own_links_win(client: TestClient) -> None:
    documents = {d["id"]: d for d in map(json.loads, SAMPLE.read_text("utf-8").splitlines())}
    # Unrelated texts are one set when the user says so, by the original's id or a group.
    add_now(
        client,
        {"id": "manual-en", "lang": "en", "text": "Press the red button to start the pump."},
        {"id": "manual-de", "lang": "de", "text": "Der Hund schläft im Garten.",
         "metadata": {"translation_of": "manual-en"}},
        {"id": "note-fr", "lang": "fr", "text": "Il pleut sur la ville.",
         "metadata": {"translation_group": "notes"}},
        {"id": "note-es", "lang": "es", "text": "Mañana vamos a la playa.",
         "metadata": {"translation_group": "notes"}},
    )
    assert copies(client, "manual-en") == {"manual-en", "manual-de"}
    assert copies(client, "note-es") == {"note-fr", "note-es"}
    # The original may come after its translation, and a copy may join later.
    add_now(client, {"id": "guide-it", "lang": "it", "text": "Ruotare la manopola.",
                     "metadata": {"translation_of": "guide-en"}})
    assert copies(client, "guide-it") == {"guide-it"}
    add_now(client, {"id": "guide-en", "lang": "en", "text": "The cat sat on the mat."})
    assert copies(client, "guide-en") == {"guide-en", "guide-it"}
    # A chain (C names B, B names A) is one set, whatever the order the copies arrive in.
    add_now(client, {"id": "c-ja", "lang": "ja", "text": "猫が寝ている。",
                     "metadata": {"translation_of": "b-fr"}})
    add_now(client, {"id": "a-en", "lang": "en", "text": "A cat sleeps."})
    add_now(client, {"id": "b-fr", "lang": "fr", "text": "Un chat dort.",
                     "metadata": {"translation_of": "a-en"}})
    assert copies(client, "a-en") == copies(client, "c-ja") == {"a-en", "b-fr", "c-ja"}
    # A user's key takes a document out of the set found automatically.
    add_now(client, *(documents[i] for i in sorted(EIFFEL)))
    assert copies(client, "eiffel-en") == EIFFEL
    add_now(client, {**documents["eiffel-fr"],
                     "metadata": {**documents["eiffel-fr"]["metadata"],
                                  "translation_group": "tour"}})
    assert copies(client, "eiffel-fr") == {"eiffel-fr"}
    assert "eiffel-fr" not in copies(client, "eiffel-en")
    # Leaving the user's set: the copy is linked by the rules again.
    add_now(client, {"id": "manual-de", "lang": "de", "text": "Der Hund schläft im Garten."})
    assert copies(client, "manual-en") == {"manual-en"}


def test_similar_leaves_out_the_documents_translations(client: TestClient) -> None:
    load_sample(client)
    url = f"{BASE}/documents/eiffel-en/similar"
    collapsed = client.get(url, params={"k": 5}).json()["results"]
    assert not {r["id"] for r in collapsed} & EIFFEL
    assert all(r["translations"] is not None for r in collapsed)
    every = client.get(url, params={"k": 5, "collapse": "none"}).json()["results"]
    assert {r["id"] for r in every[:2]} == EIFFEL - {"eiffel-en"}


def test_collapse_and_group_by_do_not_combine(client: TestClient) -> None:
    response = client.post(f"{BASE}/search", json={
        "query": "tower", "group_by": "lang", "collapse": "translations"})
    assert response.status_code == 422
    assert "collapse and group_by do not combine" in response.json()["error"]["message"]
    grouped = client.post(f"{BASE}/search", json={"query": "tower", "group_by": "lang"})
    assert grouped.status_code == 200, grouped.text
    for bad in ({"collapse": "sets"}, {"prefer_languages": ["klingon"]},
                {"prefer_languages": "en"}):
        response = client.post(f"{BASE}/search", json={"query": "tower", **bad})
        assert response.status_code == 422, (bad, response.text)


def test_duplicates_streams_copies_translations_and_near_duplicates(client: TestClient) -> None:
    documents = {d["id"]: d for d in map(json.loads, SAMPLE.read_text("utf-8").splitlines())}
    load_sample(client)
    text = documents["eiffel-en"]["text"]
    add_now(
        client,
        {"id": "eiffel-copy", "lang": "en", "text": text},
        {"id": "eiffel-edited", "lang": "en", "text": text.replace("about 330", "roughly 330")},
    )
    response = client.post(f"{BASE}/duplicates", json={})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    *groups, end = [json.loads(line) for line in response.text.splitlines()]
    assert end == {"done": True, "groups": len(groups)}
    by_kind: dict[str, list[set[str]]] = {}
    for group in groups:
        assert 0 < group["score"] <= 1 and all(d["lang"] for d in group["documents"])
        by_kind.setdefault(group["kind"], []).append({d["id"] for d in group["documents"]})
    assert by_kind["exact"] == [{"eiffel-en", "eiffel-copy"}]
    assert any({"eiffel-edited", "eiffel-en"} <= near for near in by_kind["near"])
    assert all(len(near) >= 2 for near in by_kind["near"])
    assert len(by_kind["translations"]) == client.get(BASE).json()["translations"]["sets"]
    only = client.post(f"{BASE}/duplicates", json={"kinds": ["exact"]}).text.splitlines()
    assert [json.loads(line).get("kind") for line in only] == ["exact", None]
    strict = client.post(f"{BASE}/duplicates", json={"kinds": ["near"], "near_cosine": 1.0})
    assert all(json.loads(line)["score"] >= 1.0 - 1e-6
               for line in strict.text.splitlines()[:-1])
    for body, status, message in [
        ({"near_cosine": 2}, 422, "near_cosine"),
        ({"kinds": ["bogus"]}, 422, "kinds"),
        ({"kinds": []}, 422, "kinds"),
        ({"bogus": 1}, 422, "bogus"),
    ]:
        bad = client.post(f"{BASE}/duplicates", json=body)
        assert bad.status_code == status and message in bad.json()["error"]["message"], body
    missing = client.post("/v1/collections/nope/duplicates", json={})
    assert missing.status_code == 404
    # One scan at a time per server: a second while the first is being read is a 429, and
    # a stream dropped unread frees the server for the next soon after.
    with client.stream("POST", f"{BASE}/duplicates", json={}) as first:
        second = client.post(f"{BASE}/duplicates", json={})
        assert second.status_code == 429 and second.json()["error"]["code"] == "busy"
        assert first.status_code == 200
    wait_until(lambda: client.post(f"{BASE}/duplicates", json={"kinds": ["exact"]})
               .status_code == 200, 20, "the dropped scan to free the server")
