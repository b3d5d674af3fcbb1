"""Bank statements: parsing, matching lines to open invoices, importing each line once."""

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from app.models import Application, Edition, Invoice, Payment, StaffUser
from app.platform.storage import LocalStorage
from app.services.billing import invoices as invoicing
from app.services.billing import payments, statements
from app.services.billing.statement_lines import StatementError, StatementLine
from app.services.registrations import applications as service
from tests.factories import application_payload, open_edition, pay

SECRET = "test-secret-key-" + "x" * 32
BASE = "http://testserver"
SELLER = invoicing.Seller(
    name="Metropolis",
    address="Avinyó, 15\n08002 Barcelona",
    tax_id="ESG00000000",
    bank_name="Example Bank",
    iban="ES91 2100 0418 4502 0005 1332",
    bic="CAIXESBBXXX",
)
YESTERDAY = date.today() - timedelta(days=1)
ISO = {
    "date_column": "date",
    "amount_column": "amount",
    "counterparty_column": "payer",
    "text_column": "text",
    "date_format": "YYYY-MM-DD",
}


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def invoiced(
    session: Session,
    storage: LocalStorage,
    admin: StaffUser,
    edition: Edition,
    email: str,
) -> tuple[Application, Invoice]:
    """An admitted participant and the invoice admission issued to them."""
    application = service.submit_application(
        session,
        edition_slug=edition.slug,
        data=service.ApplicationIn.model_validate(application_payload(email=email)),
        cv=None,
        cv_filename=None,
        storage=storage,
        secret_key=SECRET,
        base_url=BASE,
    ).application
    service.decide(
        session,
        application_id=application.id or 0,
        decision="admit",
        actor=admin,
        storage=storage,
        secret_key=SECRET,
        base_url=BASE,
        seller=SELLER,
    )
    invoice = payments.participant_invoices(session, application.id or 0)[0]
    return application, invoice


def statement(*rows: str, header: str = "date,amount,payer,text") -> str:
    return "\n".join([header, *rows]) + "\n"


def line(amount: str, text: str, *, when: date = YESTERDAY, payer: str = "Ama Banda") -> str:
    return f'{when.isoformat()},"{amount}",{payer},"{text}"'


def parse(csv_text: str, **overrides: Any) -> list[StatementLine]:
    return statements.parse_statement(csv_text, **{**ISO, **overrides})


def import_all(session: Session, csv_text: str) -> statements.ImportResult:
    """Import a statement with every matched line ticked."""
    lines = parse(csv_text)
    keys = [m.key for m in statements.match_lines(session, lines) if m.can_record]
    return statements.import_matches(session, lines=lines, accepted_ids=keys, actor="admin@x.org")


# Parsing


@pytest.mark.rules
def test_a_decimal_comma_with_point_thousands_reads_as_euros_and_cents() -> None:
    text = statement(header="Fecha;Importe;Ordenante;Concepto").replace(",", ";")
    text += "01/03/2024;1.500,00;Ama Banda;Factura 2024-00012\n"
    lines = statements.parse_statement(
        text,
        date_column="Fecha",
        amount_column="Importe",
        counterparty_column="Ordenante",
        text_column="Concepto",
        date_format="DD/MM/YYYY",
    )
    assert [(x.booked_on, x.amount, x.counterparty, x.text) for x in lines] == [
        (date(2024, 3, 1), Decimal("1500.00"), "Ama Banda", "Factura 2024-00012")
    ]


@pytest.mark.rules
@pytest.mark.parametrize(
    ("written", "amount"),
    [
        ("1,234.56", "1234.56"),
        ("1.234,56", "1234.56"),
        ("1 234,56", "1234.56"),
        ("1234,5", "1234.50"),
        ("1,500", "1500.00"),
        ("EUR 900.00", "900.00"),
        ("80,00-", "-80.00"),
        ("-1.000,00", "-1000.00"),
    ],
)
def test_amounts_read_with_either_decimal_mark_and_thousands_separators(
    written: str, amount: str
) -> None:
    assert statements.parse_amount(written) == Decimal(amount)


