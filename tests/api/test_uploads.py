"""Bulk uploads and server paths: ids from names, clashing and unsafe names, ZIP bombs and
damaged archives, body size and pace limits (on a live server, over raw sockets)."""

from __future__ import annotations

import io
import os
import select
import socket
import struct
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import MakeClient, wait_for_job
from tests.api.test_bad_input import assert_refused, stored
from tests.processes import running_server

JOBS = "/v1/collections/default/jobs"
BODY_TIMEOUT_S = 1.0
JSON_LIMIT = 65536


def upload(client: TestClient, *files: tuple[str, bytes]) -> Any:
    return client.post(JOBS, files=[("file", (name, io.BytesIO(data))) for name, data in files])


def upload_raw(client: TestClient, *files: tuple[bytes, bytes]) -> Any:
    """Multipart built by hand, so file names go out byte for byte."""
    parts = [
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n\r\n%s\r\n'
        % (name, data)
        for name, data in files
    ]
    body = b"".join(parts) + b"--b0undary--\r\n"
    headers = {"content-type": "multipart/form-data; boundary=b0undary"}
    return client.post(JOBS, content=body, headers=headers)


def zip_of(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", method) as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
    return archive.getvalue()


def uploads_left(client: TestClient) -> list[Path]:
    folder: Path = client.app.state.engine.settings.upload_dir  # type: ignore[attr-defined]
    return list(folder.iterdir()) if folder.exists() else []


def text_of(client: TestClient, doc_id: str) -> str:
    response = client.get(f"/v1/collections/default/documents/{doc_id}")
    assert response.status_code == 200, (doc_id, response.text)
    return str(response.json()["text"])


def assert_all_refused(client: TestClient, cases: list[tuple[Any, int, str]]) -> None:
    """Each (response, status, message) refused, and nothing left behind."""
    for response, status, message in cases:
        assert_refused(response, status, message)
    assert uploads_left(client) == []
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_upload_jsonl_reports_bad_lines_per_item(client: TestClient) -> None:
    lines = (
        b'{"id": "a", "text": "Tea."}\n{broken\n{"text": "  "}\n{"id": "b", "text": "Coffee."}\n'
    )
    response = upload(client, ("docs.jsonl", lines))
    assert response.status_code == 202
    job = wait_for_job(client, response.json()["job_id"])
    assert (job["status"], job["total"], job["processed"], job["failed"]) == ("succeeded", 4, 2, 2)
    reasons = {e["item"].rsplit(":", 1)[1]: e["reason"] for e in job["errors"]}
    assert reasons["2"].startswith("invalid JSON") and reasons["3"] == "text: text is empty"
    assert stored(client) == (2, 2)


def test_ids_are_names_whatever_the_order(client: TestClient) -> None:
    pages = zip_of({"pages/tea.md": b"# Tea\n\nTea is a drink.", "pages/img.png": b"\x89PNG"})
    for files in [
        [("a.txt", b"Apples."), ("b.txt", b"Bananas."), ("pages.zip", pages)],
        [("pages.zip", pages), ("b.txt", b"Bananas, again."), ("a.txt", b"Apples, again.")],
    ]:
        job = wait_for_job(client, upload(client, *files).json()["job_id"])
        assert (job["status"], job["processed"]) == ("succeeded", 3)
    assert stored(client) == (3, 3)  # the second upload replaced the first, not added to it
    assert text_of(client, "a.txt") == "Apples, again." and "Tea" in text_of(client, "pages/tea.md")
    # a client that sends a path keeps only the name; backslashes are separators too
    response = upload_raw(client, (b"..\\..\\etc/c.txt", b"Cherries."))
    assert wait_for_job(client, response.json()["job_id"])["status"] == "succeeded"
    assert text_of(client, "c.txt") == "Cherries."


def test_clashing_names_are_refused(client: TestClient) -> None:
    assert_all_refused(
        client,
        [
            (upload(client, ("a.txt", b"one"), ("a.txt", b"two")), 422, "'a.txt' and 'a.txt'"),
            (
                upload(client, ("a.txt", b"one"), ("more.zip", zip_of({"a.txt": b"two"}))),
                422,
                "'a.txt' in 'more.zip' and 'a.txt' would both be document 'a.txt'",
            ),
            (
                upload(client, ("x.md", b"one"), ("more.zip", zip_of({"x.md/y.md": b"two"}))),
                422,
                "one is a file where the other is a folder",
            ),
            (
                upload(
                    client,
                    ("one.zip", zip_of({"p/a.md": b"1"})),
                    ("two.zip", zip_of({"p/a.md": b"2"})),
                ),
                422,
                "would both be document 'p/a.md'",
            ),
        ],
    )


def test_unsafe_names_are_refused(client: TestClient) -> None:
    long = "n" * 252 + ".txt"
    assert_all_refused(
        client,
        [
            (upload(client, (long, b"x")), 422, "over 255"),
            (upload(client, ("docs.zip", zip_of({f"d/{long}": b"x"}))), 422, "over 255"),
            (upload(client, (".hidden.txt", b"x")), 422, "hidden names"),
            (upload_raw(client, (b"a\x00.txt", b"x")), 422, "control characters"),
            (upload_raw(client, (b"caf\xe9.txt", b"x")), 422, "not UTF-8"),
            (upload_raw(client, (b"", b"x")), 422, "empty"),
            (upload(client, ("evil.zip", zip_of({"../../evil.txt": b"x"}))), 422, "escapes"),
            (upload(client, ("evil.zip", zip_of({"/etc/evil.txt": b"x"}))), 422, "escapes"),
            (upload(client, ("evil.zip", zip_of({"..\\evil.txt": b"x"}))), 422, "escapes"),
            (upload(client, ("image.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00")), 422, "binary data"),
            (upload(client, ("sheet.xlsx", b"PK\x03\x04")), 415, "unsupported file type"),
            (upload(client, ("bad.zip", b"PK not really")), 422, "not a valid ZIP"),
        ],
    )


def special_entries() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        link = zipfile.ZipInfo("link.md")
        link.external_attr = 0o120777 << 16  # a symbolic link, as `zip -y` stores one
        bundle.writestr(link, "/etc/passwd")
    return archive.getvalue()


def patched(archive: bytes, field: str, value: int) -> bytes:
    """A one-entry ZIP with a header field changed in both the local and central headers."""
    offsets = {"crc": (14, 16), "file_size": (22, 24)}[field]  # local, central (+PK\1\2)
    raw = bytearray(archive)
    central = raw.find(b"PK\x01\x02")
    for at in (offsets[0], central + offsets[1]):
        raw[at : at + 4] = struct.pack("<I", value)
    return bytes(raw)


def test_damaged_and_special_archives_are_refused(client: TestClient) -> None:
    text = b"Tea is a drink. " * 400
    one = zip_of({"tea.txt": text})
    encrypted = bytearray(one)
    encrypted[6] |= 1  # general purpose flag bit 0: encrypted (local header)
    encrypted[encrypted.find(b"PK\x01\x02") + 8] |= 1  # and central directory
    assert_all_refused(
        client,
        [
            (upload(client, ("a.zip", patched(one, "crc", 1234))), 422, "Bad CRC"),
            (upload(client, ("a.zip", patched(one, "file_size", 100))), 422, "not a valid ZIP"),
            (upload(client, ("a.zip", patched(one, "file_size", len(text) * 2))), 422, "holds"),
            (upload(client, ("a.zip", bytes(encrypted))), 422, "encrypted"),
            (upload(client, ("a.zip", special_entries())), 422, "is a link"),
            (upload(client, ("a.zip", zip_of({"t.md": b"x"}, zipfile.ZIP_BZIP2))), 422, "method"),
        ],
    )


def test_zip_bombs_are_refused(make_client: MakeClient) -> None:
    client = make_client(max_unpacked_bytes=2**20)
    bomb = zip_of({"zeros.txt": bytes(4 << 20)})  # 4 MiB of zeros in ~4 KiB
    assert len(bomb) < 2**14
    parts = {f"part{i}.txt": os.urandom(300_000).hex().encode() for i in range(2)}  # ~2:1
    assert_all_refused(
        client,
        [
            (upload(client, ("bomb.zip", bomb)), 422, "times its compressed size"),
            (upload(client, ("big.zip", zip_of(parts))), 422, "unpacks to more than 1048576"),
            (
                upload(
                    client,
                    ("one.zip", zip_of({"a.txt": parts["part0.txt"]})),
                    ("two.zip", zip_of({"b.txt": parts["part1.txt"]})),
                ),
                422,
                "unpacks to more than",
            ),
        ],
    )


def test_health_answers_during_an_unpack(make_client: MakeClient) -> None:
    client = make_client(max_zip_ratio=1e6, worker=False)
    entries = {f"zeros{i}.txt": bytes(20 << 20) for i in range(5)}
    total = sum(len(data) for data in entries.values())
    archive = zip_of(entries)
    upload_dir: Path = client.app.state.engine.settings.upload_dir  # type: ignore[attr-defined]
    responses: list[Any] = []
    sender = threading.Thread(target=lambda: responses.append(upload(client, ("z.zip", archive))))
    sender.start()

    def unpacked() -> int:
        return sum(f.stat().st_size for f in upload_dir.rglob("*.txt") if f.is_file())

    deadline = time.monotonic() + 60
    while unpacked() == 0:
        assert time.monotonic() < deadline and sender.is_alive(), "the unpack never started"
        time.sleep(0.005)
    assert client.get("/health").status_code == 200
    assert unpacked() < total  # /health answered while the archive was still unpacking
    sender.join()
    assert responses[0].status_code == 202


def test_bad_server_paths_are_refused(make_client: MakeClient, tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    os.symlink(root / "loop", root / "loop")
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(root / "sock"))
        client = make_client(allowed_roots=[root], worker=False)
        for path, message in [
            ("loop/x.txt", "cannot be resolved"),
            ("a\x00b", "NUL"),
            ("x" * 5000, "over 4096"),
            ("y" * 300, "cannot be read"),
            ("fifo", "FIFO"),
            ("sock", "FIFO, socket or device"),
        ]:
            assert_refused(client.post(JOBS, json={"path": path}), 422, message)
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_devices_are_refused_as_server_paths(make_client: MakeClient) -> None:
    client = make_client(allowed_roots=[Path("/dev")], worker=False)
    assert_refused(client.post(JOBS, json={"path": "null"}), 422, "FIFO, socket or device")


# --- a live server, spoken to over raw sockets -------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("live-limits") / "data"
    env = {
        "XLSEARCH_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "XLSEARCH_MAX_REQUEST_BYTES": str(JSON_LIMIT),
    }
    with running_server(data_dir, "--no-worker", **env) as url:
        yield url, data_dir


def connect(base_url: str, head: str) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head.encode())
    return sock


