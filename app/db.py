"""Engines and their settings per dialect; request sessions are in app.web.sessions."""

from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool
from sqlmodel import create_engine

from app.config import PROJECT_ROOT, get_settings

SQLITE_IMMEDIATE = "diplomat_sqlite_immediate"


def configure_sqlite(engine: Engine) -> None:
    """Set the pragmas every SQLite connection of this engine needs."""

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # WAL lets readers work while a writer commits; busy_timeout makes a second writer
        # wait for the lock instead of failing at once.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        # pysqlite's own transaction handling skips BEGIN and breaks savepoints; SQLAlchemy
        # emits BEGIN itself instead (the documented recipe).
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # A writer takes the write lock when it begins, not at its first write: otherwise a
        # transaction that read first could not write after another one committed.
        immediate = connection.get_execution_options().get(SQLITE_IMMEDIATE)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for `url` with the project's settings for its dialect."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    return make_engine(get_settings().database_url)


_WRITER = "_diplomat_writer"


def writer_engine(engine: Engine) -> Engine:
    """The same engine for a unit of work that will write (SQLite: BEGIN IMMEDIATE).

    Made once per engine and kept on it (every writing request asks for it).
    """
    writer: Engine | None = getattr(engine, _WRITER, None)
    if writer is None:
        writer = engine.execution_options(**{SQLITE_IMMEDIATE: True})
        setattr(engine, _WRITER, writer)
    return writer


# The slots of each engine's pool, per event loop (a semaphore belongs to one loop).


def pool_capacity(engine: Engine) -> int | None:
    """How many requests may hold one of the engine's connections at once; None: no limit.

    The pool's kept connections, not its overflow: an overflow connection is closed when it
    comes back to a full pool, so requests using it would open a new database connection
    each (a process on the server) under load. The overflow is left to the background work
    in the process (mail, jobs), which then never waits behind requests.
    """
    pool = engine.pool
    if isinstance(pool, QueuePool) and pool._max_overflow >= 0:
        return pool.size()
    return None


def alembic_config(url: str | None = None) -> Config:
    """Alembic's configuration for this project, pointed at `url` or the configured database."""
    # A checkout keeps them beside the code; an installed package (the image) ships them
    # inside itself, as app/migrations.
    shipped = Path(__file__).resolve().parent / "migrations"
    migrations = PROJECT_ROOT / "migrations"
    if not (migrations / "env.py").is_file() and (shipped / "env.py").is_file():
        migrations = shipped
    ini = PROJECT_ROOT / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["url"] = url or get_settings().database_url
    config.attributes["configure_logger"] = False
    return config
