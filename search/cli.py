"""The `xlsearch` command line: ingest, search, collections, database and index upkeep."""

from __future__ import annotations

import json
import re
import sys
import time
from contextlib import closing, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from search.collections import DEFAULT_COLLECTION, check_name
from search.duplicates import KINDS, NEAR_COSINE, find_duplicates
from search.engine import Engine
from search.errors import AliasNotFound, InvalidInput, StorageUnavailable, XlsearchError
from search.locators import describe_locator
from search.preflight import check_storage, database_errors, database_setting, shown_database
from search.schemas import (
    DEFAULT_MODE,
    SearchRequest,
    SearchResponse,
    SearchResult,
    SimilarRequest,
    describe_validation_error,
)
from search.settings import Settings
from search.store import Store, open_store
from search.store.jobs import JobStatus, JobStore
from search.store.records import GenerationInfo

app = typer.Typer(
    help="Cross-lingual semantic search: ingest documents in any language, ask in any other.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database upkeep: schema and backups.", no_args_is_help=True)
index_app = typer.Typer(help="Vector index upkeep.", no_args_is_help=True)
collections_app = typer.Typer(
    help="Collections: list them, migrate one to another model or dimension, switch back."
)
app.add_typer(db_app, name="db")
app.add_typer(index_app, name="index")
app.add_typer(collections_app, name="collections")

out = Console()
err = Console(stderr=True, soft_wrap=True)
_overrides: dict[str, Any] = {}

CollectionOption = Annotated[str, typer.Option("--collection", "-c", help="Collection to use.")]
# Options of the commands that print a page of results (search, similar).
KOption = Annotated[int, typer.Option("--k", "-k", help="How many documents.")]
LanguagesOption = Annotated[
    list[str] | None, typer.Option("--lang", "-l", help="Only these languages (repeat).")
]
FilterOption = Annotated[
    str | None,
    typer.Option("--filter", help='Metadata filter as JSON: \'{"year": {"$gte": 2020}}\'.'),
]
OffsetOption = Annotated[int, typer.Option(help="Results to skip (the next page).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the REST API's response body.")]
CollapseOption = Annotated[str | None, typer.Option(
    help="translations (the default without --group-by: one result per translation set) "
    "or none.")]
PreferOption = Annotated[list[str] | None, typer.Option(
    "--prefer", help="With collapse: show the copy in this language first (repeat).")]


@app.callback()
def configure(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data folder; default: XLSEARCH_DATA_DIR, else ./xlsearch-data."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL; default: XLSEARCH_DATABASE_URL, else SQLite in the data folder."
        ),
    ] = None,
) -> None:
    """Settings come from XLSEARCH_* environment variables; these flags override them."""
    _overrides.update(
        {k: v for k, v in {"data_dir": data_dir, "database_url": database_url}.items() if v}
    )


