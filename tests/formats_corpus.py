"""A folder of real files in several formats and languages, each part about its own topic,
so that a question in another language has one right file and one right page, slide or
section; and the broken files a user meets (encrypted, scanned, damaged, nested archives)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from bench import files

PDF_PAGES = [
    ("en", "The Japanese tea ceremony is a ritual in which green tea is prepared and served "
           "to guests. The host cleans every utensil in front of the guests, whisks the "
           "powdered matcha with a bamboo whisk and offers the bowl with a bow. The tea "
           "master Sen no Rikyu shaped its simple style in the sixteenth century."),
    ("zh", "长城是中国古代修建的巨大防御工程，东起山海关，西至嘉峪关，全长两万多公里。"
           "秦始皇统一六国后把各国的城墙连接起来。今天人们看到的长城大多是明朝修建的，"
           "它是世界上最著名的建筑之一。"),
    ("ar", "نهر النيل هو أطول نهر في أفريقيا ويجري من الجنوب إلى الشمال عبر مصر والسودان "
           "حتى يصب في البحر الأبيض المتوسط. اعتمد المصريون القدماء على فيضان النيل "
           "السنوي في زراعة القمح والشعير على ضفافه الخصبة."),
]
DOCX_SECTIONS = [
    ("1 Scope", "This agreement covers the delivery of office furniture to the buyer's "
                "premises in Lyon, including assembly and the removal of packaging."),
    ("2.3 Liability", "The supplier is liable for damage caused during delivery and assembly "
                      "up to the value of the order. Indirect losses are excluded."),
]
PPTX_SLIDES = [
    ("Quarterly results", "Revenue grew by twelve percent compared with last year."),
    ("Volcanoes of Iceland", "Eyjafjallajökull erupted in 2010 and its ash cloud closed "
                             "European airspace for six days."),
    ("Questions", "Thank you for listening."),
]
EPUB_CHAPTERS = [
    ("Der Leuchtturm", "Der alte Leuchtturmwärter stieg jeden Abend die hundert Stufen "
                       "hinauf, um die Lampe für die Schiffe auf der stürmischen See zu "
                       "entzünden."),
    ("Die Bienen", "Im Frühling flogen die Bienen aus dem Korb im Garten und sammelten "
                   "Nektar von den blühenden Apfelbäumen."),
]
NEWS_SECTIONS = [
    ("Heavy rain floods the valley", "Heavy rain on Monday night flooded streets in the "
     "valley towns and cut power to thousands of homes, the regional authority said."),
    ("Schools stay closed", "All schools in the district will stay closed until Thursday "
     "while engineers check the bridges for damage."),
]


def write_corpus(folder: Path) -> Path:
    """Writes the readable files and the broken ones into `folder`; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "world.pdf").write_bytes(
        files.pdf_bytes(PDF_PAGES, title="Wonders of the world", author="Ana Autor")
    )
    (folder / "contract.docx").write_bytes(
        files.docx_bytes(DOCX_SECTIONS, title="Delivery agreement", author="Legal team",
                         language="en-GB")
    )
    (folder / "results.pptx").write_bytes(
        files.pptx_bytes(PPTX_SLIDES, notes=["Mention the new shop in Porto."])
    )
    (folder / "tales.epub").write_bytes(
        files.epub_bytes(EPUB_CHAPTERS, "Kleine Geschichten", "Greta Schreiber", "de")
    )
    (folder / "news.html").write_text(
        files.news_html("Storm over the valley", NEWS_SECTIONS, "en"), "utf-8"
    )
    return folder


def write_broken(folder: Path) -> dict[str, str]:
    """Writes files no reader can use into `folder`; returns each name with (a part of) the
    reason it must be reported with."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "locked.pdf").write_bytes(files.pdf_bytes(PDF_PAGES[:1], password="s3cret"))
    (folder / "scan.pdf").write_bytes(files.pdf_bytes(PDF_PAGES[:1], image_only=True))
    whole = files.docx_bytes(DOCX_SECTIONS)
    (folder / "cut.docx").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.pptx").write_bytes(files.pptx_bytes([]))
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("a.txt", "text")
    (folder / "inner.zip").write_bytes(inner.getvalue())
    return {
        "locked.pdf": "the PDF is encrypted (it needs a password); remove it",
        "scan.pdf": "no extractable text (a scanned PDF without a text layer?); OCR is not "
                    "supported",
        "cut.docx": "damaged ZIP-based file",
        "empty.pptx": "the presentation holds no text",
        "inner.zip": "a ZIP archive inside a folder or another ZIP is not read; unpack it",
    }
