"""Money as Decimal: parsed from strings, rounded half-up to the cent once."""

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal("100")
# No course fee comes near it; beyond it an amount is a typo (and would not fit the column).
MAX_AMOUNT = Decimal("1000000000")


def as_money(value: object) -> Decimal:
    """A sum SQL returned, as money: None is nothing, a Decimal is rounded to the cent, and a
    plain integer is whole cents (SQLite sums cents where no column type reaches the result)."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value.quantize(CENT, rounding=ROUND_HALF_UP)
    return (Decimal(str(value)) / 100).quantize(CENT, rounding=ROUND_HALF_UP)


class MoneyError(ValueError):
    """A value that is not an amount of money; `problem` says which rule it breaks."""

    def __init__(self, message: str, problem: str = "format") -> None:
        super().__init__(message)
        self.problem = problem


# A typed amount: digits, optionally grouped by thousands, and a decimal mark (dot or comma).
_PLAIN = re.compile(r"^(?P<sign>-?)(?P<units>\d+)(?:(?P<mark>[.,])(?P<cents>\d+))?$")
_GROUPED = re.compile(
    r"^(?P<sign>-?)(?P<units>\d{1,3}(?:(?P<sep>[.,'’])\d{3})(?:(?P=sep)\d{3})*)"
    r"(?:(?P<mark>[.,])(?P<cents>\d+))?$"
)
_BLANKS = re.compile(r"[\s\u00a0\u202f]+")


def parse_typed_amount(text: str) -> Decimal:
    """An amount as a person types it, read the way the API reads it.

    The decimal mark is a dot or a comma with at most two digits after it (`10.005` is
    refused, never read as ten thousand); thousands may be grouped when the decimal mark
    differs (`1.500,00`, `1,500.00`). Bank files keep their own parser in statements.
    """
    compact = _BLANKS.sub("", text)
    found = _PLAIN.match(compact)
    units = found.group("units") if found else ""
    if found is None:
        found = _GROUPED.match(compact)
        if found is None or found.group("mark") in (None, found.group("sep")):
            raise MoneyError(f"{text!r} is not an amount", "format")
        units = re.sub(r"[.,'’]", "", found.group("units"))
    cents = found.group("cents") or ""
    if len(cents) > 2:
        raise MoneyError(f"{text!r} has more than two decimal places", "places")
    if len(units.lstrip("0")) > len(str(int(MAX_AMOUNT))) - 1:
        raise MoneyError(f"{text!r} is too large", "size")
    amount = Decimal(f"{found.group('sign')}{units}.{cents or '0'}")
    if abs(amount) >= MAX_AMOUNT:
        raise MoneyError(f"{text!r} is too large", "size")
    return round_cents(amount)


def to_money(value: str | int | Decimal) -> Decimal:
    """Parse an amount exactly (never from a float) and round it half-up to the cent."""
    if isinstance(value, float):
        raise MoneyError("amounts are never floats")
    if isinstance(value, bool):
        raise MoneyError("not an amount")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise MoneyError(f"{value!r} is not an amount") from exc
    if not amount.is_finite():
        raise MoneyError(f"{value!r} is not an amount")
    return round_cents(amount)


def round_cents(amount: Decimal) -> Decimal:
    """Round half-up to the cent (0.005 -> 0.01), the rule for every line."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def percent_of(amount: Decimal, percent: Decimal) -> Decimal:
    """`percent` % of `amount`, rounded half-up to the cent."""
    return round_cents(amount * percent / HUNDRED)


def format_money(amount: Decimal) -> str:
    """Two decimals, as the API writes money (`"1500.00"`)."""
    return f"{round_cents(amount):.2f}"
