"""Every euro owed back, whatever made it owed: cancellations and overpayments, one list."""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from app.clock import edition_today, utcnow
from app.models import Edition, Invoice, Refund, RefundStatus


@dataclass(frozen=True)
class RefundListed:
    """A refund with its invoice, edition and where it stands (owed, overdue, paid, ...)."""

    refund: Refund
    invoice: Invoice
    edition: Edition
    status: str


def refund_status(refund: Refund, edition: Edition, now: datetime) -> str:
    """`owed`, `overdue` (owed past its due day on the edition's calendar), `paid`, or as stored."""
    if refund.status == RefundStatus.completed.value:
        return "paid"
    if refund.status != RefundStatus.owed.value:
        return refund.status
    today = edition_today(edition, now)
    return "overdue" if refund.due_by < today else "owed"


def refunds_listed(
    session: Session,
    *,
    status: str | None = None,
    edition_slug: str = "",
    now: datetime | None = None,
) -> list[RefundListed]:
    """Refunds, the earliest due first; `status` owed (overdue included), overdue or paid."""
    now = now or utcnow()
    query = (
        select(Refund, Invoice, Edition)
        .join(Invoice, col(Invoice.id) == col(Refund.invoice_id))
        .join(Edition, col(Edition.id) == col(Invoice.edition_id))
        .order_by(col(Refund.due_by), col(Refund.id))
    )
    if edition_slug:
        query = query.where(Edition.slug == edition_slug)
    found = [
        RefundListed(refund, invoice, edition, refund_status(refund, edition, now))
        for refund, invoice, edition in session.exec(query).all()
    ]
    if status == "owed":
        return [r for r in found if r.status in ("owed", "overdue")]
    if status is not None:
        return [r for r in found if r.status == status]
    return found
