"""Engine, sessions, and the column types that keep time zones and cents exact."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from types import NoneType
from typing import Any, TypeVar, cast
from weakref import WeakKeyDictionary

import anyio
from anyio.lowlevel import RunVar
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Numeric,
    bindparam,
    event,
    func,
    insert,
    select,
    true,
)
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.base import manager_of_class
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Session, SQLModel, create_engine
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
_slots: RunVar[WeakKeyDictionary[Engine, anyio.Semaphore]] = RunVar("diplomat_database_slots")


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


def _slot_semaphore(engine: Engine) -> anyio.Semaphore | None:
    """The semaphore of the engine's request slots in this event loop; None: no limit."""
    capacity = pool_capacity(engine)
    if capacity is None:
        return None
    slots = _slots.get(None)
    if slots is None:
        slots = WeakKeyDictionary()
        _slots.set(slots)
    semaphore = slots.get(engine)
    if semaphore is None:
        semaphore = slots[engine] = anyio.Semaphore(capacity)
    return semaphore


@asynccontextmanager
async def _request_session(engine: Engine, database: Engine) -> AsyncIterator[Session]:
    """A session on `database`, opened once the request holds one of `engine`'s slots.

    The slot: without it, more requests than the pool has connections would park worker
    threads on the pool while the requests holding connections wait for a thread to send
    their answer; every thread and every connection waits, until the pool's time-out fails
    them all. Here the surplus waits in the event loop, holding nothing.

    Opening a session touches no database, so it happens here in the event loop; so does
    closing one whose work was committed (its connection already went back to the pool).
    Only a session still in a transaction is closed in a worker thread, since closing rolls
    it back over the network. That saves each request two trips through the thread pool.
    """
    semaphore = _slot_semaphore(engine)
    if semaphore is not None:
        await semaphore.acquire()
    try:
        session = Session(database, expire_on_commit=False)
        try:
            yield session
        finally:
            with anyio.CancelScope(shield=True):
                if session.in_transaction():
                    await anyio.to_thread.run_sync(session.close)
                else:
                    session.close()
    finally:
        if semaphore is not None:
            semaphore.release()


async def get_read_session(request: Request) -> AsyncIterator[Session]:
    """A session for a request that only reads, whatever its method (e.g. a quote by POST).

    On SQLite it takes no write lock, so many at once never queue behind the writers.
    """
    engine: Engine = request.app.state.engine
    async with _request_session(engine, engine) as session:
        yield session


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request, on the engine of the application serving it.

    Requests that change state begin their transactions as writers, so concurrent writes on
    SQLite queue for the lock instead of failing (PostgreSQL ignores the option).
    """
    engine: Engine = request.app.state.engine
    database = engine if request.method in ("GET", "HEAD", "OPTIONS") else writer_engine(engine)
    async with _request_session(engine, database) as session:
        yield session


_ROW_INSERTS: dict[Any, Any] = {}
_RESERVATIONS: dict[Any, Any] = {}
_NULL_COLUMNS: dict[Any, tuple[list[str], frozenset[str]]] = {}
_ROW_DEFAULTS: dict[type, tuple[dict[str, Any], dict[str, Callable[[], Any]]]] = {}


Row = TypeVar("Row", bound=SQLModel)


def _defaults(model: type[SQLModel]) -> tuple[dict[str, Any], dict[str, Callable[[], Any]]]:
    """The model's plain defaults and default factories by field, looked up once per model."""
    found = _ROW_DEFAULTS.get(model)
    if found is None:
        plain: dict[str, Any] = {}
        factories: dict[str, Callable[[], Any]] = {}
        for name, info in model.model_fields.items():
            if info.default_factory is not None:
                if info.default_factory_takes_validated_data:
                    raise TypeError(f"{model.__name__}.{name}: a factory of validated data")
                factories[name] = cast(Callable[[], Any], info.default_factory)
            elif not info.is_required():
                if not isinstance(info.default, str | int | bool | Decimal | NoneType):
                    raise TypeError(f"{model.__name__}.{name}: a mutable default")
                plain[name] = info.default
        found = _ROW_DEFAULTS[model] = (plain, factories)
    return found


def new_row(model: type[Row], **values: Any) -> Row:
    """A new `model` row, not stored yet: `insert_rows` stores it.

    The object is built as the ORM builds one it loads: its fields written straight into
    it, the model's defaults filled in. The constructor of a table model sets each field
    through two layers of attribute events (a few hundred microseconds for an application);
    nothing listens to them on a row that is stored the moment it is made. An `id` may be
    given (one reserved from the table's sequence); without one the database assigns it.
    """
    fields = model.model_fields
    unknown = values.keys() - fields.keys()
    if unknown:
        raise TypeError(f"{model.__name__} has no field {', '.join(sorted(unknown))}")
    plain, factories = _defaults(model)
    row_values = {**plain, **values}
    for name, factory in factories.items():
        if name not in values:
            row_values[name] = factory()
    row = manager_of_class(model).new_instance()
    row.__dict__.update(row_values)
    object.__setattr__(row, "__pydantic_fields_set__", set(values))
    return row


