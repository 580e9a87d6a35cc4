"""Source readers: formats, folders, and a clear reason for every item that cannot be read."""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import socket
from pathlib import Path
from typing import Any

import pytest

from indexer.readers import ReadError, count_items, read_sources
from search.schemas import DocumentIn


def read(*paths: Path) -> list[DocumentIn | ReadError]:
    return list(read_sources(paths))


def test_text_markdown_and_html(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("First line is the title\nand the rest follows.", "utf-8")
    (tmp_path / "b.md").write_text("# Tee\n\nTee ist ein Getränk.", "utf-8")
    (tmp_path / "c.html").write_text(
        "<html><head><title>Chá</title><style>p{}</style></head><body><h1>Chá</h1>"
        "<p>O chá é uma bebida &amp; tradição.<br>Muito antiga.</p>"
        "<script>alert(1)</script></body></html>",
        "utf-8",
    )
    a, b, c = read(tmp_path)
    assert isinstance(a, DocumentIn) and (a.id, a.title) == ("a.txt", "First line is the title")
    assert isinstance(b, DocumentIn) and (b.id, b.title) == ("b.md", "Tee")
    assert isinstance(c, DocumentIn) and c.title == "Chá"
    assert c.text == "Chá\n\nO chá é uma bebida & tradição.\n\nMuito antiga."


def test_jsonl_with_good_and_bad_lines(tmp_path: Path) -> None:
    lines = [
        '{"id": 7, "text": "Der Eiffelturm.", "lang": "de", "metadata": {"topic": "paris"}}',
        "",
        "{not json",
        '["a list"]',
        '{"title": "no text"}',
        '{"text": "   "}',
        '{"text": "ok", "colour": "red"}',
        '{"text": "ok", "lang": "German"}',
    ]
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines), "utf-8")
    items = read(path)
    good = items[0]
    assert isinstance(good, DocumentIn) and good.id == "7" and good.metadata == {"topic": "paris"}
    errors = {e.source.rsplit(":", 1)[1]: e.reason for e in items[1:] if isinstance(e, ReadError)}
    assert len(errors) == 6 and len(items) == 7
    assert errors["3"].startswith("invalid JSON")
    assert "JSON object" in errors["4"]
    assert errors["5"].startswith("text: Field required")
    assert errors["6"] == "text: text is empty"
    assert errors["7"].startswith("colour: Extra inputs are not permitted")
    assert errors["8"].startswith("lang: ")  # the wording is search/schemas.py's
    assert count_items([path]) == 7


def test_unreadable_inputs_are_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "empty.md").write_text("  \n", "utf-8")
    (tmp_path / "ok.txt").write_text("Fine.", "utf-8")
    (tmp_path / "short.pdf").write_bytes(b"%PDF")
    (tmp_path / "notes.docx").write_bytes(b"PK")
    (tmp_path / "ignored.xlsx").write_bytes(b"PK")  # not a supported type: not in the walk
    other = tmp_path / "sheet.xlsx"
    other.write_bytes(b"PK")
    items = read(tmp_path, tmp_path / "missing.txt", other)
    reasons = {Path(i.source).name: i.reason for i in items if isinstance(i, ReadError)}
    assert "binary file" in reasons["binary.txt"]
    assert "not valid UTF-8 (byte 3)" in reasons["latin1.txt"]
    assert reasons["empty.md"] == "text: text is empty"
    assert reasons["missing.txt"] == "no such file or folder"
    assert reasons["short.pdf"] == "not a valid PDF file (it does not start like one)"
    assert reasons["notes.docx"] == "not a valid DOCX file (it does not start like one)"
    assert reasons["sheet.xlsx"].startswith("unsupported file type .xlsx; use .docx, .epub")
    assert "ignored.xlsx" not in reasons
    assert [i.id for i in items if isinstance(i, DocumentIn)] == ["ok.txt"]


def test_nested_folders_are_read_in_a_stable_order(tmp_path: Path) -> None:
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / "b" / "c" / "z.txt").write_text("z", "utf-8")
    (tmp_path / "a.txt").write_text("a", "utf-8")
    assert [i.id for i in read(tmp_path) if isinstance(i, DocumentIn)] == ["a.txt", "b/c/z.txt"]


