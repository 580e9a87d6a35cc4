"""The `xlsearch` command as a user runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.processes import free_port

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def xlsearch(data_dir: Path) -> Run:
    def run(
        *args: str, env: dict[str, str | None] | None = None, cwd: Path = REPO
    ) -> subprocess.CompletedProcess[str]:
        """`xlsearch ARGS` on the module's data folder; an `env` value of None unsets it."""
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
            env={name: value for name, value in environment.items() if value is not None},
            cwd=cwd,
            timeout=300,
        )

    return run


@pytest.fixture(scope="module")
def ingested(xlsearch: Run) -> subprocess.CompletedProcess[str]:
    return xlsearch("ingest", "data")


def test_ingest_the_sample_corpus(ingested: subprocess.CompletedProcess[str]) -> None:
    assert ingested.returncode == 0, ingested.stderr
    assert "42 documents" in ingested.stdout and "42 new" in ingested.stdout
    assert "0 failed" in ingested.stdout
    assert "docs/s" in ingested.stderr  # the progress bar
    assert "note:" not in ingested.stderr  # the folder was empty, but ingest fills it


def test_ingest_again_changes_nothing(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run
) -> None:
    again = xlsearch("ingest", "data")
    assert again.returncode == 0 and "42 unchanged" in again.stdout


def test_search_prints_a_table(ingested: subprocess.CompletedProcess[str], xlsearch: Run) -> None:
    result = xlsearch("search", "Wie hoch ist der Eiffelturm?", "--k", "3", "--collapse", "none")
    assert result.returncode == 0, result.stderr
    assert "query language: de" in result.stdout
    assert "The Eiffel Tower" in result.stdout and "La tour Eiffel" in result.stdout
    assert "note:" not in result.stderr


def test_similar_lists_a_documents_translations_first(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run
) -> None:
    result = xlsearch("similar", "eiffel-en", "--k", "2", "--collapse", "none")
    assert result.returncode == 0, result.stderr
    assert "like eiffel-en" in result.stdout and "La tour Eiffel" in result.stdout
    collapsed = json.loads(xlsearch("similar", "eiffel-en", "--json").stdout)["results"]
    assert not any(r["id"].startswith("eiffel-") for r in collapsed)
    body = json.loads(
        xlsearch("similar", "moon-en", "--json", "--lang", "ru", "--collapse", "none").stdout
    )
    assert [r["id"] for r in body["results"]][0] == "moon-ru"
    assert {r["lang"] for r in body["results"]} == {"ru"}
    assert_one_line_error(
        xlsearch("similar", "no-such-doc"),
        "error: document 'no-such-doc' is not in collection 'default'",
    )


def test_search_groups_by_a_field(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run
) -> None:
    result = xlsearch("search", "Eiffel Tower", "--k", "2", "--group-by", "metadata.topic")
    assert result.returncode == 0, result.stderr
    assert 'group: "eiffel-tower" (also eiffel-' in result.stdout


def test_search_shows_the_languages_of_a_translated_result(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run
) -> None:
    result = xlsearch("search", "How tall is the Eiffel Tower?", "--k", "3")
    assert result.returncode == 0, result.stderr
    assert re.search(r"also in: (fr · ja|ja · fr)", result.stdout), result.stdout
    preferred = json.loads(xlsearch(
        "search", "How tall is the Eiffel Tower?", "--prefer", "ja", "--json").stdout)
    assert preferred["results"][0]["id"] == "eiffel-ja"
    every = json.loads(xlsearch(
        "search", "How tall is the Eiffel Tower?", "--collapse", "none", "--json").stdout)
    assert sum(r["id"].startswith("eiffel-") for r in every["results"]) == 3


def test_duplicates_writes_json_lines(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run, tmp_path: Path
) -> None:
    result = xlsearch("duplicates", "--kind", "translations")
    assert result.returncode == 0, result.stderr
    groups = [json.loads(line) for line in result.stdout.splitlines()]
    assert groups and all(g["kind"] == "translations" for g in groups)
    assert {"eiffel-en", "eiffel-fr", "eiffel-ja"} in [
        {d["id"] for d in g["documents"]} for g in groups]
    written = xlsearch("duplicates", "--output", str(tmp_path / "dups.jsonl"))
    assert written.returncode == 0, written.stderr
    assert f"groups written to {tmp_path / 'dups.jsonl'}" in written.stdout
    lines = (tmp_path / "dups.jsonl").read_text("utf-8").splitlines()
    assert len(lines) >= len(groups)
    bad = xlsearch("duplicates", "--near-cosine", "2")
    assert bad.returncode == 2 and "near_cosine" in bad.stderr, bad.stderr


