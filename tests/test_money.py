"""The one money helper."""

from decimal import Decimal

import pytest

from app.money import MoneyError, as_money, format_money, percent_of, to_money


@pytest.mark.rules
def test_half_a_cent_rounds_up() -> None:
    assert to_money("0.005") == Decimal("0.01")
    assert to_money("2.675") == Decimal("2.68")
    assert percent_of(Decimal("1234.45"), Decimal("10")) == Decimal("123.45")


@pytest.mark.rules
def test_floats_never_become_money() -> None:
    with pytest.raises(MoneyError):
        to_money(0.1)  # type: ignore[arg-type]


@pytest.mark.rules
@pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", ""])
def test_non_amounts_are_refused(bad: str) -> None:
    with pytest.raises(MoneyError):
        to_money(bad)


@pytest.mark.rules
def test_amounts_are_written_with_two_decimals() -> None:
    assert format_money(Decimal("1500")) == "1500.00"


def test_amounts_survive_the_database_exactly(session) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import make_edition

    edition = make_edition(
        session, fees={"standard": "1234567.89", "member": "0.01", "group_tiers": []}
    )
    session.expire_all()
    assert edition.fee_standard == Decimal("1234567.89")
    assert edition.fee_member == Decimal("0.01")


@pytest.mark.rules
def test_a_sql_sum_becomes_money_to_the_cent() -> None:
    assert as_money(None) == Decimal("0.00")
    assert as_money(Decimal("1500")) == Decimal("1500.00")
    assert as_money(Decimal("0.005")) == Decimal("0.01")
    # SQLite sums whole cents where no column type reaches the result.
    assert as_money(150050) == Decimal("1500.50")
