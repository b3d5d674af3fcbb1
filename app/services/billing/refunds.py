"""Money owed back: what a participant paid on an invoice, refunds owed and paid out, and
the bank details they go to."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from app.clock import edition_today, utcnow
from app.config import iban_in_sepa, iban_is_valid
from app.models import (
    Application,
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
from app.money import ZERO, as_money, round_cents
from app.platform.audit import record_change
from app.platform.i18n import N_, Message, Term, Value, stored_money, use_language
from app.platform.mail import queue_email
from app.services.billing.invoices import (
    amount_paid,
    billed_total,
    counted_payments,
    invoice_lines,
)
from app.services.errors import Conflict, InvalidInput, NotFound

REFUND_SOURCE = "refund"
# Payments to and from these countries need no BIC (the SEPA area).


class RefundAlreadyCompleted(Conflict):
    """The refund was marked as paid before."""


# Money on registration invoices


def credited_line_ids(session: Session, line_ids: list[int]) -> set[int]:
    """Which of these invoice lines a credit note has already cancelled."""
    if not line_ids:
        return set()
    rows = session.exec(
        select(InvoiceLine.credits_line_id).where(col(InvoiceLine.credits_line_id).in_(line_ids))
    ).all()
    return {row for row in rows if row is not None}


def registration_invoice(
    session: Session, application_id: int
) -> tuple[Invoice, list[InvoiceLine]] | None:
    """The registration invoice with this participant's lines that no credit note cancelled."""
    rows = session.exec(
        select(InvoiceLine, Invoice)
        .join(Invoice, col(Invoice.id) == col(InvoiceLine.invoice_id))
        .where(
            InvoiceLine.application_id == application_id,
            Invoice.kind == InvoiceKind.invoice.value,
            Invoice.purpose == "registration",
        )
        .order_by(col(Invoice.issued_at), col(Invoice.id), col(InvoiceLine.position))
    ).all()
    credited = credited_line_ids(session, [line.id or 0 for line, _ in rows])
    for line, invoice in rows:
        if line.id not in credited:
            mine = [ln for ln, inv in rows if inv.id == invoice.id and ln.id not in credited]
            return invoice, mine
    return None


def owed_refunds(
    session: Session, invoice_id: int, *, application_id: int | None = None
) -> Decimal:
    """Refunds owed out of an invoice's money and not paid out yet."""
    query = select(func.coalesce(func.sum(Refund.amount), 0)).where(
        Refund.invoice_id == invoice_id, Refund.status == RefundStatus.owed.value
    )
    if application_id is not None:
        query = query.where(Refund.application_id == application_id)
    return as_money(session.exec(query).one())


def paid_share(session: Session, invoice: Invoice, application_id: int) -> Decimal:
    """What one participant has paid on an invoice, refunds deducted.

    On a group invoice it is their line's share of what the group paid, counting only the
    lines no credit note cancelled and only the money not owed back to someone who cancelled:
    so a member's cancellation leaves every other member's share as it was. A cancelled
    participant's share is what is still owed back to them out of this invoice.
    """
    lines = invoice_lines(session, invoice)
    credited = credited_line_ids(session, [line.id or 0 for line in lines])
    active = [line for line in lines if line.id not in credited]
    mine = sum((ln.gross for ln in active if ln.application_id == application_id), ZERO)
    if mine == ZERO:
        if any(ln.application_id == application_id for ln in lines):
            return owed_refunds(session, invoice.id or 0, application_id=application_id)
        return ZERO
    active_total = sum((line.gross for line in active), ZERO)
    money = amount_paid(session, invoice) - owed_refunds(session, invoice.id or 0)
    if active_total <= ZERO:
        return ZERO
    if mine == active_total:
        return money
    return round_cents(money * mine / active_total)


def open_total(session: Session, invoice: Invoice) -> Decimal:
    """An invoice's total less the credit notes that refer to it: what is still billed."""
    return billed_total(session, invoice)


def _card_money(session: Session, invoice_id: int) -> Decimal:
    total = session.exec(
        select(func.coalesce(func.sum(Payment.amount), 0)).where(
            Payment.invoice_id == invoice_id,
            Payment.method == PaymentMethod.card.value,
            counted_payments(),
        )
    ).one()
    owed_by_card = session.exec(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.invoice_id == invoice_id,
            Refund.status == RefundStatus.owed.value,
            Refund.method == RefundMethod.card.value,
        )
    ).one()
    return as_money(total) - as_money(owed_by_card)


def refund_method(session: Session, invoice_id: int, amount: Decimal) -> str:
    """Back to the card when card money on the invoice covers the refund, else by transfer."""
    if amount > ZERO and _card_money(session, invoice_id) >= amount:
        return RefundMethod.card.value
    return RefundMethod.bank_transfer.value