def test_aliases_name_collections_for_search(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run
) -> None:
    made = xlsearch("alias", "live", "default")
    assert made.returncode == 0 and "live -> default" in made.stdout, made.stderr
    assert "live" in xlsearch("aliases").stdout
    found = json.loads(xlsearch("search", "Eiffel Tower", "-c", "live", "--json").stdout)
    assert found["results"][0]["id"].startswith("eiffel-")
    assert "removed" in xlsearch("alias", "live", "--delete").stdout
    assert_one_line_error(xlsearch("alias", "live"), "error: alias 'live' does not exist")
    assert_one_line_error(
        xlsearch("alias", "bad name", "default"), "error: alias name 'bad name' is invalid"
    )


def test_search_json_is_the_rest_body(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run
) -> None:
    result = xlsearch("search", "Who landed on the Moon?", "--json", "--lang", "ru", "--lang", "zh",
                      "--collapse", "none")
    body = json.loads(result.stdout)
    assert set(body) == {"query_language", "took_ms", "results", "next_offset"}
    assert {r["id"] for r in body["results"][:2]} == {"moon-ru", "moon-zh"}
    assert {r["lang"] for r in body["results"]} == {"ru", "zh"}
    first = body["results"][0]
    assert set(first) == {
        "id", "title", "lang", "url", "metadata", "score", "snippet",
        "dense_score", "dense_rank", "lexical_score", "lexical_rank", "locator", "group",
        "translations",
    }
    assert set(first["snippet"]) == {"text", "start", "end", "highlights"}


def test_search_modes(ingested: subprocess.CompletedProcess[str], xlsearch: Run) -> None:
    lexical = xlsearch("search", "Eiffel", "--mode", "lexical", "--json")
    assert lexical.returncode == 0, lexical.stderr
    results = json.loads(lexical.stdout)["results"]
    assert results and all(r["dense_score"] is None and r["lexical_rank"] for r in results)
    snippet = results[0]["snippet"]
    marked = {snippet["text"][a:b] for a, b in snippet["highlights"]}
    assert marked == {"Eiffel"}
    table = xlsearch("search", "Eiffel", "--mode", "dense", "-k", "2")
    assert table.returncode == 0 and "Eiffel" in table.stdout
    bad = xlsearch("search", "tea", "--mode", "fuzzy")
    assert bad.returncode == 2 and "mode" in bad.stderr and "'lexical'" in bad.stderr
    unclosed = xlsearch("search", 'the "tea')
    assert unclosed.returncode == 2 and "unclosed quote" in unclosed.stderr


def test_search_filters_and_pages(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run
) -> None:
    def ids(*args: str) -> list[str]:
        result = xlsearch("search", "Who landed on the Moon?", "--json", *args)
        assert result.returncode == 0, result.stderr
        return [r["id"] for r in json.loads(result.stdout)["results"]]

    both = ids("-k", "6")
    assert ids("-k", "3") + ids("-k", "3", "--offset", "3") == both
    coffee = ids("--filter", '{"topic": {"$in": ["coffee"]}}')
    assert coffee and all(i.startswith("coffee-") for i in coffee)
    bad = xlsearch("search", "tea", "--filter", "{topic: coffee}")
    assert bad.returncode == 2 and "--filter is not valid JSON" in bad.stderr
    unknown = xlsearch("search", "tea", "--filter", '{"topic": {"$like": "c%"}}')
    assert unknown.returncode == 2 and "unknown operator" in unknown.stderr


def test_collections_lists_counts(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run
) -> None:
    result = xlsearch("collections")
    assert result.returncode == 0
    assert "default" in result.stdout and "multilingual-e5-small-q4" in result.stdout
    assert " 42 " in result.stdout
    assert result.stderr == ""


def test_jobs_lists_queued_jobs(
    ingested: subprocess.CompletedProcess[str], data_dir: Path, xlsearch: Run
) -> None:
    """(On the ingested folder: the job needs the default collection to exist.)"""
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
    assert rebuilt.returncode == 0 and '"count": 42' in rebuilt.stdout
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
        (  # pydantic-settings refuses a list that is not JSON before validation
            ["collections"],
            {"XLSEARCH_API_KEYS": "k1"},
            "error: invalid settings: XLSEARCH_API_KEYS: not valid JSON; write a list as JSON, "
            """e.g. XLSEARCH_API_KEYS='["a", "b"]'""",
        ),
        (
            ["jobs"],
            {"XLSEARCH_ALLOWED_ROOTS": "/srv/docs"},
            "error: invalid settings: XLSEARCH_ALLOWED_ROOTS: not valid JSON",
        ),
        (
            ["serve"],
            {"XLSEARCH_PORT": "abc"},
            "error: invalid settings: XLSEARCH_PORT: Input should be a valid integer",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    xlsearch: Run, args: list[str], env: dict[str, str], message: str
) -> None:
    assert_one_line_error(xlsearch(*args, env=dict(env)), message)


