"""An edition's money at a glance: invoiced, received, outstanding, overdue, refunds owed."""

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from app.clock import edition_today
from app.models import (
    ApplicantGroup,
    Application,
    ApplicationStatus,
    Edition,
    Invoice,
    InvoiceKind,
    Organisation,
    Payment,
    Refund,
    RefundStatus,
)
from app.money import ZERO, as_money
from app.services.billing.invoices import counted_payments, invoiced_application_ids

# The cancellation service moves money it retains from the cancelled invoice to the fee
# invoice with a pair of payments of this source: they change what each invoice has paid,
# but no money came in or went out.
TRANSFER_SOURCE = "transfer"

RegisterFilter = Literal["open", "paid", "overdue", "all"]
REGISTER_FILTERS: tuple[RegisterFilter, ...] = ("open", "overdue", "paid", "all")


@dataclass(frozen=True)
class InvoiceRow:
    """One invoice or credit note with what is paid on it, as of a day."""

    invoice: Invoice
    today: date
    received: Decimal = ZERO
    refunded: Decimal = ZERO
    transferred: Decimal = ZERO
    credited: Decimal = ZERO
    # Money owed back that the office keeps, with a written reason: no longer owed.
    kept: Decimal = ZERO

    @property
    def paid(self) -> Decimal:
        """Received, less refunds paid out, plus or minus money moved between invoices."""
        return self.received - self.refunded + self.transferred

    @property
    def payable(self) -> Decimal:
        """What the buyer owes in all: the total less credit notes (nothing once cancelled)."""
        if not self.is_invoice or self.invoice.status != "issued":
            return ZERO
        return max(self.invoice.total - self.credited, ZERO)

    @property
    def outstanding(self) -> Decimal:
        """What is still to pay (nothing on a credit note or a cancelled invoice)."""
        return max(self.payable - self.paid, ZERO)

    @property
    def is_invoice(self) -> bool:
        """An invoice, not a credit note."""
        return self.invoice.kind == InvoiceKind.invoice.value

    @property
    def is_open(self) -> bool:
        """Issued, not cancelled, and not paid in full."""
        return self.outstanding > ZERO

    @property
    def days_overdue(self) -> int:
        """Days past the due date while something is outstanding; 0 otherwise."""
        if not self.is_open or self.invoice.due_date >= self.today:
            return 0
        return (self.today - self.invoice.due_date).days

    @property
    def refund_owed(self) -> Decimal:
        """Money held that is not owed to us: an overpayment, or anything kept on a cancelled
        invoice."""
        if not self.is_invoice:
            return ZERO
        return max(self.paid - self.payable - self.kept, ZERO)

    @property
    def buyer(self) -> str:
        """The buyer's name as invoiced."""
        buyer = self.invoice.buyer
        return str(buyer.get("name") or buyer.get("organisation") or "")

    @property
    def badges(self) -> list[str]:
        """Status words for the register: credit note, cancelled, paid, part paid, overdue, ..."""
        if not self.is_invoice:
            return ["credit note"]
        words = []
        if self.invoice.status != "issued":
            words.append("cancelled")
        else:
            if self.credited:
                words.append("part credited")
            if self.outstanding == ZERO:
                words.append("paid")
            elif self.paid > ZERO:
                words.append("part paid")
            else:
                words.append("unpaid")
        if self.days_overdue:
            words.append("overdue")
        if self.refund_owed > ZERO:
            words.append("refund owed")
        return words


@dataclass(frozen=True)
class FlaggedPayment:
    """A payment someone must act on: an overpayment, late money, a payer without a seat."""

    payment: Payment
    invoice_number: str
    buyer: str


@dataclass(frozen=True)
class MoneyOverview:
    """An edition's money in its currency."""

    currency: str
    today: date
    invoiced_gross: Decimal
    credited: Decimal
    received: Decimal
    refunded: Decimal
    outstanding: Decimal
    refunds_owed: Decimal
    overdue: list[InvoiceRow]
    flagged: list[FlaggedPayment]
    invoice_count: int

    @property
    def invoiced(self) -> Decimal:
        """Invoice totals minus credit notes."""
        return self.invoiced_gross - self.credited

    @property
    def overdue_total(self) -> Decimal:
        """What the overdue invoices still owe."""
        return sum((row.outstanding for row in self.overdue), ZERO)

    @property
    def net_received(self) -> Decimal:
        """Received minus refunds paid out."""
        return self.received - self.refunded


