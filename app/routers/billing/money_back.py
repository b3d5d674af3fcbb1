"""Payments voided and listed, and every refund owed back: the JSON API and the office's button."""

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile, status
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from app.models import Invoice, Payment
from app.platform.i18n import gettext, translate
from app.services.billing import bank_files, money_back, payments, refunds, sepa_transfers
from app.services.billing import invoices as invoicing
from app.services.billing.statements import MAX_STATEMENT_BYTES
from app.services.errors import Conflict, InvalidInput
from app.services.schemas import MoneyOut
from app.web.dependencies import ApiAdmin, PageAdmin, SellerDep, SessionDep, read_upload
from app.web.errors import error_responses
from app.web.security import verify_csrf

router = APIRouter(prefix="/api/v1", tags=["payments"])
pages_router = APIRouter(
    prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)


class PaymentListed(BaseModel):
    """A payment on an invoice, voided or not."""

    id: int
    amount: MoneyOut
    received_on: date
    method: str
    reference: str
    payer: str
    voided: bool
    flagged: bool
    note: str


class VoidIn(BaseModel):
    """Why a payment is voided."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500)


class VoidOut(BaseModel):
    """A voided payment, what is still to pay, and the confirmed participants it left short."""

    payment: PaymentListed
    outstanding: MoneyOut
    uncovered: list[str]


class Payee(BaseModel):
    """Who a refund goes to."""

    kind: Literal["person", "organisation"]
    name: str


class RefundListed(BaseModel):
    """A refund owed back or paid, whatever made it owed."""

    id: int
    application_id: int | None
    invoice_number: str
    reason: str
    amount: MoneyOut
    currency: str
    due_by: date
    method: str
    payee: Payee
    status: str


def listed_payment(payment: Payment) -> dict[str, Any]:
    """A payment as the API lists it; `note` says why it is flagged or voided."""
    note = (
        f"Voided by {payment.voided_by}: {payment.void_reason}"
        if payment.voided_at is not None
        else payment.flag_reason
    )
    return {
        "id": payment.id,
        "amount": payment.amount,
        "received_on": payment.received_on,
        "method": payment.method,
        "reference": payment.reference,
        "payer": payment.payer,
        "voided": payment.voided_at is not None,
        "flagged": payment.flagged,
        "note": note,
    }


@router.get("/invoices/{number}/payments", response_model=list[PaymentListed])
def invoice_payments(number: str, session: SessionDep, admin: ApiAdmin) -> list[dict[str, Any]]:
    """An invoice's payments, oldest first, voided ones included and marked."""
    invoice = invoicing.get_invoice(session, number)
    return [listed_payment(p) for p in payments.payments_for(session, invoice)]


@router.post("/payments/{payment_id}/void", response_model=VoidOut, responses=error_responses(409))
def void_payment(
    payment_id: int, data: VoidIn, session: SessionDep, admin: ApiAdmin
) -> dict[str, Any]:
    """Void a payment recorded by mistake: kept, audited, out of every balance."""
    result = payments.void_payment(
        session, payment_id=payment_id, reason=data.reason, actor=admin.email
    )
    return {
        "payment": listed_payment(result.payment),
        "outstanding": result.outstanding,
        "uncovered": result.uncovered,
    }


@router.get("/refunds", response_model=list[RefundListed])
def list_refunds(
    session: SessionDep,
    admin: ApiAdmin,
    status: Annotated[Literal["owed", "paid", "overdue"] | None, Query()] = None,
    edition: Annotated[str, Query(max_length=80)] = "",
) -> list[dict[str, Any]]:
    """Every refund, for a cancellation or an overpayment, with whom it goes back to."""
    return [
        {
            "id": row.refund.id,
            "application_id": row.refund.application_id,
            "invoice_number": row.invoice.number,
            "reason": row.refund.reason,
            "amount": row.refund.amount,
            "currency": row.refund.currency,
            "due_by": row.refund.due_by,
            "method": row.refund.method,
            "payee": {"kind": row.refund.payee_kind, "name": row.refund.payee_name},
            "status": row.status,
        }
        for row in money_back.refunds_listed(session, status=status, edition_slug=edition)
    ]


