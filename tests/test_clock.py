"""The clock: days are counted on the edition's wall clock, not the server's."""

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from app.clock import edition_today, local_day

pytestmark = pytest.mark.rules


@dataclass
class Place:
    timezone: str


def test_an_evening_in_mexico_city_is_still_that_day_there() -> None:
    evening = datetime(2026, 11, 18, 3, 30, tzinfo=UTC)  # 21:30 on the 17th in Mexico City
    assert local_day(evening, "America/Mexico_City") == date(2026, 11, 17)
    assert edition_today(Place("America/Mexico_City"), evening) == date(2026, 11, 17)


def test_just_after_midnight_in_madrid_is_the_next_day_there() -> None:
    small_hours = datetime(2026, 11, 17, 23, 30, tzinfo=UTC)  # 00:30 on the 18th in Madrid
    assert edition_today(Place("Europe/Madrid"), small_hours) == date(2026, 11, 18)
    assert small_hours.date() == date(2026, 11, 17)
