"""The JSON API for invoices, credit notes and payments."""

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session

from app.models import Invoice, PaymentMethod, TaxRecord
from app.platform.stored_messages import MESSAGES_KEY
from app.services.billing import einvoices, invoice_files, payments, verifactu
from app.services.billing import invoices as invoicing
from app.services.editions.editions import get_edition
from app.services.errors import NotFound
from app.services.schemas import DateIn, MoneyIn, MoneyOut
from app.web.dependencies import ApiAdmin, SellerDep, SessionDep, StorageDep
from app.web.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["invoices"])


class InvoiceLineOut(BaseModel):
    """One line of an invoice."""

    position: int
    application_id: int | None
    description: str
    details: list[dict[str, Any]]
    net: MoneyOut
    tax: MoneyOut
    gross: MoneyOut
    # EN 16931 VAT category (S standard, E exempt) and, when exempt, the VATEX code and words.
    vat_category: str
    vat_exemption_code: str
    vat_exemption_reason: str

    @field_validator("details")
    @classmethod
    def _english_details(cls, details: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The API answers the English label and reason; the kept messages are for pages."""
        return [{k: v for k, v in d.items() if k != MESSAGES_KEY} for d in details]


class PaymentOut(BaseModel):
    """A payment recorded against an invoice."""

    id: int
    amount: MoneyOut
    received_on: date
    method: str
    reference: str
    source: str
    flagged: bool
    flag_reason: str


class InvoiceOut(BaseModel):
    """An invoice or credit note as issued, with what has been paid."""

    number: str
    kind: str
    purpose: str
    refers_to: str | None
    issue_date: date
    due_date: date
    currency: str
    seller: dict[str, Any]
    buyer: dict[str, Any]
    payment_instructions: dict[str, Any]
    tax_rate: MoneyOut
    tax_note: str
    net_total: MoneyOut
    tax_total: MoneyOut
    total: MoneyOut
    status: str
    lines: list[InvoiceLineOut]
    payments: list[PaymentOut]
    amount_paid: MoneyOut
    outstanding: MoneyOut


class PaymentIn(BaseModel):
    """Money received for an invoice."""

    model_config = ConfigDict(extra="forbid")

    amount: MoneyIn = Field(gt=0)
    received_on: DateIn
    method: PaymentMethod
    reference: str = Field(default="", max_length=200)
    # The same transfer (amount, value date, reference) recorded before is refused (409)
    # unless the caller confirms it is a second one.
    confirm_duplicate: bool = False


class PaymentRecorded(BaseModel):
    """The result of recording a payment."""

    payment: PaymentOut
    amount_paid: MoneyOut
    outstanding: MoneyOut
    confirmed: list[str]
    without_seat: list[str]


class GroupInvoiceIn(BaseModel):
    """Optional billing details a city's finance department asks for."""

    model_config = ConfigDict(extra="forbid")

    purchase_order: str = Field(default="", max_length=100)
    billing_address: str = Field(default="", max_length=500)
    buyer_tax_id: str = Field(default="", max_length=40)


def _payment(payment: Any) -> dict[str, Any]:
    return {
        "id": payment.id,
        "amount": payment.amount,
        "received_on": payment.received_on,
        "method": payment.method,
        "reference": payment.reference,
        "source": payment.source,
        "flagged": payment.flagged,
        "flag_reason": payment.flag_reason,
    }


def invoice_out(session: Session, invoice: Invoice) -> InvoiceOut:
    """The API view of a stored invoice."""
    refers_to = session.get(Invoice, invoice.refers_to_id) if invoice.refers_to_id else None
    paid = invoicing.amount_paid(session, invoice)
    return InvoiceOut.model_validate(
        {
            **invoice.model_dump(
                include={
                    "number",
                    "kind",
                    "purpose",
                    "issue_date",
                    "due_date",
                    "currency",
                    "seller",
                    "buyer",
                    "payment_instructions",
                    "tax_rate",
                    "tax_note",
                    "net_total",
                    "tax_total",
                    "total",
                    "status",
                }
            ),
            "refers_to": refers_to.number if refers_to else None,
            "lines": [line.model_dump() for line in invoicing.invoice_lines(session, invoice)],
            "payments": [_payment(p) for p in payments.payments_for(session, invoice)],
            "amount_paid": paid,
            "outstanding": invoicing.outstanding(session, invoice),
        }
    )


@router.get("/invoices/{number}", response_model=InvoiceOut)
def get_invoice(number: str, session: SessionDep, admin: ApiAdmin) -> InvoiceOut:
    """An invoice or credit note with its lines, payments and balance."""
    return invoice_out(session, invoicing.get_invoice(session, number))


@router.get(
    "/invoices/{number}/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def invoice_pdf(number: str, session: SessionDep, storage: StorageDep, admin: ApiAdmin) -> Response:
    """The PDF of an invoice, as stored when it was issued."""
    invoice = invoicing.get_invoice(session, number)
    invoice_files.ensure_invoice_pdf(session, invoice, storage)
    return pdf_response(invoice, storage)


@router.get(
    "/invoices/{number}/ubl",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}, **error_responses(409)},
)
def invoice_ubl(number: str, session: SessionDep, admin: ApiAdmin) -> Response:
    """The invoice or credit note as a UBL 2.1 EN 16931 e-invoice, from the stored copy."""
    return ubl_response(session, invoicing.get_invoice(session, number))


