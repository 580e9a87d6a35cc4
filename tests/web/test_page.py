"""The bundled search page in a real headless Chromium against a live server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from playwright.sync_api import expect

from tests.processes import running_server
from tests.waiting import wait_until
from tests.web.conftest import XSS_TITLE, copy_to_docs, corpus, save_screenshot


def ask(page: Any, question: str) -> None:
    page.fill("#q", question)
    page.press("#q", "Enter")
    expect(page.locator("#summary")).to_contain_text("result")


def result_ids(page: Any) -> list[str]:
    wheres = page.locator(".result .where").all_inner_texts()
    return [where.split(" · ")[0] for where in wheres]


def test_cross_lingual_search_shows_the_right_document_first(web_server: str, page: Any) -> None:
    page.goto(web_server)
    ask(page, "Wie hoch ist der Eiffelturm?")
    first = page.locator(".result").first
    expect(first.locator(".title")).to_contain_text(re.compile("Eiffel|エッフェル"))
    expect(page.locator("#summary")).to_contain_text("German (de)")
    expect(first.locator(".badge")).to_have_text(re.compile(r"^\w\w$"))
    assert float(first.locator(".score").inner_text()) > 0
    assert first.locator(".snippet").inner_text().strip()
    assert result_ids(page)[0].startswith("eiffel-")
    path = save_screenshot(page, "search-page.png")
    copy_to_docs(path)
    assert path.stat().st_size > 10_000


def test_language_filter_changes_the_results(web_server: str, page: Any) -> None:
    page.goto(web_server)
    ask(page, "Where does coffee come from?")
    assert {"coffee-en", "coffee-ar", "coffee-it"} & set(result_ids(page)[:3])
    page.check("#languages input[value=ar]")
    expect(page).to_have_url(re.compile(r"lang=ar"))
    expect(page.locator(".result .badge").first).to_have_text("ar")
    badges = page.locator(".result .badge").all_text_contents()
    assert badges and set(badges) == {"ar"}
    assert result_ids(page)[0] == "coffee-ar"


def test_modes_and_marked_words(web_server: str, page: Any) -> None:
    page.goto(web_server)
    ask(page, "Eiffel Tower")
    first = page.locator(".result").first
    assert first.locator(".snippet mark").count() >= 1  # hybrid: the question's words marked
    marks = {m.lower() for m in page.locator(".result .snippet mark").all_inner_texts()}
    assert marks <= {"eiffel", "tower"}
    assert "matching words" in (first.locator(".score").get_attribute("title") or "")
    page.select_option("#mode", "lexical")
    expect(page).to_have_url(re.compile(r"mode=lexical"))
    expect(page.locator(".result").first.locator(".score")).not_to_have_attribute(
        "title", re.compile("meaning")
    )  # lexical: word matches only, each result marked
    results = page.locator(".result")
    assert all(results.nth(n).locator(".snippet mark").count() for n in range(results.count()))
    page.select_option("#mode", "dense")
    expect(page).to_have_url(re.compile(r"mode=dense"))
    expect(page.locator(".result .snippet mark")).to_have_count(0)
    page.reload()
    expect(page.locator("#mode")).to_have_value("dense")
    ask(page, 'the "unclosed phrase')
    page.select_option("#mode", "hybrid")
    expect(page.locator("#message")).to_contain_text("unclosed quote")


def test_more_results_append_the_next_page(web_server: str, page: Any) -> None:
    page.goto(f"{web_server}/?k=5")
    ask(page, "mountain")
    first = result_ids(page)
    assert len(first) == 5
    page.click("#more-results")
    expect(page.locator(".result")).to_have_count(10)
    assert result_ids(page)[:5] == first and len(set(result_ids(page))) == 10
    expect(page.locator("#summary")).to_contain_text("10 results")
    while page.locator("#more-results").is_visible():  # until every document is shown
        count = page.locator(".result").count()
        page.click("#more-results")
        expect(page.locator(".result")).not_to_have_count(count)
    # Every document is there, as a result or as one of its translations ("also in").
    shown = len(set(result_ids(page)))
    assert shown == page.locator(".result").count()
    assert shown + page.locator(".result .also-in a").count() == len(corpus())


def test_results_from_files_say_where_in_the_file_they_are(web_server: str, page: Any) -> None:
    page.goto(web_server)
    ask(page, "Wer poliert die Linse des Leuchtturms?")
    first = page.locator(".result").first
    expect(first.locator(".title")).to_have_text("Lighthouse keeper's manual")
    expect(first.locator(".locator")).to_have_text("pp. 6–7")
    ask(page, "¿Cuánto ha retrocedido el glaciar Aletsch?")
    expect(page.locator(".result").first.locator(".locator")).to_have_text("slides 3–4")
    sample = page.locator(".result", has_text="Eiffel")
    assert all(not r.locator(".locator").count() for r in sample.all())  # no parts, no label


def test_the_url_round_trips_and_history_works(web_server: str, page: Any) -> None:
    page.goto(f"{web_server}/?q=honey+bees&lang=de&lang=es&k=5")
    expect(page.locator("#q")).to_have_value("honey bees")
    expect(page.locator("#languages input[value=de]")).to_be_checked()
    expect(page.locator("#languages input[value=es]")).to_be_checked()
    expect(page.locator("#k")).to_have_value("5")
    expect(page.locator(".result").first).to_be_visible()
    assert set(page.locator(".result .badge").all_text_contents()) <= {"de", "es"}
    assert result_ids(page)[0] in {"bees-de", "bees-es"}

    ask(page, "Mount Fuji height")
    query = parse_qs(urlsplit(page.url).query)
    assert query["q"] == ["Mount Fuji height"] and query["lang"] == ["de", "es"]

    page.go_back()
    expect(page.locator("#q")).to_have_value("honey bees")
    expect(page.locator(".result .where").first).to_contain_text("bees-")
    page.go_forward()
    expect(page.locator("#q")).to_have_value("Mount Fuji height")
    expect(page.locator(".result .where").first).to_contain_text("fuji-")

    page.reload()
    expect(page.locator("#q")).to_have_value("Mount Fuji height")
    expect(page.locator(".result .where").first).to_contain_text("fuji-")


def test_document_text_is_never_html(web_server: str, page: Any) -> None:
    page.goto(web_server)
    ask(page, "almond sugar confection")
    title = page.locator(".result .title").first
    expect(title).to_have_text(XSS_TITLE)
    assert page.locator(".results img").count() == 0
    # the page fixture fails the test if alert() ran


def test_right_to_left_results_render_right_to_left(web_server: str, page: Any) -> None:
    page.goto(f"{web_server}/?q=olive+oil&lang=he&lang=ar")
    first = page.locator(".result").first
    expect(first).to_have_attribute("dir", "rtl")
    direction = first.locator(".snippet").evaluate("node => getComputedStyle(node).direction")
    assert direction == "rtl"
    hebrew = page.locator(".result[lang=he] .title a")
    expect(hebrew).to_have_attribute("href", "https://example.org/olive")


def test_messages_for_empty_query_no_results_and_bad_collection(
    web_server: str, page: Any
) -> None:
    page.goto(web_server)
    page.press("#q", "Enter")
    expect(page.locator("#message")).to_have_text("Type a question first.")
    assert page.locator(".result").count() == 0

    page.goto(f"{web_server}/?q=volcano&lang=sw")
    expect(page.locator("#message")).to_contain_text("No documents match")

    page.goto(f"{web_server}/?q=volcano&collection=nope")
    expect(page.locator("#message")).to_contain_text("Cannot search")
    expect(page.locator("#message")).to_contain_text("nope")


def test_keyboard_only(web_server: str, page: Any) -> None:
    page.goto(web_server)
    expect(page.locator("#q")).to_be_focused()  # autofocus
    page.keyboard.type("Great Wall of China")
    page.keyboard.press("Enter")
    expect(page.locator(".result .where").first).to_contain_text("wall-")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Search"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "collection"


def test_phone_width(web_server: str, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    phone = context.new_page()
    phone.goto(f"{web_server}/?q=Taj+Mahal")
    expect(phone.locator(".result").first).to_be_visible()
    widths = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"horizontal scrolling on a phone: {widths}"
    box = phone.locator("#q").bounding_box()
    assert box is not None and box["width"] > 250
    context.close()


def test_status_line_shows_documents_and_running_jobs(
    web_server: str, page: Any, tmp_path: Path
) -> None:
    page.goto(web_server)
    expect(page.locator("#engine-status")).to_contain_text(re.compile(r"default: \d+ documents"))
    lines = [
        f'{{"id": "status-{i}", "text": "Status line test document number {i} about rivers."}}'
        for i in range(40)
    ]
    upload = tmp_path / "batch.jsonl"
    upload.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with upload.open("rb") as handle:
        response = httpx.post(
            f"{web_server}/v1/collections/default/jobs",
            files={"file": ("batch.jsonl", handle, "application/x-ndjson")},
        )
    job_id = response.json()["job_id"]
    page.reload()
    job = page.locator("#engine-status .job")
    expect(job).to_contain_text(job_id[:8], timeout=15_000)
    expect(page.locator("#engine-status progress")).to_be_visible()
    expect(job).to_have_count(0, timeout=60_000)  # refreshed while the job runs, gone when done
    wait_until(
        lambda: httpx.get(f"{web_server}/v1/jobs/{job_id}").json()["status"] == "succeeded",
        30, "the job to succeed", every_s=0.2,
    )


def test_error_message_when_the_server_is_gone(tmp_path: Path, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    with running_server(tmp_path / "data") as base:
        page.goto(base)
        expect(page.locator("#engine-status")).to_contain_text("default: 0 documents")
    # the server has stopped: searching now must say so, not hang or show nothing
    page.fill("#q", "anything")
    page.press("#q", "Enter")
    expect(page.locator("#message")).to_contain_text(
        "The search failed: the server cannot be reached"
    )
    expect(page.locator("#engine-status")).to_contain_text("unavailable", timeout=20_000)
    context.close()


def test_similar_shows_the_documents_like_a_result(web_server: str, page: Any) -> None:
    page.goto(web_server)
    ask(page, "Wie hoch ist der Eiffelturm?")
    first = result_ids(page)[0]
    assert first.startswith("eiffel-")
    page.locator(".result .similar").first.click()
    expect(page).to_have_url(re.compile(r"like=eiffel-"))
    expect(page.locator("#summary")).to_contain_text(f"like {first}")
    expect(page.locator("#q")).to_have_value("")
    similar = result_ids(page)
    assert similar and not any(i.startswith("eiffel-") for i in similar)  # nor translations
    page.reload()  # the address alone brings the same page back
    expect(page.locator("#summary")).to_contain_text(f"like {first}")
    assert result_ids(page) == similar
    page.go_back()
    expect(page.locator("#q")).to_have_value("Wie hoch ist der Eiffelturm?")
    expect(page.locator(".result .where").first).to_contain_text(first)
    page.goto(f"{web_server}/?like=no-such-document")
    expect(page.locator("#message")).to_contain_text("no-such-document")


def test_a_translated_result_links_to_its_other_languages(web_server: str, page: Any) -> None:
    page.goto(web_server)
    ask(page, "How tall is the Eiffel Tower?")
    ids = result_ids(page)
    assert ids[0].startswith("eiffel-") and sum(i.startswith("eiffel-") for i in ids) == 1
    also = page.locator(".result").first.locator(".also-in")
    expect(also).to_contain_text("also in:")
    languages = {"eiffel-en": "en", "eiffel-fr": "fr", "eiffel-ja": "ja"}
    others = sorted(set(languages.values()) - {languages[ids[0]]})
    expect(also.locator("a")).to_have_count(2)
    assert sorted(also.locator("a").all_inner_texts()) == others
    # A language's link shows the set in that language, in the same place.
    also.locator("a", has_text=others[0]).click()
    expect(page).to_have_url(re.compile(f"prefer={others[0]}"))
    expect(page.locator(".result").first.locator(".where")).to_contain_text(
        f"eiffel-{others[0]}")
    page.reload()  # the address alone brings it back
    expect(page.locator(".result").first.locator(".where")).to_contain_text(
        f"eiffel-{others[0]}")
    page.go_back()
    expect(page.locator(".result").first.locator(".where")).to_contain_text(ids[0])