# -- files that are not regular, too large, or unreadable: reported, never waited on ---------


def read_safely(*paths: Path, limit: int = 4096) -> tuple[list[DocumentIn | ReadError], int]:
    """`read_sources` and `count_items` in a child process with a deadline and a memory cap,
    so that a reader that blocks on a FIFO or reads /dev/zero fails the test instead of
    hanging it or filling the machine's memory."""
    context = multiprocessing.get_context("fork")
    results = context.SimpleQueue()
    child = context.Process(target=_read_in_child, args=(list(paths), limit, results))
    child.start()
    child.join(20)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("reading did not finish within 20 s (blocked on a FIFO or a device?)")
    assert child.exitcode == 0 and not results.empty(), f"the reader failed ({child.exitcode})"
    outcome = results.get()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _read_in_child(paths: list[Path], limit: int, results: Any) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + 2**30, hard))
    try:
        results.put((list(read_sources(paths, limit)), count_items(paths, limit)))
    except BaseException as exc:  # noqa: BLE001 - handed to the test to raise
        results.put(RuntimeError(f"{type(exc).__name__}: {exc}"))


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


def reasons(items: list[DocumentIn | ReadError]) -> dict[str, str]:
    return {Path(i.source).name: i.reason for i in items if isinstance(i, ReadError)}


def ids(items: list[DocumentIn | ReadError]) -> list[str | None]:
    return [i.id for i in items if isinstance(i, DocumentIn)]


def test_fifos_are_reported_not_waited_on(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("Bees make honey.", "utf-8")
    os.mkfifo(folder / "pipe.txt")
    (folder / "z.jsonl").write_text('{"id": "z", "text": "Wasps do not."}\n', "utf-8")
    os.mkfifo(tmp_path / "direct.txt")
    os.mkfifo(tmp_path / "direct.jsonl")
    items, total = read_safely(folder, tmp_path / "direct.txt", tmp_path / "direct.jsonl")
    assert ids(items) == ["a.txt", "z"]
    found = reasons(items)
    assert set(found) == {"pipe.txt", "direct.txt", "direct.jsonl"}
    assert all(r == "a FIFO (named pipe), not a regular file; only regular files are read"
               for r in found.values())
    assert total == len(items) == 5


def test_devices_and_sockets_are_reported(tmp_path: Path) -> None:
    os.symlink("/dev/zero", tmp_path / "zero.txt")
    os.symlink("/dev/zero", tmp_path / "zero.jsonl")
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "ok.md").write_text("# Fine", "utf-8")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(folder / "server.txt"))
        items, total = read_safely(tmp_path / "zero.txt", tmp_path / "zero.jsonl", folder)
    found = reasons(items)
    assert found["zero.txt"].startswith("a character device, not a regular file")
    assert found["zero.jsonl"].startswith("a character device, not a regular file")
    assert found["server.txt"].startswith("a socket, not a regular file")
    assert ids(items) == ["ok.md"] and total == len(items) == 4