def _json_option(flag: str, value: str | None) -> Any:
    """A flag's JSON value, or None without one; InvalidInput (one line) if not JSON."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise InvalidInput(f"{flag} is not valid JSON: {exc}") from None


def _settings() -> Settings:
    try:
        return Settings(**_overrides)
    except ValidationError as exc:
        raise InvalidInput(
            f"invalid settings: {describe_validation_error(exc, 'XLSEARCH_')}"
        ) from None
    except SettingsError as exc:  # a list setting that is not JSON, refused before validation
        named = re.search(r'field "(\w+)"', str(exc))
        if named is None:
            raise InvalidInput(f"invalid settings: {exc}") from None
        variable, example = f"XLSEARCH_{named[1].upper()}", json.dumps(["a", "b"])
        raise InvalidInput(
            f"invalid settings: {variable}: not valid JSON; write a list as JSON, "
            f"e.g. {variable}='{example}'"
        ) from None


def _open_engine(settings: Settings | None = None) -> Engine:
    """Database, model and indexes; an unusable data folder or database is one line."""
    settings = settings or _settings()
    check_storage(settings, data_folder=True)
    with database_errors(settings):
        return Engine.open(settings)


def _open_store(settings: Settings | None = None, *, data_folder: bool = False) -> Store:
    """The database alone, migrated, for commands that need no model; `data_folder`: check
    the folder for indexes too (with PostgreSQL it holds nothing else)."""
    settings = settings or _settings()
    check_storage(settings, data_folder=data_folder)
    with database_errors(settings):
        return open_store(settings.resolved_database_url)


def _note_if_empty(store: Store, settings: Settings) -> None:
    """Reading commands say where they looked when nothing is stored there, so a command run
    from another folder (a new, empty ./xlsearch-data) is not mistaken for a search that found
    nothing."""
    if store.has_documents():
        return
    if settings.database_url:
        where = f"the database {shown_database(settings)}"
    else:
        where = f"the data folder {settings.data_dir.resolve()}"
    err.print(
        f"note: no documents in {where}; set {database_setting(settings)} to use another",
        highlight=False,
        markup=False,
    )


@app.command()
def ingest(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders (txt, md, html, jsonl).")
    ] = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    sample: Annotated[
        bool, typer.Option("--sample", help="The sample corpus shipped with xlsearch.")
    ] = False,
) -> None:
    """Read, chunk, embed and store documents; folders are read recursively."""
    from search.bundled import sample_folder

    paths = [*(paths or []), *([sample_folder()] if sample else [])]
    if not paths:
        raise InvalidInput("nothing to ingest: give files or folders, or --sample")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from indexer.pipeline import Ingestor, IngestSummary, ingest_stream
    from indexer.readers import Extraction, count_items, read_sources
    from search.collections import ensure_collection

    with closing(_open_engine()) as engine:  # stops language processes, model pools
        target = ensure_collection(engine.store, engine.settings, engine.embedder, collection)
        ingestor = Ingestor.for_engine(engine, target)
        started = time.perf_counter()
        columns = (
            TextColumn("[bold]ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rates]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err) as progress:
            limit = engine.settings.max_document_bytes
            task = progress.add_task("ingest", total=count_items(paths, limit), rates="")

            def show(summary: IngestSummary, _batch: object) -> bool:
                elapsed = max(time.perf_counter() - started, 1e-9)
                docs, chunks = summary.items / elapsed, summary.chunks / elapsed
                rates = f"{docs:.1f} docs/s, {chunks:.1f} chunks/s"
                progress.update(task, completed=summary.items, rates=rates)
                return False

            summary = ingest_stream(
                read_sources(paths, limit, Extraction.of(engine.settings)),
                ingestor,
                engine.settings.ingest_batch_documents,
                show,
                overlap=engine.overlap,
                batch_seconds=engine.settings.ingest_batch_seconds,
            )
        engine.refresh(target)
        engine.indexes.snapshot(engine.indexes.get(target))
        elapsed = time.perf_counter() - started
        out.print(
            f"{summary.documents} documents in {elapsed:.1f}s into {collection!r}: "
            f"{summary.created} new, {summary.replaced} replaced, {summary.updated} updated, "
            f"{summary.unchanged} unchanged; {summary.chunks} chunks, {summary.tokens} tokens; "
            f"{len(summary.errors)} failed"
        )
        for source, reason in summary.errors:
            err.print(f"[red]failed[/red] {source}: {reason}", highlight=False, markup=True)
        if summary.errors:
            raise typer.Exit(1)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The question, in any language.")],
    k: KOption = 10,
    lang: LanguagesOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    nprobe: Annotated[int | None, typer.Option(help="IVF lists to visit.")] = None,
    metadata_filter: FilterOption = None,
    offset: OffsetOption = 0,
    mode: Annotated[
        str, typer.Option(help='dense, lexical or hybrid; "quoted phrases" must occur.')
    ] = DEFAULT_MODE,
    group_by: Annotated[
        str | None, typer.Option(help="One result per value of lang or metadata.KEY.")
    ] = None,
    group_size: Annotated[
        int | None, typer.Option(help="Documents per group with --group-by (3).")
    ] = None,
    collapse: CollapseOption = None,
    prefer: PreferOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search a collection and print the best documents."""
    request = SearchRequest(
        query=query,
        k=k,
        languages=lang or None,
        nprobe=nprobe,
        filter=_json_option("--filter", metadata_filter),
        offset=offset,
        mode=mode,  # type: ignore[arg-type]  # validated here: a wrong one is an error line
        group_by=group_by,
        group_size=group_size,
        collapse=collapse,  # type: ignore[arg-type]  # validated here, like mode
        prefer_languages=prefer or None,
    )
    engine = _open_engine()
    response = engine.searcher.search(collection, request)
    if not response.results:
        _note_if_empty(engine.store, engine.settings)
    heading = f"{query}  (query language: {response.query_language}"
    _print_results(response, f"{heading}, {response.took_ms:.0f} ms)", offset, as_json)