def _insert_statement(shape: tuple[tuple[Any, tuple[str, ...]], ...]) -> Any:
    """The prepared statement that inserts one row into each table of `shape` (a table and
    the columns given) and returns the rows' ids.

    On PostgreSQL several rows go in one statement, each insert a common table expression:
    one trip to the database. Foreign keys are checked at the end of the statement, so a
    row may refer to another inserted with it (by an id reserved beforehand).
    """
    statement = _ROW_INSERTS.get(shape)
    if statement is None:
        if len(shape) == 1:
            table = shape[0][0]
            statement = insert(table).returning(table.c.id)
        else:
            inserted = [
                insert(table)
                .values({key: bindparam(f"r{n}_{key}", type_=table.c[key].type) for key in keys})
                .returning(table.c.id)
                .cte(f"inserted_{n}")
                for n, (table, keys) in enumerate(shape)
            ]
            joined: Any = inserted[0]
            for cte in inserted[1:]:
                joined = joined.join(cte, true())
            statement = select(*(cte.c.id for cte in inserted)).select_from(joined)
        _ROW_INSERTS[shape] = statement
    return statement


def _null_columns(table: Any) -> tuple[list[str], frozenset[str]]:
    """A table's column keys, and those whose None must be sent rather than left out: JSON
    (None is the JSON value null there) and columns with a server default."""
    found = _NULL_COLUMNS.get(table)
    if found is None:
        found = _NULL_COLUMNS[table] = (
            [column.key for column in table.columns],
            frozenset(
                column.key
                for column in table.columns
                if isinstance(column.type, JSON) or column.server_default is not None
            ),
        )
    return found


def insert_rows(session: Session, *rows: SQLModel) -> None:
    """Store new rows (from `new_row`) at once, in this order, and keep them in the session
    as stored, with their ids.

    One prepared `INSERT ... RETURNING id` per row instead of the unit of work's flush: the
    hot write paths (an application, its receipt e-mail, its audit entry) do less work per
    row. A column whose value is None is left out (it is NULL either way), so the statement
    carries only the values given. On PostgreSQL all the rows go in one statement. A
    constraint refuses them here, as a flush would; then none of them is stored.
    """
    if not rows:
        return
    values = []
    for row in rows:
        keys, keep_none = _null_columns(row.__table__)  # type: ignore[attr-defined]
        fields = row.__dict__
        values.append(
            {
                key: fields.get(key)
                for key in keys
                if fields.get(key) is not None or key in keep_none
            }
        )
    together = len(rows) > 1 and session.get_bind().dialect.name == "postgresql"
    groups = [list(range(len(rows)))] if together else [[n] for n in range(len(rows))]
    for group in groups:
        shape = tuple((rows[n].__table__, tuple(values[n])) for n in group)  # type: ignore[attr-defined]
        statement = _insert_statement(shape)
        if len(group) == 1:
            ids = [session.execute(statement, values[group[0]]).scalar_one()]
        else:
            params = {
                f"r{position}_{key}": value
                for position, n in enumerate(group)
                for key, value in values[n].items()
            }
            ids = list(session.execute(statement, params).one())
        for n, new_id in zip(group, ids, strict=True):
            rows[n].__dict__["id"] = new_id
    for row in rows:
        make_transient_to_detached(row)
        session.add(row)


def has_sequences(session: Session) -> bool:
    """Whether the session's database gives ids from sequences (PostgreSQL), so an id can
    be reserved before its row is written."""
    return session.get_bind().dialect.name == "postgresql"


def next_id(model: type[SQLModel]) -> Any:
    """The expression that takes the next id of `model`'s table from its sequence
    (PostgreSQL), to read along with other values (`reserve_id`)."""
    table = model.__table__  # type: ignore[attr-defined]
    return func.nextval(func.pg_get_serial_sequence(table.name, "id"))


def reserve_id(
    session: Session, model: type[SQLModel], *also: Any, params: dict[str, Any] | None = None
) -> tuple[Any, ...]:
    """An id for a new `model` row, then the values of the scalar expressions `also` (built
    once, with `params` bound), in one trip to the database.

    PostgreSQL takes the id from the table's sequence, so the rows that refer to the new
    one can be written in the same statement (`insert_rows`). Where there is no sequence
    (SQLite) the id is None, and comes with the insert.
    """
    sequence = has_sequences(session)
    key = (model, also, sequence)
    statement = _RESERVATIONS.get(key)
    if statement is None:
        columns = [next_id(model), *also] if sequence else list(also)
        statement = _RESERVATIONS[key] = select(*columns) if columns else None
    if statement is None:
        return (None,)
    found = tuple(session.execute(statement, params or {}).one())
    return found if sequence else (None, *found)
