"""Invoices: issued as frozen copies with gap-free numbers, rendered from what is stored."""

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.clock import edition_today, utcnow
from app.models import (
    ApplicantGroup,
    Application,
    ApplicationStatus,
    Edition,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    Organisation,
    Payment,
    Refund,
    RefundStatus,
)
from app.money import ZERO, as_money, percent_of
from app.platform import i18n
from app.platform.audit import record_change
from app.platform.storage import Storage
from app.services.billing import verifactu
from app.services.billing.buyers import application_billing, buyer_copy, group_billing
from app.services.billing.numbering import format_number, next_number
from app.services.billing.payment_codes import creditor_reference, epc_qr_data_uri
from app.services.billing.quotes import quote_for_edition, quote_line_json
from app.services.editions.fees import Quote
from app.services.editions.vat import LineVat, line_vat
from app.services.errors import Conflict, DomainError, NotFound
from app.services.registry.countries import alpha_2, country_name

BUYER_FIELDS = (
    "name",
    "organisation",
    "attention",
    "address",
    "country",
    "tax_id",
    "email",
    "po_number",
    "buyer_reference",
    "leitweg_id",
)
INVOICE_SERIES = ("invoice", "")
CREDIT_NOTE_SERIES = ("credit_note", "CN")
# Group sizes count members who are admitted and not cancelled (DOMAIN.md, step 4).
COUNTED_IN_GROUP = (
    ApplicationStatus.admitted.value,
    ApplicationStatus.confirmed.value,
    ApplicationStatus.completed.value,
)


@dataclass(frozen=True)
class Seller:
    """Who issues the invoices and where money goes (from settings)."""

    name: str
    address: str
    tax_id: str
    bank_name: str
    iban: str
    bic: str
    due_days: int = 14
    # A Spanish issuer's VERI*FACTU records; None: an office outside Spain records none.
    tax_records: verifactu.TaxRecordSettings | None = None
    # The registered address and electronic address e-invoices carry (EN 16931 BG-5, BT-34).
    street: str = ""
    city: str = ""
    postcode: str = ""
    country_code: str = ""
    electronic_address: str = ""
    electronic_address_scheme: str = "EM"


class NothingToInvoice(DomainError):
    """Every member is invoiced already, or none is admitted."""


def due_date(edition: Edition, issue_date: date, due_days: int) -> date:
    """Issue date + N days, never after the day before the course starts (nor before issue)."""
    latest = edition.start_date - timedelta(days=1)
    return max(min(issue_date + timedelta(days=due_days), latest), issue_date)


def _seller_copy(seller: Seller) -> dict[str, Any]:
    return {
        "name": seller.name,
        "address": seller.address,
        "tax_id": seller.tax_id,
        "street": seller.street,
        "city": seller.city,
        "postcode": seller.postcode,
        "country_code": seller.country_code,
        "electronic_address": seller.electronic_address,
        "electronic_address_scheme": seller.electronic_address_scheme,
    }


def _instructions(seller: Seller, number: str) -> dict[str, Any]:
    return {
        "bank": seller.bank_name,
        "iban": seller.iban,
        "bic": seller.bic,
        "reference": number,
        "creditor_reference": creditor_reference(number),
    }


def invoiced_application_ids(session: Session, application_ids: list[int]) -> set[int]:
    """Which of these applications are on an invoice that no credit note has cancelled."""
    if not application_ids:
        return set()
    credited = select(InvoiceLine.credits_line_id).where(
        col(InvoiceLine.credits_line_id).is_not(None)
    )
    rows = session.exec(
        select(InvoiceLine.application_id)
        .join(Invoice, col(Invoice.id) == col(InvoiceLine.invoice_id))
        .where(
            col(InvoiceLine.application_id).in_(application_ids),
            col(Invoice.kind) == InvoiceKind.invoice.value,
            col(Invoice.purpose) == "registration",
            col(InvoiceLine.id).not_in(credited),
        )
    ).all()
    return {row for row in rows if row is not None}


def _line_description(application: Application, edition: Edition) -> str:
    return f"Registration fee: {application.full_name}"


def invoice_subject(edition: Edition) -> str:
    """What a registration invoice is for, in words."""
    label = f", {edition.edition_label}" if edition.edition_label else ""
    start, end = edition.start_date, edition.end_date
    return (
        f"{edition.title}{label}, {edition.place}, "
        f"{start.day} {start:%B %Y} to {end.day} {end:%B %Y}"
    )