@app.command()
def similar(
    document_id: Annotated[str, typer.Argument(help="The id of a stored document.")],
    k: KOption = 10,
    lang: LanguagesOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    metadata_filter: FilterOption = None,
    offset: OffsetOption = 0,
    collapse: CollapseOption = "translations",
    prefer: PreferOption = None,
    as_json: JsonOption = False,
) -> None:
    """The documents most like a stored one, in any language (from its stored vectors)."""
    request = SimilarRequest(
        k=k, languages=lang or None, filter=_json_option("--filter", metadata_filter),
        offset=offset, collapse=collapse,  # type: ignore[arg-type]  # validated here
        prefer_languages=prefer or None,
    )
    response = _open_engine().searcher.similar(collection, document_id, request)
    heading = f"like {document_id}  ({response.query_language}, {response.took_ms:.0f} ms)"
    _print_results(response, heading, offset, as_json)


@app.command()
def duplicates(
    collection: CollectionOption = DEFAULT_COLLECTION,
    kind: Annotated[list[str] | None, typer.Option(
        "--kind", help="exact, translations or near (repeat; default: all three).")] = None,
    near_cosine: Annotated[float, typer.Option(
        help="How alike two documents in one language must be to be near-duplicates.")
    ] = NEAR_COSINE,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the JSON lines to this file (default: the terminal).")
    ] = None,
) -> None:
    """Exact copies, translation sets and near-duplicates, one JSON line per group."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from search.api.models import DuplicatesIn

    asked = DuplicatesIn(kinds=kind or list(KINDS), near_cosine=near_cosine)  # type: ignore[arg-type]
    with closing(_open_engine()) as engine:
        current = engine.indexes.named(collection)
        engine.translations.link_pending(current)
        columns = (TextColumn("[bold]near-duplicates"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=err, transient=True) as progress, (
            open(output, "w", encoding="utf-8") if output else nullcontext(sys.stdout)
        ) as sink:
            task = progress.add_task("near", total=None)
            groups = find_duplicates(
                engine.store, current, tuple(asked.kinds), asked.near_cosine,
                lambda done, total: progress.update(task, completed=done, total=total),
            )
            found = 0
            for group in groups:
                sink.write(json.dumps(group.as_json(), ensure_ascii=False) + "\n")
                found += 1
        if output:
            out.print(f"{found} groups written to {output}")


def _print_results(response: SearchResponse, heading: str, offset: int, as_json: bool) -> None:
    """A page of results as a table (rank, score, language, title and where, snippet), or
    as the REST API's JSON."""
    if as_json:
        typer.echo(response.model_dump_json(indent=2))
        return
    table = Table(title=heading, show_lines=True)
    for column in ("#", "score", "lang", "title", "snippet"):
        table.add_column(column, overflow="fold")
    for rank, result in enumerate(response.results, start=offset + 1):
        table.add_row(
            str(rank),
            f"{result.score:.3f}",
            result.lang,
            "\n".join(filter(None, [
                result.title or result.id, describe_locator(result.locator), _group(result),
                _also_in(result),
            ])),
            _marked(result.snippet.text, result.snippet.highlights),
        )
    out.print(table)


