"""Exports for administrators: invoices and credit notes, payments, refunds and attendance,
each as CSV or XLSX with the filters chosen on the exports page (or linked from a list)."""

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select

from app.clock import edition_today
from app.models import Edition, Module
from app.platform.i18n import gettext
from app.services.editions.editions import (
    applications_are_open,
    get_edition,
    list_editions,
)
from app.services.errors import InvalidInput
from app.services.office import exports as ex
from app.web.dependencies import PageAdmin, SessionDep, templates
from app.web.security import verify_csrf

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)])

PAGE = "office/exports/page.html"
APPLICATION_STATUSES = (
    "submitted",
    "waitlisted",
    "admitted",
    "confirmed",
    "completed",
    "rejected",
    "withdrawn",
    "cancelled",
)
Fmt = ex.ExportFormat


@dataclass
class ExportsQuery:
    """The editions, the chosen one, and what each export form was last filled with."""

    editions: list[Edition]
    edition: Edition | None
    values: dict[str, str] = field(default_factory=dict)


def _chosen(session: Session, slug: str) -> tuple[list[Edition], Edition | None]:
    editions = list_editions(session)
    if slug:
        return editions, get_edition(session, slug)
    current = next((e for e in editions if applications_are_open(e)), None)
    return editions, current or (editions[0] if editions else None)


def _file(body: bytes, fmt: Fmt, name: str) -> Response:
    return Response(
        body,
        media_type=ex.MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )


def _page(
    request: Request,
    session: Session,
    user: Any,
    edition_slug: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    failed: str = "",
    status_code: int = status.HTTP_200_OK,
) -> Response:
    editions, edition = _chosen(session, edition_slug)
    modules: list[Module] = []
    if edition is not None:
        modules = list(
            session.exec(
                select(Module).where(Module.edition_id == edition.id).order_by(col(Module.position))
            ).all()
        )
    return templates.TemplateResponse(
        request,
        PAGE,
        {
            "user": user,
            "active": "exports",
            "editions": editions,
            "edition": edition,
            "modules": modules,
            "values": values or {},
            "errors": errors or {},
            "failed": failed,
            "application_statuses": APPLICATION_STATUSES,
            "invoice_statuses": ex.INVOICE_STATUS_FILTERS,
            "invoice_kinds": ex.INVOICE_KIND_FILTERS,
            "payment_kinds": ex.PAYMENT_KIND_FILTERS,
            "payment_methods": ex.PAYMENT_METHODS,
            "refund_statuses": ex.REFUND_STATUS_FILTERS,
            "attendance_statuses": ex.ATTENDANCE_STATUS_FILTERS,
        },
        status_code=status_code,
    )


