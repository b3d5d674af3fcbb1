"""Invoices, numbering under concurrency, payments and seat confirmation."""

import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from app.db import writer_engine
from app.models import Application, Invoice, OutboxMessage, Payment, StaffUser
from app.platform.storage import LocalStorage
from app.services.billing import invoice_files, payments
from app.services.billing import invoices as invoicing
from app.services.errors import Conflict, InvalidInput
from app.services.registrations import applications as service
from tests.factories import admit, make_organisation, open_edition, submit

SECRET = "test-secret-key-" + "x" * 32
BASE = "http://testserver"
SELLER = invoicing.Seller(
    name="Metropolis",
    address="Avinyó, 15\n08002 Barcelona",
    tax_id="ESG00000000",
    bank_name="Example Bank",
    iban="ES91 2100 0418 4502 0005 1332",
    bic="CAIXESBBXXX",
    due_days=14,
)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def test_admitting_a_paying_participant_issues_a_frozen_invoice_with_its_pdf(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session, tax_rate="21", tax_note="Example tax note.")
    application = admit(session, storage, admin_user, submit(session, storage, edition))
    invoice = session.exec(select(Invoice)).one()
    year = invoice.issue_date.year
    assert invoice.number.startswith(f"{year}-")
    assert (invoice.net_total, invoice.tax_total, invoice.total) == (
        Decimal("1500.00"),
        Decimal("315.00"),
        Decimal("1815.00"),
    )
    assert invoice.buyer["name"] == "Ama Banda"
    assert invoice.payment_instructions["reference"] == invoice.number
    assert invoice.seller["tax_id"] == "ESG00000000"
    assert invoice_files.ensure_invoice_pdf(session, invoice, storage).startswith(b"%PDF")
    assert storage.exists(invoice.pdf_key or "")
    assert application.status == "admitted"
    mail = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "decision_admit")).one()
    assert mail.attachments[0]["filename"] == f"invoice-{invoice.number}.pdf"
    assert invoice.number in mail.body_text


def test_the_due_date_is_never_after_the_day_before_the_start(session: Session) -> None:
    edition = open_edition(session, start_date="2099-11-16")
    assert invoicing.due_date(edition, date(2099, 11, 1), 14) == date(2099, 11, 15)
    assert invoicing.due_date(edition, date(2099, 10, 1), 14) == date(2099, 10, 15)
    assert invoicing.due_date(edition, date(2099, 11, 20), 14) == date(2099, 11, 20)


