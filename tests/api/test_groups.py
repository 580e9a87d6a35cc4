"""Grouping results by a field: one result per value, with more of the group's documents."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import add_now
from tests.api.test_similar import load_sample


def search(client: TestClient, **body: object) -> dict:
    response = client.post("/v1/collections/default/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_one_result_per_topic_with_the_rest_of_its_group(client: TestClient) -> None:
    documents = load_sample(client)
    topic = {d["id"]: d["metadata"]["topic"] for d in documents}
    for mode in ("dense", "hybrid", "lexical"):
        found = search(client, query="Eiffel Tower", k=5, group_by="metadata.topic",
                       group_size=3, mode=mode)["results"]
        values = [r["group"]["value"] for r in found]
        assert values[0] == "eiffel-tower" and len(set(values)) == len(values), (mode, values)
        for result in found:  # each member shares its result's value, listed once
            members = [result["id"], *(m["id"] for m in result["group"]["more"])]
            assert {topic[i] for i in members} == {result["group"]["value"]}
            assert len(set(members)) == len(members) <= 3
        if mode == "dense":
            first = found[0]
            assert len(first["group"]["more"]) == 2  # the two translations
            scores = [first["score"], *(m["score"] for m in first["group"]["more"])]
            assert scores == sorted(scores, reverse=True)
    # Paging walks the groups; a filter narrows them; lang is a field too.
    two = search(client, query="mountain", k=2, group_by="metadata.topic", mode="dense")
    second = search(client, query="mountain", k=1, offset=1, group_by="metadata.topic",
                    mode="dense")
    assert [r["id"] for r in second["results"]] == [r["id"] for r in two["results"]][1:]
    assert two["next_offset"] == 2
    by_language = search(client, query="volcano", k=12, group_by="lang", group_size=1,
                         filter={"topic": {"$in": ["vesuvius", "mount-fuji"]}})["results"]
    langs = [r["group"]["value"] for r in by_language]
    assert len(set(langs)) == len(langs) and all(not r["group"]["more"] for r in by_language)
    assert {topic[r["id"]] for r in by_language} <= {"vesuvius", "mount-fuji"}
    plain = search(client, query="volcano", k=3)["results"]
    assert all(r["group"] is None for r in plain)


def test_group_values_keep_json_types_apart_and_missing_is_null(client: TestClient) -> None:
    add_now(
        client,
        {"id": "a", "text": "Green tea is whisked in a bowl.", "metadata": {"v": True}},
        {"id": "b", "text": "Green tea is whisked with bamboo.", "metadata": {"v": 1}},
        {"id": "c", "text": "Green tea grows on hills.", "metadata": {"v": "1"}},
        {"id": "d", "text": "Green tea leaves are steamed.", "metadata": {"v": {"x": [1]}}},
        {"id": "e", "text": "Green tea is a drink.", "metadata": {}},
        {"id": "f", "text": "Green tea is served hot.", "metadata": {"v": None}},
        {"id": "g", "text": "Green tea in Japan.", "metadata": {"n": {"deep": "x"}}},
    )
    found = search(client, query="green tea", k=10, group_by="metadata.v")["results"]
    values = [r["group"]["value"] for r in found]
    assert sorted(map(repr, values)) == sorted(map(repr, [True, 1, "1", {"x": [1]}, None]))
    [missing] = [r for r in found if r["group"]["value"] is None]
    assert {missing["id"], *(m["id"] for m in missing["group"]["more"])} == {"e", "f", "g"}
    nested = search(client, query="green tea", k=10, group_by="metadata.n.deep")["results"]
    assert "x" in [r["group"]["value"] for r in nested]


def test_group_errors(client: TestClient) -> None:
    cases = [
        ({"group_size": 2}, "group_size needs group_by"),
        ({"group_by": "title"}, "group_by"),
        ({"group_by": "metadata."}, "group_by"),
        ({"group_by": "metadata.topic", "group_size": 11}, "group_size"),
        ({"group_by": "metadata.topic", "group_size": "2"}, "group_size"),
    ]
    for body, message in cases:
        response = client.post("/v1/collections/default/search", json={"query": "tea", **body})
        assert response.status_code == 422, (body, response.text)
        assert message in response.json()["error"]["message"], response.text
