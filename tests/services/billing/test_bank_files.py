"""The bank's own statement files: camt.053 and Norma 43 import, match and re-import once."""

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, select

from app.models import Payment, StaffUser
from app.platform.storage import LocalStorage
from app.services.billing import bank_files, statements
from app.services.billing import invoices as invoicing
from tests.factories import admit, open_edition, submit

FILES = Path(__file__).parent / "files"


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def camt053(number: str, fee: str = "1500.00") -> str:
    text = (FILES / "camt053.xml").read_text()
    rf = bank_files.creditor_reference(number)
    return text.replace("{fee}", fee).replace("{day}", date.today().isoformat()).replace("{rf}", rf)


def norma43(number: str, cents: int = 150000) -> str:
    text = (FILES / "norma43.txt").read_text()
    return (
        text.replace("DDDDDD", date.today().strftime("%y%m%d"))
        .replace("AMOUNTAMOUNT00", f"{cents:014d}")
        .replace("NNNNNNNNNN", number)
    )


def import_file(session: Session, text: str) -> statements.ImportResult:
    kind = bank_files.detect_format(text)
    lines = bank_files.parse_camt053(text) if kind == "camt053" else bank_files.parse_norma43(text)
    matches = statements.match_lines(session, lines)
    ticked = [m.key for m in matches if m.preselected]
    return statements.import_matches(session, lines=lines, accepted_ids=ticked, actor="t")


def test_creditor_references_carry_the_invoice_number_with_iso_11649_check_digits() -> None:
    reference = bank_files.creditor_reference("2026-00012")
    assert reference == "RF26202600012"
    assert bank_files.invoice_number_of(reference) == "2026-00012"
    assert bank_files.invoice_number_of("RF27202600012") is None  # a digit mistyped
    assert statements.invoice_numbers_in("Ref RF26 2026 0001 2") == [("2026-00012", False)]


def test_a_camt053_file_imports_matches_by_creditor_reference_and_reimports_nothing(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application = admit(
        session, storage, admin_user, submit(session, storage, open_edition(session))
    )
    invoice = invoicing.get_invoice(session, _number_of(session, application.id or 0))
    text = camt053(invoice.number)
    assert bank_files.detect_format(text) == "camt053"
    lines = bank_files.parse_camt053(text)
    assert [(line.amount, line.counterparty) for line in lines] == [
        (Decimal("1500.00"), "Ama Banda"),
        (Decimal("-25.00"), ""),
        (Decimal("80.00"), "Somebody Else"),
    ]
    assert lines[0].bank_id == "camt:CAIX-20261207-000001-1"
    first = import_file(session, text)
    assert first.counts == (1, 0, 2)  # the fee is outgoing, the donation matches nothing
    session.refresh(application)
    assert application.status == "confirmed"
    again = import_file(session, text)
    assert again.counts == (0, 1, 2)
    paid = session.exec(select(Payment).where(Payment.invoice_id == invoice.id)).all()
    assert [(p.amount, p.payer, p.source) for p in paid] == [
        (Decimal("1500.00"), "Ama Banda", "statement")
    ]


def test_a_norma43_file_imports_matches_by_number_and_reimports_nothing(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application = admit(
        session, storage, admin_user, submit(session, storage, open_edition(session))
    )
    invoice = invoicing.get_invoice(session, _number_of(session, application.id or 0))
    text = norma43(invoice.number)
    assert bank_files.detect_format(text) == "norma43"
    lines = bank_files.parse_norma43(text)
    assert [(line.amount, line.booked_on) for line in lines] == [
        (Decimal("1500.00"), date.today()),
        (Decimal("-25.00"), date.today()),
    ]
    assert lines[0].counterparty == "CIUDAD DE MEXICO TESORERIA PAGO " + invoice.number
    assert import_file(session, text).counts == (1, 0, 1)
    assert import_file(session, text).counts == (0, 1, 1)
    assert invoicing.amount_paid(session, invoice) == Decimal("1500.00")


def test_a_broken_bank_file_is_refused_naming_the_file_not_a_500() -> None:
    with pytest.raises(statements.StatementError) as refused:
        bank_files.parse_camt053("<Document camt.053 <Ntry>")
    assert "file" in refused.value.fields
    bad = norma43("2026-00001").replace("00000000002500", "0000000000X500")
    with pytest.raises(statements.StatementError):
        bank_files.parse_norma43(bad)


def _number_of(session: Session, application_id: int) -> str:
    from app.services.billing.payments import participant_invoices

    return participant_invoices(session, application_id)[0].number


def test_an_invoice_carries_its_creditor_reference_and_a_scan_to_pay_code(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application = admit(
        session, storage, admin_user, submit(session, storage, open_edition(session))
    )
    invoice = invoicing.get_invoice(session, _number_of(session, application.id or 0))
    reference = invoice.payment_instructions["creditor_reference"]
    assert bank_files.invoice_number_of(reference) == invoice.number
    document = invoicing.invoice_document(session, invoice)
    assert document["epc_qr"].startswith("data:image/svg+xml")