def test_changing_fees_later_never_reprices_an_issued_invoice_or_stored_quote(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admit(session, storage, admin_user, submit(session, storage, edition))
    edition.fee_standard = Decimal("9999.00")
    session.add(edition)
    session.commit()
    session.expire_all()
    invoice = session.exec(select(Invoice)).one()
    assert invoice.total == Decimal("1500.00")
    assert session.get(Application, application.id).quote["total"] == "1500.00"  # type: ignore[union-attr]
    document = invoicing.invoice_document(session, invoice)
    assert document["total"] == "1,500.00"  # as printed


def test_partial_payments_add_up_and_full_payment_confirms_with_an_email(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admit(session, storage, admin_user, submit(session, storage, edition))
    number = session.exec(select(Invoice.number)).one()
    first = payments.record_payment(
        session,
        invoice_number=number,
        amount=Decimal("500.00"),
        received_on=date.today(),
        method="bank_transfer",
        reference="part 1",
        actor=admin_user.email,
    )
    assert (first.paid, first.outstanding, first.confirmed) == (
        Decimal("500.00"),
        Decimal("1000.00"),
        [],
    )
    second = payments.record_payment(
        session,
        invoice_number=number,
        amount=Decimal("1000.00"),
        received_on=date.today(),
        method="bank_transfer",
        reference="part 2",
        actor=admin_user.email,
    )
    assert second.outstanding == Decimal("0.00")
    assert second.confirmed == [application.reference]
    session.refresh(application)
    assert application.status == "confirmed"
    kinds = [m.kind for m in session.exec(select(OutboxMessage)).all()]
    assert "place_guaranteed" in kinds
    balance = payments.participant_balance(session, application.id or 0)
    assert (balance.invoiced, balance.paid, balance.due) == (
        Decimal("1500.00"),
        Decimal("1500.00"),
        Decimal("0.00"),
    )


def test_an_overpayment_is_recorded_and_flagged(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    admit(session, storage, admin_user, submit(session, storage, edition))
    number = session.exec(select(Invoice.number)).one()
    result = payments.record_payment(
        session,
        invoice_number=number,
        amount=Decimal("1600.00"),
        received_on=date.today(),
        method="bank_transfer",
        reference="",
        actor=admin_user.email,
    )
    assert result.payment.flagged
    assert "Overpaid by 100.00 EUR" in result.payment.flag_reason


@pytest.mark.parametrize(
    ("amount", "method", "field"),
    [
        (Decimal("-5"), "bank_transfer", "amount"),
        (Decimal("0"), "bank_transfer", "amount"),
        (Decimal("5"), "cheque", "method"),
    ],
)
def test_bad_payments_are_refused_with_the_field(
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    amount: Decimal,
    method: str,
    field: str,
) -> None:
    edition = open_edition(session)
    admit(session, storage, admin_user, submit(session, storage, edition))
    number = session.exec(select(Invoice.number)).one()
    with pytest.raises(InvalidInput) as raised:
        payments.record_payment(
            session,
            invoice_number=number,
            amount=amount,
            received_on=date.today(),
            method=method,
            reference="",
            actor=admin_user.email,
        )
    assert field in raised.value.fields
    assert session.exec(select(Payment)).all() == []


def test_the_value_date_is_checked_against_the_day_in_the_editions_time_zone(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)  # Europe/Madrid
    admit(session, storage, admin_user, submit(session, storage, edition))
    number = session.exec(select(Invoice.number)).one()
    # 23:30 UTC on 1 June is already 01:30 on 2 June in Madrid.
    late_evening_utc = datetime(2026, 6, 1, 23, 30, tzinfo=UTC)
    result = payments.record_payment(
        session,
        invoice_number=number,
        amount=Decimal("10.00"),
        received_on=date(2026, 6, 2),
        method="bank_transfer",
        reference=number,
        actor=admin_user.email,
        now=late_evening_utc,
    )
    assert result.paid == Decimal("10.00")
    with pytest.raises(InvalidInput) as raised:
        payments.record_payment(
            session,
            invoice_number=number,
            amount=Decimal("10.00"),
            received_on=date(2026, 6, 3),
            method="bank_transfer",
            reference=number,
            actor=admin_user.email,
            now=late_evening_utc,
        )
    assert "received_on" in raised.value.fields


def test_the_same_external_payment_is_recorded_once(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    admit(session, storage, admin_user, submit(session, storage, edition))
    number = session.exec(select(Invoice.number)).one()
    for _ in range(3):
        payments.record_payment(
            session,
            invoice_number=number,
            amount=Decimal("1500.00"),
            received_on=date.today(),
            method="card",
            reference="cs_test_1",
            actor="stripe",
            source="stripe",
            external_id="pi_123",
        )
    assert len(session.exec(select(Payment)).all()) == 1


def test_a_group_is_billed_on_one_invoice_at_its_tier(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    org = make_organisation(session, name="Ciudad X", country="MEX")
    group, _ = service.create_group(
        session,
        edition_slug=edition.slug,
        organisation_id=org.id or 0,
        contact_email="lead@ciudad.example",
        secret_key=SECRET,
        base_url=BASE,
    )
    members = [
        submit(session, storage, edition, email=f"m{i}@ciudad.example", group_code=group.code)
        for i in range(3)
    ]
    for member in members:
        admitted = admit(session, storage, admin_user, member)
        assert admitted.status == "admitted"
    assert session.exec(select(Invoice)).all() == []
    invoice = invoicing.issue_group_invoice(
        session,
        edition=edition,
        code=group.code,
        seller=SELLER,
        actor=admin_user.email,
        storage=storage,
        purchase_order="PO-77",
        buyer_tax_id="MX-CXY-850101",
    )
    session.commit()
    lines = invoicing.invoice_lines(session, invoice)
    assert [line.gross for line in lines] == [Decimal("900.00")] * 3
    assert invoice.total == Decimal("2700.00")
    assert invoice.buyer["name"] == "Ciudad X"
    assert invoice.buyer["po_number"] == "PO-77"
    shown = invoicing.invoice_document(session, invoice)
    assert shown["buyer"]["tax_id"] == "MX-CXY-850101"
    assert shown["total"] == "2,700.00"
    with pytest.raises(invoicing.NothingToInvoice):
        invoicing.issue_group_invoice(
            session,
            edition=edition,
            code=group.code,
            seller=SELLER,
            actor=admin_user.email,
            storage=storage,
        )
    # Paying the group invoice confirms every member; each one's share is a third.
    payments.record_payment(
        session,
        invoice_number=invoice.number,
        amount=Decimal("900.00"),
        received_on=date.today(),
        method="bank_transfer",
        reference="",
        actor=admin_user.email,
    )
    assert payments.participant_balance(session, members[0].id or 0).paid == Decimal("300.00")


def test_a_payment_on_a_credit_note_is_refused(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    admit(session, storage, admin_user, submit(session, storage, edition))
    original = session.exec(select(Invoice)).one()
    line = invoicing.invoice_lines(session, original)[0]
    credit = invoicing.issue_document(
        session,
        edition=edition,
        buyer=original.buyer,
        lines=[(None, "Cancels line 1", -line.net, [])],
        seller=SELLER,
        actor="test",
        now=original.issued_at,
        storage=storage,
        kind=invoicing.InvoiceKind.credit_note,
        refers_to=original,
        credits=[line.id],
    )
    session.commit()
    assert credit.number.startswith("CN")
    with pytest.raises(Conflict):
        payments.record_payment(
            session,
            invoice_number=credit.number,
            amount=Decimal("5"),
            received_on=date.today(),
            method="bank_transfer",
            reference="",
            actor="test",
        )


def _fresh_applications(engine: Engine, count: int, storage: LocalStorage) -> tuple[int, list[int]]:
    with Session(engine) as session:
        edition = open_edition(session, slug=f"conc-{count}", capacity=count)
        ids = [submit(session, storage, edition, email=f"c{i}@x.org").id or 0 for i in range(count)]
        return edition.id or 0, ids


_INVOICES = "SELECT id FROM invoice WHERE edition_id = :e"
_CLEANUP = (
    f"DELETE FROM payment WHERE invoice_id IN ({_INVOICES})",
    f"DELETE FROM invoice_line WHERE invoice_id IN ({_INVOICES})",
    "DELETE FROM invoice WHERE edition_id = :e",
    "DELETE FROM outbox_message WHERE application_id IN "
    "(SELECT id FROM application WHERE edition_id = :e)",
    "DELETE FROM audit_entry WHERE entity = 'application' AND entity_id IN "
    "(SELECT CAST(id AS VARCHAR) FROM application WHERE edition_id = :e)",
    "DELETE FROM audit_entry WHERE entity = 'edition' AND entity_id IN "
    "(SELECT slug FROM edition WHERE id = :e)",
    "DELETE FROM application WHERE edition_id = :e",
    "DELETE FROM course_session WHERE module_id IN (SELECT id FROM module WHERE edition_id = :e)",
    "DELETE FROM module WHERE edition_id = :e",
    "DELETE FROM group_tier WHERE edition_id = :e",
    "DELETE FROM edition WHERE id = :e",
)


def _cleanup(engine: Engine, edition_id: int) -> None:
    """These tests commit for real (several connections): remove what they made."""
    with engine.begin() as connection:
        for statement in _CLEANUP:
            connection.execute(text(statement), {"e": edition_id})


def test_fifty_invoices_issued_at_once_get_fifty_consecutive_numbers(
    engine: Engine, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    edition_id, ids = _fresh_applications(engine, 50, storage)
    numbers: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(10)

    def worker(chunk: list[int]) -> None:
        start.wait()
        for application_id in chunk:
            try:
                with Session(writer_engine(engine)) as session:
                    application = session.get(Application, application_id)
                    assert application is not None
                    invoice = invoicing.issue_invoice(
                        session,
                        application=application,
                        seller=SELLER,
                        actor="test",
                        storage=storage,
                    )
                    session.commit()
                    numbers.append(invoice.number)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(ids[i::10],)) for i in range(10)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        counters = sorted(int(n.split("-")[1]) for n in numbers)
        assert len(set(numbers)) == 50
        assert counters == list(range(counters[0], counters[0] + 50))
    finally:
        _cleanup(engine, edition_id)


def test_two_payments_for_the_last_seat_confirm_exactly_one(engine: Engine, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    edition_id, ids = _fresh_applications(engine, 2, storage)
    with Session(engine) as session:
        numbers = []
        for application_id in ids:
            application = session.get(Application, application_id)
            assert application is not None
            application.status = "admitted"
            session.add(application)
            numbers.append(
                invoicing.issue_invoice(
                    session, application=application, seller=SELLER, actor="t", storage=storage
                ).number
            )
        session.execute(text("UPDATE edition SET capacity = 1 WHERE id = :e"), {"e": edition_id})
        session.commit()
    results: list[payments.PaymentResult] = []
    barrier = threading.Barrier(2)

    def pay(number: str) -> None:
        barrier.wait()
        with Session(writer_engine(engine), expire_on_commit=False) as session:
            results.append(
                payments.record_payment(
                    session,
                    invoice_number=number,
                    amount=Decimal("1500.00"),
                    received_on=date.today(),
                    method="bank_transfer",
                    reference="",
                    actor="test",
                )
            )

    threads = [threading.Thread(target=pay, args=(n,)) for n in numbers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(len(r.confirmed) for r in results) == [0, 1]
        flagged = [r for r in results if r.without_seat]
        assert len(flagged) == 1
        assert flagged[0].payment.flagged
        assert "no seat was free" in flagged[0].payment.flag_reason
        with Session(engine) as session:
            statuses = sorted(session.get(Application, i).status for i in ids)  # type: ignore[union-attr]
        assert statuses == ["admitted", "confirmed"]
    finally:
        _cleanup(engine, edition_id)
