"""Payments counted once under any interleaving: parallel payments, cancellations, imports."""

import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, func, text
from sqlmodel import Session, col, select

from app.db import writer_engine
from app.models import Application, Edition, Invoice, Payment, Refund, StaffUser
from app.platform.storage import LocalStorage
from app.services.billing import invoices as invoicing
from app.services.billing import payments, statements
from app.services.registrations import applications as applications_service
from tests.factories import open_edition, submit
from tests.services.billing.test_invoicing import BASE, SECRET, SELLER
from tests.services.registrations.test_cancellations import cancel

FEE = Decimal("1500.00")

_APPLICATIONS = "SELECT id FROM application WHERE edition_id = :e"
_INVOICES = "SELECT id FROM invoice WHERE edition_id = :e"
_CLEANUP = (
    "DELETE FROM audit_entry WHERE entity = 'invoice' AND entity_id IN "
    "(SELECT number FROM invoice WHERE edition_id = :e)",
    "DELETE FROM audit_entry WHERE entity = 'application' AND entity_id IN "
    "(SELECT CAST(id AS VARCHAR) FROM application WHERE edition_id = :e)",
    "DELETE FROM audit_entry WHERE entity = 'edition' AND entity_id IN "
    "(SELECT slug FROM edition WHERE id = :e)",
    "DELETE FROM audit_entry WHERE entity = 'statement'",
    f"DELETE FROM refund WHERE invoice_id IN ({_INVOICES})",
    f"DELETE FROM cancellation WHERE application_id IN ({_APPLICATIONS})",
    "DELETE FROM seat_offer WHERE edition_id = :e",
    f"DELETE FROM payment WHERE invoice_id IN ({_INVOICES})",
    f"DELETE FROM invoice_line WHERE invoice_id IN ({_INVOICES})",
    "DELETE FROM invoice WHERE refers_to_id IS NOT NULL AND edition_id = :e",
    "DELETE FROM invoice WHERE edition_id = :e",
    f"DELETE FROM outbox_message WHERE application_id IN ({_APPLICATIONS})",
    "DELETE FROM application WHERE edition_id = :e",
    "DELETE FROM course_session WHERE module_id IN (SELECT id FROM module WHERE edition_id = :e)",
    "DELETE FROM module WHERE edition_id = :e",
    "DELETE FROM group_tier WHERE edition_id = :e",
    "DELETE FROM edition WHERE id = :e",
)


def _cleanup(engine: Engine, edition_id: int) -> None:
    """These tests commit for real (one connection per thread): remove what they made."""
    with engine.begin() as connection:
        for statement in _CLEANUP:
            connection.execute(text(statement), {"e": edition_id})


def _admitted_with_invoice(
    engine: Engine, storage: LocalStorage, slug: str
) -> tuple[int, int, str]:
    """A committed edition with one admitted participant and their 1,500 invoice."""
    with Session(engine, expire_on_commit=False) as session:
        edition = open_edition(session, slug=slug)
        admin = StaffUser(email="race@example.org", password_hash="x", role="admin")
        application = applications_service.decide(
            session,
            application_id=submit(session, storage, edition, email=f"{slug}@x.org").id or 0,
            decision="admit",
            actor=admin,
            storage=storage,
            secret_key=SECRET,
            base_url=BASE,
            seller=SELLER,
        )
        number = session.exec(select(Invoice.number).where(Invoice.edition_id == edition.id)).one()
        return edition.id or 0, application.id or 0, number


