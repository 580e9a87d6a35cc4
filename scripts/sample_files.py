"""Writes the sample corpus's files (data/files/): a PDF, a Word file, a presentation and an
EPUB, made from the texts in tests/formats_corpus.py, so that the quickstart shows search
results with their page, slide or section. Run it again after changing those texts."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.formats_corpus import write_corpus  # noqa: E402

if __name__ == "__main__":
    target = ROOT / "data" / "files"
    write_corpus(target)
    (target / "news.html").unlink()  # data/pages holds the sample's web pages
    print(sorted(p.name for p in target.iterdir()))  # noqa: T201