@dataclass(frozen=True)
class GroupToInvoice:
    """A group with admitted members who are on no invoice yet."""

    group: ApplicantGroup
    organisation: str
    waiting: int


def _payment_sums(session: Session, *condition: Any) -> dict[int, tuple[Decimal, Decimal, Decimal]]:
    """(received, refunded, transferred) per invoice, for the invoices the condition picks."""
    real = col(Payment.source) != TRANSFER_SOURCE
    amount = col(Payment.amount)
    rows = session.exec(
        select(
            Payment.invoice_id,
            func.sum(case(((amount > 0) & real, amount), else_=0)),
            func.sum(case(((amount < 0) & real, -amount), else_=0)),
            func.sum(case((~real, amount), else_=0)),
        )
        .join(Invoice, col(Invoice.id) == col(Payment.invoice_id))
        .where(counted_payments(), *condition)
        .group_by(col(Payment.invoice_id))
    ).all()
    return {
        invoice_id: (as_money(received), as_money(refunded), as_money(transferred))
        for invoice_id, received, refunded, transferred in rows
    }


def _credited(invoices: Sequence[Invoice]) -> dict[int, Decimal]:
    """How much credit notes take off each invoice they refer to (a positive amount)."""
    credited: dict[int, Decimal] = {}
    for invoice in invoices:
        if invoice.kind == InvoiceKind.credit_note.value and invoice.refers_to_id:
            credited[invoice.refers_to_id] = (
                credited.get(invoice.refers_to_id, ZERO) - invoice.total
            )
    return credited


def _kept(session: Session, *condition: Any) -> dict[int, Decimal]:
    """Refunds kept with a reason, per invoice, for the invoices the condition picks."""
    rows = session.exec(
        select(Refund.invoice_id, func.sum(Refund.amount))
        .join(Invoice, col(Invoice.id) == col(Refund.invoice_id))
        .where(Refund.status == RefundStatus.kept.value, *condition)
        .group_by(col(Refund.invoice_id))
    ).all()
    return {invoice_id: as_money(amount) for invoice_id, amount in rows}


def _row(
    invoice: Invoice,
    today: date,
    sums: dict[int, tuple[Decimal, Decimal, Decimal]],
    credited: dict[int, Decimal],
    kept: dict[int, Decimal] | None = None,
) -> InvoiceRow:
    received, refunded, transferred = sums.get(invoice.id or 0, (ZERO, ZERO, ZERO))
    return InvoiceRow(
        invoice,
        today,
        received=received,
        refunded=refunded,
        transferred=transferred,
        credited=credited.get(invoice.id or 0, ZERO),
        kept=(kept or {}).get(invoice.id or 0, ZERO),
    )


def invoice_rows(session: Session, edition: Edition, *, today: date) -> list[InvoiceRow]:
    """Every invoice and credit note of an edition with its payments summed, newest first.

    Two queries however many invoices: the invoices, and the payment sums grouped by invoice.
    """
    # Refunds kept with a reason come with each invoice, in the same query.
    kept_sum = (
        select(func.coalesce(func.sum(Refund.amount), 0))
        .where(Refund.invoice_id == Invoice.id, Refund.status == RefundStatus.kept.value)
        .scalar_subquery()
    )
    found = session.exec(
        select(Invoice, kept_sum)
        .where(Invoice.edition_id == edition.id)
        .order_by(col(Invoice.issue_date).desc(), col(Invoice.number).desc())
    ).all()
    invoices = [invoice for invoice, _ in found]
    kept = {invoice.id or 0: as_money(amount) for invoice, amount in found}
    sums = _payment_sums(session, Invoice.edition_id == edition.id)
    credited = _credited(invoices)
    return [_row(invoice, today, sums, credited, kept) for invoice in invoices]


def invoice_row(session: Session, invoice: Invoice, *, today: date) -> InvoiceRow:
    """One invoice with its payments and credit notes summed, as the register shows it."""
    credit_notes = session.exec(select(Invoice).where(Invoice.refers_to_id == invoice.id)).all()
    sums = _payment_sums(session, col(Invoice.id) == invoice.id)
    kept = _kept(session, col(Invoice.id) == invoice.id)
    return _row(invoice, today, sums, _credited(credit_notes), kept)