def _refund_sum(refund: Refund, language: str | None) -> str:
    """A refund's sum for its mail's subject: `150.00 EUR` in English, per locale otherwise."""
    with use_language(language):
        return stored_money(f"{refund.amount:.2f}", refund.currency)


# Refunds


def refunds_of(session: Session, application_id: int) -> list[Refund]:
    """An application's refunds, oldest first."""
    return list(
        session.exec(
            select(Refund)
            .where(Refund.application_id == application_id)
            .order_by(col(Refund.created_at), col(Refund.id))
        ).all()
    )


def refund_summary(refund: Refund) -> dict[str, Any]:
    """A refund as plain values for the API (no bank details)."""
    return {
        "id": refund.id,
        "amount": f"{refund.amount:.2f}",
        "currency": refund.currency,
        "due_by": refund.due_by,
        "method": refund.method,
        "status": refund.status,
        "completed_on": refund.completed_on,
        "reference": refund.reference,
    }


def _already_paid(refund: Refund, *, with_reference: bool = True) -> Message:
    """Why a refund already paid is not marked again: when, and under which reference."""
    day: Value = (
        refund.completed_on.isoformat() if refund.completed_on else Term(N_("an earlier day"))
    )
    values: dict[str, Value] = {"id": refund.id or 0, "day": day}
    if with_reference and refund.reference:
        return Message(
            N_(
                "Refund %(id)s was already marked as paid on %(day)s (reference %(reference)s); "
                "nothing changed."
            ),
            {**values, "reference": refund.reference},
        )
    return Message(
        N_("Refund %(id)s was already marked as paid on %(day)s; nothing changed."), values
    )


def get_refund(session: Session, refund_id: int) -> Refund:
    """The refund with this id, or NotFound."""
    refund = session.get(Refund, refund_id)
    if refund is None:
        raise NotFound(Message(N_("There is no refund %(id)s."), {"id": refund_id}))
    return refund


def give_bank_details(
    session: Session,
    *,
    application: Application,
    account_holder: str,
    iban: str,
    bic: str,
) -> Refund:
    """The participant's account for a refund by bank transfer (IBAN checked, BIC outside SEPA)."""
    refund = next(
        (
            r
            for r in refunds_of(session, application.id or 0)
            if r.status == RefundStatus.owed.value
            and r.method == RefundMethod.bank_transfer.value
            and r.payee_kind == PayeeKind.person.value
        ),
        None,
    )
    if refund is None:
        raise Conflict(
            N_("No refund by bank transfer is owed to you, so no bank details are needed.")
        )
    return _store_account(
        session, refund, account_holder=account_holder, iban=iban, bic=bic, actor=application.email
    )


def _bic_is_valid(code: str) -> bool:
    from schwifty import BIC
    from schwifty.exceptions import SchwiftyException

    try:
        BIC(code)
    except SchwiftyException:
        return False
    return True


def _store_account(
    session: Session, refund: Refund, *, account_holder: str, iban: str, bic: str, actor: str
) -> Refund:
    """Check an account (IBAN and BIC by their registries; a BIC only outside SEPA) and keep it."""
    holder = " ".join(account_holder.split())
    compact = "".join(iban.split()).upper()
    code = "".join(bic.split()).upper()
    faults: dict[str, str] = {}
    if not 2 <= len(holder) <= 200:
        faults["account_holder"] = N_("Enter the name of the account holder.")
    if not iban_is_valid(compact):
        faults["iban"] = N_("This IBAN is not valid: check it against your bank statement.")
    if code and not _bic_is_valid(code):
        faults["bic"] = N_("A BIC has 8 or 11 letters and digits, e.g. CAIXESBBXXX.")
    elif not code and "iban" not in faults and not iban_in_sepa(compact):
        faults["bic"] = N_("Your bank is outside the SEPA area: enter its BIC (SWIFT code).")
    if faults:
        raise InvalidInput(N_("The bank details need a correction."), fields=faults)
    refund.account_holder = holder
    refund.iban = compact
    refund.bic = code
    session.add(refund)
    record_change(
        session,
        actor=actor,
        action="refund.bank_details",
        entity="refund",
        entity_id=refund.id or 0,
        after={"iban": f"…{compact[-4:]}", "bic": code},
    )
    session.commit()
    return refund


def office_bank_details(
    session: Session, *, refund_id: int, account_holder: str, iban: str, bic: str, actor: str
) -> Refund:
    """The payer's account, given by the office: an organisation's, or an overpayer's."""
    refund = get_refund(session, refund_id)
    if (
        refund.status != RefundStatus.owed.value
        or refund.method != RefundMethod.bank_transfer.value
    ):
        raise Conflict(f"Refund {refund.id} is not owed by bank transfer: no account is needed.")
    return _store_account(
        session, refund, account_holder=account_holder, iban=iban, bic=bic, actor=actor
    )