def test_symlink_loops_are_reported(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    os.symlink("loop.txt", folder / "loop.txt")
    os.symlink("pong.md", folder / "ping.md")
    os.symlink("ping.md", folder / "pong.md")
    (folder / "ok.txt").write_text("Fine.", "utf-8")
    items, total = read_safely(folder, folder / "loop.txt")
    assert [(Path(i.source).name, i.reason) for i in items if isinstance(i, ReadError)] == [
        (name, "symbolic link loop (a link that leads back to itself)")
        for name in ["loop.txt", "ping.md", "pong.md", "loop.txt"]
    ]
    assert ids(items) == ["ok.txt"] and total == len(items) == 5


def test_files_over_the_document_limit_are_refused(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("word " * 300, "utf-8")  # 1,500 bytes
    (tmp_path / "big.html").write_text("<p>" + "x" * 1100 + "</p>", "utf-8")  # text 1,100
    (tmp_path / "small.html").write_text(f"<p>{'z' * 900}</p><!-- {'.' * 900} -->", "utf-8")
    (tmp_path / "exact.txt").write_text("y" * 1024, "utf-8")
    items, total = read_safely(tmp_path, limit=1024)
    limit = (
        "is larger than the 1,024 bytes one document may have (XLSEARCH_MAX_DOCUMENT_BYTES); "
        "split it into smaller documents"
    )
    assert reasons(items) == {
        "big.txt": f"the file (1,500 bytes) {limit}",
        "big.html": f"the extracted text {limit}",  # the file's size is not what counts
    }
    assert ids(items) == ["exact.txt", "small.html"] and total == len(items) == 4


def test_a_jsonl_line_over_the_limit_is_one_bad_item(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a", "text": "Short."}),
        json.dumps({"id": "b", "text": "long " * 1000}),  # 5 kB, no newline read at once
        "",
        json.dumps({"id": "c", "text": "z" * (1024 - 23)}),  # exactly the limit
        json.dumps({"id": "d", "text": "Also short."}),
        json.dumps({"id": "e", "text": "unfinished " * 200}),  # the last line, no newline
    ]
    assert len(lines[3].encode()) == 1024
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines), "utf-8")
    items, total = read_safely(path, limit=1024)
    assert ids(items) == ["a", "c", "d"]
    assert sorted(i.source for i in items if isinstance(i, ReadError)) == [
        f"{path}:2", f"{path}:6"
    ]
    assert all("the line is larger than the 1,024 bytes" in r for r in reasons(items).values())
    assert total == len(items) == 5


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_files_and_folders_are_reported(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("x", "utf-8")
    (tmp_path / "secret.txt").chmod(0)
    (tmp_path / "closed").mkdir()
    (tmp_path / "closed" / "inside.txt").write_text("x", "utf-8")
    (tmp_path / "closed").chmod(0)
    (tmp_path / "ok.txt").write_text("Fine.", "utf-8")
    try:
        items, total = read_safely(tmp_path)
    finally:
        (tmp_path / "closed").chmod(0o755)
    assert reasons(items) == {
        "closed": "permission denied; make it readable by the server's user",
        "secret.txt": "permission denied; make it readable by the server's user",
    }
    assert ids(items) == ["ok.txt"] and total == len(items) == 3


def test_broken_items_never_stop_the_rest(tmp_path: Path) -> None:
    """Markup html.parser chokes on, JSON it cannot decode (a 5000-digit number, deep
    nesting) and a file name that is not UTF-8 are each one item error."""
    (tmp_path / "a.txt").write_text("First file.", "utf-8")
    (tmp_path / "b.html").write_text("<p>x<![foo[ y</p>", "utf-8")
    lines = [b'{"text": 1' + b"1" * 5000 + b"}", b"[" * 100_000, b'{"text": "after"}']
    (tmp_path / "c.jsonl").write_bytes(b"\n".join(lines))
    (tmp_path / os.fsdecode(b"caf\xe9.txt")).write_text("Latin-1 name.", "utf-8")
    (tmp_path / "d.txt").write_text("Last file.", "utf-8")
    items = read(tmp_path)
    texts = [item.text for item in items if isinstance(item, DocumentIn)]
    assert texts == ["First file.", "after", "Last file."]
    errors = [item for item in items if isinstance(item, ReadError)]
    reasons = " | ".join(error.reason for error in errors)
    assert len(errors) == 4, reasons
    assert "HTML" in reasons and reasons.count("invalid JSON") == 2 and "not valid UTF-8" in reasons
    assert all(error.source.encode("utf-8") for error in errors)  # printable, storable


def test_html_with_thousands_of_unclosed_tags(tmp_path: Path) -> None:
    (tmp_path / "deep.html").write_text(
        "<title>Deep</title>" + "<div><span>word " * 20_000 + "<script>no</script>end", "utf-8"
    )
    [document] = read(tmp_path / "deep.html")
    assert isinstance(document, DocumentIn) and document.title == "Deep"
    assert document.text.count("word") == 20_000 and "no" not in document.text.split()