def payable_rows(
    session: Session, *, numbers: Collection[str], today: date
) -> dict[str, InvoiceRow]:
    """Every issued invoice, and those with these numbers, summed as the register sums them.

    Three queries however many invoices: the invoices, payment sums, and credit notes.
    """
    picked = col(Invoice.number).in_(list(numbers)) | (
        (col(Invoice.kind) == InvoiceKind.invoice.value) & (col(Invoice.status) == "issued")
    )
    invoices = session.exec(select(Invoice).where(picked)).all()
    sums = _payment_sums(session, picked)
    credit_notes = session.exec(
        select(Invoice).where(
            col(Invoice.kind) == InvoiceKind.credit_note.value,
            col(Invoice.refers_to_id).in_(select(Invoice.id).where(picked)),
        )
    ).all()
    credited = _credited(credit_notes)
    return {invoice.number: _row(invoice, today, sums, credited) for invoice in invoices}


def invoice_register(
    session: Session, edition: Edition, *, status: RegisterFilter, today: date | None = None
) -> tuple[list[InvoiceRow], dict[RegisterFilter, int]]:
    """The edition's invoices passing a filter, with the count behind every filter."""
    rows = invoice_rows(session, edition, today=today or edition_today(edition))
    tests: dict[RegisterFilter, Callable[[InvoiceRow], bool]] = {
        "open": lambda r: r.is_open,
        "overdue": lambda r: r.days_overdue > 0,
        "paid": lambda r: r.is_invoice and r.invoice.status == "issued" and not r.is_open,
        "all": lambda r: True,
    }
    counts: dict[RegisterFilter, int] = {
        name: sum(1 for row in rows if tests[name](row)) for name in REGISTER_FILTERS
    }
    return [row for row in rows if tests[status](row)], counts


def edition_money(
    session: Session, edition: Edition, *, today: date | None = None
) -> MoneyOverview:
    """Invoiced, received, refunded, outstanding, overdue and flagged money of an edition.

    Three queries however many invoices: invoices, payment sums, flagged payments.
    """
    today = today or edition_today(edition)
    rows = invoice_rows(session, edition, today=today)
    flagged = session.exec(
        select(Payment, Invoice.number, Invoice.buyer)
        .join(Invoice, col(Invoice.id) == col(Payment.invoice_id))
        .where(
            Invoice.edition_id == edition.id,
            col(Payment.flagged),
            col(Payment.resolved_at).is_(None),
            counted_payments(),
        )
        .order_by(col(Payment.received_on), col(Payment.id))
    ).all()
    invoices = [row for row in rows if row.is_invoice]
    credit_notes = [row for row in rows if not row.is_invoice]
    overdue = sorted(
        (row for row in rows if row.days_overdue > 0),
        key=lambda row: (row.invoice.due_date, row.invoice.number),
    )
    return MoneyOverview(
        currency=edition.currency,
        today=today,
        invoiced_gross=sum((row.invoice.total for row in invoices), ZERO),
        credited=-sum((row.invoice.total for row in credit_notes), ZERO),
        received=sum((row.received for row in rows), ZERO),
        refunded=sum((row.refunded for row in rows), ZERO),
        outstanding=sum((row.outstanding for row in rows), ZERO),
        refunds_owed=sum((row.refund_owed for row in rows), ZERO),
        overdue=overdue,
        flagged=[
            FlaggedPayment(
                payment=payment,
                invoice_number=number,
                buyer=str(buyer.get("name") or buyer.get("organisation") or ""),
            )
            for payment, number, buyer in flagged
        ],
        invoice_count=len(invoices),
    )


def groups_to_invoice(session: Session, edition: Edition) -> list[GroupToInvoice]:
    """The edition's groups with admitted members waiting for the group invoice."""
    rows = session.exec(
        select(Application.id, ApplicantGroup)
        .join(ApplicantGroup, col(ApplicantGroup.id) == col(Application.group_id))
        .where(
            Application.edition_id == edition.id,
            Application.status == ApplicationStatus.admitted.value,
        )
    ).all()
    invoiced = invoiced_application_ids(session, [app_id for app_id, _ in rows if app_id])
    waiting: dict[int, tuple[ApplicantGroup, int]] = {}
    for app_id, group in rows:
        if app_id in invoiced:
            continue
        _, count = waiting.get(group.id or 0, (group, 0))
        waiting[group.id or 0] = (group, count + 1)
    names = dict(
        session.exec(
            select(Organisation.id, Organisation.name).where(
                col(Organisation.id).in_([g.organisation_id for g, _ in waiting.values()])
            )
        ).all()
    )
    return sorted(
        (
            GroupToInvoice(group, names.get(group.organisation_id, ""), count)
            for group, count in waiting.values()
        ),
        key=lambda g: (g.organisation.casefold(), g.group.code),
    )
