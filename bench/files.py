"""Writes PDF, Word, PowerPoint, EPUB and HTML files from texts, for the tests, the sample
corpus and bench/extract.py: real files, made by the libraries that office tools use
(ReportLab, python-docx, python-pptx), so the readers meet what users have.

PDF pages in Chinese use ReportLab's built-in CID font, other scripts a TrueType font (DejaVu
Sans, Debian's fonts-dejavu-core); Arabic is drawn right to left as a PDF writer lays out
an RTL line.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from html import escape
from pathlib import Path

DEJAVU_SANS = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
RTL_LANGUAGES = {"ar", "fa", "ur"}
CJK_LANGUAGES = {"zh", "ja"}


def pdf_bytes(
    pages: Sequence[tuple[str, str]],
    title: str | None = None,
    author: str | None = None,
    *,
    password: str | None = None,
    image_only: bool = False,
) -> bytes:
    """A PDF with one page per (language, text), lines wrapped; `password` encrypts it,
    `image_only` draws a picture instead of text (a scan without a text layer)."""
    from reportlab.lib.utils import simpleSplit
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    if title:
        pdf.setTitle(title)
    if author:
        pdf.setAuthor(author)
    for lang, text in pages:
        if image_only:
            _draw_picture(pdf)
            pdf.showPage()
            continue
        font = _font(lang, pdfmetrics, UnicodeCIDFont)
        pdf.setFont(font, 11)
        y = 780.0
        width = 20 if lang in CJK_LANGUAGES else 80  # characters a line
        for paragraph in text.split("\n"):
            lines = (
                [paragraph[i:i + width] for i in range(0, len(paragraph), width)]
                if lang in CJK_LANGUAGES | RTL_LANGUAGES
                else simpleSplit(paragraph, font, 11, 460)
            )
            for line in lines:
                if lang in RTL_LANGUAGES:
                    pdf.drawRightString(530, y, line[::-1])  # glyphs laid out right to left
                else:
                    pdf.drawString(70, y, line)
                y -= 16
            y -= 8
        pdf.showPage()
    pdf.save()
    data = buffer.getvalue()
    return _encrypted(data, password) if password else data


def _font(lang: str, pdfmetrics: object, cid_font: type) -> str:
    """ReportLab's CID fonts for Chinese and Japanese, DejaVu Sans for every other script
    it covers (Latin, Greek, Cyrillic, Arabic; not Devanagari or Thai)."""
    if lang in CJK_LANGUAGES:
        name = "STSong-Light" if lang == "zh" else "HeiseiMin-W3"
        pdfmetrics.registerFont(cid_font(name))  # type: ignore[attr-defined]
        return name
    from reportlab.pdfbase.ttfonts import TTFont

    if not DEJAVU_SANS.exists():
        raise FileNotFoundError(f"{DEJAVU_SANS} is missing: apt-get install fonts-dejavu-core")
    pdfmetrics.registerFont(TTFont("DejaVuSans", str(DEJAVU_SANS)))  # type: ignore[attr-defined]
    return "DejaVuSans"


def _draw_picture(pdf: object) -> None:
    from PIL import Image, ImageDraw
    from reportlab.lib.utils import ImageReader

    picture = Image.new("RGB", (400, 200), "white")
    ImageDraw.Draw(picture).text((20, 80), "A scanned page: pixels, not text", fill="black")
    pdf.drawImage(ImageReader(picture), 70, 500, 400, 200)  # type: ignore[attr-defined]


def _encrypted(data: bytes, password: str) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(
    sections: Sequence[tuple[str, str]], title: str | None = None, author: str | None = None,
    language: str | None = None,
) -> bytes:
    """A Word file with a heading and its paragraphs per (heading, text) section; a table
    of the headings at the end."""
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    if author:
        document.core_properties.author = author
    if language:
        document.core_properties.language = language
    for heading, text in sections:
        document.add_heading(heading, level=1)
        for paragraph in text.split("\n"):
            document.add_paragraph(paragraph)
    table = document.add_table(rows=len(sections), cols=2)
    for row, (heading, _) in zip(table.rows, sections, strict=True):
        row.cells[0].text, row.cells[1].text = heading, str(len(heading))
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def pptx_bytes(slides: Sequence[tuple[str, str]], notes: Sequence[str] = ()) -> bytes:
    """A presentation with a title and a text body per (title, text) slide."""
    import pptx

    presentation = pptx.Presentation()
    layout = presentation.slide_layouts[1]  # title and content
    for n, (heading, text) in enumerate(slides):
        slide = presentation.slides.add_slide(layout)
        slide.shapes.title.text = heading
        slide.placeholders[1].text = text
        if n < len(notes):
            slide.notes_slide.notes_text_frame.text = notes[n]
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def epub_bytes(
    chapters: Sequence[tuple[str, str]], title: str, author: str, language: str
) -> bytes:
    """An EPUB 3 with one XHTML chapter per (heading, text), in a spine."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as book:
        book.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        book.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" '
            'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="OEBPS/content.opf" '
            'media-type="application/oebps-package+xml"/></rootfiles></container>',
            compress_type=zipfile.ZIP_DEFLATED,
        )
        items = spine = ""
        for n, (heading, text) in enumerate(chapters, start=1):
            paragraphs = "".join(f"<p>{escape(p)}</p>" for p in text.split("\n"))
            book.writestr(
                f"OEBPS/chapter{n}.xhtml",
                f'<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/'
                f'xhtml"><head><title>{escape(heading)}</title></head><body>'
                f"<h1>{escape(heading)}</h1>{paragraphs}</body></html>",
                compress_type=zipfile.ZIP_DEFLATED,
            )
            items += (f'<item id="c{n}" href="chapter{n}.xhtml" '
                      'media-type="application/xhtml+xml"/>')
            spine += f'<itemref idref="c{n}"/>'
        book.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0" encoding="utf-8"?><package xmlns="http://www.idpf.org/2007/opf"'
            ' version="3.0" unique-identifier="id"><metadata '
            'xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f"<dc:identifier id=\"id\">xlsearch-test</dc:identifier><dc:title>{escape(title)}"
            f"</dc:title><dc:creator>{escape(author)}</dc:creator><dc:language>{language}"
            f"</dc:language></metadata><manifest>{items}</manifest><spine>{spine}</spine>"
            "</package>",
            compress_type=zipfile.ZIP_DEFLATED,
        )
    return buffer.getvalue()


def news_html(title: str, sections: Sequence[tuple[str, str]], lang: str) -> str:
    """A news-style page: navigation, a cookie banner, the article, related links, a footer."""
    article = "".join(
        f"<h2>{escape(heading)}</h2>" + "".join(f"<p>{escape(p)}</p>" for p in text.split("\n"))
        for heading, text in sections
    )
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f'<title>{escape(title)} | Daily Courier</title>'
        '<meta name="author" content="Daily Courier staff"></head><body>'
        '<nav><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>'
        '<li><a href="/sport">Sport</a></li><li><a href="/weather">Weather</a></li></ul></nav>'
        '<div class="cookie-banner">We use cookies to improve your experience. '
        "<button>Accept all cookies</button></div>"
        f"<main><article><h1>{escape(title)}</h1>{article}</article>"
        '<aside><h3>Most read</h3><ul><li><a href="/a">Lottery numbers</a></li>'
        '<li><a href="/b">Transfer rumours</a></li></ul></aside></main>'
        "<footer><p>Copyright Daily Courier Ltd. Terms of use. Privacy policy. "
        "Contact the newsroom.</p></footer></body></html>"
    )