def _at_once(*calls: Callable[[], None]) -> list[BaseException]:
    """Run the calls in threads released together; the errors they raised."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], None]) -> None:
        barrier.wait()
        try:
            call()
        except BaseException as exc:  # collected and returned
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def _pay(engine: Engine, number: str, reference: str) -> Callable[[], None]:
    def call() -> None:
        with Session(writer_engine(engine), expire_on_commit=False) as session:
            payments.record_payment(
                session,
                invoice_number=number,
                amount=FEE,
                received_on=date.today(),
                method="bank_transfer",
                reference=reference,
                actor="race@example.org",
            )

    return call


def _money(engine: Engine, number: str) -> tuple[list[Payment], list[Refund]]:
    with Session(engine) as session:
        invoice = invoicing.get_invoice(session, number)
        paid = list(session.exec(select(Payment).where(Payment.invoice_id == invoice.id)).all())
        owed = list(session.exec(select(Refund).where(Refund.invoice_id == invoice.id)).all())
        return paid, owed


def test_ten_parallel_payments_on_one_invoice_are_each_counted_and_overpayments_flagged_in_full(
    engine: Engine, tmp_path: Path
) -> None:
    edition_id, application_id, number = _admitted_with_invoice(
        engine, LocalStorage(tmp_path), "race-ten"
    )
    try:
        errors = _at_once(*(_pay(engine, number, f"transfer {i}") for i in range(10)))
        assert errors == []
        paid, owed = _money(engine, number)
        assert len(paid) == 10
        assert sum(p.amount for p in paid) == Decimal("15000.00")
        # Exactly one payment settled the invoice; the other nine are owed back in full.
        assert sorted(p.overpaid for p in paid) == [Decimal("0.00")] + [FEE] * 9
        assert all(p.flagged for p in paid if p.overpaid)
        assert sorted(r.amount for r in owed) == [FEE] * 9
        assert {r.reason for r in owed} == {"overpayment"}
        with Session(engine) as session:
            invoice = invoicing.get_invoice(session, number)
            assert invoicing.held_money(session, invoice) == FEE
            assert invoicing.outstanding(session, invoice) == Decimal("0.00")
            assert session.get(Application, application_id).status == "confirmed"  # type: ignore[union-attr]
    finally:
        _cleanup(engine, edition_id)


def test_ten_clicks_on_the_same_transfer_record_it_once(engine: Engine, tmp_path: Path) -> None:
    edition_id, _, number = _admitted_with_invoice(engine, LocalStorage(tmp_path), "race-click")
    try:
        errors = _at_once(*(_pay(engine, number, "BANK REF 42") for _ in range(10)))
        assert len(errors) == 9
        assert all(isinstance(e, payments.DuplicatePayment) for e in errors)
        paid, owed = _money(engine, number)
        assert [p.amount for p in paid] == [FEE]
        assert owed == []
    finally:
        _cleanup(engine, edition_id)


def test_a_payment_racing_a_cancellation_is_owed_back_in_full_whichever_comes_first(
    engine: Engine, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    edition_id, application_id, number = _admitted_with_invoice(engine, storage, "race-cancel")
    try:
        _pay(engine, number, "first transfer")()

        def cancelling() -> None:
            with Session(writer_engine(engine), expire_on_commit=False) as session:
                application = session.get(Application, application_id)
                assert application is not None
                cancel(session, storage, application)

        errors = _at_once(cancelling, _pay(engine, number, "second transfer"))
        assert errors == []
        with Session(engine) as session:
            received = session.exec(
                select(func.sum(Payment.amount))
                .join(Invoice, col(Invoice.id) == col(Payment.invoice_id))
                .where(Invoice.edition_id == edition_id)
            ).one()
            refunds = session.exec(
                select(Refund.reason, Refund.amount)
                .join(Invoice, col(Invoice.id) == col(Refund.invoice_id))
                .where(Invoice.edition_id == edition_id)
            ).all()
            edition = session.get(Edition, edition_id)
            assert edition is not None
        # 3,000 received: 75 % of the fee and the whole second transfer go back, 375 is kept.
        assert Decimal(received) == Decimal("3000.00")
        assert sorted(refunds) == [("cancellation", Decimal("1125.00")), ("overpayment", FEE)]
    finally:
        _cleanup(engine, edition_id)


def test_a_statement_import_racing_the_same_transfer_typed_by_hand_records_it_once(
    engine: Engine, tmp_path: Path
) -> None:
    edition_id, _, number = _admitted_with_invoice(engine, LocalStorage(tmp_path), "race-import")
    line = statements.StatementLine(
        line=2,
        booked_on=date.today(),
        amount=FEE,
        counterparty="Ama Banda",
        text=f"Invoice {number}",
    )
    imported: list[tuple[int, int, int]] = []
    try:

        def importing() -> None:
            with Session(writer_engine(engine), expire_on_commit=False) as session:
                result = statements.import_matches(
                    session, lines=[line], accepted_ids=[line.external_id], actor="import"
                )
                imported.append(result.counts)

        errors = _at_once(importing, _pay(engine, number, "typed by hand"))
        paid, owed = _money(engine, number)
        # Whichever came first stands; the other is caught as the same transfer.
        assert [p.amount for p in paid] == [FEE]
        assert owed == []
        if paid[0].source == "statement":
            assert imported == [(1, 0, 0)]
            assert [type(e) for e in errors] == [payments.DuplicatePayment]
        else:
            assert imported == [(0, 1, 0)]
            assert errors == []
    finally:
        _cleanup(engine, edition_id)


def test_a_statement_import_racing_a_different_manual_payment_flags_the_second_in_full(
    engine: Engine, tmp_path: Path
) -> None:
    edition_id, _, number = _admitted_with_invoice(engine, LocalStorage(tmp_path), "race-other")
    line = statements.StatementLine(
        line=2,
        booked_on=date.today(),
        amount=Decimal("1000.00"),
        counterparty="Ama Banda",
        text=f"Invoice {number}",
    )
    try:

        def importing() -> None:
            with Session(writer_engine(engine), expire_on_commit=False) as session:
                statements.import_matches(
                    session, lines=[line], accepted_ids=[line.external_id], actor="import"
                )

        errors = _at_once(importing, _pay(engine, number, "typed by hand"))
        assert errors == []
        paid, owed = _money(engine, number)
        received = sum(p.amount for p in paid)
        overpaid = sum(p.overpaid for p in paid)
        # Both orders: the line is recorded while the invoice is open, or skipped for a person
        # once the manual payment closed it; whatever is recorded beyond 1,500 is owed back.
        assert received - overpaid == FEE
        assert sum(r.amount for r in owed) == overpaid
        assert received in (FEE, Decimal("2500.00"))
    finally:
        _cleanup(engine, edition_id)
