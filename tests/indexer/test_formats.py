"""PDF, Word, PowerPoint, EPUB, HTML and Markdown files read into text with their pages,
slides and sections, their titles and metadata; broken files reported one by one."""

from __future__ import annotations

import os
import signal
import time
import zipfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from bench import files
from indexer.extraction import ExtractionPool
from indexer.readers import Extraction, ReadError, read_sources
from search.locators import describe_locator, locate
from search.schemas import DocumentIn
from tests.formats_corpus import (
    DOCX_SECTIONS,
    EPUB_CHAPTERS,
    NEWS_SECTIONS,
    PDF_PAGES,
    PPTX_SLIDES,
    write_broken,
    write_corpus,
)


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DocumentIn | ReadError]:
    folder = tmp_path_factory.mktemp("files")
    write_corpus(folder)
    write_broken(folder)
    items = list(read_sources([folder], extraction=Extraction(processes=2)))
    return {item.id if isinstance(item, DocumentIn) else Path(item.source).name: item
            for item in items}


def document(documents: dict[str, DocumentIn | ReadError], name: str) -> DocumentIn:
    found = documents[name]
    assert isinstance(found, DocumentIn), found
    return found


def part_texts(doc: DocumentIn) -> dict[int | str, str]:
    """Each part's text, by its page, slide or section."""
    assert doc.parts
    ends = [p.start for p in doc.parts[1:]] + [len(doc.text)]
    pairs = zip(doc.parts, ends, strict=True)
    return {getattr(p, p.kind): doc.text[p.start:end].strip() for p, end in pairs}


def squeeze(text: str) -> str:
    return "".join(text.split())


def test_a_pdf_is_read_page_by_page_in_every_script(documents: dict) -> None:
    pdf = document(documents, "world.pdf")
    pages = part_texts(pdf)
    assert list(pages) == [1, 2, 3]
    for number, (_, text) in enumerate(PDF_PAGES, start=1):
        assert squeeze(pages[number]) == squeeze(text)  # Chinese and Arabic in reading order
    assert pdf.title == "Wonders of the world"
    assert pdf.metadata["format"] == "pdf" and pdf.metadata["pages"] == 3
    assert pdf.metadata["author"] == "Ana Autor" and pdf.metadata["created"][:2] == "20"
    assert "\n\n\n" in pdf.text  # pages end with a deeper break than paragraphs


def test_word_is_read_by_heading_with_its_properties(documents: dict) -> None:
    docx = document(documents, "contract.docx")
    sections = part_texts(docx)
    assert list(sections) == [heading for heading, _ in DOCX_SECTIONS]
    assert DOCX_SECTIONS[1][1] in sections["2.3 Liability"]
    assert "1 Scope | 7" in docx.text  # the table, row by row
    assert docx.title == "Delivery agreement"
    assert {k: docx.metadata[k] for k in ("format", "author", "language")} == {
        "format": "docx", "author": "Legal team", "language": "en-GB"
    }


def test_powerpoint_is_read_slide_by_slide_with_notes(documents: dict) -> None:
    pptx = document(documents, "results.pptx")
    slides = part_texts(pptx)
    assert list(slides) == [1, 2, 3]
    assert slides[2] == "\n\n".join(PPTX_SLIDES[1])
    assert "Mention the new shop in Porto." in slides[1]
    assert pptx.title == "Quarterly results" and pptx.metadata["slides"] == 3


def test_epub_chapters_are_sections_with_dublin_core(documents: dict) -> None:
    epub = document(documents, "tales.epub")
    assert list(part_texts(epub)) == [heading for heading, _ in EPUB_CHAPTERS]
    assert epub.title == "Kleine Geschichten"
    assert epub.metadata == {"format": "epub", "author": "Greta Schreiber", "language": "de"}


def test_a_web_page_keeps_its_article_without_menus_banners_and_footer(documents: dict) -> None:
    page = document(documents, "news.html")
    for heading, text in NEWS_SECTIONS:
        assert heading in page.text and text in page.text
    for boilerplate in ("Sport", "cookies", "Lottery numbers", "Privacy policy", "Daily Courier"):
        assert boilerplate not in page.text
    assert list(part_texts(page))[1:] == [heading for heading, _ in NEWS_SECTIONS]
    assert page.title == "Storm over the valley"
    assert page.metadata["language"] == "en" and page.metadata["author"] == "Daily Courier staff"


def test_broken_files_are_reported_each_with_its_reason(
    documents: dict, tmp_path: Path
) -> None:
    for name, reason in write_broken(tmp_path).items():
        found = documents[name]
        assert isinstance(found, ReadError) and reason in found.reason, (name, found)


def test_a_file_over_the_file_limit_and_a_stuck_reader_fail_alone(tmp_path: Path) -> None:
    write_corpus(tmp_path)
    small = Extraction(processes=1, max_file_bytes=4096)
    reasons = {Path(i.source).name: i.reason for i in read_sources([tmp_path], extraction=small)
               if isinstance(i, ReadError)}
    assert "larger than the 4,096 bytes a file may have (XLSEARCH_MAX_FILE_BYTES)" in reasons[
        "world.pdf"]
    assert "news.html" not in reasons  # 2 kB
    hurried = Extraction(processes=1, timeout_s=0.0001)
    items = list(read_sources([tmp_path / "world.pdf", tmp_path / "news.html"], extraction=hurried))
    assert all(isinstance(i, ReadError) and "took longer than 0.0001 s" in i.reason for i in items)
    # and a new process reads the next file
    [again] = read_sources([tmp_path / "news.html"], extraction=Extraction(processes=1))
    assert isinstance(again, DocumentIn)


