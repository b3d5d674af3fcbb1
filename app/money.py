"""Money as Decimal: parsed from strings, rounded half-up to the cent once."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal("100")


class MoneyError(ValueError):
    """A value that is not an amount of money."""


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
