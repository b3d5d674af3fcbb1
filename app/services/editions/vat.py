"""VAT on fee lines: the EN 16931 category of a line and, when exempt, why (docs/decisions.md)."""

from dataclasses import dataclass
from decimal import Decimal

from app.services.errors import InvalidInput

STANDARD = "S"
EXEMPT = "E"
# The exemptions an edition can name at a 0 % rate: VATEX code -> the words on the invoice.
EXEMPTIONS = {
    "VATEX-EU-132-1I": (
        "Exempt from VAT: vocational training (art. 20.1.9 Ley 37/1992; "
        "art. 132(1)(i) Directive 2006/112/EC)"
    ),
    "VATEX-EU-132-1N": (
        "Exempt from VAT: cultural services by a non-profit body (art. 20.1.14 Ley 37/1992; "
        "art. 132(1)(n) Directive 2006/112/EC)"
    ),
}
DEFAULT_EXEMPTION = "VATEX-EU-132-1I"


@dataclass(frozen=True)
class LineVat:
    """A fee line's VAT category (UNCL 5305) and the exemption that sets it to 0 %."""

    category: str
    exemption_code: str = ""
    exemption_reason: str = ""


def check_exemption(code: str, *, field: str = "vat_exemption") -> str:
    """A known VATEX code, or InvalidInput naming the field."""
    text = (code or "").strip().upper()
    if text not in EXEMPTIONS:
        raise InvalidInput(
            f"{code!r} is not an exemption the office can apply.",
            fields={field: f"Choose one of {', '.join(EXEMPTIONS)}."},
        )
    return text


def line_vat(*, tax_rate: Decimal, exemption: str) -> LineVat:
    """Standard rated above 0 %; at 0 % exempt, with the edition's exemption in code and words."""
    if tax_rate > 0:
        return LineVat(STANDARD)
    code = check_exemption(exemption or DEFAULT_EXEMPTION)
    return LineVat(EXEMPT, code, EXEMPTIONS[code])
