"""Files and conditions that tried to break the readers (found by an adversarial review): a
busy process's descriptors, no descriptors left, a pool closed mid-job, NULs and huge
strings in a file's metadata, padded ZIP bombs, DRM, broken chapters, and the markup that
the block readers mishandled."""

from __future__ import annotations

import io
import os
import resource
import time
import zipfile
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import docx
import pytest

from bench import files
from indexer.extraction import ExtractionPool
from indexer.formats.builder import METADATA_LIMIT, TextBuilder
from indexer.formats.html import read_html
from indexer.formats.markdown import markdown_parts
from indexer.formats.office import read_docx
from indexer.readers import Extraction, ReadError, read_sources
from search.schemas import SECTION_LIMIT, DocumentIn
from tests.formats_corpus import EPUB_CHAPTERS, PDF_PAGES, write_corpus
from tests.indexer.test_formats import extraction_processes
from tests.waiting import wait_until


def failed(task: tuple, reason: str) -> ReadError:
    return ReadError(task[0], reason)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def descriptor_limit() -> Iterator[tuple[int, int]]:
    """The soft limit on open files, restored afterwards."""
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield limits
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_a_reader_answers_on_a_descriptor_over_1024(
    corpus: Path, descriptor_limit: tuple[int, int]
) -> None:
    soft, hard = descriptor_limit
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip("the hard limit on open files is under 2048")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # as a busy server's
    try:
        [found] = read_sources([corpus / "world.pdf"], extraction=Extraction(processes=1))
    finally:
        for descriptor in held:
            os.close(descriptor)
    assert isinstance(found, DocumentIn) and found.parts


def test_no_descriptors_left_fails_the_file_not_the_job(
    corpus: Path, descriptor_limit: tuple[int, int]
) -> None:
    pool = ExtractionPool(failed, 1, 60)
    try:
        in_use = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 8, descriptor_limit[1]))
        task = (str(corpus / "world.pdf"), "world.pdf", 2**21, 2**27)
        filling: list[int] = []
        try:
            while True:  # every descriptor number under the limit taken, holes included
                filling.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        try:
            starved = pool.submit(task).result(60)
        finally:
            for descriptor in filling:
                os.close(descriptor)
            resource.setrlimit(resource.RLIMIT_NOFILE, descriptor_limit)
        assert isinstance(starved, ReadError) and "could not be handed to a reader" in (
            starved.reason
        )
        assert isinstance(pool.submit(task).result(60), DocumentIn)  # and it recovers
    finally:
        pool.close()


def test_closing_a_busy_pool_leaves_no_process_behind(corpus: Path) -> None:
    pool = ExtractionPool(failed, 2, 60)
    tasks = [(str(corpus / "world.pdf"), f"{n}.pdf", 2**21, 2**27) for n in range(40)]
    for task in tasks:
        pool.submit(task)
    wait_until(lambda: bool(extraction_processes()), 30, "an extraction process")
    pool.close()
    time.sleep(0.5)  # a thread that would start one more after the kills
    assert not extraction_processes()


def test_the_time_limit_starts_when_the_reader_is_ready(corpus: Path) -> None:
    # Starting Python and importing the readers takes longer than this on a CI machine.
    [found] = read_sources(
        [corpus / "news.html"], extraction=Extraction(processes=1, timeout_s=0.3)
    )
    assert isinstance(found, DocumentIn), found


def test_nul_and_huge_strings_in_a_files_metadata_cost_only_themselves(tmp_path: Path) -> None:
    path = tmp_path / "odd.pdf"
    path.write_bytes(files.pdf_bytes(PDF_PAGES, title="Wonders\x00", author="Ana\x00" * 20_000))
    [found] = read_sources([path])
    assert isinstance(found, DocumentIn), found
    assert found.title == "Wonders" and found.metadata["author"].startswith("Ana Ana")
    assert len(found.metadata["author"]) == METADATA_LIMIT
    builder = TextBuilder(2**20)
    builder.begin("section", "Liab\x00ility\ud800 " + "x" * 70_000)
    builder.add("text")
    built = builder.build(None, {"author": "a\x00b", "created": "\x01"}, "empty")
    document = DocumentIn(text=built.text, parts=built.parts, metadata=built.metadata)
    assert document.parts and document.parts[0].section.startswith("Liab ility x")
    assert len(document.parts[0].section) == SECTION_LIMIT
    assert document.metadata == {"author": "a b"}


def test_a_zip_bomb_padded_with_random_bytes_is_still_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "padded.docx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b" " * 80 * 2**20)  # 80 MiB in about 80 kB
        archive.writestr("word/media/padding.bin", os.urandom(2 * 2**20), zipfile.ZIP_STORED)
    [found] = read_sources([bomb])  # 100 times its size is 200 MiB: the old check passed
    assert isinstance(found, ReadError) and "like a ZIP bomb" in found.reason, found


def epub_with(tmp_path: Path, name: str, change: dict[str, bytes | None]) -> Path:
    """The test EPUB with entries replaced (bytes) or removed (None)."""
    book = files.epub_bytes(EPUB_CHAPTERS, "Tales", "A. Author", "de")
    path = tmp_path / name
    with zipfile.ZipFile(io.BytesIO(book)) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            if info.filename not in change:
                target.writestr(info, source.read(info))
        for entry, data in change.items():
            if data is not None:
                target.writestr(entry, data)
    return path


