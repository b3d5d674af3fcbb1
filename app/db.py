"""Engine, sessions, and the column types that keep time zones and cents exact."""

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any
from weakref import WeakKeyDictionary

import anyio
from anyio.lowlevel import RunVar
from fastapi import Depends
from sqlalchemy import BigInteger, DateTime, Numeric, event
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Session, create_engine
from starlette.requests import Request

from app.config import get_settings

SQLITE_IMMEDIATE = "diplomat_sqlite_immediate"


def utcnow() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware instant stored as UTC; SQLite, which forgets offsets, gets it back aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: give a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Amount(TypeDecorator[Decimal]):
    """A Decimal with two places: NUMERIC(12,2) on PostgreSQL, whole cents on SQLite.

    SQLite has no decimal type and would round-trip through floats; integer cents keep
    every amount exact and still let SQL sum and compare them.
    """

    impl = Numeric(12, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(12, 2, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value).quantize(Decimal("0.01"))
        if dialect.name == "sqlite":
            return int(value * 100)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / 100).quantize(Decimal("0.01"))
        return Decimal(value).quantize(Decimal("0.01"))


def _configure_sqlite(engine: Engine) -> None:
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
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    return make_engine(get_settings().database_url)


def writer_engine(engine: Engine) -> Engine:
    """The same engine for a unit of work that will write (SQLite: BEGIN IMMEDIATE)."""
    return engine.execution_options(**{SQLITE_IMMEDIATE: True})


# The slots of each engine's pool, per event loop (a semaphore belongs to one loop).
_slots: RunVar[WeakKeyDictionary[Engine, anyio.Semaphore]] = RunVar("diplomat_database_slots")


def pool_capacity(engine: Engine) -> int | None:
    """How many connections the engine's pool can lend at once; None when it has no limit."""
    pool = engine.pool
    if isinstance(pool, QueuePool) and pool._max_overflow >= 0:
        return pool.size() + pool._max_overflow
    return None


async def database_slot(request: Request) -> AsyncIterator[None]:
    """A place among the requests that may hold a connection, taken before the session opens.

    Without it, more requests than the pool has connections would park worker threads on the
    pool while the requests holding connections wait for a thread to send their answer: every
    thread and every connection waits, until the pool's time-out fails them all. Here the
    surplus waits in the event loop, holding nothing.
    """
    engine: Engine = request.app.state.engine
    capacity = pool_capacity(engine)
    if capacity is None:
        yield
        return
    slots = _slots.get(None)
    if slots is None:
        slots = WeakKeyDictionary()
        _slots.set(slots)
    semaphore = slots.get(engine)
    if semaphore is None:
        semaphore = slots[engine] = anyio.Semaphore(capacity)
    async with semaphore:
        yield


def get_read_session(
    request: Request, _slot: Annotated[None, Depends(database_slot)]
) -> Iterator[Session]:
    """A session for a request that only reads, whatever its method (e.g. a quote by POST).

    On SQLite it takes no write lock, so many at once never queue behind the writers.
    """
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


def get_session(
    request: Request, _slot: Annotated[None, Depends(database_slot)]
) -> Iterator[Session]:
    """One session per request, on the engine of the application serving it.

    Requests that change state begin their transactions as writers, so concurrent writes on
    SQLite queue for the lock instead of failing (PostgreSQL ignores the option).
    """
    engine: Engine = request.app.state.engine
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        engine = writer_engine(engine)
    with Session(engine, expire_on_commit=False) as session:
        yield session