def _group(result: SearchResult) -> str | None:
    """"group: VALUE", with the ids of the group's other documents shown."""
    if result.group is None:
        return None
    more = ", ".join(member.id for member in result.group.more)
    value = json.dumps(result.group.value, ensure_ascii=False)
    return f"group: {value}" + (f" (also {more})" if more else "")


def _also_in(result: SearchResult) -> str | None:
    """"also in: fr · ja" for a result with translations."""
    if not result.translations:
        return None
    return "also in: " + " · ".join(t["lang"] for t in result.translations)


def _marked(snippet: str, highlights: list[tuple[int, int]], limit: int = 240) -> Text:
    """The snippet on one line (each whitespace character a space, so offsets hold), its
    matched words in bold, cut at `limit` characters."""
    text = Text("".join(" " if ch.isspace() else ch for ch in snippet))
    for start, end in highlights:
        text.stylize("bold", start, end)
    if len(text) > limit:
        text.truncate(limit - 1)
        text.append("…")
    return text


@collections_app.callback(invoke_without_command=True)
def collections(ctx: typer.Context) -> None:
    """List collections with their model, dimension, chunking, generation and size."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings()
    store = _open_store(settings)
    _note_if_empty(store, settings)
    table = Table()
    columns = ("name", "model", "dim", "chunk tokens", "overlap", "generation", "documents",
               "chunks")
    for column in columns:
        table.add_column(column)
    building = {g.collection_id: g.number for g in store.generations() if g.state == "building"}
    for stats in store.list_collections():
        info = stats.info
        generation = str(info.generation)
        if info.id in building:
            generation += f" (building {building[info.id]})"
        table.add_row(
            info.name,
            info.model,
            str(info.dimension),
            str(info.chunk_tokens),
            str(info.chunk_overlap),
            generation,
            str(stats.documents),
            str(stats.chunks),
        )
    out.print(table)


@collections_app.command("migrate")
def collections_migrate(
    name: Annotated[str, typer.Argument(help="The collection (or an alias of it).")],
    model: Annotated[str | None, typer.Option(help="The new model, named as its process "
                                              "names it (xlsearch settings).")] = None,
    dimension: Annotated[int | None, typer.Option(min=32, help="Matryoshka dimension.")] = None,
    chunk_tokens: Annotated[int | None, typer.Option(
        min=16, help="Most tokens per chunk (documents are chunked again).")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(min=0)] = None,
    document_instruction: Annotated[str | None, typer.Option()] = None,
    query_instruction: Annotated[str | None, typer.Option()] = None,
    wait: Annotated[bool, typer.Option(
        "--wait/--no-wait", help="Follow the job until it ends.")] = True,
) -> None:
    """Re-embed a collection into a new generation from the chunk texts it holds, then
    switch to it; searches go on meanwhile. Runs here when this process has the new model,
    else waits for a worker that has it (XLSEARCH_MODEL=... xlsearch worker)."""
    from search.collections import migration_target

    given = {"model": model, "dimension": dimension, "chunk_tokens": chunk_tokens,
             "chunk_overlap": chunk_overlap, "document_instruction": document_instruction,
             "query_instruction": query_instruction}
    with closing(_open_engine()) as engine:
        collection = engine.store.get_collection(name)
        changes = {key: value for key, value in given.items() if value is not None}
        target = migration_target(collection, changes, engine.embedder)
        _follow_migration(engine, engine.store.start_migration(collection.id, target), wait)


@collections_app.command("rollback")
def collections_rollback(
    name: Annotated[str, typer.Argument(help="The collection (or an alias of it).")],
    wait: Annotated[bool, typer.Option(
        "--wait/--no-wait", help="Follow the job until it ends.")] = True,
) -> None:
    """Switch back to the generation the last migration left (kept for
    XLSEARCH_GENERATION_KEEP_S), adding the documents written since."""
    with closing(_open_engine()) as engine:
        collection = engine.store.get_collection(name)
        _follow_migration(engine, engine.store.start_rollback(collection.id), wait)


def _follow_migration(engine: Engine, generation: GenerationInfo, wait: bool) -> None:
    """Run the generation's job here if this process has its model, else wait for a worker
    that has; with a progress bar either way, from the job's own progress."""
    import threading

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from indexer.worker import Worker

    job_id = str(generation.job_id)
    jobs = JobStore(engine.store)
    here = generation.model == engine.embedder.name
    out.print(f"generation {generation.number} of the collection: job {job_id}",
              highlight=False)
    if not here:
        err.print(f"this process embeds with {engine.embedder.name!r}; a worker with "
                  f"{generation.model!r} does the job (XLSEARCH_MODEL=... xlsearch worker)")
    if not wait:
        return
    runner = threading.Thread(target=Worker(engine).run_job, args=(job_id,), daemon=True)
    if here:
        runner.start()
    columns = (TextColumn("[bold]migrate"), BarColumn(), MofNCompleteColumn(),
               TextColumn("documents"), TimeElapsedColumn())
    with Progress(*columns, console=err) as progress:
        task = progress.add_task("migrate", total=None)
        while True:
            job = jobs.get(job_id)
            progress.update(task, total=job.total or None, completed=job.processed)
            if job.status in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.5)
    if here:
        runner.join()
    if job.status != "succeeded":
        reason = job.errors[-1]["reason"] if job.errors else job.status
        err.print(f"[red]migration {job.status}[/red]: {reason}", highlight=False, markup=True)
        raise typer.Exit(1)
    out.print(f"{job.processed} documents embedded; the collection now searches generation "
              f"{generation.number}", highlight=False)


