"""Folders xlsearch ships besides its code: the web page and the sample corpus.

A wheel installs them inside the package (`search/web`, `search/sample`: see setup.py); a
checkout, editable install included, has them at the top of the repository (`web/`, `data/`).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_REPOSITORY = _PACKAGE.parent


def _folder(inside: str, in_checkout: str) -> Path:
    installed = _PACKAGE / inside
    return installed if installed.is_dir() else _REPOSITORY / in_checkout


def web_folder() -> Path:
    """The search page's files (index.html, app.js, style.css)."""
    return _folder("web", "web")


def sample_folder() -> Path:
    """The sample corpus: 36 short documents in 12 languages and two pages (`ingest --sample`)."""
    return _folder("sample", "data")
