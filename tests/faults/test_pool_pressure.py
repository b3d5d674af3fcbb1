"""More requests than the pool has connections: they queue, none waits out the pool's time-out.

Before requests took a slot for their session, threads parked on the empty pool while the
requests holding its connections waited for a free thread to send their answers; every
request then failed after the pool's time-out. The pool here is tiny (2 connections, 4
threads, 5 s time-out) so that the old behaviour fails quickly and surely.
"""

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
import httpx2 as httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, create_engine

from app.config import Settings
from app.db import configure_sqlite, pool_capacity
from app.main import create_app
from tests.factories import open_edition

SLUG = "pool-pressure"


@pytest.fixture
def small_pool(database_url: str) -> Iterator[Engine]:
    engine = create_engine(
        database_url, poolclass=QueuePool, pool_size=2, max_overflow=0, pool_timeout=5
    )
    if database_url.startswith("sqlite"):
        configure_sqlite(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def edition_slug(engine: Engine) -> Iterator[str]:
    with Session(engine) as session:
        edition_id = open_edition(session, slug=SLUG).id
    yield SLUG
    with engine.begin() as connection:
        for table in ("course_session", "module", "group_tier"):
            where = (
                "module_id IN (SELECT id FROM module WHERE edition_id = :e)"
                if table == "course_session"
                else "edition_id = :e"
            )
            connection.execute(text(f"DELETE FROM {table} WHERE {where}"), {"e": edition_id})
        connection.execute(
            text("DELETE FROM audit_entry WHERE entity = 'edition' AND entity_id = :s"), {"s": SLUG}
        )
        connection.execute(text("DELETE FROM edition WHERE id = :e"), {"e": edition_id})


def test_sixty_quotes_at_once_on_two_connections_all_get_their_answer(
    app_settings: Settings, small_pool: Engine, edition_slug: str
) -> None:
    assert pool_capacity(small_pool) == 2
    app = create_app(app_settings)
    app.state.engine = small_pool

    async def burst() -> list[int]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 4
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answers = await asyncio.gather(
                *(
                    client.post(f"/api/v1/editions/{edition_slug}/quote", json={"country": "MEX"})
                    for _ in range(60)
                )
            )
        return [answer.status_code for answer in answers]

    began = time.monotonic()
    # A loop of its own in a thread of its own: an earlier test may have left one running here.
    with ThreadPoolExecutor(max_workers=1) as executor:
        statuses = executor.submit(lambda: asyncio.run(burst())).result(timeout=120)
    assert statuses == [200] * 60
    # Queued, not timed out: well under the pool's 5-second time-out in all.
    assert time.monotonic() - began < 5
