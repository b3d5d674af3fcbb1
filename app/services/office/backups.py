"""Backing up the database to one file and restoring it into another.

SQLite uses its online backup API: the copy is one read transaction, so it is consistent
while the service keeps writing (a plain copy of a live WAL database may not be).
PostgreSQL uses `pg_dump --format=custom` (one snapshot) and `pg_restore`, which must be
installed beside the service, ideally of the server's major version.
"""

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, make_url

from app.db import make_engine
from app.services.errors import DomainError

# Rows in any of these mean the office has used the database: a restore would lose them.
# Reference data the migrations load (income groups, the course) does not count.
OFFICE_TABLES = (
    "edition",
    "organisation",
    "application",
    "invoice",
    "payment",
    "staff_user",
    "audit_entry",
)
SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"


class BackupError(DomainError):
    """A backup or restore could not be made; nothing was changed."""


@dataclass(frozen=True)
class BackupResult:
    """What was written."""

    kind: str
    path: Path
    size: int


def database_kind(url: str) -> str:
    """`sqlite` or `postgresql`."""
    backend = make_url(url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BackupError(f"Backups support SQLite and PostgreSQL, not {backend}.")
    return backend


def sqlite_path(url: str) -> Path:
    """The file of a SQLite database URL."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("An in-memory SQLite database cannot be backed up or restored.")
    return Path(database)


def has_office_data(url: str) -> bool:
    """Whether the database holds anything the office entered (an empty schema does not)."""
    if database_kind(url) == "sqlite" and not sqlite_path(url).exists():
        return False
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            present = set(inspect(connection).get_table_names())
            for table in OFFICE_TABLES:
                if (
                    table in present
                    and connection.execute(
                        text(f"SELECT 1 FROM {table} LIMIT 1")  # noqa: S608 - names from the list above
                    ).first()
                ):
                    return True
    finally:
        engine.dispose()
    return False


def backup_database(url: str, destination: Path, *, overwrite: bool = False) -> BackupResult:
    """Write a consistent copy of the database at `url` to `destination`."""
    if destination.exists() and not overwrite:
        raise BackupError(f"{destination} exists already; choose another name or use --force.")
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed at the end: a failed backup never leaves a
    # half-written file under the name an operator would restore from.
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    kind = database_kind(url)
    try:
        if kind == "sqlite":
            _sqlite_backup(sqlite_path(url), partial)
        else:
            _pg_dump(make_url(url), partial)
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(kind=kind, path=destination, size=destination.stat().st_size)


def restore_database(url: str, source: Path, *, force: bool = False) -> str:
    """Replace the database at `url` with the backup in `source`; returns the kind restored."""
    if not source.is_file():
        raise BackupError(f"There is no backup file {source}.")
    kind = database_kind(url)
    with source.open("rb") as file:
        head = file.read(16)
    if kind == "sqlite" and not head.startswith(SQLITE_MAGIC):
        raise BackupError(f"{source} is not a SQLite backup (made by `diplomat db backup`).")
    if kind == "postgresql" and not head.startswith(PG_DUMP_MAGIC):
        raise BackupError(f"{source} is not a pg_dump custom-format backup.")
    if not force and has_office_data(url):
        raise BackupError(
            "The database already holds data; restoring would replace all of it. "
            "Restore into a new database, or add --force to overwrite it."
        )
    if kind == "sqlite":
        _sqlite_restore(source, sqlite_path(url))
    else:
        _pg_restore(make_url(url), source)
    return kind


def _check_integrity(connection: sqlite3.Connection, what: str) -> None:
    row = connection.execute("PRAGMA integrity_check").fetchone()
    if row is None or row[0] != "ok":
        raise BackupError(f"{what} failed SQLite's integrity check: {row[0] if row else '?'}")


def _sqlite_backup(source: Path, partial: Path) -> None:
    if not source.exists():
        raise BackupError(f"There is no SQLite database at {source}.")
    with (
        _sqlite_connect(source) as origin,
        _sqlite_connect(partial) as copy,
    ):
        # One step (all pages) is one read transaction: writers go on meanwhile (WAL), and
        # the copy is the database as of one instant.
        origin.backup(copy)
        # A self-contained file: no -wal beside it to forget.
        copy.execute("PRAGMA journal_mode=DELETE")
        _check_integrity(copy, "The backup")


def _sqlite_restore(source: Path, target: Path) -> None:
    with _sqlite_connect(source) as backup:
        _check_integrity(backup, f"The backup {source}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with _sqlite_connect(target) as database:
            # The backup API replaces the target page by page under its write lock: readers
            # see the old database or the restored one, never a mix.
            database.execute("PRAGMA busy_timeout=30000")
            backup.backup(database)
            _check_integrity(database, "The restored database")


def _sqlite_connect(path: Path) -> "closing[sqlite3.Connection]":
    """A sqlite3 connection closed on exit (sqlite3's own context manager only commits)."""
    return closing(sqlite3.connect(path, isolation_level=None))


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} was not found: install the PostgreSQL client tools (Debian: "
            f"postgresql-client) of the server's major version, then try again."
        )
    return found


def _pg_environment(url: URL) -> dict[str, str]:
    """libpq's variables for a URL: the password never appears on a command line."""
    values = {
        "PGHOST": url.host or "",
        "PGPORT": str(url.port or ""),
        "PGUSER": url.username or "",
        "PGPASSWORD": url.password or "",
        "PGDATABASE": url.database or "",
    }
    return {**os.environ, **{k: v for k, v in values.items() if v}}


def _run(command: list[str], url: URL, what: str) -> None:
    result = subprocess.run(  # noqa: S603 - a fixed program with our own arguments
        command,
        env=_pg_environment(url),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BackupError(f"{what} failed: {result.stderr.strip() or result.returncode}")


def _pg_dump(url: URL, partial: Path) -> None:
    _run(
        [_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-acl", f"--file={partial}"],
        url,
        "pg_dump",
    )


def _pg_restore(url: URL, source: Path) -> None:
    # One transaction: a restore that fails half-way leaves the database as it was.
    _run(
        [
            _pg_tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-acl",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={url.database}",
            str(source),
        ],
        url,
        "pg_restore",
    )
