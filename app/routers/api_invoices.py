"""The JSON API for invoices, credit notes and payments."""

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from app.models import Invoice, PaymentMethod
from app.services.billing import invoices as invoicing
from app.services.billing import payments
from app.services.editions.editions import get_edition
from app.services.schemas import DateIn, MoneyIn, MoneyOut
from app.web.dependencies import ApiAdmin, SellerDep, SessionDep, StorageDep

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
    invoicing.ensure_invoice_pdf(session, invoice, storage)
    return pdf_response(invoice, storage)


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