@pytest.mark.rules
@pytest.mark.parametrize("written", ["12,3456", "1,2,3", "1.234,56,7", "abc", "", "1.23.4"])
def test_amounts_that_are_not_money_are_refused(written: str) -> None:
    with pytest.raises(ValueError):
        statements.parse_amount(written)


@pytest.mark.rules
@pytest.mark.parametrize(
    ("date_format", "written"),
    [("YYYY-MM-DD", "2024-03-07"), ("DD/MM/YYYY", "07/03/2024"), ("DD.MM.YYYY", "07.03.2024")],
)
def test_each_offered_date_format_reads_the_day_first_or_iso_date(
    date_format: str, written: str
) -> None:
    text = statement(f'{written},"100.00",X,"t"')
    assert parse(text, date_format=date_format)[0].booked_on == date(2024, 3, 7)


@pytest.mark.rules
def test_every_bad_row_is_listed_with_its_line_number_and_nothing_is_returned() -> None:
    text = statement(
        line("100.00", "fine"),
        '2024-13-01,"100.00",X,"bad month"',
        line("100.00", "fine too"),
        '2024-03-01,"a lot",X,"bad amount"',
        ',"",X,"both empty"',
    )
    with pytest.raises(StatementError) as raised:
        parse(text)
    fields = raised.value.fields
    assert sorted(fields) == ["line 3", "line 5", "line 6"]
    assert "2024-13-01" in fields["line 3"]
    assert "a lot" in fields["line 5"]
    assert "date is empty" in fields["line 6"] and "amount is empty" in fields["line 6"]


@pytest.mark.rules
def test_a_wrong_date_format_is_reported_on_every_line() -> None:
    text = statement(line("1.00", "a"), line("2.00", "b"))
    with pytest.raises(StatementError) as raised:
        parse(text, date_format="DD.MM.YYYY")
    assert sorted(raised.value.fields) == ["line 2", "line 3"]


@pytest.mark.rules
def test_a_column_missing_from_the_header_is_named() -> None:
    with pytest.raises(StatementError) as raised:
        parse(statement(line("1.00", "a")), amount_column="Betrag")
    assert list(raised.value.fields) == ["amount_column"]


def test_negative_lines_are_kept_as_outgoing_and_matched_as_ignored(session: Session) -> None:
    lines = parse(statement(line("-35.00", "bank fee"), line("0.00", "nothing")))
    assert [x.outgoing for x in lines] == [True, True]
    matches = statements.match_lines(session, lines)
    assert [m.kind for m in matches] == ["ignored", "ignored"]
    assert "Outgoing payment" in matches[0].note
    assert not any(m.can_record for m in matches)


@pytest.mark.rules
def test_the_header_suggests_columns_and_the_dates_suggest_their_format() -> None:
    text = "Fecha valor;Importe;Ordenante;Concepto\n07/03/2024;10,00;A;B\n"
    columns = statements.statement_columns(text)
    assert statements.guess_mapping(columns) == {
        "date": "Fecha valor",
        "amount": "Importe",
        "counterparty": "Ordenante",
        "text": "Concepto",
    }
    assert statements.guess_date_format(["07/03/2024", "31/03/2024"]) == "DD/MM/YYYY"
    assert statements.guess_date_format(["07.03.2024"]) == "DD.MM.YYYY"


@pytest.mark.rules
def test_a_statement_in_windows_1252_is_read() -> None:
    raw = "date,amount,payer,text\n2024-03-01,10.00,Ayuntamiento de Málaga,x\n".encode("cp1252")
    assert "Málaga" in statements.decode_statement(raw)


