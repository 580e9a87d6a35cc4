"""Online backups of the database, safe while servers and workers write to it: SQLite's backup
API (one consistent read, writers go on in WAL mode) or PostgreSQL's `pg_dump` (custom format,
for `pg_restore`). The copy appears at its path only once complete.

Restoring is a matter of stopping every process, putting the copy back and starting them
again: index snapshots taken after the backup are then not recorded in the database
(search.store.identity), so each process rebuilds its indexes from the stored vectors.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from search.errors import InvalidInput, XlsearchError


def backup_database(url: str, target: Path) -> None:
    """Write a consistent copy of the database at `url` to the new file `target`."""
    parsed = make_url(url)
    if target.exists():
        raise InvalidInput(f"{target} already exists; name a new file for the backup")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            _backup_sqlite(parsed, temporary)
        elif backend == "postgresql":
            _backup_postgresql(parsed, temporary)
        else:
            raise InvalidInput(
                f"xlsearch backs up SQLite and PostgreSQL, not {backend}: use that database's "
                "own backup tool"
            )
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _backup_sqlite(url: URL, temporary: Path) -> None:
    database = url.database
    if not database or database == ":memory:" or not Path(database).is_file():
        raise InvalidInput(f"no SQLite database file at {database!r} to back up")
    source = sqlite3.connect(database, timeout=30)
    try:
        destination = sqlite3.connect(temporary)
        try:
            source.backup(destination)
        finally:
            destination.close()
    finally:
        source.close()


def _backup_postgresql(url: URL, temporary: Path) -> None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise XlsearchError(
            "pg_dump is not on the PATH: install the PostgreSQL client tools (the version of "
            "the server or newer), e.g. `apt-get install postgresql-client`"
        )
    environment = dict(os.environ)
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)  # not on the command line, which ps shows
    dsn = URL.create(
        "postgresql", url.username, None, url.host, url.port, url.database, url.query
    ).render_as_string()
    finished = subprocess.run(
        [pg_dump, "--format=custom", f"--file={temporary}", f"--dbname={dsn}"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if finished.returncode != 0:
        reason = finished.stderr.strip().splitlines()[-1:] or [f"exit status {finished.returncode}"]
        raise XlsearchError(f"pg_dump failed: {reason[0]}")
