"""Staff pages for money: the invoice register, invoices, payments, statements, the overview."""

import csv
import io
from datetime import date
from decimal import Decimal
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile, status
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select

from app.clock import edition_today
from app.models import Application, Edition, Invoice, Payment, StaffUser
from app.money import MoneyError, parse_typed_amount
from app.platform import jobs
from app.platform.i18n import N_, gettext, ngettext, translate, translate_fields
from app.routers.billing.api import pdf_response, ubl_response
from app.services.billing import (
    bank_formats,
    buyers,
    card_payments,
    invoice_files,
    money_overview,
    payments,
    statement_lines,
    statements,
    verifactu,
    verifactu_sender,
)
from app.services.billing import invoices as invoicing
from app.services.editions.editions import (
    applications_are_open,
    get_edition,
    list_editions,
)
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registrations.application_export import safe_cell
from app.web.dependencies import (
    FormDep,
    PageAdmin,
    SellerDep,
    SessionDep,
    StorageDep,
    money,
    read_upload,
    templates,
)
from app.web.kit import flash, pop_flash, see_other
from app.web.security import verify_csrf
from app.worker import job_context

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)])

# The statement travels back as a text field: the whole file plus the CR browsers add.
STATEMENT_FIELD_BYTES = statements.MAX_STATEMENT_BYTES + 64 * 1024
FILTER_LABELS: dict[money_overview.RegisterFilter, str] = {
    "open": N_("Open"),
    "overdue": N_("Overdue"),
    "paid": N_("Paid"),
    "all": N_("All"),
}
MAPPING_LABELS = {
    "date_column": N_("Date column"),
    "amount_column": N_("Amount column"),
    "counterparty_column": N_("Counterparty column"),
    "text_column": N_("Remittance text column"),
    "date_format": N_("Date format"),
}
KIND_LABELS = {
    "number": N_("by invoice number"),
    "amount": N_("by amount only"),
    "recorded": N_("already recorded"),
    "unmatched": N_("no match"),
    "ignored": N_("ignored"),
}


# Shared pieces


def _safe_back(target: str, default: str) -> str:
    """Only our own staff pages: anything else would be an open redirect."""
    if (
        target.startswith("/admin/")
        and not target.startswith("//")
        and not any(c in target for c in "\\\r\n")
    ):
        return target
    return default


def _pick_edition(session: Session, slug: str) -> tuple[list[Edition], Edition | None]:
    """Every edition, and the one asked for (else the one taking applications, else the latest)."""
    editions = list_editions(session)
    if slug:
        return editions, get_edition(session, slug)
    current = next((e for e in editions if applications_are_open(e)), None)
    return editions, current or (editions[0] if editions else None)


def _names_by_reference(session: Session, references: list[str]) -> dict[str, str]:
    if not references:
        return {}
    rows = session.exec(select(Application).where(col(Application.reference).in_(references))).all()
    return {a.reference: a.full_name for a in rows}


def _people(session: Session, references: list[str]) -> str:
    names = _names_by_reference(session, references)
    return ", ".join(f"{names.get(r, r)} ({r})" for r in references)


# The invoice register


@router.get("/invoices", response_class=HTMLResponse)
def invoice_register(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    edition: Annotated[str, Query(max_length=80)] = "",
    status_filter: Annotated[money_overview.RegisterFilter, Query(alias="status")] = "open",
) -> Response:
    """An edition's invoices and credit notes, filtered by open, overdue, paid or all."""
    editions, chosen = _pick_edition(session, edition)
    rows: list[money_overview.InvoiceRow] = []
    counts: dict[money_overview.RegisterFilter, int] = {}
    groups: list[money_overview.GroupToInvoice] = []
    if chosen is not None:
        rows, counts = money_overview.invoice_register(session, chosen, status=status_filter)
        groups = money_overview.groups_to_invoice(session, chosen)
    return templates.TemplateResponse(
        request,
        "billing/invoices/register.html",
        {
            "user": user,
            "editions": editions,
            "edition": chosen,
            "rows": rows,
            "counts": counts,
            "status_filter": status_filter,
            "filter_labels": {key: gettext(label) for key, label in FILTER_LABELS.items()},
            "groups": groups,
            "tax_records_on": request.app.state.settings.verifactu_enabled,
            # Each group's stored buyer, to fill its invoice form's buyer fields.
            "group_billing": {
                g.group.code: buyers.form_values(buyers.group_billing(session, g.group.id or 0))
                for g in groups
            },
            "back": str(request.url.path) + ("?" + request.url.query if request.url.query else ""),
            "flash": pop_flash(request),
        },
    )