def response_of(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of the one response, read until the server closes the connection
    (every refusal closes it: this times out if the server waits instead)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def post_head(path: str, content_type: str, length: int | None = None) -> str:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n{framing}\r\n\r\n"


def test_json_to_jobs_gets_the_json_limit_unread(live: tuple[str, Path]) -> None:
    sock = connect(live[0], post_head(JOBS, "application/json", 2**30))
    sock.sendall(b'{"path": "' + b"a" * 60_000)  # the rest of the GiB is never sent
    started = time.monotonic()
    status, body = response_of(sock)
    assert status == 413 and b"larger than 65536" in body
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("path", "length", "expected"),
    [(JOBS, 2**30, (413, b"body_too_large")), ("/v1/nowhere", 60_000, (404, b"Not Found"))],
)
def test_an_early_answer_survives_the_body_still_arriving(
    live: tuple[str, Path], path: str, length: int, expected: tuple[int, bytes]
) -> None:
    """The body keeps coming after the answer is sent (here on the head alone): closing on
    unread input would answer it with a reset, which can erase the answer from the client's
    buffers before it is read."""
    sock = connect(live[0], post_head(path, "application/json", length))
    time.sleep(0.3)
    for _ in range(5):  # never the whole body: the server gives up waiting for its end
        sock.sendall(b"a" * 10_000)
        time.sleep(0.02)
    status, body = response_of(sock)
    assert status == expected[0] and expected[1] in body