def assert_one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def nothing(_folder: Path) -> None:
    pass


def a_file(folder: Path) -> None:
    folder.rmdir()
    folder.write_text("not a folder", "utf-8")


def a_folder_as_database(folder: Path) -> None:
    (folder / "xlsearch.db").mkdir()


def random_bytes_as_database(folder: Path) -> None:
    (folder / "xlsearch.db").write_bytes(os.urandom(8192))


def newer_schema(folder: Path) -> None:
    """A database that a later xlsearch migrated to a revision this one does not know."""
    from search.settings import Settings
    from search.store import open_store

    store = open_store(Settings(data_dir=folder).resolved_database_url)
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dfacef00d'")
    store.engine.dispose()


@pytest.mark.parametrize(
    ("prepare", "args", "message"),
    [
        (
            nothing,
            ["--data-dir", "/proc/nope", "collections"],
            "error: cannot create the data folder /proc/nope: No such file or directory; "
            "set XLSEARCH_DATA_DIR or --data-dir to a folder you can write",
        ),
        (
            a_file,
            ["--data-dir", "{folder}", "jobs"],
            "error: the data folder {folder} is a file, not a folder; "
            "set XLSEARCH_DATA_DIR or --data-dir to a folder",
        ),
        (
            nothing,
            ["--database-url", "sqlite:////proc/nope/x.db", "collections"],
            "error: cannot create the database's folder /proc/nope: No such file or directory; "
            "set XLSEARCH_DATABASE_URL or --database-url",
        ),
        (
            a_folder_as_database,
            ["--data-dir", "{folder}", "collections"],
            "error: the database {folder}/xlsearch.db is a folder, not a SQLite file; move it "
            "away, or set XLSEARCH_DATA_DIR or --data-dir to another place",
        ),
        (
            random_bytes_as_database,
            ["--data-dir", "{folder}", "collections"],
            "error: cannot open the database {folder}/xlsearch.db: file is not a database; if "
            "the file is damaged, restore it from a backup or move it away",
        ),
        (  # the same on the commands that open the model, and before uvicorn starts
            random_bytes_as_database,
            ["--data-dir", "{folder}", "serve", "--port", "1"],
            "error: cannot open the database {folder}/xlsearch.db: file is not a database",
        ),
        (
            random_bytes_as_database,
            ["--data-dir", "{folder}", "db", "backup", "{folder}/copy.db"],
            "error: cannot open the database {folder}/xlsearch.db: file is not a database",
        ),
        (
            nothing,
            ["db", "backup", "/proc/nope/copy.db"],
            "error: cannot write the backup /proc/nope/copy.db: No such file or directory",
        ),
        (
            newer_schema,
            ["--data-dir", "{folder}", "jobs"],
            "error: the database {folder}/xlsearch.db has a schema this xlsearch cannot migrate "
            "(Can't locate revision identified by 'f00dfacef00d'), probably written by a newer "
            "xlsearch: upgrade xlsearch, or set XLSEARCH_DATA_DIR or --data-dir",
        ),
    ],
    ids=[
        "uncreatable-folder",
        "folder-is-a-file",
        "uncreatable-database-folder",
        "database-is-a-folder",
        "corrupt-database",
        "corrupt-database-serve",
        "corrupt-database-backup",
        "unwritable-backup",
        "newer-schema",
    ],
)
def test_unusable_storage_is_one_line_and_exit_code_2(
    tmp_path: Path,
    xlsearch: Run,
    prepare: Callable[[Path], None],
    args: list[str],
    message: str,
) -> None:
    folder = tmp_path.resolve() / "data"
    folder.mkdir()
    prepare(folder)
    result = xlsearch(*(arg.format(folder=folder) for arg in args))
    assert_one_line_error(result, message.format(folder=folder))


