"""EPUB: the chapters in reading order (the package's spine), each read as HTML, by section
heading, with the package's Dublin Core metadata. Read with the standard library's zipfile
and ElementTree (whose expat refuses entity expansion bombs and never fetches entities)."""

from __future__ import annotations

import io
import posixpath
import zipfile
from urllib.parse import unquote
from xml.etree import ElementTree

from indexer.formats.builder import SKIPPED_NOTES, Extracted, TextBuilder
from indexer.formats.html import read_html_blocks

CONTAINER = "META-INF/container.xml"
ENCRYPTION = "META-INF/encryption.xml"  # DRM (or obfuscated fonts only, which are fine)
FONT_OBFUSCATION = ("http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC")
CHAPTER_MARKUP = 8  # a chapter's XHTML may be this many times the text a document may have
NS = {
    "c": "urn:oasis:names:tc:opendocument:xmlns:container",
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
}
MAX_RATIO = 200  # an entry that unpacks to more than this times its size is a ZIP bomb


def read_epub(data: bytes, max_document_bytes: int) -> Extracted:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            return _read(book, max_document_bytes)
    except (zipfile.BadZipFile, ElementTree.ParseError, KeyError, EOFError) as exc:
        reason = f"{type(exc).__name__}: {exc}"[:200]
        raise ValueError(f"not a readable EPUB ({reason}); save it again") from None


def _read(book: zipfile.ZipFile, max_document_bytes: int) -> Extracted:
    _refuse_drm(book, max_document_bytes)
    container = ElementTree.fromstring(_entry(book, CONTAINER, max_document_bytes))
    rootfile = container.find(".//c:rootfile", NS)
    if rootfile is None or not rootfile.get("full-path"):
        raise ValueError("not a readable EPUB (its container names no package); save it again")
    package_path = rootfile.get("full-path", "")
    package = ElementTree.fromstring(_entry(book, package_path, max_document_bytes))
    base = posixpath.dirname(package_path)
    manifest = {
        item.get("id"): posixpath.normpath(posixpath.join(base, unquote(item.get("href", ""))))
        for item in package.iterfind("opf:manifest/opf:item", NS)
    }
    builder = TextBuilder(max_document_bytes)
    skipped: list[str] = []  # a missing or broken chapter costs itself, not the book
    chapters = 0
    for itemref in package.iterfind("opf:spine/opf:itemref", NS):
        href = manifest.get(itemref.get("idref"))
        if href is None or itemref.get("linear") == "no":
            continue
        try:
            markup = _entry(book, href, CHAPTER_MARKUP * max_document_bytes)
            title, blocks = read_html_blocks(markup.decode("utf-8", errors="replace"))
        except (KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            skipped.append(f"{href}: {exc}"[:200])
            continue
        chapters += 1
        if not any(kind == "heading" for kind, _ in blocks[:1]):
            builder.begin("section", title or f"Chapter {chapters}")
        for kind, text in blocks:
            if kind == "heading":
                builder.begin("section", text)
            builder.add(text)

    def dublin_core(name: str) -> str | None:
        found = package.find(f"opf:metadata/dc:{name}", NS)
        return " ".join((found.text or "").split()) or None if found is not None else None

    metadata = {
        "format": "epub",
        "author": dublin_core("creator"),
        "created": dublin_core("date"),
        "language": dublin_core("language"),
        "unreadable_chapters": skipped[:SKIPPED_NOTES],
    }
    return builder.build(dublin_core("title"), metadata, "the EPUB holds no text")


def _refuse_drm(book: zipfile.ZipFile, max_document_bytes: int) -> None:
    """An EPUB whose content is encrypted (DRM) would be indexed as noise: say so instead.
    Fonts alone may be obfuscated (a publisher's licence rule); their text is not read."""
    if ENCRYPTION not in book.namelist():
        return
    encryption = ElementTree.fromstring(_entry(book, ENCRYPTION, max_document_bytes))
    methods = {
        found.get("Algorithm", "")
        for found in encryption.iter()
        if found.tag.endswith("EncryptionMethod")
    }
    if methods - set(FONT_OBFUSCATION):
        raise ValueError(
            "the EPUB is encrypted (DRM); only books without DRM can be read"
        )


def _entry(book: zipfile.ZipFile, name: str, max_bytes: int) -> bytes:
    """One entry, refused if it is larger than `max_bytes` or looks like a ZIP bomb."""
    info = book.getinfo(name)
    limit = max(max_bytes, 1 << 20)
    if info.file_size > limit or info.file_size > MAX_RATIO * max(info.compress_size, 1 << 12):
        raise ValueError(f"the EPUB's {name!r} unpacks to {info.file_size:,} bytes; too large")
    with book.open(info) as entry:
        data = entry.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"the EPUB's {name!r} is larger than its header says; save it again")
    return data