@router.get("/invoices.csv")
def invoice_register_csv(
    session: SessionDep,
    user: PageAdmin,
    edition: Annotated[str, Query(max_length=80)] = "",
    status_filter: Annotated[money_overview.RegisterFilter, Query(alias="status")] = "all",
) -> Response:
    """The register as CSV for the finance department; no cell can run as a formula."""
    _, chosen = _pick_edition(session, edition)
    if chosen is None:
        raise NotFound("There is no edition yet.")
    rows, _ = money_overview.invoice_register(session, chosen, status=status_filter)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(
        [
            "number",
            "kind",
            "issue date",
            "due date",
            "buyer",
            "currency",
            "total",
            "paid",
            "outstanding",
            "days overdue",
            "status",
        ]
    )
    for row in rows:
        writer.writerow(
            [
                safe_cell(row.invoice.number),
                row.invoice.kind,
                row.invoice.issue_date.isoformat(),
                row.invoice.due_date.isoformat(),
                safe_cell(row.buyer),
                row.invoice.currency,
                f"{row.invoice.total:.2f}",
                f"{row.paid:.2f}",
                f"{row.outstanding:.2f}",
                row.days_overdue,
                safe_cell(", ".join(row.badges)),
            ]
        )
    return Response(
        buffer.getvalue().encode("utf-8-sig"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": (
                f'attachment; filename="invoices-{chosen.slug}-{status_filter}.csv"'
            ),
            "Cache-Control": "no-store",
        },
    )


# One invoice


@router.get("/invoices/{number}.xml")
def invoice_ubl(number: str, session: SessionDep, user: PageAdmin) -> Response:
    """The invoice's UBL e-invoice (EN 16931), from the stored copy."""
    return ubl_response(session, invoicing.get_invoice(session, number))


@router.get("/invoices/{number}.pdf")
def invoice_pdf(number: str, session: SessionDep, storage: StorageDep, user: PageAdmin) -> Response:
    """The invoice's PDF, rendered once from the stored copy and kept."""
    invoice = invoicing.get_invoice(session, number)
    invoice_files.ensure_invoice_pdf(session, invoice, storage)
    return pdf_response(invoice, storage)


def _invoice_page(
    request: Request,
    session: Session,
    user: StaffUser,
    invoice: Invoice,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    flash: str | None = None,
    duplicate: Payment | None = None,
    status_code: int = status.HTTP_200_OK,
) -> Response:
    edition = session.get(Edition, invoice.edition_id)
    assert edition is not None
    lines = invoicing.invoice_lines(session, invoice)
    today = edition_today(edition)
    row = money_overview.invoice_row(session, invoice, today=today)
    due = row.outstanding
    refers_to = session.get(Invoice, invoice.refers_to_id) if invoice.refers_to_id else None
    credit_notes = session.exec(
        select(Invoice).where(Invoice.refers_to_id == invoice.id).order_by(col(Invoice.number))
    ).all()
    tax_records = [
        (record, verifactu.submission_of(session, record))
        for record in verifactu.records_of(session, invoice)
    ]
    tax_record = verifactu.issue_record([record for record, _ in tax_records])
    return templates.TemplateResponse(
        request,
        "billing/invoices/detail.html",
        {
            "tax_records": tax_records,
            "tax_qr": verifactu.qr_svg(tax_record.qr_url)
            if tax_record and tax_record.qr_url
            else "",
            "user": user,
            "invoice": invoice,
            "edition": edition,
            "lines": lines,
            "payments": payments.payments_for(session, invoice),
            "row": row,
            "paid": row.paid,
            "outstanding": due,
            "overdue_days": row.days_overdue,
            "refers_to": refers_to,
            "credit_notes": credit_notes,
            "can_pay": invoice.kind == "invoice",
            "today": today,
            "values": values
            or {
                "amount": f"{due:.2f}" if due > 0 else "",
                "received_on": today.isoformat(),
                "reference": "",
            },
            "errors": errors or {},
            "duplicate": duplicate,
            "notice": notice,
            "flash": flash,
        },
        status_code=status_code,
    )


