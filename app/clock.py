"""The clock: every instant the service keeps is timezone-aware, in UTC; days are counted on
the wall clock of the edition they belong to."""

from datetime import UTC, date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo


class HasTimezone(Protocol):
    """Anything that lives on a wall clock: an edition, its cancellation policy."""

    timezone: str


def utcnow() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return datetime.now(UTC)


def local_day(instant: datetime, timezone: str) -> date:
    """The calendar day `instant` falls on, on the wall clock of `timezone`."""
    return instant.astimezone(ZoneInfo(timezone)).date()


def edition_today(edition: HasTimezone, now: datetime | None = None) -> date:
    """Today on the edition's clock: deadlines, due dates and issue dates are its days."""
    return local_day(now or utcnow(), edition.timezone)