def test_a_pdf_under_another_name_is_read_as_a_pdf(tmp_path: Path) -> None:
    write_corpus(tmp_path)
    (tmp_path / "world.pdf").rename(tmp_path / "world.txt")
    [found] = read_sources([tmp_path / "world.txt"])
    assert isinstance(found, DocumentIn) and found.metadata["format"] == "pdf"


def test_markdown_sections_skip_code_and_know_setext(tmp_path: Path) -> None:
    text = (
        "# Tea\n\nintro\n\n## Brewing\n\nhot water\n\n```\n# a comment\n```\n\n"
        "Serving\n---\n\ncups\n"
    )
    (tmp_path / "tea.md").write_text(text, "utf-8")
    [doc] = read_sources([tmp_path / "tea.md"])
    assert isinstance(doc, DocumentIn) and doc.text == text  # stored as written
    assert [(p.start, p.section) for p in doc.parts or []] == [
        (0, "Tea"), (text.index("## Brewing"), "Brewing"), (text.index("Serving"), "Serving")
    ]


def test_locators_name_the_part_a_span_starts_in_and_where_it_ends() -> None:
    pages = [{"start": 0, "page": 1}, {"start": 100, "page": 2}, {"start": 200, "page": 3}]
    assert locate(pages, 10, 90) == {"page": 1}
    assert locate(pages, 150, 250) == {"page": 2, "to": 3}
    assert locate(pages, 50, 100) == {"page": 1}  # ends just before page 2
    assert locate(pages, 50, 101) == {"page": 1, "to": 2}
    sections = [{"start": 20, "section": "A"}, {"start": 40, "section": "A"}]
    assert locate(sections, 0, 10) is None  # a preface before the first heading
    assert locate(sections, 0, 30) == {"section": "A"}
    assert locate(sections, 25, 45) == {"section": "A"}  # a heading repeated is not a move
    assert locate(None, 0, 10) is None
    assert [describe_locator(x) for x in (
        {"page": 12}, {"page": 12, "to": 13}, {"slide": 3}, {"section": "2.3 Liability"},
        {"section": "A", "to": "B"}, None,
    )] == ["p. 12", "pp. 12–13", "slide 3", "§ 2.3 Liability", "§ A → B", ""]


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([{"start": 0, "page": 1, "slide": 1}], "exactly one of page, slide or section"),
        ([{"start": 0}], "exactly one of page, slide or section"),
        ([{"start": 0, "page": 1}, {"start": 3, "slide": 2}], "parts mix page and slide"),
        ([{"start": 5, "page": 1}, {"start": 5, "page": 2}], "increasing offsets"),
        ([{"start": 11, "page": 1}], "past the end of the text (11 characters)"),
        ([{"start": 0, "page": 0}], "greater than or equal to 1"),
        ([{"start": -1, "page": 1}], "greater than or equal to 0"),
        ([{"start": 0, "section": "x" * 201}], "at most 200"),
        ([{"start": 0, "section": "\ud800"}], "lone surrogate"),
        ([{"start": 0, "page": "1"}], "valid integer"),
    ],
)
def test_parts_given_over_the_api_are_checked(parts: list, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DocumentIn.model_validate({"text": "eleven char", "parts": parts})


def test_a_pdf_with_only_an_owner_password_is_read(tmp_path: Path) -> None:
    import io

    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(files.pdf_bytes(PDF_PAGES[:1])))
    writer.encrypt(user_password="", owner_password="owner")  # opens without a password
    writer.write(tmp_path / "owned.pdf")
    [found] = read_sources([tmp_path / "owned.pdf"])
    assert isinstance(found, DocumentIn) and "tea ceremony" in found.text


def extraction_processes() -> list[int]:
    """Process ids of this process's extraction workers (`python -m indexer.extraction`)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit():
                continue
            status = (entry / "status").read_text()
            parent = int(status.split("PPid:")[1].split()[0])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and b"indexer.extraction" in command:
            found.append(int(entry.name))
    return found


def test_a_reader_that_dies_costs_only_its_file(tmp_path: Path) -> None:
    slow = tmp_path / "huge.html"  # seconds of parsing: time to kill the process reading it
    slow.write_text("<html><body>" + "<p>word and word</p>" * 1_500_000 + "</body></html>")
    write_corpus(tmp_path)
    pool = ExtractionPool(lambda task, reason: ReadError(task[0], reason), 1, 120)
    small = (str(tmp_path / "world.pdf"), "world.pdf", 2**21, 2**27)
    try:
        # A first file starts the process, so that the kill lands while it parses the slow
        # one, not while it starts (which a busy machine can make last over a second).
        assert isinstance(pool.submit(small).result(120), DocumentIn)
        dying = pool.submit((str(slow), "huge.html", 2**26, 2**30))
        time.sleep(1.0)
        for pid in extraction_processes():
            os.kill(pid, signal.SIGKILL)
        died = dying.result(60)
        assert isinstance(died, ReadError) and "its reader crashed on it" in died.reason
        after = pool.submit(small).result(60)
        assert isinstance(after, DocumentIn) and after.parts  # a fresh process read it
    finally:
        pool.close()
    assert not extraction_processes()


def test_an_office_file_that_unpacks_like_a_zip_bomb_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * 80 * 2**20)  # 80 MiB in about 80 kB
    [found] = read_sources([bomb])
    assert isinstance(found, ReadError) and "like a ZIP bomb" in found.reason
