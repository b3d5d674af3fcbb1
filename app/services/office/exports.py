"""Exports for the office and its accountant: invoices and credit notes, payments, refunds,
attendance marks, and the audit log, each as CSV and XLSX with the filters of the moment.

Every text cell goes through `safe_cell`, so nothing a participant typed (a name such as
`=HYPERLINK(...)`) runs as a formula when the file is opened. Amounts stay numbers (two
decimals), dates stay dates in the workbook and ISO text in the CSV.
"""

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # type: ignore[import-untyped]
from openpyxl.styles import Font  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.models import (
    Application,
    AttendanceMark,
    AuditEntry,
    CourseSession,
    Edition,
    Invoice,
    InvoiceKind,
    Module,
    Payment,
    Refund,
    RefundStatus,
)
from app.services.billing.money_overview import TRANSFER_SOURCE, InvoiceRow, invoice_rows
from app.services.errors import InvalidInput
from app.services.registrations.application_export import safe_cell

ExportFormat = Literal["csv", "xlsx"]
Cell = str | int | Decimal | date | None
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
KIND_WORDS = {
    "knowledge": "knowledge session",
    "skills": "skills session",
    "site_visit": "site visit",
}


@dataclass(frozen=True)
class Sheet:
    """A table to write: its name, columns (header, width in characters) and rows."""

    title: str
    columns: Sequence[tuple[str, int]]
    rows: list[list[Cell]] = field(default_factory=list)


