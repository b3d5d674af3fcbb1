"""A fixed-window request counter in the database, so the limit holds across every worker."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from app.clock import utcnow
from app.models import RateLimitWindow
from app.services.errors import DomainError

# Windows older than this are deleted as new ones start; they can no longer count.
KEEP_WINDOWS = 2


class RateLimited(DomainError):
    """Too many requests from one address; `retry_after` says how many seconds to wait."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    """At most `requests` in each window of `window_seconds`."""

    requests: int
    window_seconds: int


def _window_start(now: datetime, window_seconds: int) -> datetime:
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % window_seconds, tz=UTC)


def hit(
    session: Session, *, scope: str, subject: str, limit: Limit, now: datetime | None = None
) -> int:
    """Count one request of `subject` (an address) and commit; RateLimited past the limit.

    One atomic upsert increments the window's counter, so concurrent requests from several
    workers each get their own count.
    """
    now = now or utcnow()
    start = _window_start(now, limit.window_seconds)
    table: Table = RateLimitWindow.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .values(scope=scope, subject=subject[:64], window_start=start, hits=1)
        .on_conflict_do_update(
            index_elements=[table.c.scope, table.c.subject, table.c.window_start],
            set_={"hits": table.c.hits + 1},
        )
        .returning(table.c.hits)
    )
    hits: int = session.execute(statement).scalar_one()
    if hits == 1:
        # The first request of a window clears the scope's windows that can no longer count.
        session.execute(
            delete(RateLimitWindow).where(
                col(RateLimitWindow.scope) == scope,
                col(RateLimitWindow.window_start)
                < start - timedelta(seconds=KEEP_WINDOWS * limit.window_seconds),
            )
        )
    session.commit()
    if hits > limit.requests:
        retry_after = max(
            1, math.ceil((start + timedelta(seconds=limit.window_seconds) - now).total_seconds())
        )
        raise RateLimited(
            f"Too many look-ups from your address; try again in {retry_after} seconds.",
            retry_after=retry_after,
        )
    return hits
