"""The money overview of an edition: totals, overdue invoices, flagged payments, groups."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import Session

from app.models import Edition, Invoice, Payment, StaffUser
from app.platform.storage import LocalStorage
from app.services.billing import invoices as invoicing
from app.services.billing import money_overview, payments
from app.services.registrations import applications as service
from tests.factories import admit, make_organisation, open_edition, pay, submit

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


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def invoices(
    session: Session, storage: LocalStorage, admin: StaffUser, edition: Edition, count: int
) -> list[Invoice]:
    """`count` admitted participants, each with their 1500.00 EUR invoice."""
    issued = []
    for i in range(count):
        application = submit(session, storage, edition, email=f"p{i}@x.org")
        admit(session, storage, admin, application)
        issued.append(payments.participant_invoices(session, application.id or 0)[0])
    return issued


@contextmanager
def counted_queries(session: Session) -> Iterator[list[str]]:
    statements: list[str] = []
    connection = session.connection()

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(connection, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", count)


def test_totals_add_up_across_invoices_with_partial_payments(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    first, second, _third = invoices(session, storage, admin_user, edition, 3)
    pay(session, first, "500.00")
    pay(session, first, "250.00")
    pay(session, second, "1500.00")
    overview = money_overview.edition_money(session, edition)
    assert overview.currency == "EUR"
    assert overview.invoiced == Decimal("4500.00")
    assert overview.received == Decimal("2250.00")
    assert overview.refunded == Decimal("0.00")
    assert overview.outstanding == Decimal("2250.00")
    assert overview.invoiced == overview.net_received + overview.outstanding
    assert overview.refunds_owed == Decimal("0.00")
    assert overview.flagged == []


def test_an_invoice_past_its_due_date_with_money_outstanding_is_listed_as_overdue(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    late, paid, part = invoices(session, storage, admin_user, edition, 3)
    pay(session, paid, "1500.00")
    pay(session, part, "1000.00")
    later = late.due_date + timedelta(days=3)
    overview = money_overview.edition_money(session, edition, today=later)
    assert [(r.invoice.number, r.days_overdue, r.outstanding) for r in overview.overdue] == [
        (late.number, 3, Decimal("1500.00")),
        (part.number, 3, Decimal("500.00")),
    ]
    assert overview.overdue[0].buyer == "Ama Banda"
    assert overview.overdue_total == Decimal("2000.00")
    on_the_day = money_overview.edition_money(session, edition, today=late.due_date)
    assert on_the_day.overdue == []


def test_an_overpayment_is_flagged_and_counted_as_a_refund_owed(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    (invoice,) = invoices(session, storage, admin_user, edition, 1)
    pay(session, invoice, "1600.00")
    overview = money_overview.edition_money(session, edition)
    assert overview.refunds_owed == Decimal("100.00")
    assert overview.outstanding == Decimal("0.00")
    (flag,) = overview.flagged
    assert flag.invoice_number == invoice.number
    assert flag.payment.amount == Decimal("1600.00")
    assert "Overpaid by 100.00 EUR" in flag.payment.flag_reason


def test_a_resolved_flag_no_longer_needs_action(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    (invoice,) = invoices(session, storage, admin_user, edition, 1)
    result = pay(session, invoice, "1600.00")
    result.payment.resolved_at = invoice.issued_at
    session.add(result.payment)
    session.commit()
    assert money_overview.edition_money(session, edition).flagged == []


def test_credit_notes_reduce_what_is_invoiced_and_refunds_paid_out_are_counted(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    cancelled, kept = invoices(session, storage, admin_user, edition, 2)
    pay(session, cancelled, "1500.00")
    line = invoicing.invoice_lines(session, cancelled)[0]
    invoicing.issue_document(
        session,
        edition=edition,
        buyer=cancelled.buyer,
        lines=[(None, "Cancels line 1", -line.net, [])],
        seller=SELLER,
        actor="test",
        now=cancelled.issued_at,
        storage=storage,
        kind=invoicing.InvoiceKind.credit_note,
        refers_to=cancelled,
        credits=[line.id],
    )
    cancelled.status = "credited"
    session.add(cancelled)
    session.add(
        Payment(
            invoice_id=cancelled.id or 0,
            amount=Decimal("-1000.00"),
            received_on=date.today(),
            method="bank_transfer",
            recorded_by="test",
        )
    )
    session.commit()
    overview = money_overview.edition_money(session, edition)
    assert (overview.invoiced_gross, overview.credited, overview.invoiced) == (
        Decimal("3000.00"),
        Decimal("1500.00"),
        Decimal("1500.00"),
    )
    assert (overview.received, overview.refunded) == (Decimal("1500.00"), Decimal("1000.00"))
    # What is still held on the cancelled invoice is owed back; the other invoice is open.
    assert overview.refunds_owed == Decimal("500.00")
    assert overview.outstanding == Decimal("1500.00")
    assert kept.number not in [f.invoice_number for f in overview.flagged]


def test_the_overview_takes_as_many_queries_for_six_invoices_as_for_one(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    small = open_edition(session, slug="small")
    large = open_edition(session, slug="large")
    for invoice in invoices(session, storage, admin_user, small, 1):
        pay(session, invoice, "100.00")
    for i in range(6):
        application = submit(session, storage, large, email=f"l{i}@x.org")
        admit(session, storage, admin_user, application)
        pay(session, payments.participant_invoices(session, application.id or 0)[0], "1600.00")
    session.expire_all()
    with counted_queries(session) as for_one:
        money_overview.edition_money(session, small)
    with counted_queries(session) as for_six:
        overview = money_overview.edition_money(session, large)
    assert len(overview.flagged) == 6
    assert len(for_six) == len(for_one) <= 4


def test_the_register_filters_open_overdue_paid_and_all(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    unpaid, paid = invoices(session, storage, admin_user, edition, 2)
    pay(session, paid, "1500.00")
    later = unpaid.due_date + timedelta(days=1)

    def numbers(status: money_overview.RegisterFilter, today: date = later) -> list[str]:
        rows, _ = money_overview.invoice_register(session, edition, status=status, today=today)
        return [row.invoice.number for row in rows]

    assert numbers("open") == [unpaid.number]
    assert numbers("overdue") == [unpaid.number]
    assert numbers("overdue", today=unpaid.due_date) == []
    assert numbers("paid") == [paid.number]
    assert sorted(numbers("all")) == sorted([unpaid.number, paid.number])
    _, counts = money_overview.invoice_register(session, edition, status="all", today=later)
    assert counts == {"open": 1, "overdue": 1, "paid": 1, "all": 2}


def test_a_group_with_admitted_members_waits_for_its_invoice_until_issued(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    organisation = make_organisation(session, name="Ciudad X", country="MEX")
    group, _ = service.create_group(
        session,
        edition_slug=edition.slug,
        organisation_id=organisation.id or 0,
        contact_email="lead@ciudad.example",
        secret_key=SECRET,
        base_url=BASE,
    )
    for i in range(2):
        member = submit(session, storage, edition, email=f"g{i}@x.org", group_code=group.code)
        admit(session, storage, admin_user, member)
    (waiting,) = money_overview.groups_to_invoice(session, edition)
    assert (waiting.group.code, waiting.organisation, waiting.waiting) == (
        group.code,
        "Ciudad X",
        2,
    )
    invoicing.issue_group_invoice(
        session,
        edition=edition,
        code=group.code,
        seller=SELLER,
        actor="test",
        storage=storage,
    )
    session.commit()
    assert money_overview.groups_to_invoice(session, edition) == []


def credit(
    session: Session, storage: LocalStorage, invoice: Invoice, positions: list[int]
) -> Invoice:
    """A credit note cancelling these lines of an invoice, as a cancellation issues it."""
    edition = session.get(Edition, invoice.edition_id)
    assert edition is not None
    lines = [ln for ln in invoicing.invoice_lines(session, invoice) if ln.position in positions]
    note = invoicing.issue_document(
        session,
        edition=edition,
        buyer=invoice.buyer,
        lines=[(None, f"Cancels line {ln.position}", -ln.net, []) for ln in lines],
        seller=SELLER,
        actor="test",
        now=invoice.issued_at,
        storage=storage,
        kind=invoicing.InvoiceKind.credit_note,
        refers_to=invoice,
        credits=[ln.id for ln in lines],
    )
    session.commit()
    return note


def moved(session: Session, invoice: Invoice, amount: str, source: str) -> None:
    session.add(
        Payment(
            invoice_id=invoice.id or 0,
            amount=Decimal(amount),
            received_on=date.today(),
            method="other",
            source=source,
            recorded_by="test",
        )
    )
    session.commit()


def test_money_moved_to_a_cancellation_fee_is_neither_received_nor_refunded(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    (cancelled,) = invoices(session, storage, admin_user, edition, 1)
    pay(session, cancelled, "1500.00")
    credit(session, storage, cancelled, [1])
    cancelled.status = "credited"
    fee = invoicing.issue_document(
        session,
        edition=edition,
        buyer=cancelled.buyer,
        lines=[(None, "Cancellation fee", Decimal("375.00"), [])],
        seller=SELLER,
        actor="test",
        now=cancelled.issued_at,
        storage=storage,
        purpose="cancellation_fee",
        refers_to=cancelled,
    )
    session.add(cancelled)
    session.commit()
    moved(session, cancelled, "-375.00", "transfer")
    moved(session, fee, "375.00", "transfer")
    before = money_overview.edition_money(session, edition)
    assert (before.invoiced, before.received, before.refunded) == (
        Decimal("375.00"),
        Decimal("1500.00"),
        Decimal("0.00"),
    )
    assert (before.outstanding, before.refunds_owed) == (Decimal("0.00"), Decimal("1125.00"))
    moved(session, cancelled, "-1125.00", "refund")
    after = money_overview.edition_money(session, edition)
    assert (after.refunded, after.refunds_owed) == (Decimal("1125.00"), Decimal("0.00"))
    assert after.invoiced == after.net_received


def test_a_partly_credited_group_invoice_owes_only_what_is_still_billed(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    organisation = make_organisation(session, name="Ciudad X", country="MEX")
    group, _ = service.create_group(
        session,
        edition_slug=edition.slug,
        organisation_id=organisation.id or 0,
        contact_email="lead@ciudad.example",
        secret_key=SECRET,
        base_url=BASE,
    )
    for i in range(2):
        member = submit(session, storage, edition, email=f"g{i}@x.org", group_code=group.code)
        admit(session, storage, admin_user, member)
    invoice = invoicing.issue_group_invoice(
        session, edition=edition, code=group.code, seller=SELLER, actor="test", storage=storage
    )
    session.commit()
    credit(session, storage, invoice, [2])
    pay(session, invoice, "900.00")
    row = money_overview.invoice_row(session, invoice, today=date.today())
    assert (row.payable, row.paid, row.outstanding) == (
        Decimal("900.00"),
        Decimal("900.00"),
        Decimal("0.00"),
    )
    assert row.badges == ["part credited", "paid"]
    assert money_overview.edition_money(session, edition).outstanding == Decimal("0.00")
