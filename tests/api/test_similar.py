"""More like this: documents like a stored one, in any language, from its stored vectors."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.conftest import add_now

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample.jsonl"


def load_sample(client: TestClient) -> list[dict]:
    documents = [json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if line]
    add_now(client, *documents)
    return documents


def similar(client: TestClient, doc_id: str, **params: object) -> list[dict]:
    response = client.get(f"/v1/collections/default/documents/{doc_id}/similar", params=params)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_similar_documents_are_its_translations_then_the_rest(client: TestClient) -> None:
    documents = load_sample(client)
    topic = {d["id"]: d["metadata"]["topic"] for d in documents}
    for doc_id in ("eiffel-en", "fuji-ja", "coffee-ar"):
        found = similar(client, doc_id, k=5, collapse="none")
        ids = [r["id"] for r in found]
        assert doc_id not in ids and len(ids) == 5
        twins = [i for i in topic if topic[i] == topic[doc_id] and i != doc_id]
        assert set(ids[: len(twins)]) == set(twins), (doc_id, found)
        assert all(r["lexical_score"] is None and r["dense_score"] for r in found)
    # Narrowed to one language: the French copy first, and nothing else in French before it.
    french = similar(client, "eiffel-en", lang="FR", k=3, collapse="none")
    assert french[0]["id"] == "eiffel-fr" and {r["lang"] for r in french} == {"fr"}
    # Paging walks the same order.
    first_two = [r["id"] for r in similar(client, "eiffel-en", k=2, collapse="none")]
    assert [r["id"] for r in similar(client, "eiffel-en", k=1, offset=1, collapse="none")
            ] == first_two[1:]
    # A metadata filter, in a POST body.
    response = client.post(
        "/v1/collections/default/documents/eiffel-en/similar",
        json={"k": 5, "filter": {"topic": {"$ne": "eiffel-tower"}}, "collapse": "none"},
    )
    assert response.status_code == 200, response.text
    assert all(r["metadata"]["topic"] != "eiffel-tower" for r in response.json()["results"])


def test_similar_to_an_id_with_slashes_and_after_a_replace(client: TestClient) -> None:
    add_now(
        client,
        {"id": "docs/tea.md", "text": "Green tea is whisked with a bamboo whisk in Japan."},
        {"id": "docs/matcha.md", "text": "Matcha is powdered green tea, whisked in a bowl."},
        {"id": "docs/volcano.md", "text": "Vesuvius destroyed Pompeii in the year 79."},
    )
    assert similar(client, "docs/tea.md", k=1)[0]["id"] == "docs/matcha.md"
    add_now(client, {"id": "docs/tea.md", "text": "Mount Etna and Vesuvius are volcanoes."})
    assert similar(client, "docs/tea.md", k=1)[0]["id"] == "docs/volcano.md"


def test_similar_errors(client: TestClient) -> None:
    add_now(client, {"id": "tea", "text": "Green tea is whisked with a bamboo whisk."})
    base = "/v1/collections/default/documents"
    cases = [
        (f"{base}/missing/similar", {}, 404, "'missing' is not in collection 'default'"),
        ("/v1/collections/nope/documents/tea/similar", {}, 404, "'nope' does not exist"),
        (f"{base}/tea/similar", {"k": 0}, 422, "k"),
        (f"{base}/tea/similar", {"k": 60, "offset": 990}, 422, "offset + k is 1050"),
        (f"{base}/tea/similar", {"lang": "klingon"}, 422, "languages"),
    ]
    for url, params, status, message in cases:
        response = client.get(url, params=params)
        assert response.status_code == status, (url, params, response.text)
        assert message in response.json()["error"]["message"], response.text
    bad_filter = client.post(f"{base}/tea/similar", json={"filter": {"$bogus": 1}})
    assert bad_filter.status_code == 422 and "filter" in bad_filter.json()["error"]["message"]
    unknown_field = client.post(f"{base}/tea/similar", json={"query": "tea"})
    assert unknown_field.status_code == 422
    client.delete(f"{base}/tea")
    gone = client.get(f"{base}/tea/similar")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "document_not_found"
