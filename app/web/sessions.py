"""A database session per request, opened once the request holds one of the pool's slots."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from weakref import WeakKeyDictionary

import anyio
from anyio.lowlevel import RunVar
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.requests import Request

from app.db import pool_capacity, writer_engine

_slots: RunVar[WeakKeyDictionary[Engine, anyio.Semaphore]] = RunVar("diplomat_database_slots")


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
