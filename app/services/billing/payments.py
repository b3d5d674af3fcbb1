"""Payments: recorded once, adding up, confirming a seat only while one is free."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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
    PayeeKind,
    Payment,
    PaymentMethod,
    Refund,
    RefundMethod,
    RefundReason,
    RefundStatus,
)
from app.money import MAX_AMOUNT, ZERO
from app.platform.audit import record_change
from app.platform.i18n import N_, localized
from app.platform.mail import queue_email
from app.services.billing.invoices import (
    billed_total,
    counted_payments,
    get_invoice,
    held_money,
    invoice_lines,
    outstanding,
)
from app.services.errors import Conflict, InvalidInput, NotFound

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
    refund: Refund | None = None


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


OVERPAYMENT_DAYS = 30
# Money an administrator or a statement import recorded; card money is corrected in Stripe,
# refunds paid and money moved by a cancellation where they were made.
VOIDABLE_SOURCES = ("manual", "statement")


class DuplicatePayment(Conflict):
    """The same transfer (amount, value date, reference) is recorded on the invoice already."""

    def __init__(self, message: str, *, payment: Payment) -> None:
        super().__init__(message)
        self.payment = payment


def lock_invoice(session: Session, invoice_id: int) -> Invoice:
    """The invoice, read again under a lock that serialises every change to its money.

    PostgreSQL: the row is locked until the commit, and the reads that follow see what other
    transactions committed before it (READ COMMITTED), so a balance is never read stale.
    SQLite: the writer's transaction holds the database's write lock from its BEGIN.
    """
    query = select(Invoice).where(col(Invoice.id) == invoice_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    invoice = session.exec(query.execution_options(populate_existing=True)).one()
    return invoice


def _same_reference(value: str) -> str:
    return " ".join(value.split()).casefold()


def same_transfer(
    session: Session,
    *,
    invoice: Invoice,
    amount: Decimal,
    received_on: date,
    reference: str,
    external_id: str | None = None,
    method: str | None = None,
) -> Payment | None:
    """A payment on the invoice, not voided, that is this transfer already.

    Two entries typed by hand are one transfer when amount, value date and reference agree.
    Against a bank line or a card charge of the same method the reference was written by the
    bank, not typed, so amount and value date on the invoice are enough. Two lines with ids
    of their own are two transfers, as the bank says; a card charge is never a transfer.
    """
    query = select(Payment).where(
        Payment.invoice_id == invoice.id,
        Payment.amount == amount,
        Payment.received_on == received_on,
        counted_payments(),
    )
    if external_id:
        if method is not None:
            query = query.where(Payment.method == method)
        return session.exec(query.where(col(Payment.external_id).is_(None))).first()
    wanted = _same_reference(reference)
    return next(
        (
            p
            for p in session.exec(query).all()
            if (p.external_id is not None and (method is None or p.method == method))
            or _same_reference(p.reference) == wanted
        ),
        None,
    )


def recorded_by_hand(
    session: Session, *, invoice_number: str, amount: Decimal, received_on: date
) -> Payment | None:
    """A payment typed by hand that a bank line of this amount and value date repeats."""
    invoice = session.exec(select(Invoice).where(Invoice.number == invoice_number)).first()
    if invoice is None:
        return None
    return same_transfer(
        session,
        invoice=invoice,
        amount=amount,
        received_on=received_on,
        reference="",
        external_id="bank line",
        method=PaymentMethod.bank_transfer.value,
    )


def refund_payee(session: Session, invoice: Invoice) -> tuple[str, str, int | None]:
    """Who gets money back from an invoice: whoever paid it (kind, name, application)."""
    if invoice.group_id is not None:
        return PayeeKind.organisation.value, str(invoice.buyer.get("name", "")), None
    for line in invoice_lines(session, invoice):
        if line.application_id is not None:
            application = session.get(Application, line.application_id)
            if application is not None:
                return PayeeKind.person.value, application.full_name, application.id
    return PayeeKind.person.value, str(invoice.buyer.get("name", "")), None


def owe_overpayment(
    session: Session, *, invoice: Invoice, payment: Payment, amount: Decimal, today: date
) -> Refund:
    """What a payment brought beyond the balance is owed back to whoever paid, in 30 days."""
    kind, name, application_id = refund_payee(session, invoice)
    refund = Refund(
        application_id=application_id,
        invoice_id=invoice.id or 0,
        reason=RefundReason.overpayment.value,
        payment_id=payment.id,
        amount=amount,
        currency=invoice.currency,
        due_by=today + timedelta(days=OVERPAYMENT_DAYS),
        method=(
            RefundMethod.card.value
            if payment.method == PaymentMethod.card.value
            else RefundMethod.bank_transfer.value
        ),
        payee_kind=kind,
        payee_name=(payment.payer if kind == PayeeKind.person.value and payment.payer else name)[
            :200
        ],
    )
    session.add(refund)
    return refund


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
    payer: str = "",
    confirm_duplicate: bool = False,
    now: datetime | None = None,
) -> PaymentResult:
    """Record money received; full payment confirms, overpayment and late money are flagged.

    The invoice is locked first, so the balance, the confirmation and the overpayment are
    computed on what is committed: of ten payments at once, each sees the ones before it.
    The same transfer twice raises DuplicatePayment unless `confirm_duplicate`.
    """
    now = now or utcnow()
    faults = {}
    if amount <= ZERO:
        faults["amount"] = "The amount must be more than 0."
    elif abs(amount) >= MAX_AMOUNT:
        faults["amount"] = "The amount is too large."
    if method not in {m.value for m in PaymentMethod}:
        faults["method"] = "The method is bank_transfer, card or other."
    invoice = get_invoice(session, invoice_number)
    today = office_day(session, invoice.edition_id, now)
    if received_on > today:
        faults["received_on"] = "The value date cannot be in the future."
    if faults:
        raise InvalidInput("The payment cannot be recorded.", fields=faults)
    if invoice.kind != InvoiceKind.invoice.value:
        raise Conflict(f"{invoice.number} is a credit note; payments go against invoices.")
    invoice = lock_invoice(session, invoice.id or 0)
    billed = billed_total(session, invoice)
    if external_id:
        existing = session.exec(select(Payment).where(Payment.external_id == external_id)).first()
        if existing is not None:
            paid = held_money(session, invoice)
            return PaymentResult(existing, paid, max(billed - paid, ZERO), [], [], duplicate=True)
    twin = same_transfer(
        session,
        invoice=invoice,
        amount=amount,
        received_on=received_on,
        reference=reference,
        external_id=external_id,
        method=method,
    )
    if twin is not None and not confirm_duplicate:
        # Nothing was written; the lock goes with the caller's transaction.
        raise DuplicatePayment(
            f"{amount:.2f} {invoice.currency} with value date {received_on.isoformat()} and "
            f"reference “{twin.reference}” is recorded on {invoice.number} already "
            f"(payment {twin.id}, by {twin.recorded_by}): confirm to record it a second time.",
            payment=twin,
        )
    before = held_money(session, invoice)
    payment = Payment(
        invoice_id=invoice.id or 0,
        amount=amount,
        received_on=received_on,
        method=method,
        reference=reference.strip()[:200],
        source=source,
        external_id=external_id,
        payer=" ".join(payer.split())[:200],
        recorded_by=actor,
        recorded_at=now,
    )
    paid = before + amount
    # Everything beyond what is billed is owed back, however the payments interleaved.
    overpaid = min(amount, max(paid - billed, ZERO))
    payment.overpaid = overpaid
    if invoice.status != "issued":
        payment.flagged = True
        payment.flag_reason = f"Received after {invoice.number} was cancelled: refund it in full."
    elif overpaid > ZERO:
        payment.flagged = True
        payment.flag_reason = (
            f"Overpaid by {overpaid:.2f} {invoice.currency}: refund the difference."
        )
    session.add(payment)
    session.flush()
    refund: Refund | None = None
    if overpaid > ZERO:
        refund = owe_overpayment(
            session, invoice=invoice, payment=payment, amount=overpaid, today=today
        )
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
            "overpaid": f"{overpaid:.2f}",
            "duplicate_confirmed": twin is not None,
        },
    )
    session.commit()
    paid = paid - overpaid
    return PaymentResult(
        payment, paid, max(billed - paid, ZERO), confirmed, without_seat, refund=refund
    )


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


@dataclass(frozen=True)
class VoidResult:
    """A voided payment and the confirmed participants it no longer covers."""

    payment: Payment
    outstanding: Decimal
    uncovered: list[str]


def tell_uncovered(session: Session, *, invoice: Invoice) -> list[str]:
    """Tell each confirmed participant of an invoice no longer paid in full; their references.

    Their seat stays theirs (the office decides what follows); the e-mail says what is due.
    """
    due = outstanding(session, invoice)
    if due <= ZERO:
        return []
    edition = session.get(Edition, invoice.edition_id)
    assert edition is not None
    uncovered: list[str] = []
    for line in invoice_lines(session, invoice):
        application = session.get(Application, line.application_id) if line.application_id else None
        if application is None or application.status not in CONFIRMED:
            continue
        uncovered.append(application.reference)
        queue_email(
            session,
            kind="payment_voided",
            to=application.email,
            subject=N_("A payment on invoice %(number)s was corrected"),
            subject_values={"number": invoice.number},
            context={
                "application": application,
                "edition": edition,
                "invoice": invoice,
                "outstanding": due,
            },
            application_id=application.id,
        )
    return uncovered


def get_payment(session: Session, payment_id: int) -> Payment:
    """The payment with this id, or NotFound."""
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise NotFound(f"There is no payment {payment_id}.")
    return payment


def void_payment(
    session: Session,
    *,
    payment_id: int,
    reason: str,
    actor: str,
    now: datetime | None = None,
) -> VoidResult:
    """Void a payment recorded by mistake: kept and audited, out of every balance.

    What it overpaid is no longer owed back. A confirmed participant whose invoice it no
    longer covers keeps their status (the office decides) but is told, and the office sees it.
    """
    now = now or utcnow()
    reason = " ".join(reason.split())
    if not 3 <= len(reason) <= 500:
        raise InvalidInput(
            N_("The payment cannot be voided."),
            fields={"reason": N_("Say in a few words why the payment is voided.")},
        )
    payment = get_payment(session, payment_id)
    invoice = lock_invoice(session, payment.invoice_id)
    session.refresh(payment)
    if payment.voided_at is not None:
        raise Conflict(
            f"Payment {payment.id} was voided already by {payment.voided_by}: "
            f"“{payment.void_reason}”."
        )
    if payment.amount <= ZERO or payment.source not in VOIDABLE_SOURCES:
        raise Conflict(
            f"Payment {payment.id} is a refund paid out or money moved by a cancellation: "
            "correct it where it was made."
        )
    payment.voided_at = now
    payment.voided_by = actor
    payment.void_reason = reason
    session.add(payment)
    withdrawn = session.exec(
        select(Refund).where(
            Refund.payment_id == payment.id, Refund.status == RefundStatus.owed.value
        )
    ).first()
    if withdrawn is not None:
        withdrawn.status = RefundStatus.withdrawn.value
        withdrawn.kept_reason = f"Payment {payment.id} was voided: {reason}"[:500]
        session.add(withdrawn)
    session.flush()
    due = outstanding(session, invoice)
    uncovered = tell_uncovered(session, invoice=invoice)
    record_change(
        session,
        actor=actor,
        action="payment.voided",
        entity="invoice",
        entity_id=invoice.number,
        before={"payment": payment.id, "amount": f"{payment.amount:.2f}"},
        after={
            "reason": reason,
            "outstanding": f"{due:.2f}",
            "uncovered": uncovered,
            "refund_withdrawn": withdrawn.id if withdrawn is not None else None,
        },
    )
    session.commit()
    return VoidResult(payment, due, uncovered)
