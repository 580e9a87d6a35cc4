"""Source readers: formats, folders, and a clear reason for every item that cannot be read."""

from __future__ import annotations

from pathlib import Path

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
    assert errors["8"].startswith("lang: String should match pattern")
    assert count_items([path]) == 7


def test_unreadable_inputs_are_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "empty.md").write_text("  \n", "utf-8")
    (tmp_path / "ok.txt").write_text("Fine.", "utf-8")
    (tmp_path / "ignored.pdf").write_bytes(b"%PDF")
    other = tmp_path / "notes.docx"
    other.write_bytes(b"PK")
    items = read(tmp_path, tmp_path / "missing.txt", other)
    reasons = {Path(i.source).name: i.reason for i in items if isinstance(i, ReadError)}
    assert "binary file" in reasons["binary.txt"]
    assert "not valid UTF-8 (byte 3)" in reasons["latin1.txt"]
    assert reasons["empty.md"] == "text: text is empty"
    assert reasons["missing.txt"] == "no such file or folder"
    assert reasons["notes.docx"].startswith("unsupported file type .docx; use .htm")
    assert [i.id for i in items if isinstance(i, DocumentIn)] == ["ok.txt"]


def test_nested_folders_are_read_in_a_stable_order(tmp_path: Path) -> None:
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / "b" / "c" / "z.txt").write_text("z", "utf-8")
    (tmp_path / "a.txt").write_text("a", "utf-8")
    assert [i.id for i in read(tmp_path) if isinstance(i, DocumentIn)] == ["a.txt", "b/c/z.txt"]
