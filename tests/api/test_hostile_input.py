"""Hostile and careless input at the edge: every string that enters is valid Unicode, every
type is what the contract says, filters and language codes mean what they say, and the
costly or revealing endpoints can be closed. Each case is a 4xx and nothing is stored."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import MakeClient, add_now, search_ids, wait_for_job

JSON = {"content-type": "application/json"}
DOCUMENTS = "/v1/collections/default/documents"
SEARCH = "/v1/collections/default/search"
SURROGATE = "\\ud800"  # as JSON writes it: valid JSON, not encodable as UTF-8


def stored(client: TestClient) -> tuple[int, int]:
    info = client.get("/v1/collections/default").json()
    return info["documents"], info["chunks"]


def refused(response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert all(word in message for word in words), message


@pytest.mark.parametrize(
    "document",
    [
        f'{{"text": "bad {SURROGATE} text"}}',
        f'{{"text": "ok", "title": "{SURROGATE}"}}',
        f'{{"text": "ok", "url": "https://x/{SURROGATE}"}}',
        f'{{"text": "ok", "id": "id-{SURROGATE}"}}',
        f'{{"text": "ok", "metadata": {{"{SURROGATE}": "x"}}}}',
        '{"text": "ok", "metadata": {"k": "\\udc00x"}}',
        f'{{"text": "ok", "metadata": {{"k": ["a", {{"deep": "{SURROGATE}"}}]}}}}',
        '{"text": "ok", "metadata": {"k": NaN}}',
        '{"text": "ok", "metadata": {"k": -Infinity}}',
        '{"text": "nul \\u0000 inside"}',
        '{"text": "ok", "title": "nul \\u0000"}',
        '{"text": "ok", "lang": "German"}',
        '{"text": "ok", "lang": "xx-!!"}',
        '{"text": "ok", "id": true}',
    ],
)
def test_documents_with_unstorable_values_are_refused(client: TestClient, document: str) -> None:
    body = f'{{"documents": [{{"text": "fine"}}, {document}], "wait": true}}'
    response = client.post(DOCUMENTS, content=body.encode(), headers=JSON)
    refused(response, 422, "documents.1")
    assert stored(client) == (0, 0)


def test_a_bad_jsonl_line_is_one_failed_item(client: TestClient) -> None:
    lines = [f'{{"id": "d{n}", "text": "Document number {n}."}}' for n in range(100)]
    lines[50] = f'{{"id": "d50", "text": "broken {SURROGATE} here"}}'
    upload = [("file", ("docs.jsonl", io.BytesIO("\n".join(lines).encode())))]
    response = client.post("/v1/collections/default/jobs", files=upload)
    job = wait_for_job(client, response.json()["job_id"], timeout_s=300)
    assert (job["status"], job["processed"], job["failed"]) == ("succeeded", 99, 1)
    [error] = job["errors"]
    assert error["item"] == "docs.jsonl:51" and "lone surrogate" in error["reason"]
    assert stored(client) == (99, 99)


def test_a_stored_document_never_breaks_reads(client: TestClient) -> None:
    add_now(client, {"id": "meta", "text": "Tea is a drink.", "metadata": {"ü": ["ß", 1.5]}})
    assert client.get(f"{DOCUMENTS}/meta").json()["metadata"] == {"ü": ["ß", 1.5]}
    assert search_ids(client, "tea") == ["meta"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('{"query": "tea", "k": true}', ["k"]),
        ('{"query": "tea", "k": "3"}', ["k"]),
        ('{"query": "tea", "nprobe": 1.5}', ["nprobe"]),
        ('{"query": "tea", "languages": ["EN!"]}', ["not a language code"]),
        ('{"query": "tea", "languages": "en"}', ["languages"]),
        ('{"query": "tea", "filter": {"year": {"$bogus": 1}}}', ["unknown operator"]),
        ('{"query": "tea", "filter": {"$where": "1"}}', ["unknown operator"]),
        ('{"query": "tea", "filter": {"year": {"$gt": [1]}}}', ["number or a string"]),
        ('{"query": "tea", "filter": {"tag": {"$in": "a"}}}', ["must be a list"]),
        ('{"query": "tea", "filter": {"k": NaN}}', ["finite"]),
        (f'{{"query": "tea {SURROGATE}"}}', ["surrogate"]),
        (f'{{"query": "tea", "instruction": "{SURROGATE}"}}', ["surrogate"]),
    ],
)
def test_bad_searches_are_refused(client: TestClient, body: str, words: list[str]) -> None:
    refused(client.post(SEARCH, content=body.encode(), headers=JSON), 422, *words)


def test_strict_types_and_messages(client: TestClient) -> None:
    refused(client.post(DOCUMENTS, json={"documents": [{"text": "x"}], "wait": "yes"}), 422, "wait")
    refused(client.post("/v1/collections", json={"name": "c", "dimension": 0}), 422, "dimension")
    refused(client.post("/v1/collections", json={"name": "c", "dimension": "64"}), 422)
    refused(
        client.post(SEARCH, content=b'{"query": "tea", "k": ', headers=JSON),
        422,
        "not valid JSON",
        "at character 22",
    )
    refused(
        client.post(SEARCH, content=b'{"query": "tea"}', headers={"content-type": "text/plain"}),
        415,
        "application/json",
    )
    refused(client.post(SEARCH, content=b'{"query": "tea"}'), 415, "no content type")
    assert client.get("/v1/search", params={"q": "tea", "lang": "DE"}).status_code == 200
    refused(client.get("/v1/search", params={"q": "tea", "lang": "German"}), 422, "language")


def test_filters_keep_json_types_apart(client: TestClient) -> None:
    add_now(
        client,
        {"id": "on", "text": "A lamp that is on.", "lang": "en", "metadata": {"flag": True}},
        {"id": "one", "text": "A lamp number one.", "lang": "en", "metadata": {"flag": 1}},
        {"id": "null", "text": "A lamp of no kind.", "lang": "en", "metadata": {"flag": None}},
        {"id": "new", "text": "A lamp from 2021.", "lang": "en", "metadata": {"year": 2021}},
        {"id": "old", "text": "A lamp from 1999.", "lang": "en", "metadata": {"year": 1999}},
    )

    def found(filter_: dict[str, Any]) -> set[str]:
        return set(search_ids(client, "lamp", filter=filter_))

    assert found({"flag": 1}) == {"one"}
    assert found({"flag": True}) == {"on"}
    assert found({"flag": None}) == {"null"}
    assert found({"missing": None}) == set()
    assert found({"year": {"$gt": 2000}}) == {"new"}
    assert found({"year": {"$gte": 1999, "$lt": 2021}}) == {"old"}
    assert found({"flag": {"$exists": False}}) == {"new", "old"}
    assert found({"flag": {"$in": [1, None]}}) == {"one", "null"}
    assert found({"flag": {"$ne": True}}) == {"one", "null", "new", "old"}
    assert found({"$or": [{"flag": True}, {"year": 1999}]}) == {"on", "old"}
    assert found({"$not": {"year": {"$exists": True}}}) == {"on", "one", "null"}


def test_language_codes_are_normalised(client: TestClient) -> None:
    add_now(
        client,
        {"id": "tw", "text": "台北是一座城市。", "lang": "ZH-TW"},
        {"id": "de", "text": "Berlin ist eine Stadt.", "lang": "de"},
    )
    assert client.get(f"{DOCUMENTS}/tw").json()["lang"] == "zh-tw"
    assert search_ids(client, "city", languages=["ZH"]) == ["tw"]
    assert search_ids(client, "city", languages=["zh-tw"]) == ["tw"]
    assert search_ids(client, "city", languages=["zh-cn"]) == []
    assert search_ids(client, "city", languages=["De"]) == ["de"]


def test_racing_creations_of_a_collection_give_one_201(client: TestClient) -> None:
    with ThreadPoolExecutor(6) as threads:
        statuses = list(
            threads.map(
                lambda _: client.post("/v1/collections", json={"name": "race"}).status_code,
                range(6),
            )
        )
    assert sorted(statuses) == [201, 409, 409, 409, 409, 409]


def test_closed_reads_close_docs_metrics_and_schema(make_client: MakeClient) -> None:
    closed = make_client(api_keys=["k"], open_reads=False)
    key = {"Authorization": "Bearer k"}
    for path in ("/metrics", "/docs", "/openapi.json", "/v1/collections"):
        assert closed.get(path).status_code == 401, path
        assert closed.get(path, headers=key).status_code == 200, path
    assert closed.get("/health").status_code == 200


def test_embeddings_are_bounded_and_can_need_a_key(make_client: MakeClient) -> None:
    client = make_client(api_keys=["k"], open_embeddings=False, max_embedding_tokens=64)
    body = {"input": ["tea"], "input_type": "query"}
    refused(client.post("/v1/embeddings", json=body), 401, "API key")
    assert client.get("/v1/search", params={"q": "tea"}).status_code == 200  # reads stay open
    key = {"Authorization": "Bearer k"}
    assert client.post("/v1/embeddings", json=body, headers=key).status_code == 200
    many = {"input": ["a cup of tea"] * 40}
    refused(client.post("/v1/embeddings", json=many, headers=key), 413, "64 tokens")
    refused(
        client.post("/v1/embeddings", content=b'{"input": ["\\ud800"]}', headers={**JSON, **key}),
        422,
        "surrogate",
    )


def test_bulk_query_embeddings_wait_behind_searches(
    client: TestClient, bulk_slice_started: threading.Event
) -> None:
    add_now(client, {"id": "tea", "text": "Tea is a drink."})
    passage = "A long passage about the history of tea in many countries. " * 40
    finished: dict[str, float] = {}

    def bulk() -> None:
        body = {"input": [passage] * 48, "input_type": "query"}
        response = client.post("/v1/embeddings", json=body)
        assert response.status_code == 200
        finished["bulk"] = time.monotonic()

    worker = threading.Thread(target=bulk)
    worker.start()
    assert bulk_slice_started.wait(60), "the bulk request never started embedding"
    assert search_ids(client, "tea") == ["tea"]
    finished["search"] = time.monotonic()
    worker.join()
    assert finished["search"] < finished["bulk"], "the search waited for the whole bulk request"


def test_uploads_of_cancelled_jobs_are_removed(make_client: MakeClient, tmp_path: Path) -> None:
    client = make_client(worker=False, data_dir=tmp_path / "data")
    job_id = client.post(DOCUMENTS, json={"documents": [{"text": "Tea."}]}).json()["job_id"]
    uploads = tmp_path / "data" / "uploads"
    assert len(list(uploads.iterdir())) == 1
    assert client.delete(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    assert list(uploads.iterdir()) == []


def test_queued_documents_are_measured_as_the_job_reads_them(make_client: MakeClient) -> None:
    client = make_client(worker=False, max_document_bytes=4096)
    quoted = {"text": "a" + '"' * 3000}  # 3 KB of text, 6 KB as a JSON line
    refused(client.post(DOCUMENTS, json={"documents": [quoted]}), 413, "documents.0", "4096")
    refused(client.post(DOCUMENTS, json={"documents": [quoted], "wait": True}), 413)
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_collection_names_are_matched_whole(client: TestClient) -> None:
    refused(client.post("/v1/collections", json={"name": "news\n"}), 422, "name")
