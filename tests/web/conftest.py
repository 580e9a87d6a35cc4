"""A live server with the sample corpus (plus a few tricky documents) and a headless Chromium.

The browser is Debian's (`apt-get install -y chromium`), driven by Playwright. Without it the
page tests are skipped with the command to run, except where `XLSEARCH_REQUIRE_BROWSER=1`
(set by `.ci/run`), where a missing browser fails the run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, SAMPLE
from tests.processes import running_server

CHROMIUM = Path(os.environ.get("XLSEARCH_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "test-artifacts"
XSS_TITLE = "<img src=x onerror=alert(1)>"

EXTRA_DOCUMENTS: list[dict[str, Any]] = [
    {
        "id": "xss-title",
        "title": XSS_TITLE,
        "lang": "en",
        "text": "Marzipan is a confection made of sugar and ground almonds, popular in Lübeck.",
    },
    {
        "id": "olive-he",
        "title": "עץ הזית",
        "lang": "he",
        "url": "https://example.org/olive",
        "text": "עץ הזית גדל באגן הים התיכון כבר אלפי שנים. מפירותיו מפיקים שמן זית.",
    },
    {  # pages, as the PDF reader gives them (here over the REST API)
        "id": "keeper-manual.pdf",
        "title": "Lighthouse keeper's manual",
        "lang": "en",
        "text": "Chapter 3. The lantern.\n\n\nThe keeper polishes the brass lens of the "
        "lighthouse lantern every morning and trims the wick before dusk.",
        "parts": [{"start": 0, "page": 6}, {"start": 26, "page": 7}],
    },
    {
        "id": "glaciers.pptx",
        "title": "Glaciers",
        "lang": "en",
        "text": "Glaciers of the Alps are melting.\n\n\nThe Aletsch glacier lost a kilometre "
        "of its length in thirty years.",
        "parts": [{"start": 0, "slide": 3}, {"start": 36, "slide": 4}],
    },
]


def corpus() -> list[dict[str, Any]]:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines] + EXTRA_DOCUMENTS


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a live `xlsearch serve` holding `corpus()` in `default`."""
    with running_server(tmp_path_factory.mktemp("web") / "data") as base:
        response = httpx.post(
            f"{base}/v1/collections/default/documents",
            json={"documents": corpus(), "wait": True},
            timeout=600,
        )
        response.raise_for_status()
        yield base


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"no browser at {CHROMIUM}: run `apt-get install -y chromium`"
        if os.environ.get("XLSEARCH_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # a search on a busy 2-core machine can take seconds
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page; fails the test on any script error or dialog (an XSS would open one)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-GB")
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))

    def refuse_dialog(dialog: Any) -> None:
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    opened.on("dialog", refuse_dialog)
    yield opened
    context.close()
    assert not problems, problems


def save_screenshot(page: Any, name: str) -> Path:
    """Keep a screenshot of the page under test-artifacts/ (ignored by git)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def copy_to_docs(path: Path) -> None:
    """Refresh the README's screenshot when asked to (XLSEARCH_UPDATE_SCREENSHOT=1)."""
    if os.environ.get("XLSEARCH_UPDATE_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copy(path, REPO / "docs" / path.name)