def issue_document(
    session: Session,
    *,
    edition: Edition,
    buyer: dict[str, Any],
    lines: Sequence[tuple[Application | None, str, Decimal, list[dict[str, Any]]]],
    seller: Seller,
    actor: str,
    now: datetime,
    storage: Storage,
    group_id: int | None = None,
    kind: InvoiceKind = InvoiceKind.invoice,
    purpose: str = "registration",
    refers_to: Invoice | None = None,
    credits: list[int | None] | None = None,
) -> Invoice:
    """Number, copy and store one invoice or credit note: the way every document is issued."""
    issue_date = edition_today(edition, now)
    series, prefix = CREDIT_NOTE_SERIES if kind == InvoiceKind.credit_note else INVOICE_SERIES
    number = format_number(
        prefix, issue_date.year, next_number(session, series=series, year=issue_date.year)
    )
    vat = line_vat(tax_rate=edition.tax_rate, exemption=edition.vat_exemption)
    built = []
    for application, description, net, details in lines:
        tax = percent_of(net, edition.tax_rate)
        built.append((application, description, net, tax, net + tax, details))
    invoice = Invoice(
        number=number,
        kind=kind.value,
        purpose=purpose,
        refers_to_id=refers_to.id if refers_to else None,
        edition_id=edition.id or 0,
        group_id=group_id,
        issue_date=issue_date,
        due_date=issue_date
        if kind == InvoiceKind.credit_note
        else due_date(edition, issue_date, seller.due_days),
        issued_at=now,
        issued_by=actor,
        currency=edition.currency,
        seller=_seller_copy(seller),
        buyer=buyer,
        payment_instructions={}
        if kind == InvoiceKind.credit_note
        else _instructions(seller, number),
        tax_rate=edition.tax_rate,
        tax_note=edition.tax_note,
        net_total=sum((b[2] for b in built), ZERO),
        tax_total=sum((b[3] for b in built), ZERO),
        total=sum((b[4] for b in built), ZERO),
        subject=invoice_subject(edition),
    )
    session.add(invoice)
    session.flush()
    credited = credits or [None] * len(built)
    # A credit note repeats the VAT treatment of the lines it negates, whatever the edition
    # says today.
    originals = {
        line.id: line
        for line in session.exec(
            select(InvoiceLine).where(col(InvoiceLine.id).in_([c for c in credited if c]))
        ).all()
    }
    for position, (application, description, net, tax, gross, details) in enumerate(built, start=1):
        original = originals.get(credited[position - 1])
        line_tax = vat
        if original is not None:
            line_tax = LineVat(
                original.vat_category, original.vat_exemption_code, original.vat_exemption_reason
            )
        session.add(
            InvoiceLine(
                invoice_id=invoice.id or 0,
                position=position,
                application_id=application.id if application else None,
                credits_line_id=credited[position - 1],
                description=description,
                details=details,
                net=net,
                tax=tax,
                gross=gross,
                vat_category=line_tax.category,
                vat_exemption_code=line_tax.exemption_code,
                vat_exemption_reason=line_tax.exemption_reason,
            )
        )
    session.flush()
    # The PDF is rendered from this stored copy when first needed (the e-mail sender or a
    # download), outside the transaction that takes the number.
    invoice.pdf_key = invoice_pdf_key(invoice)
    session.add(invoice)
    if seller.tax_records is not None:
        # Written with the invoice, in its transaction: no invoice exists without its record.
        verifactu.record_issue(
            session, invoice=invoice, refers_to=refers_to, config=seller.tax_records, now=now
        )
    record_change(
        session,
        actor=actor,
        action=f"{kind.value}.issued",
        entity="invoice",
        entity_id=number,
        after={
            "total": str(invoice.total),
            "lines": len(built),
            "refers_to": refers_to.number if refers_to else None,
        },
    )
    return invoice


def _individual_buyer(session: Session, application: Application) -> dict[str, Any]:
    buyer: dict[str, Any] = {
        "name": application.full_name,
        "organisation": application.organisation_name,
        "country": country_name(application.country),
        "country_code": alpha_2(application.country),
        "email": application.email,
        "address": "",
        "po_number": "",
    }
    billing = application_billing(session, application.id or 0)
    if billing is not None:
        # Someone else pays (an employer, a city council): the invoice is theirs, for this person.
        buyer.update(buyer_copy(billing), attention=application.full_name)
    return buyer


def _details(quote: Quote) -> list[dict[str, Any]]:
    return [quote_line_json(q) for q in quote.lines]


def issue_invoice(
    session: Session,
    *,
    application: Application,
    seller: Seller,
    actor: str,
    storage: Storage,
    now: datetime | None = None,
) -> Invoice:
    """The registration invoice of an admitted participant who is not in a group."""
    now = now or utcnow()
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    if application.group_id is not None:
        raise Conflict("Group members are invoiced together on the group's invoice.")
    if invoiced_application_ids(session, [application.id or 0]):
        raise Conflict(f"{application.full_name} is on an invoice already.")
    quote = quote_for_edition(
        session,
        edition=edition,
        organisation_id=application.organisation_id,
        country=application.country,
        group_size=1,
    )
    return issue_document(
        session,
        edition=edition,
        buyer=_individual_buyer(session, application),
        lines=[
            (application, _line_description(application, edition), quote.total, _details(quote))
        ],
        seller=seller,
        actor=actor,
        now=now,
        storage=storage,
    )


