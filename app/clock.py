"""The clock: every instant the service keeps is timezone-aware, in UTC."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return datetime.now(UTC)
