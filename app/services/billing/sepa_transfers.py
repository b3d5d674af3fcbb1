"""Refunds owed by bank transfer, paid in one SEPA credit transfer file (ISO 20022 pain.001)
that the office uploads to its bank; a statement that shows them marks them paid."""

import re
from dataclasses import dataclass
from datetime import datetime

from sepaxml import SepaTransfer
from sqlmodel import Session, col, select

from app.clock import edition_today, utcnow
from app.models import Edition, Invoice, Refund, RefundMethod, RefundStatus
from app.platform.audit import record_change
from app.services.billing.card_payments import to_cents
from app.services.billing.invoices import Seller
from app.services.billing.refunds import complete_refund
from app.services.billing.statement_lines import StatementLine
from app.services.errors import Conflict

SCHEMA = "pain.001.001.03"
# The end-to-end id each transfer carries, which the bank's statement brings back.
END_TO_END = re.compile(r"\bDIPLOMAT-REFUND-(\d{1,12})\b")


@dataclass(frozen=True)
class CreditTransferFile:
    """The pain.001 document and the refunds it pays."""

    xml: bytes
    refunds: list[Refund]


def _payable(session: Session, edition_slug: str) -> list[tuple[Refund, Invoice, Edition]]:
    query = (
        select(Refund, Invoice, Edition)
        .join(Invoice, col(Invoice.id) == col(Refund.invoice_id))
        .join(Edition, col(Edition.id) == col(Invoice.edition_id))
        .where(
            Refund.status == RefundStatus.owed.value,
            Refund.method == RefundMethod.bank_transfer.value,
            Refund.iban != "",
            col(Refund.sent_at).is_(None),
            Refund.currency == "EUR",
        )
        .order_by(col(Refund.due_by), col(Refund.id))
    )
    if edition_slug:
        query = query.where(Edition.slug == edition_slug)
    return list(session.exec(query).all())


def credit_transfer_file(
    session: Session,
    *,
    seller: Seller,
    actor: str,
    edition_slug: str = "",
    now: datetime | None = None,
) -> CreditTransferFile:
    """One pain.001 paying every owed bank refund with an account and not sent yet.

    The refunds in it are marked as sent, so the next file does not pay them twice; each
    carries its end-to-end id, by which the bank's statement marks it paid.
    """
    now = now or utcnow()
    rows = _payable(session, edition_slug)
    if not rows:
        raise Conflict("No refund by bank transfer with the payee's account is waiting to be sent.")
    config = {
        "name": seller.name,
        "IBAN": "".join(seller.iban.split()).upper(),
        "BIC": "".join(seller.bic.split()).upper(),
        "batch": True,
        "currency": "EUR",
    }
    transfer = SepaTransfer(config, schema=SCHEMA, clean=True)
    for refund, invoice, edition in rows:
        payment = {
            "name": refund.account_holder or refund.payee_name,
            "IBAN": refund.iban,
            "amount": to_cents(refund.amount),
            "execution_date": edition_today(edition, now),
            "description": f"Refund {refund.reason} invoice {invoice.number}",
            "endtoend_id": f"DIPLOMAT-REFUND-{refund.id}",
        }
        if refund.bic:
            payment["BIC"] = refund.bic
        transfer.add_payment(payment)
    xml: bytes = transfer.export(validate=True)
    refunds = [refund for refund, _, _ in rows]
    for refund in refunds:
        refund.sent_at = now
        session.add(refund)
    record_change(
        session,
        actor=actor,
        action="refunds.sent",
        entity="refund",
        entity_id=",".join(str(r.id) for r in refunds)[:200],
        after={"count": len(refunds), "total": f"{sum(r.amount for r in refunds):.2f}"},
    )
    session.commit()
    return CreditTransferFile(xml, refunds)


def settle_sent_refunds(session: Session, lines: list[StatementLine], *, actor: str) -> list[int]:
    """Mark paid the sent refunds whose transfers a statement shows going out; their ids."""
    settled: list[int] = []
    for line in lines:
        found = END_TO_END.search(line.text) if line.amount < 0 else None
        refund = session.get(Refund, int(found.group(1))) if found else None
        if (
            refund is None
            or refund.status != RefundStatus.owed.value
            or refund.sent_at is None
            or -line.amount != refund.amount
        ):
            continue
        complete_refund(
            session,
            refund_id=refund.id or 0,
            completed_on=line.booked_on,
            reference=(line.bank_id or f"DIPLOMAT-REFUND-{refund.id}")[:200],
            actor=actor,
        )
        settled.append(refund.id or 0)
    return settled
