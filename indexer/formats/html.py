"""HTML: the page's main content through trafilatura (navigation, footers and cookie banners
left out), by section heading; the page's visible text when no main content is found."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

from indexer.formats.builder import Extracted, TextBuilder

HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
MAIN_BLOCKS = ("head", "p", "list", "item", "table", "quote", "code")  # in trafilatura's XML


def read_html(data: bytes, max_document_bytes: int) -> Extracted:
    """The main content of a web page, decoded by its declared or detected charset."""
    import trafilatura
    from trafilatura.utils import decode_file

    html = decode_file(data)
    page = _VisibleText.of(html)
    tree = trafilatura.load_html(html)
    found: Any = None  # trafilatura's Document
    if tree is not None and _whole(tree, page):
        found = trafilatura.bare_extraction(
            tree, include_comments=False, include_tables=True, with_metadata=True
        )
    builder = TextBuilder(max_document_bytes)
    if found is not None and found.body is not None and len(found.body):
        for kind, text in _main_blocks(found.body):
            if kind == "heading":
                builder.begin("section", text)
            builder.add(text)
        title = found.title or page.title
        metadata = {"author": found.author, "created": found.date}
    else:
        for kind, text in page.blocks:
            if kind == "heading":
                builder.begin("section", text)
            builder.add(text)
        title, metadata = page.title, {}
    language = tree.get("lang") if tree is not None else None
    metadata = {"format": "html", **metadata, "language": language}
    return builder.build(title, metadata, "the page holds no text")


def _whole(tree: Any, page: _VisibleText) -> bool:
    """Whether lxml parsed the whole page: past its depth limit (256 nested elements) it
    drops the rest, and the main content would silently lose it too."""
    parsed = sum(len(text.split()) for text in tree.itertext())
    return parsed >= 0.9 * sum(len(text.split()) for _, text in page.blocks)


def read_html_blocks(html: str) -> tuple[str | None, list[tuple[str, str]]]:
    """All visible text of an HTML document as ("heading" | "text", text) blocks, with its
    <title>: what an EPUB chapter is read as (it has no navigation to leave out)."""
    page = _VisibleText.of(html)
    return page.title, page.blocks


def _main_blocks(body: Any) -> Iterator[tuple[str, str]]:
    """trafilatura's main content (its own XML: head, p, list/item, table/row/cell, quote,
    lb), walked element by element, so that nested lists and tables appear once each."""
    for element in body:
        yield from _element_blocks(element)


def _element_blocks(element: Any) -> Iterator[tuple[str, str]]:
    if element.tag == "head":
        yield "heading", _inline_text(element)
    elif element.tag == "table":
        for row in element.iterchildren("row"):
            cells = (" ".join(_inline_text(cell).split()) for cell in row.iterchildren("cell"))
            yield "text", " | ".join(c for c in cells if c)
            for cell in row.iterchildren("cell"):  # a table inside a cell: its own rows
                for inner in cell.iterchildren(*MAIN_BLOCKS):
                    yield from _element_blocks(inner)
    else:  # p, quote, list, item...: its own text (lines end at <lb/>), then inner blocks
        for line in _inline_text(element).split("\n"):
            yield "text", line
        for inner in element.iterchildren(*MAIN_BLOCKS):
            yield from _element_blocks(inner)


def _inline_text(element: Any) -> str:
    """An element's text without its inner blocks (read on their own), <lb/> as a newline."""
    pieces = [element.text or ""]
    for child in element:
        if child.tag == "lb":
            pieces.append("\n")
        elif child.tag not in MAIN_BLOCKS:
            pieces.append(_inline_text(child))
        pieces.append(child.tail or "")
    return "".join(pieces)


class _VisibleText(HTMLParser):
    """Visible text of an HTML page in blocks (block elements end one), headings marked."""

    SKIP = {"script", "style", "noscript", "template", "head"}
    BLOCKS = HEADINGS | {
        "p", "div", "br", "li", "tr", "section", "article", "header", "footer",
        "blockquote", "pre", "table", "ul", "ol", "dt", "dd", "figcaption",
    }
    VOID = {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self._current: list[str] = []
        self._title: list[str] = []
        # Open elements, and how many of each are open: every tag costs constant work (a
        # scan of the stack per tag made `"<a>x" * n` quadratic: 61 s for 320 KB).
        self._stack: list[str] = []
        self._open: Counter[str] = Counter()

    @classmethod
    def of(cls, html: str) -> _VisibleText:
        parser = cls()
        try:
            parser.feed(html)
            parser.close()
        except Exception as exc:  # noqa: BLE001 - html.parser asserts on some broken markup
            raise ValueError(f"could not read the HTML ({type(exc).__name__}: {exc})") from None
        parser._end_block()
        return parser

    @property
    def title(self) -> str | None:
        return " ".join("".join(self._title).split()) or None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS:
            self._end_block()
        if tag not in self.VOID:
            self._stack.append(tag)
            self._open[tag] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS:
            self._end_block()
        if self._open[tag]:  # close it and whatever was left open inside it
            while (closed := self._stack.pop()) != tag:
                self._open[closed] -= 1
            self._open[tag] -= 1

    def handle_data(self, data: str) -> None:
        if self._open["title"]:
            self._title.append(data)
        elif not any(self._open[tag] for tag in self.SKIP):
            self._current.append(data)

    def _end_block(self) -> None:
        text = " ".join("".join(self._current).split())
        self._current = []
        if text:
            heading = any(self._open[tag] for tag in HEADINGS)
            self.blocks.append(("heading" if heading else "text", text))
