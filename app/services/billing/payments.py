"""Payments: recorded once, adding up, confirming a seat only while one is free."""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.models import (
    Application,
    ApplicationStatus,
    Edition,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    Payment,
    PaymentMethod,
)
from app.money import ZERO
from app.platform.audit import record_change
from app.platform.i18n import N_, localized
from app.platform.mail import queue_email
from app.services.billing.invoices import (
    billed_total,
    get_invoice,
    held_money,
    invoice_lines,
)
from app.services.errors import Conflict, InvalidInput

CONFIRMED = (ApplicationStatus.confirmed.value, ApplicationStatus.completed.value)


@dataclass(frozen=True)
class PaymentResult:
    """A recorded payment, what is paid now, and who was confirmed or left waiting for a seat."""

    payment: Payment
    paid: Decimal
    outstanding: Decimal
    confirmed: list[str]
    without_seat: list[str]
    duplicate: bool = False


def _lock_edition(session: Session, edition_id: int) -> None:
    """Serialise seat confirmations of one edition (SQLite already holds the write lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa_select(col(Edition.id)).where(col(Edition.id) == edition_id).with_for_update()
        )


def confirmed_count(session: Session, edition_id: int) -> int:
    """Participants whose seat is guaranteed."""
    count: int = session.exec(
        select(func.count())
        .select_from(Application)
        .where(Application.edition_id == edition_id, col(Application.status).in_(CONFIRMED))
    ).one()
    return count


def confirm_paid_participants(
    session: Session, *, invoice: Invoice, now: datetime
) -> tuple[list[str], list[str]]:
    """Confirm the admitted participants of a fully paid invoice while seats are free."""
    edition = session.get(Edition, invoice.edition_id)
    assert edition is not None
    _lock_edition(session, edition.id or 0)
    confirmed: list[str] = []
    without_seat: list[str] = []
    for line in invoice_lines(session, invoice):
        application = session.get(Application, line.application_id) if line.application_id else None
        if application is None or application.status != ApplicationStatus.admitted.value:
            continue
        if confirmed_count(session, edition.id or 0) >= edition.capacity:
            without_seat.append(application.reference)
            continue
        session.execute(
            update(Application)
            .where(col(Application.id) == application.id)
            .values(
                status=ApplicationStatus.confirmed.value,
                confirmed_at=now,
                version=Application.version + 1,
                updated_at=now,
            )
        )
        session.refresh(application)
        confirmed.append(application.reference)
        queue_email(
            session,
            kind="place_guaranteed",
            to=application.email,
            subject=N_("Your place in the %(edition)s is guaranteed"),
            subject_values={"edition": localized(edition, "title", application.language)},
            context={"application": application, "edition": edition, "invoice": invoice},
            application_id=application.id,
        )
    return confirmed, without_seat


def office_day(session: Session, edition_id: int | None, now: datetime) -> date:
    """The day `now` falls on at the office: on the edition's clock, not UTC's.

    Money is dated by it: at 00:30 in Madrid (23:30 UTC) a card payment is Tuesday's, and in
    Mexico City at 19:00 (01:00 UTC the next day) it is still Monday's.
    """
    edition = session.get(Edition, edition_id) if edition_id is not None else None
    return now.astimezone(ZoneInfo(edition.timezone) if edition else UTC).date()


def record_payment(
    session: Session,
    *,
    invoice_number: str,
    amount: Decimal,
    received_on: date,
    method: str,
    reference: str,
    actor: str,
    source: str = "manual",
    external_id: str | None = None,
    now: datetime | None = None,
) -> PaymentResult:
    """Record money received; full payment confirms, overpayment and late money are flagged."""
    now = now or utcnow()
    faults = {}
    if amount <= ZERO:
        faults["amount"] = "The amount must be more than 0."
    if method not in {m.value for m in PaymentMethod}:
        faults["method"] = "The method is bank_transfer, card or other."
    invoice = get_invoice(session, invoice_number)
    if received_on > office_day(session, invoice.edition_id, now):
        faults["received_on"] = "The value date cannot be in the future."
    if faults:
        raise InvalidInput("The payment cannot be recorded.", fields=faults)
    if invoice.kind != InvoiceKind.invoice.value:
        raise Conflict(f"{invoice.number} is a credit note; payments go against invoices.")
    billed = billed_total(session, invoice)
    if external_id:
        existing = session.exec(select(Payment).where(Payment.external_id == external_id)).first()
        if existing is not None:
            paid = held_money(session, invoice)
            return PaymentResult(existing, paid, max(billed - paid, ZERO), [], [], duplicate=True)
    before = held_money(session, invoice)
    payment = Payment(
        invoice_id=invoice.id or 0,
        amount=amount,
        received_on=received_on,
        method=method,
        reference=reference.strip()[:200],
        source=source,
        external_id=external_id,
        recorded_by=actor,
        recorded_at=now,
    )
    paid = before + amount
    if invoice.status != "issued":
        payment.flagged = True
        payment.flag_reason = f"Received after {invoice.number} was cancelled: refund it in full."
    elif paid > billed:
        payment.flagged = True
        payment.flag_reason = (
            f"Overpaid by {paid - billed:.2f} {invoice.currency}: refund the difference."
        )
    session.add(payment)
    session.flush()
    confirmed: list[str] = []
    without_seat: list[str] = []
    if invoice.status == "issued" and before < billed <= paid:
        confirmed, without_seat = confirm_paid_participants(session, invoice=invoice, now=now)
        if without_seat:
            payment.flagged = True
            payment.flag_reason = (
                "Paid in full but no seat was free for "
                + ", ".join(without_seat)
                + ": offer a seat or refund."
            )
            session.add(payment)
    record_change(
        session,
        actor=actor,
        action="payment.recorded",
        entity="invoice",
        entity_id=invoice.number,
        after={
            "amount": f"{amount:.2f}",
            "method": method,
            "reference": payment.reference,
            "paid": f"{paid:.2f}",
            "confirmed": confirmed,
            "flag": payment.flag_reason,
        },
    )
    session.commit()
    return PaymentResult(payment, paid, max(billed - paid, ZERO), confirmed, without_seat)


def payments_for(session: Session, invoice: Invoice) -> list[Payment]:
    """An invoice's payments, oldest first."""
    return list(
        session.exec(
            select(Payment)
            .where(Payment.invoice_id == invoice.id)
            .order_by(col(Payment.recorded_at))
        ).all()
    )


