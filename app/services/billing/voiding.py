"""Voiding an invoice issued in error: it stays on file, marked void, with its annulment record."""

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from app.clock import utcnow
from app.models import Invoice, InvoiceKind, Payment
from app.platform.audit import record_change
from app.services.billing import verifactu
from app.services.errors import Conflict

VOIDED = "voided"


def void_invoice(
    session: Session,
    *,
    invoice: Invoice,
    reason: str,
    actor: str,
    tax_records: verifactu.TaxRecordSettings | None,
    now: datetime | None = None,
) -> Invoice:
    """Void an unpaid invoice that should never have been issued (never a credit note).

    An invoice that money or a credit note has touched was a real supply: it is corrected
    with a credit note instead. A Spanish issuer's annulment record is written in the same
    transaction (Orden HAC/1177/2024, art. 10: *registro de anulación*).
    """
    now = now or utcnow()
    if invoice.kind != InvoiceKind.invoice.value:
        raise verifactu.NotVoidable("A credit note is not voided; issue a new invoice instead.")
    if invoice.status != "issued":
        raise verifactu.NotVoidable(f"Invoice {invoice.number} is {invoice.status} already.")
    if not reason.strip():
        raise Conflict("Say why the invoice is voided.")
    paid = session.exec(
        select(func.count()).select_from(Payment).where(Payment.invoice_id == invoice.id)
    ).one()
    referred = session.exec(
        select(func.count()).select_from(Invoice).where(Invoice.refers_to_id == invoice.id)
    ).one()
    if paid or referred:
        raise verifactu.NotVoidable(
            f"Invoice {invoice.number} has payments or credit notes: correct it with a credit "
            "note instead."
        )
    invoice.status = VOIDED
    session.add(invoice)
    if tax_records is not None:
        verifactu.record_annulment(session, invoice=invoice, config=tax_records, now=now)
    record_change(
        session,
        actor=actor,
        action="invoice.voided",
        entity="invoice",
        entity_id=invoice.number,
        after={"status": VOIDED, "reason": reason.strip()[:500]},
    )
    return invoice
