"""Files as people have them, uploaded in a ZIP: a question in another language finds the
right page, slide or section of the right file, and says where it is."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from fastapi.testclient import TestClient

from bench import files
from tests.api.conftest import wait_for_job
from tests.formats_corpus import PDF_PAGES, write_broken, write_corpus


def zipped(folder: Path) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(folder.iterdir()):
            bundle.write(path, f"files/{path.name}")
    return archive.getvalue()


def covers(found: dict, wanted: dict) -> bool:
    """Whether a result's locator names the wanted page, slide or section: short slides
    share a chunk, whose locator then runs from its first to its last (`to`)."""
    [(kind, value)] = wanted.items()
    first, last = found[kind], found.get("to", found[kind])
    return first <= value <= last if kind != "section" else value in (first, last)


def test_questions_find_the_page_slide_and_section(client: TestClient, tmp_path: Path) -> None:
    write_corpus(tmp_path)
    broken = write_broken(tmp_path)
    created = client.post("/v1/collections", json={"name": "files", "chunk_tokens": 64})
    assert created.status_code == 201, created.text
    upload = client.post(
        "/v1/collections/files/jobs",
        files=[("file", ("files.zip", io.BytesIO(zipped(tmp_path))))],
    )
    assert upload.status_code == 202, upload.text
    job = wait_for_job(client, upload.json()["job_id"])
    assert (job["status"], job["total"], job["failed"]) == ("succeeded", 10, 5), job
    assert {e["item"].rsplit("/", 1)[-1]: e["reason"] for e in job["errors"]}.keys() == set(broken)

    def best(query: str, **body: object) -> dict:
        response = client.post("/v1/collections/files/search", json={"query": query, **body})
        assert response.status_code == 200, response.text
        return response.json()["results"][0]

    cases = [
        ("Wie lang ist die Chinesische Mauer?", "files/world.pdf", {"page": 2}),
        ("Which river flows through Egypt into the Mediterranean?", "files/world.pdf",
         {"page": 3}),
        ("¿Quién es responsable de los daños durante la entrega?", "files/contract.docx",
         {"section": "2.3 Liability"}),
        ("Quel volcan a fermé l'espace aérien européen ?", "files/results.pptx", {"slide": 2}),
        ("Who lights the lamp in the lighthouse every evening?", "files/tales.epub",
         {"section": "Der Leuchtturm"}),
        ("Когда после наводнения снова откроются школы?", "files/news.html",
         {"section": "Schools stay closed"}),
    ]
    for query, doc_id, locator in cases:
        for mode in ("dense", "hybrid"):
            found = best(query, mode=mode)
            assert found["id"] == doc_id and covers(found["locator"], locator), (query, mode, found)

    stored = client.get("/v1/collections/files/documents/files/world.pdf").json()
    assert [p["page"] for p in stored["parts"]] == [1, 2, 3]
    assert stored["metadata"]["author"] == "Ana Autor"
    by_author = client.post(
        "/v1/collections/files/search",
        json={"query": "tea", "filter": {"author": "Legal team"}},
    ).json()["results"]
    assert [r["id"] for r in by_author] == ["files/contract.docx"]


def test_a_pdf_uploaded_under_a_text_name_is_read_as_a_pdf(client: TestClient) -> None:
    pdf = files.pdf_bytes(PDF_PAGES[:1], title="Tea")
    assert b"\x00" in pdf[:8192]  # what the upload's text check refused
    created = client.post("/v1/collections", json={"name": "renamed"})
    assert created.status_code == 201, created.text
    upload = client.post(
        "/v1/collections/renamed/jobs", files=[("file", ("tea.txt", io.BytesIO(pdf)))]
    )
    assert upload.status_code == 202, upload.text
    job = wait_for_job(client, upload.json()["job_id"])
    assert (job["status"], job["failed"]) == ("succeeded", 0), job
    stored = client.get("/v1/collections/renamed/documents/tea.txt").json()
    assert stored["metadata"]["format"] == "pdf" and stored["parts"] == [{"start": 0, "page": 1}]