@dataclass(frozen=True)
class Balance:
    """What one participant owes and has paid, summed over their invoices."""

    invoiced: Decimal
    paid: Decimal

    @property
    def due(self) -> Decimal:
        """What is still to pay (never negative)."""
        return max(self.invoiced - self.paid, ZERO)


def participant_invoices(session: Session, application_id: int) -> list[Invoice]:
    """Invoices and credit notes with a line for this participant, oldest first."""
    return list(
        session.exec(
            select(Invoice)
            .where(
                col(Invoice.id).in_(
                    select(InvoiceLine.invoice_id).where(
                        InvoiceLine.application_id == application_id
                    )
                )
            )
            .order_by(col(Invoice.issued_at), col(Invoice.id))
        ).all()
    )


def participant_balance(
    session: Session, application_id: int, invoices: list[Invoice] | None = None
) -> Balance:
    """The participant's share of invoiced and paid amounts.

    On a group invoice a participant's paid share is their line's share of what the group
    paid, so each member's position is known. `invoices`: the participant's invoices
    (`participant_invoices`), when the caller has read them already.
    """
    invoiced = paid = ZERO
    if invoices is None:
        invoices = participant_invoices(session, application_id)
    for invoice in invoices:
        lines = invoice_lines(session, invoice)
        mine = sum((line.gross for line in lines if line.application_id == application_id), ZERO)
        invoiced += mine
        if invoice.kind == InvoiceKind.invoice.value and invoice.total > ZERO:
            # Only lines not yet credited share what the invoice holds, refunds owed excluded.
            from app.services.billing.refunds import paid_share

            paid += paid_share(session, invoice, application_id)
    return Balance(invoiced=invoiced, paid=paid)
