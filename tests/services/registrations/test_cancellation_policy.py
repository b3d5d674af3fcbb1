"""The cancellation policy of the brochure, to the second and to the cent."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.registrations.cancellation_policy import (
    PolicyFacts,
    deadline,
    decide_cancellation,
)

# The fast tier: pure rules, no database.
pytestmark = pytest.mark.rules

MADRID = ZoneInfo("Europe/Madrid")
DIPLOMA = PolicyFacts(start_date=date(2024, 11, 18), timezone="Europe/Madrid")


def test_the_deadline_of_the_diploma_is_19_october_00_00_in_madrid() -> None:
    assert deadline(DIPLOMA).isoformat() == "2024-10-19T00:00:00+02:00"
    assert deadline(DIPLOMA).astimezone(UTC) == datetime(2024, 10, 18, 22, 0, tzinfo=UTC)


def test_one_second_before_the_deadline_is_accepted_in_local_and_utc_input() -> None:
    local = datetime(2024, 10, 18, 23, 59, 59, tzinfo=MADRID)
    utc = datetime(2024, 10, 18, 21, 59, 59, tzinfo=UTC)
    for received in (local, utc):
        decision = decide_cancellation(
            DIPLOMA, received_at=received, payments_received=Decimal("1000")
        )
        assert decision.accepted
        assert decision.refund == Decimal("750.00")
        assert decision.retained == Decimal("250.00")
        assert decision.refund_due_by == date(2024, 11, 17)


def test_at_the_deadline_nothing_is_accepted_or_refunded() -> None:
    for received in (
        datetime(2024, 10, 19, 0, 0, tzinfo=MADRID),
        datetime(2024, 10, 18, 22, 0, tzinfo=UTC),
    ):
        decision = decide_cancellation(
            DIPLOMA, received_at=received, payments_received=Decimal("1000")
        )
        assert not decision.accepted
        assert decision.refund == Decimal("0.00")
        assert decision.refund_due_by is None
        assert "19 October 2024, 00:00" in decision.reason


def test_the_deadline_across_a_daylight_saving_change() -> None:
    # The edition starts 24 Nov 2025 (CET, +01:00); its deadline, 25 Oct 2025 00:00, is CEST.
    policy = PolicyFacts(start_date=date(2025, 11, 24), timezone="Europe/Madrid")
    assert deadline(policy).isoformat() == "2025-10-25T00:00:00+02:00"
    just_before = datetime(2025, 10, 24, 21, 59, 59, tzinfo=UTC)
    at = datetime(2025, 10, 24, 22, 0, 0, tzinfo=UTC)
    assert decide_cancellation(
        policy, received_at=just_before, payments_received=Decimal(1)
    ).accepted
    assert not decide_cancellation(policy, received_at=at, payments_received=Decimal(1)).accepted


def test_the_refund_due_date_counts_from_the_local_day_received() -> None:
    # 23:30 UTC on 1 Oct is already 2 Oct in Madrid.
    received = datetime(2024, 10, 1, 23, 30, tzinfo=UTC)
    decision = decide_cancellation(DIPLOMA, received_at=received, payments_received=Decimal("10"))
    assert decision.refund_due_by == date(2024, 11, 1)


@pytest.mark.parametrize(
    ("paid", "refund", "retained"),
    [
        (Decimal("0.02"), Decimal("0.02"), Decimal("0.00")),  # 0.015 rounds half-up
        (Decimal("0.01"), Decimal("0.01"), Decimal("0.00")),  # 0.0075 -> 0.01
        (Decimal("1234.45"), Decimal("925.84"), Decimal("308.61")),  # 925.8375
        (Decimal("333.33"), Decimal("250.00"), Decimal("83.33")),  # 249.9975
    ],
)
def test_partial_payments_with_half_cents(
    paid: Decimal, refund: Decimal, retained: Decimal
) -> None:
    received = datetime(2024, 9, 1, tzinfo=UTC)
    decision = decide_cancellation(DIPLOMA, received_at=received, payments_received=paid)
    assert (decision.refund, decision.retained) == (refund, retained)


def test_refunds_already_made_are_deducted_first() -> None:
    received = datetime(2024, 9, 1, tzinfo=UTC)
    decision = decide_cancellation(
        DIPLOMA,
        received_at=received,
        payments_received=Decimal("1100"),
        refunds_made=Decimal("100"),
    )
    assert decision.paid == Decimal("1000")
    assert decision.refund == Decimal("750.00")


def test_nothing_paid_means_nothing_refunded_but_the_cancellation_stands() -> None:
    received = datetime(2024, 9, 1, tzinfo=UTC)
    decision = decide_cancellation(DIPLOMA, received_at=received, payments_received=Decimal("0"))
    assert decision.accepted
    assert decision.refund == Decimal("0.00")
    assert decision.refund_due_by is None
    assert "Nothing was paid" in decision.reason


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        decide_cancellation(DIPLOMA, received_at=datetime(2024, 9, 1), payments_received=Decimal(1))


@settings(max_examples=300, deadline=None)
@given(
    paid=st.decimals(min_value=0, max_value=100000, places=2),
    refunded=st.decimals(min_value=0, max_value=100000, places=2),
    offset=st.integers(min_value=-90 * 86400, max_value=90 * 86400),
    percent=st.decimals(min_value=0, max_value=100, places=2),
)
def test_money_always_adds_up(
    paid: Decimal, refunded: Decimal, offset: int, percent: Decimal
) -> None:
    policy = PolicyFacts(
        start_date=date(2024, 11, 18), timezone="Europe/Madrid", refund_percent=percent
    )
    received = deadline(policy) + timedelta(seconds=offset)
    decision = decide_cancellation(
        policy, received_at=received, payments_received=paid, refunds_made=refunded
    )
    assert decision.refund + decision.retained == decision.paid
    assert decision.refund >= 0
    assert decision.retained >= 0
    assert decision.accepted == (offset < 0)
    assert decision.refund == decision.refund.quantize(Decimal("0.01"))
