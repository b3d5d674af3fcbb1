"""Attendance pages: the programme editor, tutors' sheets and check-in codes, progress, exports,
and the participant's programme, progress and check-in in the portal."""

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import segno
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select
from starlette.datastructures import FormData

from app.clock import utcnow
from app.config import Settings
from app.models import (
    Application,
    CourseSession,
    Edition,
    Module,
    SessionKind,
)
from app.platform.i18n import gettext, ngettext, translate, translate_fields
from app.routers.registrations import public as applicants
from app.services.editions.editions import get_edition
from app.services.errors import Conflict, DomainError, InvalidInput, NotFound
from app.services.registrations.applications import application_for_token
from app.services.teaching import attendance as service
from app.services.teaching import attendance_sheet as attendance_export
from app.services.teaching import check_in as check_in_service
from app.services.teaching import programme as schedule_service
from app.web.dependencies import (
    FormDep,
    PageAdmin,
    PageStaff,
    SessionDep,
    SettingsDep,
    is_htmx,
    templates,
)
from app.web.kit import chosen_edition, form_text, see_other
from app.web.security import verify_csrf

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

SESSIONS_PAGE = "teaching/attendance/sessions.html"
SCHEDULE_PAGE = "teaching/attendance/schedule.html"
SESSION_FORM_PAGE = "teaching/attendance/session_form.html"
SHEET_PAGE = "teaching/attendance/sheet.html"
ROW_RESPONSE = "teaching/attendance/row_response.html"
CHECK_IN_PAGE = "teaching/attendance/check_in.html"
PROGRESS_PAGE = "teaching/attendance/progress.html"
PARTICIPANT_PAGE = "teaching/attendance/participant.html"
AT_RISK_PAGE = "teaching/attendance/at_risk.html"
PUBLIC_CHECK_IN_PAGE = "registrations/applicants/check_in.html"
PORTAL_PAGE = "registrations/applicants/portal.html"
SESSION_FIELDS = ("module_id", "kind", "title", "starts_at", "ends_at", "place")
KIND_CHOICES = [(k.value, service.KIND_LABELS[k.value]) for k in SessionKind]
CALENDAR_HEADERS = {"Cache-Control": "private, no-cache"}
PRIVATE_FILE_HEADERS = {"Cache-Control": "private, no-store"}


def _pop(request: Request, key: str) -> str | None:
    message = request.session.pop(key, None)
    return message if isinstance(message, str) else None


def _zone(edition: Edition) -> ZoneInfo:
    return ZoneInfo(edition.timezone)


def _editions(session: Session) -> list[Edition]:
    return list(session.exec(select(Edition).order_by(col(Edition.start_date).desc())).all())


# Staff: the sessions of an edition


@dataclass(frozen=True)
class SessionLine:
    """A session on the tutors' list, with how far its sheet is."""

    course_session: CourseSession
    module_position: int
    module_title: str
    counts: service.SheetCounts
    in_progress: bool


@router.get("/admin/attendance", response_class=HTMLResponse)
def sessions_page(
    request: Request,
    session: SessionDep,
    user: PageStaff,
    edition_slug: Annotated[str, Query(alias="edition", max_length=80)] = "",
) -> Response:
    """The edition's sessions by day, each with its sheet and check-in code."""
    edition = chosen_edition(session, edition_slug, prefer="upcoming")
    days: dict[date, list[SessionLine]] = {}
    now = utcnow()
    if edition is not None:
        matrix = service.attendance_matrix(session, edition)
        positions = {m.id: (m.position, m.title) for m in matrix.modules}
        for course_session in sorted(matrix.sessions, key=lambda s: s.starts_at):
            statuses = [
                row.marks[course_session.id or 0].status
                if (course_session.id or 0) in row.marks
                else None
                for row in matrix.rows
            ]
            position, title = positions.get(course_session.module_id, (0, ""))
            line = SessionLine(
                course_session=course_session,
                module_position=position,
                module_title=title,
                counts=service.SheetCounts(
                    present=statuses.count("present"),
                    absent=statuses.count("absent"),
                    excused=statuses.count("excused"),
                    unmarked=statuses.count(None),
                ),
                in_progress=check_in_service.check_in_window(course_session).contains(now),
            )
            day = course_session.starts_at.astimezone(_zone(edition)).date()
            days.setdefault(day, []).append(line)
    return templates.TemplateResponse(
        request,
        SESSIONS_PAGE,
        {
            "user": user,
            "active": "attendance",
            "edition": edition,
            "editions": _editions(session),
            "days": sorted(days.items()),
            "kind_labels": service.KIND_LABELS,
            "flash": _pop(request, "flash"),
        },
    )


