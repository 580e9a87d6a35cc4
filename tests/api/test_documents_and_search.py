"""Adding, replacing, reading and deleting documents, and searching them, over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import add_now, search_ids, wait_for_job

EIFFEL = {
    "id": "eiffel",
    "text": "The Eiffel Tower in Paris is 330 metres tall.",
    "lang": "en",
    "title": "<img src=x onerror=alert(1)>",
    "metadata": {"topic": "paris"},
}
FUJI = {
    "id": "fuji",
    "text": "Der Fuji ist mit 3776 Metern der höchste Berg Japans.",
    "metadata": {"topic": "japan"},
}


def test_wait_makes_documents_searchable_at_once(client: TestClient) -> None:
    results = add_now(client, EIFFEL, FUJI)
    assert [(r["id"], r["status"], r["chunks"]) for r in results] == [
        ("eiffel", "created", 1),
        ("fuji", "created", 1),
    ]
    collection = client.get("/v1/collections/default").json()
    assert collection["languages"] == {"de": 1, "en": 1}  # Fuji's language was detected
    response = client.post(
        "/v1/collections/default/search", json={"query": "Wie hoch ist der Eiffelturm?", "k": 1}
    )
    body = response.json()
    assert body["query_language"] == "de" and body["took_ms"] > 0
    timing = dict(part.split(";dur=") for part in response.headers["server-timing"].split(", "))
    assert set(timing) == {
        "embed", "index", "lexical", "fetch", "language", "translations", "total"}
    assert 0 < float(timing["embed"]) < float(timing["total"]) == body["took_ms"]
    [hit] = body["results"]
    assert hit["id"] == "eiffel" and hit["title"] == "<img src=x onerror=alert(1)>"
    assert hit["snippet"] == {
        "text": EIFFEL["text"], "start": 0, "end": len(EIFFEL["text"]), "highlights": []
    }
    assert hit["lang"] == "en" and hit["metadata"] == {"topic": "paris"}


def test_same_id_replaces_and_same_text_is_a_no_op(client: TestClient) -> None:
    add_now(client, EIFFEL)
    assert add_now(client, EIFFEL)[0]["status"] == "unchanged"
    changed = {**EIFFEL, "text": "La tour Eiffel mesure 330 mètres."}
    assert add_now(client, changed)[0]["status"] == "replaced"
    document = client.get("/v1/collections/default/documents/eiffel").json()
    assert document["text"] == changed["text"] and document["lang"] == "en"


def test_documents_as_a_job(client: TestClient) -> None:
    accepted = client.post("/v1/collections/default/documents", json={"documents": [EIFFEL, FUJI]})
    assert accepted.status_code == 202
    job = wait_for_job(client, accepted.json()["job_id"])
    assert (job["status"], job["total"], job["processed"], job["failed"]) == ("succeeded", 2, 2, 0)
    assert set(search_ids(client, "Mount Fuji")) == {"eiffel", "fuji"}


def test_delete_removes_from_results(client: TestClient) -> None:
    add_now(client, EIFFEL, FUJI)
    assert client.delete("/v1/collections/default/documents/fuji").status_code == 204
    assert search_ids(client, "Fuji") == ["eiffel"]
    assert client.get("/v1/collections/default/documents/fuji").status_code == 404
    assert client.delete("/v1/collections/default/documents/fuji").status_code == 404


def test_ids_with_slashes(client: TestClient) -> None:
    add_now(client, {**EIFFEL, "id": "wiki/en/Eiffel_Tower"})
    assert client.get("/v1/collections/default/documents/wiki/en/Eiffel_Tower").status_code == 200


def test_filters_and_the_get_form(client: TestClient) -> None:
    add_now(client, EIFFEL, FUJI)
    assert search_ids(client, "mountain", languages=["en"]) == ["eiffel"]
    assert search_ids(client, "tower", filter={"topic": "japan"}) == ["fuji"]
    assert search_ids(client, "tower", nprobe=4)[0] == "eiffel"
    got = client.get("/v1/search", params={"q": "Eiffelturm", "k": 1, "lang": ["en", "de"]})
    assert [r["id"] for r in got.json()["results"]] == ["eiffel"]


def test_search_modes_over_rest(client: TestClient) -> None:
    add_now(client, EIFFEL, FUJI)
    for mode in ("dense", "lexical", "hybrid"):
        got = client.get("/v1/search", params={"q": "Eiffel", "mode": mode}).json()["results"]
        posted = client.post(
            "/v1/collections/default/search", json={"query": "Eiffel", "mode": mode}
        ).json()["results"]
        assert got == posted and got[0]["id"] == "eiffel", mode
        assert (got[0]["dense_score"] is None) == (mode == "lexical")
        assert (got[0]["lexical_score"] is None) == (mode == "dense")
    assert [r["id"] for r in client.get(
        "/v1/search", params={"q": '"Eiffel Tower"', "mode": "lexical"}
    ).json()["results"]] == ["eiffel"]


def test_search_errors(client: TestClient) -> None:
    cases = [
        ("/v1/collections/default/search", {"query": "tea", "k": 0}, 422, "k:"),
        ("/v1/collections/default/search", {"query": "tea", "k": 10000}, 422, "k:"),
        ("/v1/collections/default/search", {"query": "  "}, 422, "query is empty"),
        ("/v1/collections/default/search", {"query": "tea", "sort": "date"}, 422, "sort:"),
        ("/v1/collections/nope/search", {"query": "tea"}, 404, "'nope' does not exist"),
        ("/v1/collections/default/search", {"query": 'the "tea'}, 422, "unclosed quote"),
        ("/v1/collections/default/search", {"query": "tea", "mode": "fuzzy"}, 422, "mode:"),
        ("/v1/collections/default/search", {"query": "¿?", "mode": "lexical"}, 422,
         "no words to match"),
    ]
    for url, body, status, message in cases:
        response = client.post(url, json=body)
        assert response.status_code == status, body
        assert message in response.json()["error"]["message"]
    assert client.get("/v1/search", params={"q": "tea", "k": 0}).status_code == 422
    unclosed = client.get("/v1/search", params={"q": 'the "tea'})
    assert unclosed.status_code == 422 and "unclosed quote" in unclosed.json()["error"]["message"]
    assert client.get("/v1/search", params={"q": "tea", "mode": "x"}).status_code == 422
    assert client.get("/v1/search", params={"q": "tea", "collection": "x"}).status_code == 404