def _back_to_invoice(session: Session, payment_id: int) -> str:
    payment = payments.get_payment(session, payment_id)
    invoice = session.get(Invoice, payment.invoice_id)
    return f"/admin/invoices/{invoice.number if invoice else ''}"


@pages_router.post("/payments/{payment_id}/void", response_model=None)
def void_payment_page(
    payment_id: int,
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> RedirectResponse:
    """The void button on an invoice's page: back to the invoice with what happened."""
    back = _back_to_invoice(session, payment_id)
    try:
        result = payments.void_payment(
            session, payment_id=payment_id, reason=reason, actor=user.email
        )
    except InvalidInput as exc:
        message = translate(exc.fields.get("reason", exc.message))
    else:
        message = gettext("Payment %(id)s is voided and out of every balance.") % {"id": payment_id}
        if result.uncovered:
            message += " " + gettext(
                "No longer covered though confirmed: %(people)s; each was told by e-mail."
            ) % {"people": ", ".join(result.uncovered)}
    request.session["flash"] = message
    return RedirectResponse(back, status_code=status.HTTP_303_SEE_OTHER)


class KeepIn(BaseModel):
    """Why money owed back is kept."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500)


class AccountIn(BaseModel):
    """The account a refund by bank transfer is paid to."""

    model_config = ConfigDict(extra="forbid")

    account_holder: str = Field(max_length=200)
    iban: str = Field(max_length=42)
    bic: str = Field(default="", max_length=11)


def _listed_refund(session: Session, refund_id: int) -> dict[str, Any]:
    row = next(r for r in money_back.refunds_listed(session) if r.refund.id == refund_id)
    return {
        "id": row.refund.id,
        "application_id": row.refund.application_id,
        "invoice_number": row.invoice.number,
        "reason": row.refund.reason,
        "amount": row.refund.amount,
        "currency": row.refund.currency,
        "due_by": row.refund.due_by,
        "method": row.refund.method,
        "payee": {"kind": row.refund.payee_kind, "name": row.refund.payee_name},
        "status": row.status,
    }


@router.post(
    "/refunds/{refund_id}/keep", response_model=RefundListed, responses=error_responses(409)
)
def keep_refund(refund_id: int, data: KeepIn, session: SessionDep, admin: ApiAdmin) -> Any:
    """Keep money owed back instead of paying it, with a written reason; audited."""
    refunds.keep_refund(session, refund_id=refund_id, reason=data.reason, actor=admin.email)
    return _listed_refund(session, refund_id)


@router.put(
    "/refunds/{refund_id}/bank-details",
    response_model=RefundListed,
    responses=error_responses(409),
)
def refund_bank_details(
    refund_id: int, data: AccountIn, session: SessionDep, admin: ApiAdmin
) -> Any:
    """The payer's account, given by the office (an organisation's, say); IBAN and BIC checked."""
    refunds.office_bank_details(
        session,
        refund_id=refund_id,
        account_holder=data.account_holder,
        iban=data.iban,
        bic=data.bic,
        actor=admin.email,
    )
    return _listed_refund(session, refund_id)


class StatementLineOut(BaseModel):
    """A statement line and what confirming would do with it."""

    line: int
    value_date: date
    amount: MoneyOut
    reference: str
    payer: str
    matched_invoice: str | None
    status: str
    note: str


class StatementOut(BaseModel):
    """A statement's preview: nothing is recorded until it is confirmed."""

    id: int
    format: str
    lines: list[StatementLineOut]
    matched: int
    unmatched: int
    duplicates: int


class ConfirmedOut(BaseModel):
    """What confirming a statement recorded now (nothing the second time)."""

    recorded: int
    already_recorded: int
    skipped: int


class AssignIn(BaseModel):
    """The invoice an unmatched line pays, chosen by a person."""

    model_config = ConfigDict(extra="forbid")

    invoice_number: str = Field(min_length=1, max_length=20)