def _refused(
    request: Request,
    session: Session,
    user: Any,
    edition: str,
    export: str,
    values: dict[str, str],
    exc: InvalidInput,
) -> Response:
    """The exports page again, the export's form showing what to correct."""
    return _page(
        request,
        session,
        user,
        edition,
        values={f"{export}_{k}": v for k, v in values.items()},
        errors={f"{export}_{k}": v for k, v in exc.fields.items()},
        failed=export,
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


@router.get("/exports", response_class=HTMLResponse)
def exports_page(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    edition: Annotated[str, Query(max_length=80)] = "",
) -> Response:
    """Every export of an edition, each with its filters and a CSV and an XLSX button."""
    return _page(request, session, user, edition)


def _edition(session: Session, slug: str) -> Edition:
    _, chosen = _chosen(session, slug)
    if chosen is None:
        raise InvalidInput(
            gettext("There is no edition yet."), fields={"edition": gettext("Create an edition.")}
        )
    return chosen


@router.get("/exports/invoices.{fmt}", response_model=None)
def export_invoices(
    fmt: Fmt,
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    edition: Annotated[str, Query(max_length=80)] = "",
    status_filter: Annotated[ex.InvoiceStatusFilter, Query(alias="status")] = "all",
    kind: ex.InvoiceKindFilter = "all",
    issued_from: Annotated[str, Query(alias="from", max_length=20)] = "",
    issued_to: Annotated[str, Query(alias="to", max_length=20)] = "",
) -> Response:
    """Invoices and credit notes for the accountant: amounts, buyer, tax id, what is paid."""
    chosen = _edition(session, edition)
    values = {"status": status_filter, "kind": kind, "from": issued_from, "to": issued_to}
    try:
        start = ex.parse_day(issued_from, "from")
        end = ex.parse_day(issued_to, "to")
        ex.check_range(start, end, "to")
    except InvalidInput as exc:
        return _refused(request, session, user, chosen.slug, "invoices", values, exc)
    sheet = ex.invoice_sheet(
        session,
        chosen,
        ex.InvoiceFilters(status=status_filter, kind=kind, issued_from=start, issued_to=end),
        today=edition_today(chosen),
    )
    return _file(ex.render(sheet, fmt), fmt, ex.file_name("invoices", chosen.slug, fmt))


@router.get("/exports/payments.{fmt}", response_model=None)
def export_payments(
    fmt: Fmt,
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    edition: Annotated[str, Query(max_length=80)] = "",
    kind: ex.PaymentKindFilter = "all",
    method: Annotated[str, Query(max_length=20)] = "",
    received_from: Annotated[str, Query(alias="from", max_length=20)] = "",
    received_to: Annotated[str, Query(alias="to", max_length=20)] = "",
    flagged: Annotated[str, Query(max_length=5)] = "",
) -> Response:
    """Payments by value date, to tick off against the bank statement."""
    chosen = _edition(session, edition)
    values = {
        "kind": kind,
        "method": method,
        "from": received_from,
        "to": received_to,
        "flagged": flagged,
    }
    try:
        if method not in ex.PAYMENT_METHODS:
            raise InvalidInput(
                gettext("Unknown payment method."),
                fields={"method": gettext("Choose a method from the list.")},
            )
        start = ex.parse_day(received_from, "from")
        end = ex.parse_day(received_to, "to")
        ex.check_range(start, end, "to")
    except InvalidInput as exc:
        return _refused(request, session, user, chosen.slug, "payments", values, exc)
    sheet = ex.payment_sheet(
        session,
        chosen,
        ex.PaymentFilters(
            kind=kind,
            method=method,
            received_from=start,
            received_to=end,
            flagged_only=bool(flagged),
        ),
    )
    return _file(ex.render(sheet, fmt), fmt, ex.file_name("payments", chosen.slug, fmt))


@router.get("/exports/refunds.{fmt}", response_model=None)
def export_refunds(
    fmt: Fmt,
    session: SessionDep,
    user: PageAdmin,
    edition: Annotated[str, Query(max_length=80)] = "",
    status_filter: Annotated[ex.RefundStatusFilter, Query(alias="status")] = "all",
) -> Response:
    """Refunds after cancellations: owed, overdue and paid out."""
    chosen = _edition(session, edition)
    sheet = ex.refund_sheet(session, chosen, status_filter, today=edition_today(chosen))
    return _file(ex.render(sheet, fmt), fmt, ex.file_name("refunds", chosen.slug, fmt))


@router.get("/exports/attendance.{fmt}", response_model=None)
def export_attendance(
    fmt: Fmt,
    session: SessionDep,
    user: PageAdmin,
    edition: Annotated[str, Query(max_length=80)] = "",
    lesson: Annotated[int | None, Query(ge=1, le=100)] = None,
    status_filter: Annotated[ex.AttendanceStatusFilter, Query(alias="status")] = "all",
) -> Response:
    """Each participant at each session with the mark, who marked it and when."""
    chosen = _edition(session, edition)
    sheet = ex.attendance_sheet(session, chosen, module_position=lesson, status=status_filter)
    return _file(ex.render(sheet, fmt), fmt, ex.file_name("attendance-marks", chosen.slug, fmt))
