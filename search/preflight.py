"""Before a command touches its data: the data folder and the database are usable, or a one-line
StorageUnavailable says what is wrong with which path or URL and which setting points elsewhere.

A folder that cannot be made or written, a database file that is a folder or not a database, a
server that does not answer, a schema from a newer xlsearch: these are the machine's state, not
bugs, so they get a sentence instead of a driver's traceback.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, OperationalError

from search.errors import StorageUnavailable
from search.settings import Settings

_DATA_DIR = "XLSEARCH_DATA_DIR or --data-dir"
_DATABASE_URL = "XLSEARCH_DATABASE_URL or --database-url"


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite database file, absolute; None for other databases and in-memory SQLite."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).resolve()


def database_setting(settings: Settings) -> str:
    """The setting that chooses the database: the URL if one is given, else the data folder."""
    return _DATABASE_URL if settings.database_url else _DATA_DIR


def shown_database(settings: Settings) -> str:
    """The database for messages: a SQLite file's path, or the URL without its password."""
    path = sqlite_file(settings)
    if path is not None:
        return str(path)
    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def check_storage(settings: Settings, *, data_folder: bool) -> None:
    """The folders the command writes exist (made if missing) and are writable; a SQLite
    database path is not a folder. `data_folder`: the command also keeps indexes there."""
    database = sqlite_file(settings)
    if data_folder or (database is not None and not settings.database_url):
        _check_folder(settings.data_dir.resolve(), "the data folder", _DATA_DIR)
    if database is not None:
        if settings.database_url:
            _check_folder(database.parent, "the database's folder", _DATABASE_URL)
        if database.is_dir():
            raise StorageUnavailable(
                f"the database {database} is a folder, not a SQLite file; move it away, "
                f"or set {database_setting(settings)} to another place"
            )


def _check_folder(folder: Path, what: str, setting: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise StorageUnavailable(
            f"{what} {folder} is a file, not a folder; set {setting} to a folder"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageUnavailable(
            f"cannot create {what} {folder}: {exc.strerror}; "
            f"set {setting} to a folder you can write"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StorageUnavailable(
            f"{what} {folder} is not writable; make it writable, or set {setting} to a folder "
            "you can write"
        )


@contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """Turn the errors of opening and migrating the database into StorageUnavailable.

    Only the database's state is translated: a server that refuses or rejects the connection, a
    file that is damaged or no database, a schema revision unknown to this xlsearch. Any other
    exception is a bug and keeps its traceback.
    """
    where = shown_database(settings)
    setting = database_setting(settings)
    try:
        yield
    except (DatabaseError, sqlite3.DatabaseError) as exc:
        if not _is_database_state(exc):
            raise
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if sqlite_file(settings) is not None:
            advice = (
                "if the file is damaged, restore it from a backup or move it away; "
                f"or set {setting} to another database"
            )
        else:
            advice = f"check that the server runs and the URL is right ({_DATABASE_URL})"
        raise StorageUnavailable(f"cannot open the database {where}: {reason}; {advice}") from None
    except CommandError as exc:
        raise StorageUnavailable(
            f"the database {where} has a schema this xlsearch cannot migrate ({exc}), probably "
            f"written by a newer xlsearch: upgrade xlsearch, or set {setting} to another database"
        ) from None


def _is_database_state(exc: Exception) -> bool:
    """Unreachable, locked, read-only (operational errors) or no database at all (the base
    class, which SQLite raises for damaged files); constraint and SQL errors are bugs."""
    operational = (OperationalError, sqlite3.OperationalError)
    return isinstance(exc, operational) or type(exc) in (DatabaseError, sqlite3.DatabaseError)