@pytest.mark.parametrize("path", [JOBS, "/v1/collections/default/documents"])
def test_chunked_body_over_the_limit_gets_413(live: tuple[str, Path], path: str) -> None:
    sock = connect(live[0], post_head(path, "application/json"))
    chunk = b"a" * 8192
    for _ in range(JSON_LIMIT // len(chunk) + 1):
        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    status, body = response_of(sock)
    assert status == 413 and b"body_too_large" in body


def test_silent_body_gets_408_and_the_connection_closes(live: tuple[str, Path]) -> None:
    sock = connect(live[0], post_head("/v1/collections/default/documents", "application/json", 100))
    sock.sendall(b'{"documents"')
    started = time.monotonic()
    status, body = response_of(sock)
    waited = time.monotonic() - started
    assert status == 408 and b"nothing arrived for 1 s" in body
    assert BODY_TIMEOUT_S * 0.9 < waited < BODY_TIMEOUT_S + 3


def test_trickling_body_gets_408(live: tuple[str, Path]) -> None:
    sock = connect(
        live[0], post_head("/v1/collections/default/documents", "application/json", 60_000)
    )
    started = time.monotonic()
    while time.monotonic() - started < 10:
        sock.sendall(b" ")  # a byte every 0.1 s: never silent, far too slow
        readable, _, _ = select.select([sock], [], [], 0.1)
        if readable:
            break
    status, body = response_of(sock)
    assert status == 408 and b"under 1024 bytes/s" in body
    assert time.monotonic() - started < BODY_TIMEOUT_S + 3


@pytest.mark.parametrize("ending", ["disconnect", "silence"])
def test_an_unfinished_upload_leaves_nothing(live: tuple[str, Path], ending: str) -> None:
    uploads = live[1] / "uploads"
    part = (
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
        + b"Tea. " * 100_000
    )
    sock = connect(live[0], post_head(JOBS, "multipart/form-data; boundary=b0undary", 10**7))
    sock.sendall(part)
    deadline = time.monotonic() + 10
    while not (streamed := list(uploads.glob("*/a.txt"))):  # written to its folder as it comes
        assert time.monotonic() < deadline, "the upload was not streamed to its folder"
        time.sleep(0.02)
    if ending == "disconnect":
        sock.close()
    else:
        assert response_of(sock)[0] == 408
    while streamed[0].parent.exists():
        assert time.monotonic() < deadline + 5, "the unfinished upload was left behind"
        time.sleep(0.02)


def test_uploads_stream_over_a_live_server(live: tuple[str, Path]) -> None:
    text = b"Tea grows on hills. " * 200_000  # 4 MB: many pieces as uvicorn receives it
    files = [("file", ("tea.txt", text)), ("file", ("p.zip", zip_of({"pages/a.md": b"# A"})))]
    response = httpx.post(f"{live[0]}{JOBS}", files=files, timeout=30)
    assert response.status_code == 202, response.text
    [folder] = [f.parent for f in (live[1] / "uploads").glob("*/tea.txt")]
    assert (folder / "tea.txt").read_bytes() == text
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "pages/a.md",
        "tea.txt",
    ]
