"""The `xlsearch` command as a user runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def xlsearch(data_dir: Path) -> Run:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environment = {
            **os.environ,
            "XLSEARCH_DATA_DIR": str(data_dir),
            "COLUMNS": "200",
            **(env or {}),
        }
        return subprocess.run(
            [sys.executable, "-m", "search", *args],
            capture_output=True,
            text=True,
            env=environment,
            cwd=REPO,
            timeout=300,
        )

    return run


@pytest.fixture(scope="module")
def ingested(xlsearch: Run) -> subprocess.CompletedProcess[str]:
    return xlsearch("ingest", "data")


def test_ingest_the_sample_corpus(ingested: subprocess.CompletedProcess[str]) -> None:
    assert ingested.returncode == 0, ingested.stderr
    assert "38 documents" in ingested.stdout and "38 new" in ingested.stdout
    assert "0 failed" in ingested.stdout
    assert "docs/s" in ingested.stderr  # the progress bar


def test_ingest_again_changes_nothing(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run
) -> None:
    again = xlsearch("ingest", "data")
    assert again.returncode == 0 and "38 unchanged" in again.stdout


def test_search_prints_a_table(ingested: subprocess.CompletedProcess[str], xlsearch: Run) -> None:
    result = xlsearch("search", "Wie hoch ist der Eiffelturm?", "--k", "3")
    assert result.returncode == 0, result.stderr
    assert "query language: de" in result.stdout
    assert "The Eiffel Tower" in result.stdout and "La tour Eiffel" in result.stdout


def test_search_json_is_the_rest_body(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run
) -> None:
    result = xlsearch("search", "Who landed on the Moon?", "--json", "--lang", "ru", "--lang", "zh")
    body = json.loads(result.stdout)
    assert set(body) == {"query_language", "took_ms", "results"}
    assert {r["id"] for r in body["results"][:2]} == {"moon-ru", "moon-zh"}
    assert {r["lang"] for r in body["results"]} == {"ru", "zh"}
    first = body["results"][0]
    assert set(first) == {"id", "title", "lang", "url", "metadata", "score", "snippet"}
    assert set(first["snippet"]) == {"text", "start", "end"}


def test_collections_lists_counts(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run
) -> None:
    result = xlsearch("collections")
    assert result.returncode == 0
    assert "default" in result.stdout and "multilingual-e5-small-q4" in result.stdout
    assert " 38 " in result.stdout


def test_jobs_lists_queued_jobs(data_dir: Path, xlsearch: Run) -> None:
    from search.settings import Settings
    from search.store import open_store
    from search.store.jobs import JobStore

    store = open_store(Settings(data_dir=data_dir).resolved_database_url)
    job_id = JobStore(store).submit(store.get_collection("default").id, {"path": "/x"}, 12)
    store.engine.dispose()
    listed = xlsearch("jobs", "--status", "queued")
    assert listed.returncode == 0, listed.stderr
    assert job_id in listed.stdout and "0/12" in listed.stdout
    assert job_id not in xlsearch("jobs", "--status", "running").stdout
    wrong = xlsearch("jobs", "--status", "sleeping")
    assert wrong.returncode == 2 and "sleeping" in wrong.stderr


def test_db_upgrade_and_index_upkeep(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run
) -> None:
    assert xlsearch("db", "upgrade").returncode == 0
    rebuilt = xlsearch("index", "rebuild")
    assert rebuilt.returncode == 0 and '"count": 38' in rebuilt.stdout
    assert xlsearch("index", "snapshot").returncode == 0


def test_bad_items_are_reported_and_the_rest_is_stored(tmp_path: Path, xlsearch: Run) -> None:
    (tmp_path / "good.txt").write_text("Honey bees make honey.", "utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02")
    (tmp_path / "docs.jsonl").write_text('{"text": "Tea."}\n{broken\n', "utf-8")
    result = xlsearch("ingest", str(tmp_path), str(tmp_path / "missing.md"), "-c", "mixed")
    assert result.returncode == 1
    assert "2 documents" in result.stdout and "3 failed" in result.stdout
    assert "binary.txt: binary file" in result.stderr
    assert "docs.jsonl:2: invalid JSON" in result.stderr
    assert "missing.md: no such file or folder" in result.stderr
    assert "Traceback" not in result.stderr
    found = json.loads(xlsearch("search", "bees", "-c", "mixed", "--json").stdout)
    assert [r["id"] for r in found["results"]][0] == "good.txt"
    assert len(found["results"]) == 2


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["search", "tea", "--k", "0"], {}, "error: k: Input should be greater than or equal to 1"),
        (["search", "   "], {}, "error: query: query is empty"),
        (["search", "tea", "-c", "nope"], {}, "error: collection 'nope' does not exist"),
        (
            ["collections"],
            {"XLSEARCH_CHUNK_TOKENS": "many"},
            "error: invalid settings: XLSEARCH_CHUNK_TOKENS",
        ),
        (
            ["ingest", "data", "-c", "bad name!"],
            {},
            "error: collection name 'bad name!' is invalid",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    xlsearch: Run, args: list[str], env: dict[str, str], message: str
) -> None:
    result = xlsearch(*args, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1
