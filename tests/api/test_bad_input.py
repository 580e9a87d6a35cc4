"""Bad input gets a 4xx with a message, and nothing stored changes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.conftest import MakeClient, add_now, wait_for_job


def stored(client: TestClient) -> tuple[int, int]:
    info = client.get("/v1/collections/default").json()
    return info["documents"], info["chunks"]


def assert_refused(response: object, status: int, message: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert message in error["message"] and error["code"]


def test_bad_documents_change_nothing(client: TestClient) -> None:
    add_now(client, {"id": "keep", "text": "This one stays."})
    before = stored(client)
    url = "/v1/collections/default/documents"
    assert_refused(client.post(url, json={"documents": [{"text": ""}], "wait": True}), 422, "empty")
    assert_refused(client.post(url, json={"documents": [{"text": " \n\t"}]}), 422, "text is empty")
    assert_refused(client.post(url, json={"documents": []}), 422, "documents")
    assert_refused(
        client.post(url, json={"documents": [{"text": "x", "colour": 1}]}), 422, "colour"
    )
    assert_refused(
        client.post(url, json={"documents": [{"text": "x", "lang": "German"}]}), 422, "lang"
    )
    headers = {"content-type": "application/json"}
    assert_refused(client.post(url, content=b'{"documents": [', headers=headers), 422, "JSON")
    latin1 = b'{"documents": [{"text": "caf\xe9"}]}'
    assert_refused(client.post(url, content=latin1, headers=headers), 400, "UTF-8")
    big = b'{"documents": [{"text": "' + b"a" * (20 * 2**20) + b'"}]}'
    assert_refused(client.post(url, content=big, headers=headers), 413, "larger than")
    assert_refused(
        client.post("/v1/collections/nope/documents", json={"documents": [{"text": "x"}]}),
        404,
        "does not exist",
    )
    assert stored(client) == before
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_server_paths_stay_under_the_allowed_roots(make_client: MakeClient, tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("Honey bees make honey.", "utf-8")
    outside = tmp_path / "secret.txt"
    outside.write_text("not for you", "utf-8")
    os.symlink(outside, root / "link.txt")
    os.symlink(tmp_path, root / "escape")
    client = make_client(allowed_roots=[root])
    url = "/v1/collections/default/jobs"
    for path, status in [
        ("../../etc/passwd", 403),
        ("/etc/passwd", 403),
        ("escape/secret.txt", 403),
        ("link.txt", 403),
        ("missing", 422),
    ]:
        assert client.post(url, json={"path": path}).status_code == status, path
    assert_refused(client.post(url, json={"path": "sub", "x": 1}), 422, "x")
    accepted = client.post(url, json={"path": "."})
    job = wait_for_job(client, accepted.json()["job_id"])
    assert (job["status"], job["processed"]) == ("succeeded", 1)  # link.txt is skipped
    assert client.get("/v1/collections/default/documents/sub/a.txt").status_code == 200
    assert_refused(make_client().post(url, json={"path": "x"}), 403, "XLSEARCH_ALLOWED_ROOTS")


def test_cancel_a_queued_job(make_client: MakeClient) -> None:
    client = make_client(worker=False)
    job_id = client.post(
        "/v1/collections/default/documents", json={"documents": [{"text": "Tea."}]}
    ).json()["job_id"]
    cancelled = client.delete(f"/v1/jobs/{job_id}")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert client.get("/v1/jobs", params={"status": "cancelled"}).json()["jobs"][0]["id"] == job_id
    assert client.get("/v1/jobs/nope").status_code == 404
    assert client.delete("/v1/jobs/nope").status_code == 404


def test_a_running_job_is_cancelled_within_its_batch(
    make_client: MakeClient, bulk_slice_started: threading.Event
) -> None:
    client = make_client(ingest_batch_documents=32, ingest_batch_seconds=0)  # one big batch
    harvest = "The tea harvest began early that year in the hills above the river. " * 20
    documents = [{"id": f"n{n}", "text": f"Note {n}. {harvest}"} for n in range(40)]
    bulk_slice_started.clear()
    job_id = client.post("/v1/collections/default/documents",
                         json={"documents": documents}).json()["job_id"]
    assert bulk_slice_started.wait(60), "the job never started embedding"
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 202
    job = wait_for_job(client, job_id)
    # the first batch (32 documents, four model calls) was dropped, not finished first
    assert (job["status"], job["processed"]) == ("cancelled", 0)
    assert stored(client) == (0, 0)


def test_api_keys_guard_writes(make_client: MakeClient) -> None:
    client = make_client(api_keys=["s3cret"])
    body = {"documents": [{"text": "Tea."}], "wait": True}
    assert_refused(client.post("/v1/collections/default/documents", json=body), 401, "API key")
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/v1/collections", json={"name": "x"}, headers=wrong).status_code == 401
    good = {"Authorization": "Bearer s3cret"}
    assert (
        client.post("/v1/collections/default/documents", json=body, headers=good).status_code == 200
    )
    assert client.get("/v1/search", params={"q": "tea"}).status_code == 200
    closed = make_client(api_keys=["s3cret"], open_reads=False)
    assert closed.get("/v1/search", params={"q": "tea"}).status_code == 401
    assert closed.get("/v1/search", params={"q": "tea"}, headers=good).status_code == 200
    assert closed.get("/health").status_code == 200


REFUSE_B = {  # a trigger that refuses to store the document with id "b"
    "sqlite": [
        "CREATE TRIGGER refuse_b BEFORE INSERT ON documents WHEN NEW.external_id = 'b' "
        "BEGIN SELECT RAISE(ABORT, 'b is refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_b() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.external_id = 'b' THEN "
        "RAISE EXCEPTION 'b is refused' USING ERRCODE = 'check_violation'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse_b BEFORE INSERT ON documents FOR EACH ROW "
        "EXECUTE FUNCTION refuse_b()",
    ],
}


def test_a_document_the_database_refuses_fails_alone_with_its_reason(
    make_client: MakeClient,
) -> None:
    client = make_client()
    database = client.app.state.engine.store.engine  # type: ignore[attr-defined]
    with database.begin() as connection:  # a real refusal, by the database itself
        for statement in REFUSE_B[database.dialect.name]:
            connection.exec_driver_sql(statement)
    documents = [{"id": i, "text": f"Document {i} is about rivers."} for i in "abc"]
    answer = client.post(
        "/v1/collections/default/documents", json={"documents": documents, "wait": True}
    )
    assert answer.status_code == 200
    results = {r["id"]: r for r in answer.json()["results"]}
    assert [results[i]["status"] for i in "abc"] == ["created", "failed", "created"]
    assert results["b"]["error"] == "the database refused it: b is refused"
    assert results["a"]["error"] is None
    accepted = client.post(
        "/v1/collections/default/documents",
        json={"documents": [{"id": "b", "text": "Again."}, {"id": "d", "text": "Dee."}]},
    )
    job = wait_for_job(client, accepted.json()["job_id"])
    assert job["status"] == "succeeded" and job["failed"] == 1
    assert job["errors"][0]["reason"] == "the database refused it: b is refused"
    assert client.get("/v1/collections/default/documents/d").status_code == 200