def test_an_epub_with_drm_is_refused_and_one_missing_a_chapter_is_read(tmp_path: Path) -> None:
    encryption = (
        b'<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        b'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:EncryptionMethod '
        b'Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/></enc:EncryptedData>'
        b"</encryption>"
    )
    locked = epub_with(tmp_path, "locked.epub", {"META-INF/encryption.xml": encryption})
    fonts_only = epub_with(tmp_path, "fonts.epub", {"META-INF/encryption.xml": encryption.replace(
        b"http://www.w3.org/2001/04/xmlenc#aes128-cbc", b"http://www.idpf.org/2008/embedding")})
    missing = epub_with(tmp_path, "missing.epub", {"OEBPS/chapter1.xhtml": None})
    found = {Path(i.source if isinstance(i, ReadError) else i.id).name: i
             for i in read_sources([locked, fonts_only, missing])}
    assert isinstance(found["locked.epub"], ReadError)
    assert "encrypted (DRM)" in found["locked.epub"].reason
    assert isinstance(found["fonts.epub"], DocumentIn)
    book = found["missing.epub"]
    assert isinstance(book, DocumentIn) and "Bienen" in book.text and "Leuchtturm" not in book.text
    assert [p.section for p in book.parts or []] == ["Die Bienen"]
    assert book.metadata["unreadable_chapters"][0].startswith("OEBPS/chapter1.xhtml")


def test_web_page_blocks_keep_line_breaks_quotes_and_nested_lists_once() -> None:
    filler = "More about the rivers of Europe, so that this is the page's main content. " * 3
    page = (
        "<html><body><nav>Home | About</nav><article><h1>Rivers of Europe</h1>"
        "<p>The Danube flows through ten countries.<br>It begins in the Black Forest.</p>"
        "<blockquote><p>A first quoted paragraph about water.</p>"
        "<p>A second quoted paragraph about fish.</p></blockquote>"
        "<ul><li>The outer item about the rivers<ul><li>The inner item about the Rhine</li>"
        "</ul></li><li>The second outer item about the Elbe</li></ul>"
        f"<p>{filler}</p></article><footer>Copyright</footer></body></html>"
    )
    blocks = read_html(page.encode(), 2**20).text.split("\n\n")
    assert blocks[:7] == [
        "Rivers of Europe", "The Danube flows through ten countries.",
        "It begins in the Black Forest.", "A first quoted paragraph about water.",
        "A second quoted paragraph about fish.", "The outer item about the rivers",
        "The inner item about the Rhine",
    ]
    assert blocks.count("The inner item about the Rhine") == 1


def test_word_tables_list_merged_cells_once_and_nested_tables_after_their_row() -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).text, table.cell(0, 1).text, table.cell(0, 2).text = "same", "same", "x"
    table.cell(1, 0).merge(table.cell(1, 1)).text = "merged"
    table.cell(1, 2).text = "outer"
    nested = table.cell(1, 2).add_table(rows=1, cols=2)
    nested.cell(0, 0).text, nested.cell(0, 1).text = "inner a", "inner b"
    buffer = io.BytesIO()
    document.save(buffer)
    text = read_docx(buffer.getvalue(), 2**20).text
    assert text.split("\n\n") == ["same | same | x", "merged | outer", "inner a | inner b"]


def test_markdown_headings_follow_commonmark_where_it_matters() -> None:
    text = (
        "---\ntitle: front matter\n---\n# One\n````\n```\n# not a heading\n````\n## Two\n"
        "- a list item\n---\ntext\u2028more\x0cline\n===\n~~~py\n# no\n~~~ not a close\n"
        "# still code\n~~~\n# Three\n"
    )
    parts = markdown_parts(text)
    assert [p["section"] for p in parts] == ["One", "Two", "text more line", "Three"]
    assert [text[p["start"]:].split("\n", 1)[0] for p in parts] == [
        "# One", "## Two", "text\u2028more\x0cline", "# Three"
    ]


def test_a_resumed_read_passes_over_what_it_skips_without_reading_it(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "corpus")
    lines = "".join(f'{{"id": "line-{n}", "text": "line {n}"}}\n' for n in range(5))
    (folder / "z.jsonl").write_text(lines, "utf-8")
    everything = [i.id if isinstance(i, DocumentIn) else i.source
                  for i in read_sources([folder])]
    for skip in range(len(everything) + 1):
        rest = [i.id if isinstance(i, DocumentIn) else i.source
                for i in read_sources([folder], skip=skip)]
        assert rest == everything[skip:] == list(islice(everything, skip, None))
    # Nothing before the JSONL lines is extracted: with no time to read, none fails.
    jsonl_start = everything.index("line-0")
    hurried = Extraction(processes=1, timeout_s=0.0001)
    rest = list(read_sources([folder], extraction=hurried, skip=jsonl_start + 2))
    assert [i.id for i in rest if isinstance(i, DocumentIn)] == ["line-2", "line-3", "line-4"]