def keep_refund(
    session: Session, *, refund_id: int, reason: str, actor: str, now: datetime | None = None
) -> Refund:
    """Money owed back that the office keeps, with a written reason (the payer asked, say)."""
    reason = " ".join(reason.split())
    if not 3 <= len(reason) <= 500:
        raise InvalidInput(
            N_("The refund cannot be kept."),
            fields={"reason": N_("Write why the money is kept instead of paid back.")},
        )
    refund = get_refund(session, refund_id)
    changed = session.execute(
        update(Refund)
        .where(col(Refund.id) == refund.id, col(Refund.status) == RefundStatus.owed.value)
        .values(status=RefundStatus.kept.value, kept_reason=reason)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        raise Conflict(
            f"Refund {refund.id} is not owed any more ({refund.status}); nothing changed."
        )
    record_change(
        session,
        actor=actor,
        action="refund.kept",
        entity="refund",
        entity_id=refund.id or 0,
        after={"amount": f"{refund.amount:.2f}", "reason": reason},
    )
    session.commit()
    session.refresh(refund)
    return refund


def _mark_completed(
    session: Session,
    refund: Refund,
    *,
    completed_on: date,
    reference: str,
    actor: str,
    method: str,
    record_payment: bool,
    now: datetime,
) -> Refund:
    # A conditional update: of two clicks on "Mark as paid", one pays out.
    result = session.execute(
        update(Refund)
        .where(col(Refund.id) == refund.id, col(Refund.status) == RefundStatus.owed.value)
        .values(
            status=RefundStatus.completed.value,
            completed_on=completed_on,
            completed_by=actor,
            reference=reference,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        session.refresh(refund)
        raise RefundAlreadyCompleted(_already_paid(refund))
    session.refresh(refund)
    invoice = session.get(Invoice, refund.invoice_id)
    assert invoice is not None
    if record_payment:
        session.add(
            Payment(
                invoice_id=refund.invoice_id,
                amount=-refund.amount,
                received_on=completed_on,
                method=method,
                reference=reference,
                source=REFUND_SOURCE,
                recorded_by=actor,
                recorded_at=now,
            )
        )
    application = session.get(Application, refund.application_id) if refund.application_id else None
    edition = session.get(Edition, invoice.edition_id)
    assert edition is not None
    if application is not None and refund.reason == RefundReason.cancellation.value:
        queue_email(
            session,
            kind="cancellation_refund_paid",
            to=application.email,
            subject=N_("Your refund of %(sum)s is on its way"),
            subject_values={"sum": _refund_sum(refund, application.language)},
            context={"application": application, "edition": edition, "refund": refund},
            application_id=application.id,
        )
    record_change(
        session,
        actor=actor,
        action="refund.completed",
        entity="refund",
        entity_id=refund.id or 0,
        after={
            "amount": f"{refund.amount:.2f}",
            "invoice": invoice.number,
            "completed_on": completed_on.isoformat(),
            "reference": reference,
            "method": method,
        },
    )
    session.commit()
    return refund


def _check_completion(completed_on: date, reference: str, *, now: datetime, owed_on: date) -> str:
    faults: dict[str, str] = {}
    reference = reference.strip()
    # The latest calendar day anywhere: a refund made today in any zone is not "in the future".
    if completed_on > (now + timedelta(hours=14)).date():
        faults["completed_on"] = N_("The day the refund was paid cannot be in the future.")
    # A transfer cannot have paid the refund before the office's day it became owed (a
    # mistyped year, say): the books would show the money going out first.
    elif completed_on < owed_on:
        faults["completed_on"] = N_(
            "The day the refund was paid cannot be before the cancellation that made it owed."
        )
    if not reference:
        faults["reference"] = N_("Enter the bank's reference of the transfer.")
    elif len(reference) > 200:
        faults["reference"] = N_("The reference is at most 200 characters.")
    if faults:
        raise InvalidInput(N_("The refund cannot be marked as paid."), fields=faults)
    return reference


def _owed_on(session: Session, refund: Refund) -> date:
    """The day a refund became owed, on the clock of the edition's office."""
    invoice = session.get(Invoice, refund.invoice_id)
    edition = session.get(Edition, invoice.edition_id) if invoice else None
    zone = ZoneInfo(edition.timezone) if edition else UTC
    return refund.created_at.astimezone(zone).date()


def complete_refund(
    session: Session,
    *,
    refund_id: int,
    completed_on: date,
    reference: str,
    actor: str,
    now: datetime | None = None,
) -> Refund:
    """An administrator paid a bank refund: a negative payment on the original invoice."""
    now = now or utcnow()
    refund = get_refund(session, refund_id)
    reference = _check_completion(
        completed_on, reference, now=now, owed_on=_owed_on(session, refund)
    )
    if refund.status == RefundStatus.completed.value:
        raise RefundAlreadyCompleted(_already_paid(refund, with_reference=False))
    if refund.method == RefundMethod.card.value:
        raise Conflict(
            Message(
                N_(
                    "Refund %(id)s goes back to the card through Stripe; it is marked as paid "
                    "when Stripe confirms it."
                ),
                {"id": refund.id or 0},
            )
        )
    return _mark_completed(
        session,
        refund,
        completed_on=completed_on,
        reference=reference,
        actor=actor,
        method=PaymentMethod.bank_transfer.value,
        record_payment=True,
        now=now,
    )


def refund_by_card(
    session: Session,
    *,
    refund_id: int,
    completed_on: date,
    reference: str,
    actor: str = "stripe",
    payment_recorded: bool = False,
    now: datetime | None = None,
) -> Refund:
    """The hook for card refunds: call it once Stripe has paid a card refund back.

    For the Stripe module: after the commit of a cancellation, list `card_refunds_owed`, create
    each refund at Stripe against the card payment of `refund.invoice_id` for `refund.amount`,
    and call this with Stripe's refund id as `reference`. When the `charge.refunded` webhook has
    already recorded the negative payment, pass `payment_recorded=True` so it is not counted
    twice. Completing twice raises RefundAlreadyCompleted.
    """
    now = now or utcnow()
    refund = get_refund(session, refund_id)
    if refund.method != RefundMethod.card.value:
        raise Conflict(
            Message(
                N_("Refund %(id)s is paid by bank transfer, not back to a card."),
                {"id": refund.id or 0},
            )
        )
    return _mark_completed(
        session,
        refund,
        completed_on=completed_on,
        reference=reference.strip()[:200] or "stripe",
        actor=actor,
        method=PaymentMethod.card.value,
        record_payment=not payment_recorded,
        now=now,
    )


def card_refunds_owed(session: Session) -> list[Refund]:
    """Card refunds waiting to be sent back through Stripe, oldest first."""
    return list(
        session.exec(
            select(Refund)
            .where(
                Refund.status == RefundStatus.owed.value,
                Refund.method == RefundMethod.card.value,
            )
            .order_by(col(Refund.due_by), col(Refund.id))
        ).all()
    )


@dataclass(frozen=True)
class RefundRow:
    """An owed refund with who it is for and where it stands."""

    refund: Refund
    # None for an overpayment of a group invoice: the payee is its organisation.
    application: Application | None
    edition: Edition
    invoice: Invoice
    days_left: int

    @property
    def overdue(self) -> bool:
        """Past its due date."""
        return self.days_left < 0


@dataclass(frozen=True)
class RefundsDue:
    """Owed refunds: overdue, due within a week, due later; and the latest paid out."""

    overdue: list[RefundRow]
    this_week: list[RefundRow]
    later: list[RefundRow]
    completed: list[RefundRow]


def refunds_due(session: Session, *, now: datetime | None = None) -> RefundsDue:
    """Owed refunds sorted by how soon they are due (each counted on its edition's calendar)."""
    now = now or utcnow()
    rows = session.exec(
        select(Refund, Application, Edition, Invoice)
        .join(Invoice, col(Invoice.id) == col(Refund.invoice_id))
        .join(Edition, col(Edition.id) == col(Invoice.edition_id))
        .outerjoin(Application, col(Application.id) == col(Refund.application_id))
        .where(col(Refund.status).in_([RefundStatus.owed.value, RefundStatus.completed.value]))
        .order_by(col(Refund.due_by), col(Refund.id))
    ).all()
    overdue: list[RefundRow] = []
    this_week: list[RefundRow] = []
    later: list[RefundRow] = []
    completed: list[RefundRow] = []
    for refund, application, edition, invoice in rows:
        today = edition_today(edition, now)
        row = RefundRow(refund, application, edition, invoice, (refund.due_by - today).days)
        if refund.status == RefundStatus.completed.value:
            completed.append(row)
        elif row.days_left < 0:
            overdue.append(row)
        elif row.days_left < 7:
            this_week.append(row)
        else:
            later.append(row)
    completed.sort(
        key=lambda r: (r.refund.completed_on or date.min, r.refund.id or 0), reverse=True
    )
    return RefundsDue(overdue, this_week, later, completed[:20])