# Staff: the programme editor (administrators)


def _session_values(course_session: CourseSession | None, edition: Edition) -> dict[str, str]:
    if course_session is None:
        return {
            "module_id": "",
            "kind": "knowledge",
            "title": "",
            "starts_at": "",
            "ends_at": "",
            "place": "",
        }
    zone = _zone(edition)
    return {
        "module_id": str(course_session.module_id),
        "kind": course_session.kind,
        "title": course_session.title,
        "starts_at": course_session.starts_at.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
        "ends_at": course_session.ends_at.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
        "place": course_session.place,
    }


def _module_choices(programme: list[tuple[Module, list[CourseSession]]]) -> list[tuple[str, str]]:
    lesson = gettext("Lesson %(position)s: %(title)s")
    return [(str(m.id), lesson % {"position": m.position, "title": m.title}) for m, _ in programme]


def _typed_session(form: FormData) -> dict[str, str]:
    return {name: form_text(form, name, 300) for name in SESSION_FIELDS}


def _schedule_input(values: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = dict(values)
    data["module_id"] = values["module_id"] if values["module_id"].isdigit() else None
    for name in ("starts_at", "ends_at"):
        data[name] = values[name] or None
    return data


def _schedule_page(
    request: Request,
    session: Session,
    user: Any,
    edition: Edition,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    programme = schedule_service.programme(session, edition)
    return templates.TemplateResponse(
        request,
        SCHEDULE_PAGE,
        {
            "user": user,
            "active": "attendance",
            "edition": edition,
            "programme": programme,
            "module_choices": _module_choices(programme),
            "kind_choices": [(kind, gettext(label)) for kind, label in KIND_CHOICES],
            "kind_labels": service.KIND_LABELS,
            "values": values or _session_values(None, edition),
            "errors": errors or {},
            "flash": _pop(request, "flash"),
            "flash_error": _pop(request, "flash_error"),
        },
        status_code=status_code,
    )


@router.get("/admin/editions/{slug}/schedule", response_class=HTMLResponse)
def schedule_page(slug: str, request: Request, session: SessionDep, user: PageAdmin) -> Response:
    """Each module's sessions, with a form to add one."""
    return _schedule_page(request, session, user, get_edition(session, slug))


@router.post("/admin/editions/{slug}/schedule", response_class=HTMLResponse)
def add_session(
    slug: str, request: Request, form: FormDep, session: SessionDep, user: PageAdmin
) -> Response:
    """Add a session to a module; errors go back next to their fields."""
    edition = get_edition(session, slug)
    values = _typed_session(form)
    try:
        data = schedule_service.parse_session_form(_schedule_input(values))
        created = schedule_service.create_session(
            session, edition=edition, data=data, actor=user.email
        )
    except InvalidInput as exc:
        session.rollback()
        return _schedule_page(
            request,
            session,
            user,
            edition,
            values=values,
            errors=translate_fields(exc.fields) or {"title": translate(exc.message)},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    request.session["flash"] = gettext("“%(title)s” was added to the programme.") % {
        "title": created.title
    }
    return see_other(f"/admin/editions/{slug}/schedule#session-{created.id}")


def _session_form(
    request: Request,
    session: Session,
    user: Any,
    course_session: CourseSession,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    edition = service.edition_of(session, course_session)
    programme = schedule_service.programme(session, edition)
    return templates.TemplateResponse(
        request,
        SESSION_FORM_PAGE,
        {
            "user": user,
            "active": "attendance",
            "edition": edition,
            "course_session": course_session,
            "module_choices": _module_choices(programme),
            "kind_choices": [(kind, gettext(label)) for kind, label in KIND_CHOICES],
            "values": values or _session_values(course_session, edition),
            "errors": errors or {},
            "flash_error": _pop(request, "flash_error"),
        },
        status_code=status_code,
    )


@router.get("/admin/sessions/{session_id}/edit", response_class=HTMLResponse)
def edit_session_form(
    session_id: int, request: Request, session: SessionDep, user: PageAdmin
) -> Response:
    """The form to change one session."""
    return _session_form(request, session, user, service.get_course_session(session, session_id))


@router.post("/admin/sessions/{session_id}/edit", response_class=HTMLResponse)
def edit_session(
    session_id: int, request: Request, form: FormDep, session: SessionDep, user: PageAdmin
) -> Response:
    """Change a session; its marks stay with it."""
    course_session = service.get_course_session(session, session_id)
    edition = service.edition_of(session, course_session)
    values = _typed_session(form)
    try:
        data = schedule_service.parse_session_form(_schedule_input(values))
        schedule_service.update_session(
            session, course_session_id=session_id, data=data, actor=user.email
        )
    except InvalidInput as exc:
        session.rollback()
        return _session_form(
            request,
            session,
            user,
            service.get_course_session(session, session_id),
            values=values,
            errors=translate_fields(exc.fields) or {"title": translate(exc.message)},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    request.session["flash"] = f"“{data.title}” was saved."
    return see_other(f"/admin/editions/{edition.slug}/schedule#session-{session_id}")


@router.post("/admin/sessions/{session_id}/delete")
def remove_session(
    session_id: int, request: Request, session: SessionDep, user: PageAdmin
) -> Response:
    """Remove a session that has no marks."""
    course_session = service.get_course_session(session, session_id)
    edition = service.edition_of(session, course_session)
    title = course_session.title
    try:
        schedule_service.delete_session(session, course_session_id=session_id, actor=user.email)
    except Conflict as exc:
        request.session["flash_error"] = translate(exc.message)
        return see_other(f"/admin/sessions/{session_id}/edit")
    request.session["flash"] = gettext("“%(title)s” was removed from the programme.") % {
        "title": title
    }
    return see_other(f"/admin/editions/{edition.slug}/schedule")


# Staff: the attendance sheet


def _session_context(session: Session, course_session: CourseSession) -> dict[str, Any]:
    edition = service.edition_of(session, course_session)
    module = service.module_of(session, course_session)
    return {
        "edition": edition,
        "module": module,
        "course_session": course_session,
        "kind_label": service.KIND_LABELS.get(course_session.kind, course_session.kind),
        "starts": course_session.starts_at.astimezone(_zone(edition)),
        "ends": course_session.ends_at.astimezone(_zone(edition)),
        "window": check_in_service.check_in_window(course_session),
    }


def _names_for(session: Session, rows: list[service.SheetRow]) -> dict[str, str]:
    return service.staff_names(
        session, [row.mark.marked_by for row in rows if row.mark is not None]
    )


def _sheet_context(
    request: Request, session: Session, user: Any, course_session: CourseSession
) -> dict[str, Any]:
    rows = service.attendance_sheet(session, course_session)
    history = service.session_history(session, course_session.id or 0)
    names = _names_for(session, rows)
    names.update(service.staff_names(session, [c.marked_by for c, _ in history]))
    return {
        **_session_context(session, course_session),
        "user": user,
        "active": "attendance",
        "rows": rows,
        "counts": service.sheet_counts(rows),
        "history": history,
        "names": names,
        "status_labels": service.STATUS_LABELS,
        "flash": _pop(request, "flash"),
        "flash_error": _pop(request, "flash_error"),
    }


@router.get("/admin/sessions/{session_id}", response_class=HTMLResponse)
def sheet_page(session_id: int, request: Request, session: SessionDep, user: PageStaff) -> Response:
    """Every confirmed participant with one tap for present, absent or excused."""
    course_session = service.get_course_session(session, session_id)
    return templates.TemplateResponse(
        request, SHEET_PAGE, _sheet_context(request, session, user, course_session)
    )


def _row_response(
    request: Request,
    session: Session,
    course_session: CourseSession,
    application_id: int,
    *,
    message: str = "",
    error: str = "",
) -> Response:
    row = service.sheet_row(session, course_session, application_id)
    rows = service.attendance_sheet(session, course_session)
    return templates.TemplateResponse(
        request,
        ROW_RESPONSE,
        {
            **_session_context(session, course_session),
            "row": row,
            "counts": service.sheet_counts(rows),
            "names": _names_for(session, [row]),
            "status_labels": service.STATUS_LABELS,
            "row_message": message,
            "row_error": error,
        },
    )


@router.post("/admin/sessions/{session_id}/marks/{application_id}", response_model=None)
def mark(
    session_id: int,
    application_id: int,
    request: Request,
    form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    user: PageStaff,
) -> Response:
    """Save one participant's mark at once; htmx gets the row back, a plain form the sheet."""
    course_session = service.get_course_session(session, session_id)
    service.mark_attendance(
        session,
        course_session_id=session_id,
        application_id=application_id,
        status=form_text(form, "status", 20),
        actor=user.email,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
    )
    if is_htmx(request):
        return _row_response(request, session, course_session, application_id)
    return see_other(f"/admin/sessions/{session_id}#row-{application_id}")


@router.post("/admin/sessions/{session_id}/marks/{application_id}/undo", response_model=None)
def undo(
    session_id: int,
    application_id: int,
    request: Request,
    form: FormDep,
    session: SessionDep,
    user: PageStaff,
) -> Response:
    """Take back the latest change of one participant's mark."""
    course_session = service.get_course_session(session, session_id)
    change = form_text(form, "change_id", 20)
    error = ""
    try:
        service.undo_last_change(
            session,
            course_session_id=session_id,
            application_id=application_id,
            actor=user.email,
            change_id=int(change) if change.isdigit() else None,
        )
    except (service.NothingToUndo, service.MarkChangedSince) as exc:
        session.rollback()
        error = translate(exc.message)
    if is_htmx(request):
        return _row_response(request, session, course_session, application_id, error=error)
    if error:
        request.session["flash_error"] = error
    return see_other(f"/admin/sessions/{session_id}#row-{application_id}")


@router.post("/admin/sessions/{session_id}/mark-everyone-present", response_model=None)
def everyone_present(
    session_id: int, request: Request, session: SessionDep, user: PageStaff
) -> Response:
    """Mark present everyone not marked yet; the exceptions are then one tap each."""
    course_session = service.get_course_session(session, session_id)
    count = service.mark_everyone_present(session, course_session_id=session_id, actor=user.email)
    message = (
        ngettext(
            "%(num)s participant marked present.", "%(num)s participants marked present.", count
        )
        % {"num": count}
        if count
        else gettext("Everyone was already marked.")
    )
    if is_htmx(request):
        context = _sheet_context(request, session, user, course_session)
        context["flash"] = message
        return templates.TemplateResponse(request, SHEET_PAGE, context, block_name="sheet")
    request.session["flash"] = message
    return see_other(f"/admin/sessions/{session_id}")


# Staff: the check-in code


def qr_svg(url: str, label: str) -> str:
    """An inline SVG QR code of `url`, scalable by CSS."""
    svg: str = segno.make(url, error="m").svg_inline(
        scale=1, border=2, omitsize=True, title=label, svgclass="qr-code", lineclass="qr-line"
    )
    # A role and the <title> give screen readers a name for the picture.
    return svg.replace("<svg ", '<svg role="img" ', 1)


def check_in_url(settings: Settings, code: str) -> str:
    """The address a scanned code opens."""
    return f"{settings.base_url.rstrip('/')}/check-in?code={quote(code)}"


@router.get("/admin/sessions/{session_id}/check-in", response_class=HTMLResponse)
def check_in_page(
    session_id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: PageStaff,
) -> Response:
    """The code (large, and as a QR code) to show the room while check-in is open."""
    course_session = service.get_course_session(session, session_id)
    stored = check_in_service.code_for_session(session, session_id)
    context = _session_context(session, course_session)
    now = utcnow()
    return templates.TemplateResponse(
        request,
        CHECK_IN_PAGE,
        {
            **context,
            "user": user,
            "active": "attendance",
            "code": stored,
            "qr": qr_svg(check_in_url(settings, stored.code), f"Check-in code {stored.code}")
            if stored
            else "",
            "open_now": context["window"].contains(now),
            "not_yet": now < context["window"].opens,
            "refused": check_in_service.refused_attempts(session, session_id),
            "flash": _pop(request, "flash"),
        },
    )


@router.post("/admin/sessions/{session_id}/check-in", response_model=None)
def make_check_in_code(
    session_id: int, request: Request, form: FormDep, session: SessionDep, user: PageStaff
) -> Response:
    """Make the session's code, or replace it when it was seen outside the room."""
    renew = form_text(form, "renew", 5) == "1"
    check_in_service.show_code(session, course_session_id=session_id, actor=user.email, renew=renew)
    if renew:
        request.session["flash"] = gettext(
            "A new code replaces the old one, which no longer works."
        )
    return see_other(f"/admin/sessions/{session_id}/check-in")


# Staff: progress, at-risk list, exports


@router.get("/admin/editions/{slug}/progress", response_class=HTMLResponse)
def progress_page(
    slug: str,
    request: Request,
    session: SessionDep,
    user: PageStaff,
    module_id: Annotated[int | None, Query(alias="module", ge=1)] = None,
) -> Response:
    """Participants x modules (complete, partial, missing); a module opens into its sessions."""
    edition = get_edition(session, slug)
    matrix = service.attendance_matrix(session, edition)
    opened = next((m for m in matrix.modules if m.id == module_id), None)
    if module_id is not None and opened is None:
        raise NotFound(f"Module {module_id} is not part of {edition.title}.")
    return templates.TemplateResponse(
        request,
        PROGRESS_PAGE,
        {
            "user": user,
            "active": "attendance",
            "edition": edition,
            "matrix": matrix,
            "opened": opened,
            "opened_sessions": matrix.sessions_by_module.get(opened.id or 0, []) if opened else [],
            "state_labels": service.STATE_LABELS,
            "status_labels": service.STATUS_LABELS,
            "kind_labels": service.KIND_LABELS,
            "at_risk": len(matrix.at_risk()),
        },
    )


@router.get("/admin/editions/{slug}/progress/{application_id}", response_class=HTMLResponse)
def participant_page(
    slug: str, application_id: int, request: Request, session: SessionDep, user: PageStaff
) -> Response:
    """One participant's marks at every session, with who marked what when."""
    edition = get_edition(session, slug)
    application = session.get(Application, application_id)
    if application is None or application.edition_id != edition.id:
        raise NotFound(f"Application {application_id} is not part of {edition.title}.")
    progress = service.participant_progress(session, application)
    history = service.participant_history(session, application_id)
    return templates.TemplateResponse(
        request,
        PARTICIPANT_PAGE,
        {
            "user": user,
            "active": "attendance",
            "edition": edition,
            "application": application,
            "progress": progress,
            "programme": schedule_service.programme(session, edition),
            "history": history,
            "sessions_by_id": {s.id: s for s in service.edition_sessions(session, edition)},
            "names": service.staff_names(session, [c.marked_by for c in history]),
            "state_labels": service.STATE_LABELS,
            "status_labels": service.STATUS_LABELS,
            "kind_labels": service.KIND_LABELS,
        },
    )


@router.get("/admin/editions/{slug}/at-risk", response_class=HTMLResponse)
def at_risk_page(slug: str, request: Request, session: SessionDep, user: PageStaff) -> Response:
    """Everyone who has missed a session, with the sessions they missed."""
    edition = get_edition(session, slug)
    matrix = service.attendance_matrix(session, edition)
    return templates.TemplateResponse(
        request,
        AT_RISK_PAGE,
        {
            "user": user,
            "active": "attendance",
            "edition": edition,
            "rows": matrix.at_risk(),
            "rule": service.attendance_rule(edition),
            "status_labels": service.STATUS_LABELS,
        },
    )


def _export_name(edition: Edition, extension: str) -> str:
    return f"attendance-{edition.slug}-{utcnow().date().isoformat()}.{extension}"


@router.get("/admin/editions/{slug}/attendance.csv")
def attendance_csv(slug: str, session: SessionDep, user: PageStaff) -> Response:
    """The matrix as CSV: a column per session and per module."""
    edition = get_edition(session, slug)
    body = attendance_export.attendance_csv(service.attendance_matrix(session, edition))
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{_export_name(edition, "csv")}"',
            **PRIVATE_FILE_HEADERS,
        },
    )


@router.get("/admin/editions/{slug}/attendance.xlsx")
def attendance_xlsx(slug: str, session: SessionDep, user: PageStaff) -> Response:
    """The matrix as an XLSX workbook."""
    edition = get_edition(session, slug)
    body = attendance_export.attendance_xlsx(service.attendance_matrix(session, edition))
    return Response(
        body,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={
            "Content-Disposition": f'attachment; filename="{_export_name(edition, "xlsx")}"',
            **PRIVATE_FILE_HEADERS,
        },
    )


# Public: the programme as a calendar, and the address a scanned check-in code opens


def _calendar_response(session: Session, edition: Edition, settings: Settings) -> Response:
    body = schedule_service.programme_ics(
        edition, schedule_service.programme(session, edition), base_url=settings.base_url
    )
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="programme-{edition.slug}.ics"',
            **CALENDAR_HEADERS,
        },
    )


@router.get("/editions/{slug}/programme.ics")
def public_programme_ics(slug: str, session: SessionDep, settings: SettingsDep) -> Response:
    """The edition's programme for a calendar program."""
    return _calendar_response(session, get_edition(session, slug), settings)


@router.get("/check-in", response_class=HTMLResponse)
def scanned_code(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    code: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """Back to the participant's own page with the code filled in, if this browser opened it."""
    typed = check_in_service.normalise_code(code)
    token = request.session.get(applicants.REMEMBERED_PORTAL)
    if isinstance(token, str) and token:
        try:
            application_for_token(session, token, secret_key=settings.secret_key)
        except NotFound:
            request.session.pop(applicants.REMEMBERED_PORTAL, None)
        else:
            return see_other(f"/portal/{token}?checkin={quote(typed)}#check-in-heading")
    return templates.TemplateResponse(request, PUBLIC_CHECK_IN_PAGE, {"code": typed})


# The portal: the programme for a calendar, and check-in


@router.get("/portal/{token}/programme.ics")
def portal_programme_ics(token: str, session: SessionDep, settings: SettingsDep) -> Response:
    """The participant's programme for their calendar."""
    application = application_for_token(session, token, secret_key=settings.secret_key)
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return _calendar_response(session, edition, settings)


def _portal_with_check_in_error(
    request: Request,
    session: Session,
    settings: Settings,
    token: str,
    *,
    session_id: str,
    code: str,
    message: str,
    status_code: int,
) -> Response:
    """The participant's page again, with the code as typed and why it was refused."""
    page = applicants.portal(token, request, session, settings)
    context: dict[str, Any] = dict(getattr(page, "context", {}))
    context.update(
        submitted=False,
        flash=None,
        check_in_form={"session_id": session_id, "code": code, "error": message},
    )
    return templates.TemplateResponse(request, PORTAL_PAGE, context, status_code=status_code)


@router.post("/portal/{token}/check-in", response_class=HTMLResponse)
def portal_check_in(
    token: str,
    request: Request,
    form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """Mark the participant present with the code shown in the room."""
    application = application_for_token(session, token, secret_key=settings.secret_key)
    session_id = form_text(form, "session_id", 20)
    code = form_text(form, "code", 40)
    if not session_id.isdigit():
        return _portal_with_check_in_error(
            request,
            session,
            settings,
            token,
            session_id=session_id,
            code=code,
            message=gettext("Choose the session you are at."),
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    try:
        result = check_in_service.check_in(
            session,
            application=application,
            course_session_id=int(session_id),
            typed_code=code,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
        )
    except check_in_service.CheckInThrottled as exc:
        return _portal_with_check_in_error(
            request,
            session,
            settings,
            token,
            session_id=session_id,
            code=code,
            message=translate(exc.message),
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        )
    except DomainError as exc:
        status_code = (
            status.HTTP_404_NOT_FOUND
            if isinstance(exc, NotFound)
            else status.HTTP_422_UNPROCESSABLE_CONTENT
        )
        return _portal_with_check_in_error(
            request,
            session,
            settings,
            token,
            session_id=session_id,
            code=code,
            message=translate(exc.message),
            status_code=status_code,
        )
    title = result.course_session.title
    request.session["flash"] = (
        gettext("You were already marked present at “%(title)s”.")
        if result.already_present
        else gettext("Thank you: you are marked present at “%(title)s”.")
    ) % {"title": title}
    return see_other(f"/portal/{token}#check-in-heading")
