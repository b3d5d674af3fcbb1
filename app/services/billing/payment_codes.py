"""What an invoice gives a payer's bank: the ISO 11649 creditor reference (`RF..`) that the
bank's statement brings back, and the EPC payment QR code ("scan to pay") that carries it."""

import re
from decimal import Decimal

import segno
from segno import helpers

_RF = re.compile(r"RF(\d{2})([0-9A-Z]{1,21})")


def _mod97(text: str) -> int:
    return int("".join(str(int(c, 36)) for c in text)) % 97


def creditor_reference(invoice_number: str) -> str:
    """The invoice's structured creditor reference: `RF` + check digits + its number's digits."""
    body = re.sub(r"[^0-9A-Z]", "", invoice_number.upper())
    check = 98 - _mod97(body + "RF00")
    return f"RF{check:02d}{body}"


def invoice_number_of(reference: str) -> str | None:
    """The invoice number a valid creditor reference of ours carries, or None."""
    compact = re.sub(r"\s", "", reference.upper())
    found = _RF.fullmatch(compact)
    if found is None or _mod97(found.group(2) + "RF" + found.group(1)) != 1:
        return None
    body = found.group(2)
    if len(body) != 9 or not body.isdigit():
        return None
    return f"{body[:4]}-{body[4:]}"


def creditor_references_in(text: str) -> list[str]:
    """Invoice numbers carried by valid creditor references anywhere in a text."""
    compact = re.sub(r"(?<=[0-9A-Z]) (?=[0-9A-Z])", "", text.upper())
    found = (invoice_number_of(m.group(0)) for m in _RF.finditer(compact))
    return list(dict.fromkeys(n for n in found if n is not None))


def epc_qr_data_uri(*, name: str, iban: str, bic: str, amount: Decimal, reference: str) -> str:
    """The EPC069-12 QR code of a SEPA credit transfer, as an SVG data: URL for the PDF."""
    code: segno.QRCode = helpers.make_epc_qr(
        name=name[:70],
        iban="".join(iban.split()).upper(),
        amount=amount,
        reference=reference,
        bic="".join(bic.split()).upper() or None,
    )
    uri: str = code.svg_data_uri(border=0, dark="#111826")
    return uri