def test_an_unreachable_postgresql_is_one_line_without_its_password(xlsearch: Run) -> None:
    url = f"postgresql+psycopg://xl:secret@127.0.0.1:{free_port()}/xl"  # nothing listens there
    result = xlsearch("--database-url", url, "collections")
    assert_one_line_error(
        result, f"error: cannot open the database {url.replace('secret', '***')}: connection"
    )
    assert "Connection refused" in result.stderr and "secret" not in result.stderr
    assert "check that the server runs and the URL is right" in result.stderr


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` cannot be written: by its mode, or for root (who ignores modes) by the
    file system's immutable flag."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)]).returncode != 0:
        pytest.skip("root ignores folder modes and this file system has no immutable flag")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_a_read_only_data_folder_is_one_line(tmp_path: Path, xlsearch: Run) -> None:
    folder = tmp_path.resolve() / "read-only"
    folder.mkdir()
    with read_only(folder):
        result = xlsearch("--data-dir", str(folder), "collections")
    assert_one_line_error(result, f"error: the data folder {folder} is not writable")


def test_reading_an_empty_data_folder_says_where_it_is(tmp_path: Path, xlsearch: Run) -> None:
    here = tmp_path.resolve()
    default = f"the data folder {here / 'xlsearch-data'}; set XLSEARCH_DATA_DIR or --data-dir"
    for command in ("collections", "jobs"):  # by default ./xlsearch-data, made on first use
        result = xlsearch(command, cwd=here, env={"XLSEARCH_DATA_DIR": None})
        assert result.returncode == 0, result.stderr
        assert result.stderr == f"note: no documents in {default} to use another\n"
    database = here / "elsewhere.db"
    listed = xlsearch("--database-url", f"sqlite:///{database}", "jobs")
    assert listed.stderr == (
        f"note: no documents in the database {database}; "
        "set XLSEARCH_DATABASE_URL or --database-url to use another\n"
    )
    found = xlsearch("search", "tea", "--json", cwd=here, env={"XLSEARCH_DATA_DIR": None})
    assert found.returncode == 0 and json.loads(found.stdout)["results"] == []
    assert found.stderr == f"note: no documents in {default} to use another\n"


def test_help_names_the_environment_variables(xlsearch: Run) -> None:
    top = xlsearch("--help").stdout
    assert "Data folder; default: XLSEARCH_DATA_DIR, else ./xlsearch-data." in top
    assert "SQLAlchemy URL; default: XLSEARCH_DATABASE_URL" in top
    assert "Port; default: XLSEARCH_PORT, else 8000." in xlsearch("serve", "--help").stdout


def test_readme_quickstart_waits_for_the_server_then_searches(
    ingested: subprocess.CompletedProcess[str], data_dir: Path
) -> None:
    """The README's `serve &`, wait and curl lines, run by bash as written but on a free port
    and with the server's log on stderr, so that stdout is curl's answer alone."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quickstart = readme[readme.index("## Quickstart") : readme.index("## Command line")]
    lines = re.findall(r"```bash\n(.*?)```", quickstart, re.DOTALL)[1].splitlines()
    port = free_port()
    script = "\n".join(lines[lines.index(".venv/bin/xlsearch serve &") :])
    script = script.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace("serve &", "serve >&2 &")
    environment = {**os.environ, "XLSEARCH_DATA_DIR": str(data_dir), "XLSEARCH_PORT": str(port)}
    shell = subprocess.Popen(
        ["bash", "-c", f"trap 'kill $(jobs -p); wait' EXIT\n{script}"],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        answer, log = shell.communicate(timeout=180)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    assert shell.returncode == 0, log
    first = json.loads(answer)["results"][0]  # one result for the tower, in every language
    assert {first["id"]} | {t["id"] for t in first["translations"]} == {
        "eiffel-en", "eiffel-fr", "eiffel-ja"}


def test_search_shows_where_in_a_file_a_result_is(
    ingested: subprocess.CompletedProcess[str], xlsearch: Run
) -> None:
    result = xlsearch("search", "Wie lang ist die Chinesische Mauer?", "-k", "3")
    assert result.returncode == 0, result.stderr
    assert "Wonders of the world" in result.stdout
    assert "pp. 1–3" in result.stdout  # the sample PDF's three short pages are one chunk


def test_collections_migrate_and_roll_back_with_progress(tmp_path: Path, xlsearch: Run) -> None:
    own = {"XLSEARCH_DATA_DIR": str(tmp_path)}
    corpus = tmp_path / "notes.jsonl"
    corpus.write_text("".join(
        json.dumps({"id": f"n{i}", "text": f"Note {i} on the Eiffel Tower and Mount Fuji."}) + "\n"
        for i in range(6)
    ))
    assert xlsearch("ingest", str(corpus), env=own).returncode == 0
    migrated = xlsearch("collections", "migrate", "default", "--dimension", "128", env=own)
    assert migrated.returncode == 0, migrated.stderr
    assert "now searches generation 2" in migrated.stdout and "migrate" in migrated.stderr
    listed = xlsearch("collections", env=own).stdout
    assert " 128 " in listed and " 2 " in listed
    found = json.loads(xlsearch("search", "Eiffel", "--json", env=own).stdout)
    assert len(found["results"]) == 6
    back = xlsearch("collections", "rollback", "default", env=own)
    assert back.returncode == 0 and "now searches generation 1" in back.stdout, back.stderr
    assert " 384 " in xlsearch("collections", env=own).stdout
    assert_one_line_error(xlsearch("collections", "migrate", "default", "--dimension", "999",
                                   env=own), "error: dimension 999 is out of range")
    elsewhere = xlsearch("collections", "migrate", "default", "--model", "other/model",
                         "--no-wait", env=own)
    assert elsewhere.returncode == 0 and "a worker with 'other/model'" in elsewhere.stderr