@router.get("/tax-records", response_class=HTMLResponse)
def tax_records_page(request: Request, session: SessionDep, user: PageAdmin) -> Response:
    """VERI*FACTU records the AEAT has not accepted yet, with its reasons, and the chain checked."""
    settings = request.app.state.settings
    return templates.TemplateResponse(
        request,
        "billing/invoices/tax_records.html",
        {
            "user": user,
            "rows": verifactu_sender.unaccepted(session),
            "enabled": settings.verifactu_enabled,
            "chain": verifactu.check_chain(session, settings.verifactu_issuer_nif)
            if settings.verifactu_enabled
            else None,
        },
    )


@router.get("/invoices/{number}", response_class=HTMLResponse)
def invoice_page(number: str, request: Request, session: SessionDep, user: PageAdmin) -> Response:
    """The invoice as stored, what is paid on it, and the form to record a bank transfer."""
    invoice = invoicing.get_invoice(session, number)
    return _invoice_page(request, session, user, invoice, flash=pop_flash(request))


def _parse_payment_form(
    amount: str, received_on: str
) -> tuple[Decimal | None, date | None, dict[str, str]]:
    errors: dict[str, str] = {}
    parsed_amount = parsed_date = None
    if not amount.strip():
        errors["amount"] = gettext("Enter the amount received.")
    else:
        try:
            parsed_amount = parse_typed_amount(amount)
        except MoneyError as exc:
            errors["amount"] = {
                "places": gettext(
                    "Write at most two decimals after the mark, such as 10.05 or 10,05."
                ),
                "size": gettext("This amount is too large: check the digits."),
            }.get(exc.problem) or gettext("Enter the amount received as a number, such as 1500.00.")
    try:
        parsed_date = date.fromisoformat(received_on.strip())
    except ValueError:
        errors["received_on"] = gettext("Enter the value date as YYYY-MM-DD, such as 2024-03-01.")
    return parsed_amount, parsed_date, errors


def _payment_flash(
    session: Session, invoice: Invoice, amount: Decimal, result: payments.PaymentResult
) -> str:
    currency = invoice.currency
    paid = {
        "paid": money(result.paid, currency),
        "total": money(invoice.total, currency),
        "due": money(result.outstanding, currency),
    }
    parts = [
        gettext("Recorded %(amount)s on %(number)s.")
        % {"amount": money(amount, currency), "number": invoice.number},
        gettext("Paid %(paid)s of %(total)s; %(due)s still to pay.") % paid
        if result.outstanding
        else gettext("Paid %(paid)s of %(total)s.") % paid,
    ]
    if result.confirmed:
        parts.append(
            gettext("Confirmed: %(people)s; the “your place is guaranteed” e-mail is queued.")
            % {"people": _people(session, result.confirmed)}
        )
    if result.payment.flagged:
        parts.append(gettext("Flagged: %(reason)s") % {"reason": result.payment.flag_reason})
    return " ".join(parts)