@router.post("/statements", response_model=StatementOut, status_code=status.HTTP_201_CREATED)
def upload_statement(
    session: SessionDep, admin: ApiAdmin, file: Annotated[UploadFile, File()]
) -> dict[str, Any]:
    """A CSV, camt.053 or Norma 43 statement, detected by its content, previewed."""
    raw = read_upload(file, MAX_STATEMENT_BYTES + 1)
    preview = bank_files.upload_statement(
        session, raw=raw, filename=file.filename or "", actor=admin.email
    )
    return {
        "id": preview.statement.id,
        "format": preview.statement.format,
        "lines": [
            {
                "line": m.line.line,
                "value_date": m.line.booked_on,
                "amount": m.line.amount,
                "reference": m.line.text[:500],
                "payer": m.line.counterparty,
                "matched_invoice": m.invoice_number,
                "status": bank_files.line_status(m),
                "note": m.note,
            }
            for m in preview.matches
        ],
        "matched": preview.count("matched"),
        "unmatched": preview.count("unmatched", "suggested"),
        "duplicates": preview.count("duplicate"),
    }


@router.post("/statements/{statement_id}/confirm", response_model=ConfirmedOut)
def confirm_statement(statement_id: int, session: SessionDep, admin: ApiAdmin) -> dict[str, int]:
    """Record the statement's matched lines, once: confirming again records nothing."""
    result = bank_files.confirm_statement(session, statement_id=statement_id, actor=admin.email)
    recorded, already, skipped = result.counts
    return {"recorded": recorded, "already_recorded": already, "skipped": skipped}


@router.post(
    "/statements/{statement_id}/lines/{line}/assign",
    response_model=PaymentListed,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(409),
)
def assign_statement_line(
    statement_id: int, line: int, data: AssignIn, session: SessionDep, admin: ApiAdmin
) -> dict[str, Any]:
    """Record a line that matched nothing on the invoice a person chose; audited."""
    result = bank_files.assign_line(
        session,
        statement_id=statement_id,
        line=line,
        invoice_number=data.invoice_number,
        actor=admin.email,
    )
    return listed_payment(result.payment)


@router.get(
    "/refunds/sepa-credit-transfer",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}, **error_responses(409)},
)
def sepa_credit_transfer(
    session: SessionDep,
    seller: SellerDep,
    admin: ApiAdmin,
    edition: Annotated[str, Query(max_length=80)] = "",
) -> Response:
    """A pain.001 file paying every owed bank refund with an account; they are marked sent."""
    made = sepa_transfers.credit_transfer_file(
        session, seller=seller, actor=admin.email, edition_slug=edition
    )
    return Response(
        made.xml,
        media_type="application/xml",
        headers={"Content-Disposition": 'attachment; filename="refunds-pain.001.xml"'},
    )


@pages_router.post("/refunds/{refund_id}/keep", response_model=None)
def keep_refund_page(
    refund_id: int,
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> RedirectResponse:
    """The refunds page's "keep instead" button, with its written reason."""
    try:
        refunds.keep_refund(session, refund_id=refund_id, reason=reason, actor=user.email)
    except InvalidInput as exc:
        message = translate(exc.fields.get("reason", exc.message))
    except Conflict as exc:
        message = translate(exc.message)
    else:
        message = gettext("Refund %(id)s is kept: %(reason)s") % {"id": refund_id, "reason": reason}
    request.session["flash"] = message
    return RedirectResponse("/admin/refunds", status_code=status.HTTP_303_SEE_OTHER)


@pages_router.post("/refunds/{refund_id}/bank-details", response_model=None)
def refund_account_page(
    refund_id: int,
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    account_holder: Annotated[str, Form(max_length=200)] = "",
    iban: Annotated[str, Form(max_length=42)] = "",
    bic: Annotated[str, Form(max_length=11)] = "",
) -> RedirectResponse:
    """The payer's account, entered by the office (an organisation's, an overpayer's)."""
    try:
        refunds.office_bank_details(
            session,
            refund_id=refund_id,
            account_holder=account_holder,
            iban=iban,
            bic=bic,
            actor=user.email,
        )
    except InvalidInput as exc:
        message = " ".join(translate(m) for m in exc.fields.values()) or translate(exc.message)
    except Conflict as exc:
        message = translate(exc.message)
    else:
        message = gettext("The account for refund %(id)s is saved.") % {"id": refund_id}
    request.session["flash"] = message
    return RedirectResponse("/admin/refunds", status_code=status.HTTP_303_SEE_OTHER)