def _text(value: str) -> str:
    # Control characters go first, so that none can hide a formula from `safe_cell`.
    return safe_cell(ILLEGAL_CHARACTERS_RE.sub("", value))


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def sheet_csv(sheet: Sheet) -> bytes:
    """UTF-8 CSV with a byte-order mark, so spreadsheet programs read accents right."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([_text(header) for header, _ in sheet.columns])
    for row in sheet.rows:
        writer.writerow([_csv_cell(cell) for cell in row])
    return buffer.getvalue().encode("utf-8-sig")


def sheet_xlsx(sheet: Sheet) -> bytes:
    """An XLSX workbook: bold frozen header, set widths, amounts as numbers, dates as dates."""
    workbook = Workbook(write_only=True)
    ws = workbook.create_sheet(sheet.title[:31])
    ws.freeze_panes = "A2"
    for index, (_, width) in enumerate(sheet.columns, start=1):
        ws.column_dimensions[get_column_letter(index)].width = width
    bold = Font(bold=True)
    header = []
    for title, _ in sheet.columns:
        cell = WriteOnlyCell(ws, value=_text(title))
        cell.font = bold
        header.append(cell)
    ws.append(header)
    for row in sheet.rows:
        cells: list[Any] = []
        for value in row:
            if isinstance(value, str):
                cells.append(_text(value))
            elif isinstance(value, Decimal):
                cell = WriteOnlyCell(ws, value=value)
                cell.number_format = "#,##0.00"
                cells.append(cell)
            elif isinstance(value, date):
                cell = WriteOnlyCell(ws, value=value)
                cell.number_format = "yyyy-mm-dd"
                cells.append(cell)
            else:
                cells.append(value)
        ws.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def render(sheet: Sheet, fmt: ExportFormat) -> bytes:
    """The sheet as a CSV or XLSX file."""
    return sheet_csv(sheet) if fmt == "csv" else sheet_xlsx(sheet)


def file_name(kind: str, scope: str, fmt: ExportFormat) -> str:
    """`invoices-diploma-2024-2025-03-01.csv`: what, whose, the day it was taken."""
    safe_scope = "".join(c if c.isalnum() or c in "-_" else "-" for c in scope) or "all"
    return f"{kind}-{safe_scope}-{utcnow().date().isoformat()}.{fmt}"


def _instant(value: datetime | None, timezone: str) -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(timezone)).isoformat(timespec="seconds")


def parse_day(value: str, field_name: str) -> date | None:
    """An optional YYYY-MM-DD filter; anything else is refused naming the field."""
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            "Check the dates.",
            fields={field_name: "Enter a date as YYYY-MM-DD, such as 2024-11-18."},
        ) from None


def check_range(start: date | None, end: date | None, end_field: str) -> None:
    """A range must not end before it starts."""
    if start and end and end < start:
        raise InvalidInput(
            "Check the dates.", fields={end_field: "The end date is before the start date."}
        )


# Invoices and credit notes

InvoiceStatusFilter = Literal["all", "open", "overdue", "paid", "cancelled"]
INVOICE_STATUS_FILTERS: dict[str, str] = {
    "all": "All",
    "open": "Open (money outstanding)",
    "overdue": "Overdue",
    "paid": "Paid in full",
    "cancelled": "Cancelled by a credit note",
}
InvoiceKindFilter = Literal["all", "invoice", "credit_note"]
INVOICE_KIND_FILTERS: dict[str, str] = {
    "all": "Invoices and credit notes",
    "invoice": "Invoices only",
    "credit_note": "Credit notes only",
}
INVOICE_COLUMNS: tuple[tuple[str, int], ...] = (
    ("number", 13),
    ("kind", 12),
    ("issue date", 12),
    ("due date", 12),
    ("buyer", 32),
    ("buyer tax id", 16),
    ("PO number", 14),
    ("currency", 9),
    ("net", 12),
    ("tax", 11),
    ("gross", 12),
    ("status", 24),
    ("refers to", 13),
    ("received", 12),
    ("refunded", 12),
    ("paid", 12),
    ("outstanding", 12),
)


@dataclass(frozen=True)
class InvoiceFilters:
    """What the accounting export is narrowed to."""

    status: InvoiceStatusFilter = "all"
    kind: InvoiceKindFilter = "all"
    issued_from: date | None = None
    issued_to: date | None = None


def _invoice_passes(row: InvoiceRow, filters: InvoiceFilters) -> bool:
    invoice = row.invoice
    if filters.kind != "all" and invoice.kind != filters.kind:
        return False
    if filters.issued_from and invoice.issue_date < filters.issued_from:
        return False
    if filters.issued_to and invoice.issue_date > filters.issued_to:
        return False
    if filters.status == "open":
        return row.is_open
    if filters.status == "overdue":
        return row.days_overdue > 0
    if filters.status == "paid":
        return row.is_invoice and invoice.status == "issued" and not row.is_open
    if filters.status == "cancelled":
        return row.is_invoice and invoice.status != "issued"
    return True


def invoice_sheet(
    session: Session, edition: Edition, filters: InvoiceFilters, *, today: date
) -> Sheet:
    """The edition's invoices and credit notes in number order, as the accountant books them.

    Three queries however many invoices: the invoices with their payment sums (as the
    register computes them), and the numbers that credit notes refer to.
    """
    rows = [r for r in invoice_rows(session, edition, today=today) if _invoice_passes(r, filters)]
    rows.sort(key=lambda r: (r.invoice.kind != InvoiceKind.invoice.value, r.invoice.number))
    referred = {r.invoice.refers_to_id for r in rows if r.invoice.refers_to_id}
    numbers = dict(
        session.exec(
            select(Invoice.id, Invoice.number).where(col(Invoice.id).in_(list(referred)))
        ).all()
        if referred
        else []
    )
    body: list[list[Cell]] = []
    for row in rows:
        invoice = row.invoice
        buyer = invoice.buyer
        body.append(
            [
                invoice.number,
                "credit note" if invoice.kind == InvoiceKind.credit_note.value else "invoice",
                invoice.issue_date,
                invoice.due_date,
                row.buyer,
                str(buyer.get("tax_id") or ""),
                str(buyer.get("po_number") or ""),
                invoice.currency,
                invoice.net_total,
                invoice.tax_total,
                invoice.total,
                ", ".join(row.badges),
                numbers.get(invoice.refers_to_id or 0, ""),
                row.received,
                row.refunded,
                row.paid,
                row.outstanding,
            ]
        )
    return Sheet("Invoices", INVOICE_COLUMNS, body)


# Payments

PaymentKindFilter = Literal["all", "received", "refund", "transfer"]
PAYMENT_KIND_FILTERS: dict[str, str] = {
    "all": "Everything",
    "received": "Money received",
    "refund": "Refunds paid out",
    "transfer": "Moved between invoices (no bank movement)",
}
PAYMENT_METHODS: dict[str, str] = {
    "": "Any method",
    "bank_transfer": "Bank transfer",
    "card": "Card",
    "other": "Other",
}
PAYMENT_COLUMNS: tuple[tuple[str, int], ...] = (
    ("invoice", 13),
    ("buyer", 30),
    ("value date", 12),
    ("amount", 12),
    ("currency", 9),
    ("kind", 12),
    ("method", 14),
    ("reference", 24),
    ("source", 12),
    ("flagged", 8),
    ("flag reason", 36),
    ("provider id", 28),
    ("recorded by", 26),
    ("recorded at", 26),
)


@dataclass(frozen=True)
class PaymentFilters:
    """What the payments export is narrowed to."""

    kind: PaymentKindFilter = "all"
    method: str = ""
    received_from: date | None = None
    received_to: date | None = None
    flagged_only: bool = False


def _payment_kind(payment: Payment) -> str:
    if payment.voided_at is not None:
        # Kept in the list as recorded, never summed: the accountant sees what was corrected.
        return "voided"
    if payment.source == TRANSFER_SOURCE:
        return "transfer"
    return "refund" if payment.amount < 0 else "received"


def payment_sheet(session: Session, edition: Edition, filters: PaymentFilters) -> Sheet:
    """Every payment on the edition's invoices by value date: what the bank statement shows,
    line by line, so the two can be ticked off against each other. One query."""
    conditions: list[Any] = [Invoice.edition_id == edition.id]
    if filters.method:
        conditions.append(col(Payment.method) == filters.method)
    if filters.received_from:
        conditions.append(col(Payment.received_on) >= filters.received_from)
    if filters.received_to:
        conditions.append(col(Payment.received_on) <= filters.received_to)
    if filters.flagged_only:
        conditions.append(col(Payment.flagged))
    if filters.kind == "transfer":
        conditions.append(col(Payment.source) == TRANSFER_SOURCE)
    elif filters.kind in ("received", "refund"):
        conditions.append(col(Payment.source) != TRANSFER_SOURCE)
        amount = col(Payment.amount)
        conditions.append(amount > 0 if filters.kind == "received" else amount < 0)
        conditions.append(col(Payment.voided_at).is_(None))
    found = session.exec(
        select(Payment, Invoice)
        .join(Invoice, col(Invoice.id) == col(Payment.invoice_id))
        .where(*conditions)
        .order_by(col(Payment.received_on), col(Payment.id))
    ).all()
    body: list[list[Cell]] = []
    for payment, invoice in found:
        buyer = invoice.buyer
        body.append(
            [
                invoice.number,
                str(buyer.get("name") or buyer.get("organisation") or ""),
                payment.received_on,
                payment.amount,
                invoice.currency,
                _payment_kind(payment),
                payment.method.replace("_", " "),
                payment.reference,
                payment.source,
                "yes" if payment.flagged else "no",
                f"Voided by {payment.voided_by}: {payment.void_reason}"
                if payment.voided_at is not None
                else payment.flag_reason,
                payment.external_id or "",
                payment.recorded_by,
                _instant(payment.recorded_at, edition.timezone),
            ]
        )
    return Sheet("Payments", PAYMENT_COLUMNS, body)


# Refunds

RefundStatusFilter = Literal["all", "owed", "overdue", "completed"]
REFUND_STATUS_FILTERS: dict[str, str] = {
    "all": "All",
    "owed": "Still owed",
    "overdue": "Overdue",
    "completed": "Paid out",
}
REFUND_COLUMNS: tuple[tuple[str, int], ...] = (
    ("application", 13),
    ("participant", 28),
    ("invoice", 13),
    ("amount", 12),
    ("currency", 9),
    ("due by", 12),
    ("status", 10),
    ("method", 14),
    ("completed on", 13),
    ("completed by", 26),
    ("reference", 24),
    ("account holder", 26),
)


def refund_sheet(
    session: Session, edition: Edition, status: RefundStatusFilter, *, today: date
) -> Sheet:
    """The edition's refunds after cancellations, the earliest due first. One query.

    The account number stays out of the file: only the holder's name is exported.
    """
    conditions: list[Any] = [Invoice.edition_id == edition.id]
    if status in ("owed", "overdue"):
        conditions.append(col(Refund.status) == RefundStatus.owed.value)
    if status == "overdue":
        conditions.append(col(Refund.due_by) < today)
    if status == "completed":
        conditions.append(col(Refund.status) == RefundStatus.completed.value)
    found = session.exec(
        select(Refund, Application, Invoice)
        .join(Invoice, col(Invoice.id) == col(Refund.invoice_id))
        .outerjoin(Application, col(Application.id) == col(Refund.application_id))
        .where(*conditions)
        .order_by(col(Refund.due_by), col(Refund.id))
    ).all()
    body: list[list[Cell]] = []
    for refund, application, invoice in found:
        owed = refund.status == RefundStatus.owed.value
        body.append(
            [
                application.reference if application else "",
                # An overpayment of a group invoice goes back to its organisation.
                application.full_name if application else refund.payee_name,
                invoice.number,
                refund.amount,
                refund.currency,
                refund.due_by,
                ("overdue" if refund.due_by < today else "owed")
                if owed
                else (
                    "paid out" if refund.status == RefundStatus.completed.value else refund.status
                ),
                refund.method.replace("_", " "),
                refund.completed_on,
                refund.completed_by or "",
                refund.reference,
                refund.account_holder,
            ]
        )
    return Sheet("Refunds", REFUND_COLUMNS, body)


# Attendance marks, one row per participant and session

AttendanceStatusFilter = Literal["all", "present", "absent", "excused", "unmarked"]
ATTENDANCE_STATUS_FILTERS: dict[str, str] = {
    "all": "Every mark",
    "present": "Present",
    "absent": "Absent",
    "excused": "Excused",
    "unmarked": "Not marked",
}
ATTENDANCE_COLUMNS: tuple[tuple[str, int], ...] = (
    ("reference", 13),
    ("given name", 18),
    ("family name", 18),
    ("organisation", 30),
    ("lesson", 7),
    ("session", 30),
    ("kind", 16),
    ("starts at", 26),
    ("status", 10),
    ("marked by", 26),
    ("marked at", 26),
)
MARKED_STATUSES = ("confirmed", "completed")


def attendance_sheet(
    session: Session,
    edition: Edition,
    *,
    module_position: int | None = None,
    status: AttendanceStatusFilter = "all",
) -> Sheet:
    """Each confirmed participant at each session with their mark (empty when unmarked).

    Three queries however many participants: sessions, participants, marks.
    """
    sessions = session.exec(
        select(CourseSession, Module)
        .join(Module, col(Module.id) == col(CourseSession.module_id))
        .where(Module.edition_id == edition.id)
        .order_by(col(Module.position), col(CourseSession.starts_at), col(CourseSession.id))
    ).all()
    if module_position is not None:
        sessions = [(s, m) for s, m in sessions if m.position == module_position]
    people = session.exec(
        select(Application)
        .where(
            Application.edition_id == edition.id,
            col(Application.status).in_(MARKED_STATUSES),
        )
        .order_by(col(Application.family_name), col(Application.given_name), col(Application.id))
    ).all()
    marks: dict[tuple[int, int], AttendanceMark] = {}
    if sessions and people:
        for found in session.exec(
            select(AttendanceMark).where(
                col(AttendanceMark.course_session_id).in_([s.id for s, _ in sessions])
            )
        ).all():
            marks[(found.application_id, found.course_session_id)] = found
    body: list[list[Cell]] = []
    for person in people:
        for course_session, module in sessions:
            mark = marks.get((person.id or 0, course_session.id or 0))
            mark_status = mark.status if mark else "unmarked"
            if status != "all" and mark_status != status:
                continue
            body.append(
                [
                    person.reference,
                    person.given_name,
                    person.family_name,
                    person.organisation_name,
                    module.position,
                    course_session.title,
                    KIND_WORDS.get(course_session.kind, course_session.kind),
                    _instant(course_session.starts_at, edition.timezone),
                    mark.status if mark else "",
                    mark.marked_by if mark else "",
                    _instant(mark.marked_at, edition.timezone) if mark else "",
                ]
            )
    return Sheet("Attendance", ATTENDANCE_COLUMNS, body)


# The audit log

AUDIT_COLUMNS: tuple[tuple[str, int], ...] = (
    ("at", 26),
    ("actor", 28),
    ("action", 30),
    ("entity", 14),
    ("entity id", 14),
    ("before", 60),
    ("after", 60),
)


def _json(value: dict[str, Any] | None) -> str:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def audit_sheet(entries: Iterable[AuditEntry], *, timezone: str) -> Sheet:
    """Audit entries as they are listed, with before and after as JSON text."""
    return Sheet(
        "Audit log",
        AUDIT_COLUMNS,
        [
            [
                _instant(entry.at, timezone),
                entry.actor,
                entry.action,
                entry.entity,
                entry.entity_id,
                _json(entry.before),
                _json(entry.after),
            ]
            for entry in entries
        ],
    )