def ubl_response(session: Session, invoice: Invoice) -> Response:
    """A stored invoice's UBL e-invoice as a download."""
    return Response(
        einvoices.invoice_ubl(session, invoice),
        media_type="application/xml",
        headers={
            "Content-Disposition": f'attachment; filename="{einvoices.ubl_filename(invoice)}"'
        },
    )


def pdf_response(invoice: Invoice, storage: Any) -> Response:
    """A stored invoice PDF as a download."""
    return Response(
        storage.get(invoice.pdf_key or ""),
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{invoice.kind}-{invoice.number}.pdf"'
        },
    )


@router.post(
    "/invoices/{number}/payments",
    response_model=PaymentRecorded,
    status_code=status.HTTP_201_CREATED,
)
def record_payment(
    number: str, data: PaymentIn, session: SessionDep, admin: ApiAdmin
) -> dict[str, Any]:
    """Record a payment; full payment confirms, an overpayment is flagged for refund."""
    result = payments.record_payment(
        session,
        invoice_number=number,
        amount=data.amount,
        received_on=data.received_on,
        method=data.method.value,
        reference=data.reference,
        actor=admin.email,
        confirm_duplicate=data.confirm_duplicate,
    )
    return {
        "payment": _payment(result.payment),
        "amount_paid": result.paid,
        "outstanding": result.outstanding,
        "confirmed": result.confirmed,
        "without_seat": result.without_seat,
    }


@router.post(
    "/editions/{slug}/groups/{code}/invoice",
    response_model=InvoiceOut,
    status_code=status.HTTP_201_CREATED,
)
def group_invoice(
    slug: str,
    code: str,
    session: SessionDep,
    storage: StorageDep,
    seller: SellerDep,
    admin: ApiAdmin,
    data: Annotated[GroupInvoiceIn | None, Body()] = None,
) -> InvoiceOut:
    """One invoice to the group's organisation for its admitted members not yet invoiced."""
    details = data or GroupInvoiceIn()
    invoice = invoicing.issue_group_invoice(
        session,
        edition=get_edition(session, slug),
        code=code,
        seller=seller,
        actor=admin.email,
        storage=storage,
        purchase_order=details.purchase_order,
        billing_address=details.billing_address,
        buyer_tax_id=details.buyer_tax_id.strip(),
    )
    session.commit()
    return invoice_out(session, invoice)


