"""The bundled search page: `GET /` and its files under `/web/` (search.bundled.web_folder)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from search.bundled import web_folder
from search.errors import PageMissing

WEB_DIR = web_folder()
# The page loads nothing but its own files and talks only to this server; with no inline
# script allowed, text from documents could not run even if it were ever parsed as HTML.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
def page() -> FileResponse:
    """The search page (its state lives in the URL: `/?q=…&lang=…&k=…&collection=…`)."""
    index = WEB_DIR / "index.html"
    if not index.is_file():
        raise PageMissing(f"the web page is not installed: {index} is missing")
    return FileResponse(index, headers=PAGE_HEADERS)


def install(app: FastAPI) -> None:
    """Serve the page at `/` and its scripts and styles under `/web/`."""
    app.include_router(router)
    if WEB_DIR.is_dir():
        app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
