"""Dates derived from an edition."""

from datetime import UTC, date, datetime

import pytest
from sqlmodel import Session

from app.clock import edition_today
from app.services.editions.editions import applications_are_open, cancellation_deadline
from tests.factories import make_edition


def test_deadline_is_thirty_days_before_the_start_at_local_midnight(session: Session) -> None:
    edition = make_edition(session)
    deadline = cancellation_deadline(edition)
    assert deadline.isoformat() == "2024-10-19T00:00:00+02:00"
    assert deadline.astimezone(UTC) == datetime(2024, 10, 18, 22, 0, tzinfo=UTC)


def test_deadline_across_a_daylight_saving_change(session: Session) -> None:
    # Start 24 Nov 2025 (CET, +01:00); the deadline 25 Oct 2025 is still summer time.
    edition = make_edition(session, slug="dst", start_date="2025-11-24", end_date="2025-11-28")
    assert cancellation_deadline(edition).isoformat() == "2025-10-25T00:00:00+02:00"


def test_deadline_follows_the_edition_time_zone(session: Session) -> None:
    edition = make_edition(session, slug="tokyo", timezone="Asia/Tokyo")
    assert cancellation_deadline(edition).astimezone(UTC) == datetime(
        2024, 10, 18, 15, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2024, 5, 1, 6, 59, 59, tzinfo=UTC), False),
        (datetime(2024, 5, 1, 7, 0, tzinfo=UTC), True),
        (datetime(2024, 11, 17, 22, 59, 59, tzinfo=UTC), True),
        (datetime(2024, 11, 17, 23, 0, tzinfo=UTC), False),
    ],
)
def test_application_window_edges(session: Session, now: datetime, expected: bool) -> None:
    edition = make_edition(session, applications_open="2024-05-01T09:00:00+02:00")
    assert applications_are_open(edition, now=now) is expected


def test_stored_instants_come_back_aware(session: Session) -> None:
    edition = make_edition(session, slug="aware")
    session.expire_all()
    starts = edition.modules[0].sessions[0].starts_at
    assert starts.tzinfo is not None
    assert starts.isoformat() == "2024-11-18T08:30:00+00:00"


def test_today_is_the_editions_own_day_not_the_servers(session: Session) -> None:
    edition = make_edition(session, timezone="America/Mexico_City")
    # 03:00 UTC on the 24th is still the evening of the 23rd in Mexico City: an edition
    # ending on the 23rd is not over yet there.
    evening = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    assert edition_today(edition, evening) == date(2026, 11, 23)
    assert edition_today(edition, datetime(2026, 11, 24, 6, 0, tzinfo=UTC)) == date(2026, 11, 24)
