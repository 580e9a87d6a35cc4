"""Aliases: a second name for a collection, for searches and writes, switched at once for
every process on the database, and refused where it would be ambiguous."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import MakeClient, add_now


def top(client: TestClient, name: str, query: str = "volcano") -> list[str]:
    response = client.post(f"/v1/collections/{name}/search", json={"query": query, "k": 3})
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["results"]]


def put(client: TestClient, alias: str, collection: str) -> Any:
    return client.put(f"/v1/aliases/{alias}", json={"collection": collection})


def two_collections(client: TestClient) -> None:
    for name, text in (("old", "Vesuvius is a volcano near Naples."),
                       ("new", "Etna is the tallest active volcano in Europe.")):
        assert client.post("/v1/collections", json={"name": name}).status_code == 201
        add_now(client, {"id": f"{name}-doc", "text": text}, collection=name)


def test_an_alias_reads_writes_and_switches(client: TestClient) -> None:
    two_collections(client)
    created = put(client, "live", "old")
    assert created.status_code == 200, created.text
    assert created.json()["alias"] == "live" and created.json()["collection"] == "old"
    assert top(client, "live") == top(client, "old") == ["old-doc"]
    assert client.get("/v1/collections/live").json()["name"] == "old"
    # Writes through the alias land in the collection it names.
    add_now(client, {"id": "via-alias", "text": "Stromboli erupts every few minutes."},
            collection="live")
    assert client.get("/v1/collections/old/documents/via-alias").status_code == 200
    # One PUT switches it; the next search answers from the other collection.
    assert put(client, "live", "new").json()["collection"] == "new"
    assert top(client, "live") == ["new-doc"]
    listed = client.get("/v1/aliases").json()["aliases"]
    assert [(a["alias"], a["collection"]) for a in listed] == [("live", "new")]
    assert client.get("/v1/aliases/live").json()["collection"] == "new"
    # Deleting the alias leaves the collection; deleting the collection takes its aliases.
    assert client.delete("/v1/aliases/live").status_code == 204
    assert client.get("/v1/aliases/live").status_code == 404
    assert client.post("/v1/collections/live/search", json={"query": "x"}).status_code == 404
    assert top(client, "new") == ["new-doc"]
    assert put(client, "current", "new").status_code == 200
    assert client.delete("/v1/collections/new").status_code == 204
    assert client.get("/v1/aliases").json()["aliases"] == []


def test_alias_errors_are_clear_4xx(client: TestClient) -> None:
    two_collections(client)
    assert put(client, "live", "old").status_code == 200
    cases = [
        (put(client, "a1", "missing"), 404, "collection 'missing' does not exist"),
        (put(client, "old", "new"), 409, "'old' is a collection's name"),
        (client.post("/v1/collections", json={"name": "live"}), 409, "'live' is an alias"),
        (client.delete("/v1/collections/live"), 422, "'live' is an alias of collection 'old'"),
        (put(client, "bad name", "old"), 422, "alias name 'bad name' is invalid"),
        (put(client, "x" * 65, "old"), 422, "alias name"),
        (put(client, "nul%00", "old"), 422, "alias name"),
        (client.put("/v1/aliases/a2", json={"collection": 7}), 422, "collection"),
        (client.put("/v1/aliases/a2", json={"collection": "old", "x": 1}), 422, "x"),
        (client.put("/v1/aliases/a2", content=b"old"), 415, "application/json"),
        (client.delete("/v1/aliases/nope"), 404, "alias 'nope' does not exist"),
        (client.get("/v1/aliases/nope"), 404, "alias 'nope' does not exist"),
        (client.get("/v1/aliases/nul%00"), 404, "does not exist"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, response.text
        assert message in response.json()["error"]["message"], response.text


def test_a_switch_is_seen_at_once_by_another_server(
    client: TestClient, make_client: MakeClient
) -> None:
    two_collections(client)
    url = client.app.state.engine.settings.resolved_database_url  # type: ignore[attr-defined]
    replica = make_client(database_url=url)
    assert put(client, "live", "old").status_code == 200
    assert top(replica, "live") == ["old-doc"]
    assert put(client, "live", "new").status_code == 200
    assert top(replica, "live") == ["new-doc"]  # no wait: the alias is read on each search