def counted_group_size(session: Session, group_id: int) -> int:
    """Admitted, not cancelled members of a group (waived ones included)."""
    count: int = session.exec(
        select(func.count())
        .select_from(Application)
        .where(Application.group_id == group_id, col(Application.status).in_(COUNTED_IN_GROUP))
    ).one()
    return count


def issue_group_invoice(
    session: Session,
    *,
    edition: Edition,
    code: str,
    seller: Seller,
    actor: str,
    storage: Storage,
    purchase_order: str = "",
    billing_address: str = "",
    buyer_tax_id: str = "",
    now: datetime | None = None,
) -> Invoice:
    """One invoice to the group's organisation for its admitted members not yet invoiced."""
    now = now or utcnow()
    group = session.exec(
        select(ApplicantGroup).where(
            ApplicantGroup.code == code.strip().upper(), ApplicantGroup.edition_id == edition.id
        )
    ).first()
    if group is None:
        raise NotFound(f"There is no group {code!r} in this edition.")
    organisation = session.get(Organisation, group.organisation_id)
    assert organisation is not None
    admitted = list(
        session.exec(
            select(Application)
            .where(
                Application.group_id == group.id,
                Application.status == ApplicationStatus.admitted.value,
            )
            .order_by(col(Application.family_name), col(Application.given_name))
        ).all()
    )
    already = invoiced_application_ids(session, [a.id or 0 for a in admitted])
    to_invoice = [a for a in admitted if a.id not in already]
    if not to_invoice:
        raise NothingToInvoice("No admitted member of this group is waiting for an invoice.")
    size = counted_group_size(session, group.id or 0)
    lines = []
    for application in to_invoice:
        quote = quote_for_edition(
            session,
            edition=edition,
            organisation_id=organisation.id,
            country=organisation.country,
            group_size=size,
        )
        lines.append(
            (application, _line_description(application, edition), quote.total, _details(quote))
        )
    buyer: dict[str, Any] = {
        "name": organisation.name,
        "organisation": organisation.name,
        "country": country_name(organisation.country),
        "country_code": alpha_2(organisation.country),
        "email": group.contact_email,
        "address": billing_address,
        "po_number": purchase_order,
        "tax_id": buyer_tax_id,
        "attention": group.contact_name,
    }
    billing = group_billing(session, group.id or 0)
    if billing is not None:
        buyer.update(buyer_copy(billing))
        # What the office types on the invoice form wins over the stored buyer data.
        overrides = {
            "address": billing_address,
            "po_number": purchase_order,
            "tax_id": buyer_tax_id,
        }
        buyer.update({key: value for key, value in overrides.items() if value})
    return issue_document(
        session,
        edition=edition,
        buyer=buyer,
        lines=lines,
        seller=seller,
        actor=actor,
        now=now,
        storage=storage,
        group_id=group.id,
    )


def get_invoice(session: Session, number: str) -> Invoice:
    """The invoice or credit note with this number, or NotFound."""
    invoice = session.exec(select(Invoice).where(Invoice.number == number)).first()
    if invoice is None:
        raise NotFound(f"There is no invoice {number}.")
    return invoice


def invoice_lines(session: Session, invoice: Invoice) -> list[InvoiceLine]:
    """An invoice's lines in order."""
    return list(
        session.exec(
            select(InvoiceLine)
            .where(InvoiceLine.invoice_id == invoice.id)
            .order_by(col(InvoiceLine.position))
        ).all()
    )


def counted_payments() -> Any:
    """The condition every sum of payments carries: a voided payment is out of every balance."""
    return col(Payment.voided_at).is_(None)


def amount_paid(session: Session, invoice: Invoice) -> Decimal:
    """What has been received against an invoice, refunds paid out and voided payments left out.

    The one sum of money received on an invoice: every balance is built on it.
    """
    total = session.exec(
        select(func.coalesce(func.sum(Payment.amount), 0)).where(
            Payment.invoice_id == invoice.id, counted_payments()
        )
    ).one()
    return as_money(total)


def billed_total(session: Session, invoice: Invoice) -> Decimal:
    """An invoice's total less the credit notes that refer to it: what is still billed."""
    credited = session.exec(
        select(func.coalesce(func.sum(Invoice.total), 0)).where(
            Invoice.refers_to_id == invoice.id, Invoice.kind == InvoiceKind.credit_note.value
        )
    ).one()
    return invoice.total + as_money(credited)