@pytest.mark.rules
def test_identical_lines_in_one_file_get_different_ids_and_the_same_ids_next_time() -> None:
    text = statement(line("100.00", "same"), line("100.00", "same"))
    first, second = parse(text)
    assert first.external_id != second.external_id
    assert [x.external_id for x in parse(text)] == [first.external_id, second.external_id]
    spaced = statement(line("100,00", "same  "), line("100.00", "same"))
    assert [x.external_id for x in parse(spaced)] == [first.external_id, second.external_id]


# Matching


def test_an_invoice_number_in_messy_text_matches_by_number_and_is_ticked(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    _, invoice = invoiced(session, storage, admin_user, edition, "a@x.org")
    messy = "transf. inv " + invoice.number.replace("-", " ").lower() + " ama banda/ref:88"
    (match,) = statements.match_lines(session, parse(statement(line("700.00", messy))))
    assert (match.kind, match.invoice_number, match.preselected) == ("number", invoice.number, True)
    assert "Part payment: 800.00" in match.note


@pytest.mark.rules
def test_a_number_inside_a_longer_digit_string_is_not_an_invoice_number() -> None:
    assert statements.invoice_numbers_in("ref 1202400012 and 2024-000123") == []
    assert statements.invoice_numbers_in("INV2024-00012, CN 2024-00003") == [
        ("2024-00012", False),
        ("CN2024-00003", True),
    ]


def test_a_unique_outstanding_amount_is_suggested_but_not_ticked(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    _, invoice = invoiced(session, storage, admin_user, edition, "a@x.org")
    (match,) = statements.match_lines(
        session, parse(statement(line("1,500.00", "registration fee")))
    )
    assert (match.kind, match.invoice_number, match.preselected) == (
        "amount",
        invoice.number,
        False,
    )
    assert match.can_record


def test_an_amount_outstanding_on_two_invoices_is_left_unmatched(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    invoiced(session, storage, admin_user, edition, "a@x.org")
    invoiced(session, storage, admin_user, edition, "b@x.org")
    (match,) = statements.match_lines(session, parse(statement(line("1500.00", "fee"))))
    assert (match.kind, match.invoice_number) == ("unmatched", None)
    assert "2 open invoices" in match.note


def test_credit_notes_and_paid_invoices_are_never_matched(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    _, cancelled = invoiced(session, storage, admin_user, edition, "a@x.org")
    _, paid = invoiced(session, storage, admin_user, edition, "b@x.org")
    original_line = invoicing.invoice_lines(session, cancelled)[0]
    credit = invoicing.issue_document(
        session,
        edition=edition,
        buyer=cancelled.buyer,
        lines=[(None, "Cancels line 1", -original_line.net, [])],
        seller=SELLER,
        actor="test",
        now=cancelled.issued_at,
        storage=storage,
        kind=invoicing.InvoiceKind.credit_note,
        refers_to=cancelled,
        credits=[original_line.id],
    )
    cancelled.status = "credited"
    session.add(cancelled)
    session.commit()
    pay(session, paid, "1500.00", received_on=YESTERDAY, reference="", actor="test")
    matches = statements.match_lines(
        session,
        parse(
            statement(
                line("1500.00", f"refund {credit.number}"),
                line("1500.00", f"again {paid.number}"),
                line("1500.00", f"for {cancelled.number}"),
            )
        ),
    )
    assert [(m.kind, m.invoice_number) for m in matches] == [("unmatched", None)] * 3
    assert "is a credit note" in matches[0].note
    assert "is paid in full" in matches[1].note
    assert "cancelled by a credit note" in matches[2].note


def test_a_line_over_the_outstanding_amount_warns_that_it_will_be_flagged(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    _, invoice = invoiced(session, storage, admin_user, edition, "a@x.org")
    (match,) = statements.match_lines(
        session, parse(statement(line("1600.00", f"fee {invoice.number}")))
    )
    assert match.kind == "number"
    assert "flagged for refund" in match.note


# Importing


def test_importing_the_same_statement_twice_records_nothing_new(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    _, invoice = invoiced(session, storage, admin_user, edition, "a@x.org")
    text = statement(
        line("500.00", f"first part {invoice.number}"),
        line("-12.00", "bank fee"),
        line("77.00", "unknown"),
    )
    first = import_all(session, text)
    assert first.counts == (1, 0, 2)
    second = import_all(session, text)
    assert second.counts == (0, 1, 2)
    stored = session.exec(select(Payment).where(Payment.invoice_id == invoice.id)).all()
    assert [(p.amount, p.source, p.method) for p in stored] == [
        (Decimal("500.00"), "statement", "bank_transfer")
    ]
    assert stored[0].received_on == YESTERDAY
    assert "Ama Banda" in stored[0].reference


def test_a_statement_part_payment_then_the_rest_confirms_the_participant(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application, invoice = invoiced(session, storage, admin_user, edition, "a@x.org")
    march = statement(line("500.00", f"Factura {invoice.number}"))
    assert import_all(session, march).confirmed == []
    session.refresh(application)
    assert application.status == "admitted"
    # The next export overlaps the last one: the old line is known, the new one is recorded.
    april = statement(
        line("500.00", f"Factura {invoice.number}"),
        line("1.000,00", f"resto {invoice.number}"),
    )
    result = import_all(session, april)
    assert result.counts == (1, 1, 0)
    assert result.confirmed == [application.reference]
    session.refresh(application)
    assert application.status == "confirmed"
    assert invoicing.amount_paid(session, invoice) == Decimal("1500.00")


def test_two_identical_transfers_in_one_statement_are_two_payments(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    _, invoice = invoiced(session, storage, admin_user, edition, "a@x.org")
    text = statement(
        line("750.00", f"half {invoice.number}"), line("750.00", f"half {invoice.number}")
    )
    assert import_all(session, text).counts == (2, 0, 0)
    assert invoicing.amount_paid(session, invoice) == Decimal("1500.00")


def test_only_ticked_lines_are_recorded(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    _, invoice = invoiced(session, storage, admin_user, edition, "a@x.org")
    lines = parse(statement(line("1500.00", "fee without number")))
    result = statements.import_matches(session, lines=lines, accepted_ids=[], actor="a@x.org")
    assert result.counts == (0, 0, 1)
    assert result.skipped[0][1] == "Not ticked."
    assert invoicing.amount_paid(session, invoice) == Decimal("0.00")


def test_a_ticked_line_that_no_longer_matches_is_skipped(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    _, invoice = invoiced(session, storage, admin_user, edition, "a@x.org")
    lines = parse(statement(line("1500.00", "fee without number")))
    (suggested,) = statements.match_lines(session, lines)
    assert suggested.kind == "amount"
    pay(
        session, invoice, "1500.00", received_on=YESTERDAY, reference="", actor="test"
    )  # paid by hand between preview and import
    result = statements.import_matches(
        session, lines=lines, accepted_ids=[suggested.key], actor="a@x.org"
    )
    assert result.counts == (0, 0, 1)
    assert len(session.exec(select(Payment).where(col(Payment.source) == "statement")).all()) == 0


def test_an_overpaying_line_is_recorded_and_its_flag_reported(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    _, invoice = invoiced(session, storage, admin_user, edition, "a@x.org")
    result = import_all(session, statement(line("1550.00", f"fee {invoice.number}")))
    assert result.counts == (1, 0, 0)
    assert result.flags == [f"{invoice.number}: Overpaid by 50.00 EUR: refund the difference."]


def test_a_line_dated_in_the_future_is_skipped_with_the_reason(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    _, invoice = invoiced(session, storage, admin_user, edition, "a@x.org")
    tomorrow = date.today() + timedelta(days=2)
    result = import_all(session, statement(line("100.00", invoice.number, when=tomorrow)))
    assert result.counts == (0, 0, 1)
    assert "future" in result.skipped[0][1]