class TaxRecordPrevious(BaseModel):
    """The record a VERI*FACTU record is chained to."""

    number: str
    issue_date: str
    hash: str


class TaxRecordAnswer(BaseModel):
    """What the AEAT answered about a record."""

    code: str
    text: str
    csv: str


class TaxRecordSubmissionOut(BaseModel):
    """Where a record stands with the AEAT."""

    status: str
    answer: TaxRecordAnswer | None = None


class TaxRecordOut(BaseModel):
    """A VERI*FACTU record with the fields its fingerprint is computed from."""

    record_type: str
    issuer_tax_id: str
    number: str
    issue_date: str
    invoice_type: str | None
    tax_total: str | None
    total: str | None
    previous: TaxRecordPrevious | None
    generated_at: str
    hash: str
    qr_url: str | None
    xml_url: str
    submission: TaxRecordSubmissionOut | None


class InvoiceTaxRecordsOut(TaxRecordOut):
    """An invoice's latest VERI*FACTU record, and all of its records oldest first."""

    records: list[TaxRecordOut]


def tax_record_out(session: Session, record: TaxRecord) -> TaxRecordOut:
    """The API view of one record: amounts and dates exactly as fingerprinted."""
    alta = record.record_type == verifactu.ALTA
    submission = verifactu.submission_of(session, record)
    answered = submission is not None and submission.status not in ("pending", "sending")
    return TaxRecordOut(
        record_type=record.record_type,
        issuer_tax_id=record.issuer_tax_id,
        number=record.invoice_number,
        issue_date=verifactu.aeat_date(record.issue_date),
        invoice_type=record.invoice_type if alta else None,
        tax_total=verifactu.aeat_amount(record.tax_total)
        if alta and record.tax_total is not None
        else None,
        total=verifactu.aeat_amount(record.total) if alta and record.total is not None else None,
        previous=TaxRecordPrevious(
            number=record.previous_number,
            issue_date=verifactu.aeat_date(record.previous_issue_date),
            hash=record.previous_hash,
        )
        if record.previous_hash and record.previous_issue_date is not None
        else None,
        generated_at=record.generated_at,
        hash=record.hash,
        qr_url=record.qr_url or None,
        xml_url=f"/api/v1/invoices/{record.invoice_number}/verifactu/{record.record_type}.xml",
        submission=TaxRecordSubmissionOut(
            status=submission.status,
            answer=TaxRecordAnswer(
                code=submission.error_code, text=submission.error_text, csv=submission.csv
            )
            if answered
            else None,
        )
        if submission is not None
        else None,
    )


def _tax_records(session: Session, number: str) -> list[TaxRecord]:
    invoice = invoicing.get_invoice(session, number)
    records = verifactu.records_of(session, invoice)
    if not records:
        raise NotFound(f"Invoice {number} has no VERI*FACTU record.")
    return records


@router.get("/invoices/{number}/verifactu", response_model=InvoiceTaxRecordsOut)
def invoice_tax_record(number: str, session: SessionDep, admin: ApiAdmin) -> InvoiceTaxRecordsOut:
    """An invoice's VERI*FACTU record (its annulment, if voided) and all its records."""
    records = [tax_record_out(session, r) for r in _tax_records(session, number)]
    return InvoiceTaxRecordsOut(**records[-1].model_dump(), records=records)


@router.get(
    "/invoices/{number}/verifactu/{record_type}.xml",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
def invoice_tax_record_xml(
    number: str, record_type: Literal["alta", "anulacion"], session: SessionDep, admin: ApiAdmin
) -> Response:
    """One VERI*FACTU record as the AEAT's XML (a submission holding just that record)."""
    found = [r for r in _tax_records(session, number) if r.record_type == record_type]
    if not found:
        raise NotFound(f"Invoice {number} has no {record_type} record.")
    return Response(verifactu.record_xml(found[-1]), media_type="application/xml")