@router.post("/invoices/{number}/payments", response_model=None)
def record_bank_transfer(
    number: str,
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    amount: Annotated[str, Form(max_length=40)] = "",
    received_on: Annotated[str, Form(max_length=40)] = "",
    reference: Annotated[str, Form(max_length=200)] = "",
    confirm_duplicate: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Record a bank transfer; full payment confirms, an overpayment is flagged for refund."""
    invoice = invoicing.get_invoice(session, number)
    values = {"amount": amount, "received_on": received_on, "reference": reference}
    parsed_amount, parsed_date, errors = _parse_payment_form(amount, received_on)
    if errors or parsed_amount is None or parsed_date is None:
        return _invoice_page(
            request,
            session,
            user,
            invoice,
            values=values,
            errors=errors,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    try:
        result = payments.record_payment(
            session,
            invoice_number=invoice.number,
            amount=parsed_amount,
            received_on=parsed_date,
            method="bank_transfer",
            reference=reference,
            actor=user.email,
            confirm_duplicate=bool(confirm_duplicate),
        )
    except payments.DuplicatePayment as exc:
        return _invoice_page(
            request,
            session,
            user,
            invoice,
            values=values,
            notice=gettext("Nothing was recorded. %(reason)s") % {"reason": translate(exc.message)},
            duplicate=exc.payment,
            status_code=status.HTTP_409_CONFLICT,
        )
    except InvalidInput as exc:
        return _invoice_page(
            request,
            session,
            user,
            invoice,
            values=values,
            errors=translate_fields(exc.fields) or {"amount": translate(exc.message)},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    except Conflict as exc:
        return _invoice_page(
            request,
            session,
            user,
            invoice,
            values=values,
            notice=gettext("Nothing was recorded. %(reason)s") % {"reason": translate(exc.message)},
            status_code=status.HTTP_409_CONFLICT,
        )
    flash(request, _payment_flash(session, invoice, parsed_amount, result))
    return see_other(f"/admin/invoices/{invoice.number}")


# The money overview


@router.get("/money", response_class=HTMLResponse)
def money_page(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    edition: Annotated[str, Query(max_length=80)] = "",
) -> Response:
    """Invoiced, received, outstanding, overdue and refunds owed for one edition."""
    editions, chosen = _pick_edition(session, edition)
    overview = money_overview.edition_money(session, chosen) if chosen else None
    return templates.TemplateResponse(
        request,
        "billing/invoices/money.html",
        {
            "user": user,
            "editions": editions,
            "edition": chosen,
            "overview": overview,
            "card_events": card_payments.unprocessed_events(session),
        },
    )


# Group invoices


@router.post("/groups/{code}/invoice", response_model=None)
def issue_group_invoice(
    code: str,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    seller: SellerDep,
    user: PageAdmin,
    form: FormDep,
    edition: Annotated[str, Query(max_length=80)] = "",
    purchase_order: Annotated[str, Form(max_length=100)] = "",
    billing_address: Annotated[str, Form(max_length=500)] = "",
    buyer_tax_id: Annotated[str, Form(max_length=40)] = "",
    back: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """One invoice to the group's organisation for its admitted members not yet invoiced."""
    chosen = get_edition(session, edition) if edition else None
    register = "/admin/invoices" + (f"?{urlencode({'edition': chosen.slug})}" if chosen else "")
    target = _safe_back(back, register)
    if chosen is None:
        flash(request, gettext("Choose the group's edition; no invoice was issued."))
        return see_other(target)
    try:
        billing = buyers.billing_from_form(form)
        if billing is not None:
            group = buyers.edition_group(session, edition=chosen, code=code)
            buyers.save_group_billing(session, group=group, data=billing, actor=user.email)
    except (InvalidInput, NotFound) as exc:
        session.rollback()
        problems = "; ".join(f"{name}: {message}" for name, message in exc.fields.items())
        flash(
            request,
            gettext("No invoice was issued: %(reason)s")
            % {"reason": f"{translate(exc.message)} {problems}"},
        )
        return see_other(target)
    try:
        invoice = invoicing.issue_group_invoice(
            session,
            edition=chosen,
            code=code,
            seller=seller,
            actor=user.email,
            storage=storage,
            purchase_order=purchase_order.strip(),
            billing_address=billing_address.strip(),
            buyer_tax_id=buyer_tax_id.strip(),
        )
    except (invoicing.NothingToInvoice, NotFound) as exc:
        flash(
            request,
            gettext("No invoice was issued: %(reason)s") % {"reason": translate(exc.message)},
        )
        return see_other(target)
    session.commit()
    lines = len(invoicing.invoice_lines(session, invoice))
    total = money(invoice.total, invoice.currency)
    flash(
        request,
        ngettext(
            "Invoice %(number)s issued to %(buyer)s for %(num)s participant: %(total)s.",
            "Invoice %(number)s issued to %(buyer)s for %(num)s participants: %(total)s.",
            lines,
        )
        % {
            "number": invoice.number,
            "buyer": invoice.buyer.get("name", ""),
            "num": lines,
            "total": total,
        },
    )
    return see_other(f"/admin/invoices/{invoice.number}")


# Bank statement import


def import_launcher() -> jobs.Launcher:
    """How a confirmed import starts in this process: in a background thread (tests: in place)."""
    return jobs.in_thread


ImportLauncherDep = Annotated[jobs.Launcher, Depends(import_launcher)]


def _statement_form(
    request: Request,
    user: StaffUser,
    *,
    csv_text: str = "",
    errors: dict[str, str] | None = None,
    status_code: int = status.HTTP_200_OK,
) -> Response:
    return templates.TemplateResponse(
        request,
        "billing/invoices/statement_upload.html",
        {
            "user": user,
            "csv_text": csv_text,
            "errors": errors or {},
            "max_rows": statement_lines.MAX_STATEMENT_ROWS,
        },
        status_code=status_code,
    )


def _mapping_form(
    request: Request,
    user: StaffUser,
    *,
    csv_text: str,
    mapping: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = status.HTTP_200_OK,
) -> Response:
    """The column mapping for a statement, with its header's columns and first rows."""
    try:
        columns = statements.statement_columns(csv_text)
    except InvalidInput as exc:
        return _statement_form(
            request,
            user,
            csv_text=csv_text,
            errors=exc.fields,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    sample = statements.sample_rows(csv_text)
    if mapping is None:
        guessed = statements.guess_mapping(columns)
        mapping = {f"{role}_column": column for role, column in guessed.items()}
        position = columns.index(guessed["date"]) if guessed["date"] else None
        mapping["date_format"] = statements.guess_date_format(
            [row[position] for row in sample if position is not None and position < len(row)]
        )
    errors = errors or {}
    return templates.TemplateResponse(
        request,
        "billing/invoices/statement_mapping.html",
        {
            "user": user,
            "csv_text": csv_text,
            "columns": columns,
            "sample": sample,
            "mapping": mapping,
            "errors": errors,
            "field_errors": {k: v for k, v in errors.items() if k in MAPPING_LABELS},
            "line_errors": [v for k, v in errors.items() if k.startswith("line ")],
            "other_errors": [
                v
                for k, v in errors.items()
                if k not in MAPPING_LABELS and not k.startswith("line ")
            ],
            "labels": {key: gettext(label) for key, label in MAPPING_LABELS.items()},
            "date_formats": list(statements.DATE_FORMATS),
        },
        status_code=status_code,
    )


MappingValues = dict[str, str]


def _mapping(
    date_column: str,
    amount_column: str,
    counterparty_column: str,
    text_column: str,
    date_format: str,
) -> MappingValues:
    return {
        "date_column": date_column,
        "amount_column": amount_column,
        "counterparty_column": counterparty_column,
        "text_column": text_column,
        "date_format": date_format,
    }


def _statement_text(file: UploadFile | None, pasted: str) -> str:
    """The statement from the chosen file, else the pasted or re-posted text."""
    if file is not None and file.filename:
        raw = read_upload(file, statements.MAX_STATEMENT_BYTES + 1)
        if raw:
            return statements.decode_statement(raw)
    if pasted.strip():
        return pasted
    raise InvalidInput(
        gettext("No statement was given."),
        fields={"file": gettext("Choose the bank's CSV export, or paste its lines below.")},
    )


@router.get("/statements/import", response_class=HTMLResponse)
def statement_upload_form(request: Request, user: PageAdmin) -> Response:
    """Upload a bank statement (CSV) to match its lines to open invoices."""
    return _statement_form(request, user)


@router.post(
    "/statements/preview",
    response_class=HTMLResponse,
    form_limits={"max_part_size": STATEMENT_FIELD_BYTES},
)
def statement_preview(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    file: Annotated[UploadFile | None, File()] = None,
    csv_text: Annotated[str, Form()] = "",
    date_column: Annotated[str | None, Form(max_length=200)] = None,
    amount_column: Annotated[str, Form(max_length=200)] = "",
    counterparty_column: Annotated[str, Form(max_length=200)] = "",
    text_column: Annotated[str, Form(max_length=200)] = "",
    date_format: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """First the column mapping for an uploaded file; with a mapping, each line and its match."""
    try:
        text = _statement_text(file, csv_text)
    except InvalidInput as exc:
        return _statement_form(
            request,
            user,
            csv_text=csv_text,
            errors=exc.fields,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    kind = bank_formats.detect_format(text)
    if kind != "csv":
        # The bank's own format names every field: no columns to choose.
        mapping: dict[str, str] = {"format": str(kind)}
    elif date_column is None:
        return _mapping_form(request, user, csv_text=text)
    else:
        mapping = _mapping(
            date_column, amount_column, counterparty_column, text_column, date_format
        )
    try:
        lines = statements.lines_of(text, mapping)
    except InvalidInput as exc:
        return _mapping_form(
            request,
            user,
            csv_text=text,
            mapping=mapping,
            errors=exc.fields or {"file": exc.message},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    matches = statements.match_lines(session, lines)
    kinds: list[str] = [m.kind for m in matches]
    return templates.TemplateResponse(
        request,
        "billing/invoices/statement_preview.html",
        {
            "user": user,
            "csv_text": text,
            "mapping": mapping,
            "matches": matches,
            "counts": {kind: kinds.count(kind) for kind in KIND_LABELS},
            "kind_labels": {key: gettext(label) for key, label in KIND_LABELS.items()},
            "currency": _statement_currency(session),
        },
    )


def _statement_currency(session: Session) -> str:
    """The currency of the invoices (a statement is one account, in one currency)."""
    currency = session.exec(
        select(Invoice.currency).order_by(col(Invoice.id).desc()).limit(1)
    ).first()
    return currency or "EUR"


@router.post(
    "/statements/import",
    response_class=HTMLResponse,
    form_limits={"max_part_size": STATEMENT_FIELD_BYTES},
)
def statement_import(
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    launch: ImportLauncherDep,
    user: PageAdmin,
    csv_text: Annotated[str, Form()] = "",
    date_column: Annotated[str, Form(max_length=200)] = "",
    amount_column: Annotated[str, Form(max_length=200)] = "",
    counterparty_column: Annotated[str, Form(max_length=200)] = "",
    text_column: Annotated[str, Form(max_length=200)] = "",
    date_format: Annotated[str, Form(max_length=20)] = "",
    statement_format: Annotated[str, Form(alias="format", max_length=12)] = "",
    accept: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Check the statement again and queue its import; the result page follows the job."""
    if not csv_text.strip():
        return _statement_form(
            request,
            user,
            errors={"file": gettext("The statement did not arrive: upload it again.")},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    mapping = (
        {"format": statement_format}
        if statement_format in statements.BANK_FORMATS
        else _mapping(date_column, amount_column, counterparty_column, text_column, date_format)
    )
    try:
        lines = statements.lines_of(csv_text, mapping)
    except InvalidInput as exc:
        return _mapping_form(
            request,
            user,
            csv_text=csv_text,
            mapping=mapping,
            errors=exc.fields or {"file": exc.message},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    job = statements.queue_import(
        session,
        csv_text=csv_text,
        mapping=mapping,
        lines=lines,
        accepted_ids=accept or [],
        actor=user.email,
    )
    if request.app.state.settings.jobs_in_process:
        jobs.launch_job(
            launch,
            job.id or 0,
            job_context(request.app.state.engine, storage),
        )
    return see_other(f"/admin/statements/imports/{job.id}")


@router.get("/statements/imports/{job_id}", response_class=HTMLResponse)
def statement_import_result(
    job_id: int, request: Request, session: SessionDep, user: PageAdmin
) -> Response:
    """What an import did, or how far it is; htmx asks again every second until it is done."""
    found = statements.get_import(session, job_id)
    summary = found.summary
    context = {
        "user": user,
        "job": found,
        "summary": summary,
        "confirmed": _people(session, summary.confirmed) if summary else "",
        "currency": _statement_currency(session),
    }
    if request.headers.get("hx-request"):
        return templates.TemplateResponse(
            request, "billing/invoices/statement_status.html", context
        )
    return templates.TemplateResponse(request, "billing/invoices/statement_result.html", context)
