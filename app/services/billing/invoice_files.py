"""The files of an invoice: its PDF, a Factur-X invoice with the CII e-invoice inside, and
the PDF or UBL file attached to an e-mail, each rendered from the stored copy on first use."""

from typing import Any

from sqlmodel import Session

from app.models import Invoice
from app.platform import i18n
from app.platform.pdf import render_pdf
from app.platform.storage import Storage
from app.services.billing import einvoices
from app.services.billing.einvoices import ensure_invoice_ubl
from app.services.billing.invoices import (
    get_invoice,
    invoice_document,
    invoice_language,
    invoice_pdf_key,
)


def render_invoice_pdf(session: Session, invoice: Invoice) -> bytes:
    """The invoice's PDF, from the stored copy, in its participants' language: a Factur-X
    invoice (PDF/A-3 with its CII e-invoice embedded) that people and software read alike."""
    language = invoice_language(session, invoice)
    with i18n.use_language(language):
        document = invoice_document(session, invoice)
    pdf = render_pdf("invoice.html", document, language=language, pdf_variant="pdf/a-3b")
    try:
        cii = einvoices.invoice_cii(session, invoice)
    except einvoices.NotAnEInvoice:
        # Issued before the seller's registered address was kept: a plain PDF/A-3, as then.
        return pdf
    return einvoices.factur_x(pdf, cii, language=language)


def ensure_invoice_pdf(session: Session, invoice: Invoice, storage: Storage) -> bytes:
    """The stored PDF of an invoice, rendered from the frozen copy the first time it is asked for.

    Two renders of the same stored invoice give the same document, so a race between two
    first requests is harmless.
    """
    key = invoice.pdf_key or invoice_pdf_key(invoice)
    if storage.exists(key):
        return storage.get(key)
    pdf = render_invoice_pdf(session, invoice)
    storage.put(key, pdf)
    return pdf


def render_invoice_attachment(
    session: Session, attachment: dict[str, Any], storage: Storage
) -> None:
    """Store the PDF or the UBL file of an invoice attached to an e-mail (both are rendered on
    first use)."""
    number = attachment.get("invoice_number")
    if number:
        invoice = get_invoice(session, number)
        if attachment["key"].endswith(".xml"):
            ensure_invoice_ubl(session, invoice, storage)
        else:
            ensure_invoice_pdf(session, invoice, storage)