def held_money(session: Session, invoice: Invoice) -> Decimal:
    """What an invoice holds towards its lines: received, less refunds still owed out of it."""
    owed = session.exec(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.invoice_id == invoice.id, Refund.status == RefundStatus.owed.value
        )
    ).one()
    return amount_paid(session, invoice) - as_money(owed)


def outstanding(session: Session, invoice: Invoice) -> Decimal:
    """What is still to pay on an invoice (nothing on a credit note or a cancelled invoice).

    A group invoice from which one member cancelled is credited for that member's lines
    only, and the money owed back to them is not the others' money: the others still owe
    what remains billed less what the invoice holds for them.
    """
    if invoice.kind != InvoiceKind.invoice.value or invoice.status != "issued":
        return ZERO
    return max(billed_total(session, invoice) - held_money(session, invoice), ZERO)


def _shown_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """A quote line under an invoice line, its amount with thousands separators."""
    shown = dict(detail)
    with contextlib.suppress(ArithmeticError):  # anything else is shown as stored
        shown["amount"] = i18n.amount(Decimal(str(detail.get("amount", ""))))
    return shown


def _epc_qr(invoice: Invoice) -> str:
    """Scan to pay, from the invoice as issued: only euro invoices with a creditor reference."""
    instructions = invoice.payment_instructions
    if invoice.currency != "EUR" or not instructions.get("creditor_reference"):
        return ""
    try:
        return epc_qr_data_uri(
            name=str(invoice.seller.get("name", "")),
            iban=str(instructions.get("iban", "")),
            bic=str(instructions.get("bic", "")),
            amount=invoice.total,
            reference=str(instructions["creditor_reference"]),
        )
    except ValueError:
        # An IBAN or amount the EPC format cannot carry: the page keeps the written details.
        return ""


def invoice_document(session: Session, invoice: Invoice) -> dict[str, Any]:
    """Plain values of a stored invoice for its PDF: never live data."""
    refers_to = session.get(Invoice, invoice.refers_to_id) if invoice.refers_to_id else None
    tax_record = verifactu.issue_record(verifactu.records_of(session, invoice))
    lines = invoice_lines(session, invoice)
    return {
        "tax_qr": {
            "image": verifactu.qr_data_uri(tax_record.qr_url),
            "url": tax_record.qr_url,
            "heading": verifactu.QR_HEADING,
            "legend": verifactu.QR_LEGEND,
            "verifiable": verifactu.QR_VERIFIABLE,
        }
        if tax_record is not None and tax_record.qr_url
        else None,
        "number": invoice.number,
        "subject": invoice.subject,
        "kind": invoice.kind,
        "purpose": invoice.purpose,
        "refers_to": refers_to.number if refers_to else None,
        "refers_to_date": refers_to.issue_date.isoformat() if refers_to else None,
        "issue_date": invoice.issue_date.isoformat(),
        "due_date": invoice.due_date.isoformat(),
        "currency": invoice.currency,
        "seller": dict(invoice.seller),
        "buyer": {key: invoice.buyer.get(key, "") for key in BUYER_FIELDS}
        | {"dir3": invoice.buyer.get("dir3") or {}},
        "instructions": dict(invoice.payment_instructions),
        "epc_qr": _epc_qr(invoice),
        "tax_rate": f"{invoice.tax_rate.normalize():f}",
        "tax_note": invoice.tax_note,
        "net_total": i18n.amount(invoice.net_total),
        "tax_total": i18n.amount(invoice.tax_total),
        "total": i18n.amount(invoice.total),
        "lines": [
            {
                "position": line.position,
                "description": line.description,
                "details": [_shown_detail(d) for d in line.details],
                "net": i18n.amount(line.net),
                "tax": i18n.amount(line.tax),
                "gross": i18n.amount(line.gross),
            }
            for line in lines
        ],
        # The law's words for each exemption applied (art. 6.1.j Real Decreto 1619/2012).
        "exemptions": sorted({ln.vat_exemption_reason for ln in lines if ln.vat_exemption_reason}),
    }


def invoice_language(session: Session, invoice: Invoice) -> str:
    """The language of an invoice's document: its participants' if they share one, else English.

    An individual invoice speaks its applicant's language; a group invoice goes to the
    organisation, so it is in English unless every member chose the same language.
    """
    languages = set(
        session.exec(
            select(Application.language)
            .join(InvoiceLine, col(InvoiceLine.application_id) == col(Application.id))
            .where(InvoiceLine.invoice_id == invoice.id)
        ).all()
    )
    return i18n.normalise_language(languages.pop()) if len(languages) == 1 else "en"


def invoice_pdf_key(invoice: Invoice) -> str:
    """Where an invoice's PDF is kept: one file per number, never replaced by other content."""
    return f"invoices/{invoice.kind}-{invoice.number}.pdf"