@app.command()
def alias(
    name: Annotated[str, typer.Argument(help="The alias.")],
    collection: Annotated[str | None, typer.Argument(
        help="The collection it names from now on (switched at once for every process).")
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
) -> None:
    """Point an alias at a collection, or remove it; without either, show it."""
    store = _open_store(_settings())
    if delete:
        store.delete_alias(name)
        out.print(f"alias {name!r} removed")
        return
    if collection is not None:
        check_name(name, "alias")
        store.put_alias(name, collection)
    found = store.aliases(name)
    if not found:
        raise AliasNotFound(name)
    out.print(f"{found[0].name} -> {found[0].collection}", highlight=False)


@app.command()
def aliases() -> None:
    """List aliases and the collections they name."""
    table = Table()
    for column in ("alias", "collection", "since"):
        table.add_column(column)
    for info in _open_store(_settings()).aliases():
        table.add_row(info.name, info.collection, info.updated_at.isoformat(timespec="seconds"))
    out.print(table)


@app.command()
def jobs(
    status: Annotated[
        JobStatus | None, typer.Option(help="Only jobs in this state.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 20,
) -> None:
    """List ingestion jobs with their state and progress."""
    table = Table()
    for column in ("id", "collection", "status", "done", "failed", "created", "finished"):
        table.add_column(column)
    settings = _settings()
    store = _open_store(settings)
    _note_if_empty(store, settings)
    for job in JobStore(store).recent(status, limit):
        done = f"{job.processed + job.failed}/{job.total}" if job.total else str(job.processed)
        table.add_row(
            job.id,
            job.collection,
            job.status,
            done,
            str(job.failed),
            f"{job.created_at:%Y-%m-%d %H:%M:%S}",
            f"{job.finished_at:%Y-%m-%d %H:%M:%S}" if job.finished_at else "",
        )
    out.print(table)


def _log_progress() -> None:
    """Long-running commands log xlsearch's own INFO lines (model, jobs) to stderr."""
    import logging

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for ours in ("search", "indexer"):
        logging.getLogger(ours).setLevel(logging.INFO)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Listen address; default: XLSEARCH_HOST, else 127.0.0.1.")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port; default: XLSEARCH_PORT, else 8000.")
    ] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run an in-process job worker.")
    ] = True,
) -> None:
    """Serve the REST API (and web page) with uvicorn; by default also process jobs."""
    import uvicorn

    from search.api import create_app

    _log_progress()
    settings = _settings()
    # An unusable data folder or database is one line here, not a traceback from uvicorn.
    _open_store(settings, data_folder=True).engine.dispose()
    uvicorn.run(
        create_app(settings, worker=worker),
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        timeout_keep_alive=5,  # idle connections between requests close after 5 s
        timeout_graceful_shutdown=30,  # on stop, requests in flight get 30 s, then are cut
    )


