"""Shared field types for service inputs and API outputs: money, percents, codes, dates."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, PlainSerializer

from app.money import MAX_AMOUNT, format_money, parse_typed_amount, round_cents


def _no_float_rounding(value: Any) -> Any:
    # JSON numbers arrive as floats; their shortest repr is what the sender wrote.
    if isinstance(value, float):
        value = str(value)
    if isinstance(value, str) and not any(c in value.lower() for c in "einfa"):
        # Read as the staff forms read it: a dot or a comma as the decimal mark.
        return parse_typed_amount(value)
    return value


def _two_places(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite amount")
    if value.as_tuple().exponent < -2 and value != round_cents(value):  # type: ignore[operator]
        raise ValueError("at most two decimal places")
    if abs(value) >= MAX_AMOUNT:
        raise ValueError("too large")
    return round_cents(value)


MoneyIn = Annotated[Decimal, BeforeValidator(_no_float_rounding), AfterValidator(_two_places)]
"""An amount given as a string or number with at most two decimals."""

MoneyOut = Annotated[Decimal, PlainSerializer(format_money, return_type=str)]
"""An amount written as a string with two decimals."""


def _percent(value: Decimal) -> Decimal:
    value = _two_places(value)
    if not Decimal(0) <= value <= Decimal(100):
        raise ValueError("must be between 0 and 100")
    return value


PercentIn = Annotated[Decimal, BeforeValidator(_no_float_rounding), AfterValidator(_percent)]


def _fiscal_year(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("fy")
        if text.isdigit():
            return int(text)
    return value


FiscalYear = Annotated[int, BeforeValidator(_fiscal_year)]
"""A World Bank fiscal year as 2023, "2023" or "FY2023"."""


def _iso_text(value: Any) -> Any:
    # Pydantic reads a number, or text of digits, as Unix time: 0 would silently be 1970.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("give a date as YYYY-MM-DD, an instant as 2026-05-01T09:00:00+02:00")
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("give a date as YYYY-MM-DD, an instant as 2026-05-01T09:00:00+02:00")
    return value


DateIn = Annotated[date, BeforeValidator(_iso_text)]
"""A calendar day written `YYYY-MM-DD`."""

InstantIn = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
"""An instant written in ISO 8601 with its offset."""

LocalOrAwareIn = Annotated[datetime, BeforeValidator(_iso_text)]
"""An instant in ISO 8601; without an offset the caller reads it on a known clock."""