@app.command()
def worker() -> None:
    """Process ingestion jobs from the database until stopped (Ctrl-C or SIGTERM).

    With several XLSEARCH_DEVICES and XLSEARCH_MULTI_DEVICE=processes, runs one worker per device.
    """
    import signal

    from indexer.worker import Worker

    _log_progress()
    settings = _settings()
    if len(settings.devices) > 1 and settings.multi_device == "processes":
        from indexer.device_workers import run_worker_per_device

        err.print(f"starting one worker per device: {', '.join(settings.devices)}")
        _open_store(settings, data_folder=True).engine.dispose()  # not once per device
        raise typer.Exit(run_worker_per_device(settings))
    engine = _open_engine(settings)
    running = Worker(engine)
    signal.signal(signal.SIGTERM, lambda *_: running.stop(timeout_s=0))
    err.print(f"worker {running.name} waiting for jobs in {engine.settings.resolved_database_url}")
    try:
        running.run()
    except KeyboardInterrupt:
        running.stop(timeout_s=0)
    finally:
        engine.close()


@app.command()
def settings() -> None:
    """Show every setting, its environment variable, default and meaning."""
    from search.settings import settings_table

    typer.echo(settings_table())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to the latest revision."""
    _open_store()
    out.print("database schema is up to date")


@db_app.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="The new backup file.", show_default=False)],
) -> None:
    """Copy the database to PATH while servers and workers run (SQLite backup API or pg_dump).

    Restore: stop every process, put the copy back (SQLite: the file, removing its -wal and
    -shm; PostgreSQL: pg_restore), start again; indexes rebuild from the stored vectors.
    """
    from sqlalchemy.engine import make_url

    from search.store.backup import backup_database

    settings = _settings()
    url = settings.resolved_database_url
    try:
        with database_errors(settings):
            backup_database(url, path)
    except OSError as exc:  # the backup's own folder or file
        raise StorageUnavailable(
            f"cannot write the backup {path.resolve()}: {exc.strerror}; "
            "name a new file in a folder you can write"
        ) from None
    shown = make_url(url).render_as_string(hide_password=True)
    size = path.stat().st_size
    out.print(f"backed up {shown} to {path} ({size} bytes)", highlight=False, soft_wrap=True)


@index_app.command("rebuild")
def index_rebuild(collection: CollectionOption = DEFAULT_COLLECTION) -> None:
    """Rebuild (and retrain) a collection's index from stored vectors; nothing is re-embedded."""
    engine = _open_engine()
    current = engine.indexes.rebuild(engine.store.get_collection(collection))
    out.print(f"rebuilt {collection!r}: {json.dumps(current.index.describe())}")


@index_app.command("snapshot")
def index_snapshot(collection: CollectionOption = DEFAULT_COLLECTION) -> None:
    """Catch the index up with the database and write a snapshot."""
    engine = _open_engine()
    current = engine.indexes.get(engine.store.get_collection(collection))
    engine.indexes.snapshot(current)
    out.print(f"snapshot of {collection!r}: {json.dumps(current.index.describe())}")


def main() -> None:
    """Entry point: domain, input, settings and storage errors become one line on stderr and
    exit code 2; anything else is a bug and keeps its traceback."""
    try:
        app()
    except XlsearchError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise SystemExit(2) from None
    except ValidationError as exc:
        err.print(f"error: {describe_validation_error(exc)}", highlight=False, markup=False)
        raise SystemExit(2) from None
