"""Final work and eligibility pages: the participant's upload, the tutors' assessments, the
office's override; and the API call that records an assessment."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select
from starlette.datastructures import UploadFile

from app.config import Settings
from app.models import Application, Edition, FinalWork
from app.platform.i18n import N_, gettext, translate, translate_fields
from app.routers.registrations import pages as admin_applications
from app.routers.registrations import public as applicants
from app.services.certificates import eligibility as eligibility_service
from app.services.editions.editions import local_time
from app.services.errors import DomainError, InvalidInput
from app.services.registrations import applications as application_service
from app.services.teaching import final_work as service
from app.web.dependencies import (
    ApiStaff,
    FormDep,
    PageAdmin,
    PageStaff,
    SessionDep,
    SettingsDep,
    StorageDep,
    read_upload,
    templates,
)
from app.web.kit import chosen_edition, form_text, see_other
from app.web.security import verify_csrf

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])
api_router = APIRouter(prefix="/api/v1", tags=["final work"])

PORTAL_PAGE = "registrations/applicants/portal.html"
STAFF_PAGE = "teaching/final_works/list.html"
ASSESSMENT_CHOICES = {
    "presented": N_("Presented, decision pending"),
    "accepted": N_("Accepted"),
    "rejected": N_("Rejected"),
}
STATUS_LABELS = {
    "none": N_("Not uploaded"),
    "submitted": N_("Awaiting assessment"),
    "presented": N_("Presented"),
    "accepted": N_("Accepted"),
    "rejected": N_("Rejected"),
}
# Files may hold personal opinions and names: no shared cache keeps them.
PRIVATE_FILE_HEADERS = {"Cache-Control": "private, no-store"}

# The application's timeline on the office's page names these entries in words.
admin_applications.ACTION_WORDS.update(
    {
        "final_work.uploaded": N_("Final work uploaded"),
        "final_work.replaced": N_("Final work replaced by a new file"),
        "final_work.assessed": N_("Final work assessed"),
        "eligibility.override_granted": N_("Made eligible for the certificate by override"),
        "eligibility.override_removed": N_("Eligibility override removed"),
    }
)


def _pop(request: Request, key: str) -> Any:
    return request.session.pop(key, None)


def _edition_of(session: Session, application: Application) -> Edition:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return edition


def _pdf(filename: str, data: bytes) -> Response:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in filename) or "final-work.pdf"
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{safe}"', **PRIVATE_FILE_HEADERS},
    )


# The participant's portal


def _portal_with_errors(
    request: Request, session: Session, settings: Settings, token: str, errors: dict[str, str]
) -> Response:
    """The applicant's page again, with the message next to the upload field."""
    page = applicants.portal(token, request, session, settings)
    context: dict[str, Any] = dict(getattr(page, "context", {}))
    context.update(submitted=False, flash=None, final_work_errors=errors)
    code = (
        status.HTTP_409_CONFLICT if "conflict" in errors else status.HTTP_422_UNPROCESSABLE_CONTENT
    )
    return templates.TemplateResponse(request, PORTAL_PAGE, context, status_code=code)


@router.post("/portal/{token}/final-work", response_class=HTMLResponse)
def upload_final_work(
    token: str,
    request: Request,
    form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
) -> Response:
    """The participant uploads (or replaces) their final work as a PDF."""
    application = application_service.application_for_token(
        session, token, secret_key=settings.secret_key
    )
    upload = form.get("final_work")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _portal_with_errors(
            request,
            session,
            settings,
            token,
            {"final_work": gettext("Choose a PDF file to upload.")},
        )
    data = read_upload(upload, service.FINAL_WORK_MAX_BYTES + 1)
    try:
        work = service.upload_final_work(
            session,
            application=application,
            data=data,
            filename=upload.filename,
            storage=storage,
        )
    except InvalidInput as exc:
        return _portal_with_errors(
            request,
            session,
            settings,
            token,
            translate_fields(exc.fields) or {"final_work": translate(exc.message)},
        )
    except DomainError as exc:
        return _portal_with_errors(
            request, session, settings, token, {"conflict": translate(exc.message)}
        )
    request.session["flash"] = gettext(
        "Thank you: your final work “%(filename)s” is uploaded. Your tutor will assess it."
    ) % {"filename": work.filename}
    return see_other(f"/portal/{token}#final-work-heading")


@router.get("/portal/{token}/final-work.pdf")
def portal_final_work_file(
    token: str, session: SessionDep, settings: SettingsDep, storage: StorageDep
) -> Response:
    """The participant's own final work, as uploaded."""
    application = application_service.application_for_token(
        session, token, secret_key=settings.secret_key
    )
    filename, data = service.final_work_file(
        session, application_id=application.id or 0, storage=storage
    )
    return _pdf(filename, data)


# Tutors and administrators


def _work_key(work: FinalWork | None) -> str:
    return work.status if work is not None and work.file_key else "none"


def _staff_page(
    request: Request,
    session: Session,
    user: Any,
    edition: Edition | None,
    *,
    show: str = "",
    forms: dict[int, dict[str, Any]] | None = None,
    status_code: int = status.HTTP_200_OK,
) -> Response:
    rows = service.edition_final_works(session, edition) if edition else []
    counts: dict[str, int] = dict.fromkeys(STATUS_LABELS, 0)
    for _, work in rows:
        counts[_work_key(work)] += 1
    shown = [(a, w) for a, w in rows if not show or _work_key(w) == show]
    editions = list(session.exec(select(Edition).order_by(col(Edition.start_date).desc())).all())
    return templates.TemplateResponse(
        request,
        STAFF_PAGE,
        {
            "user": user,
            "edition": edition,
            "editions": editions,
            "rows": shown,
            "total": len(rows),
            "counts": counts,
            "show": show,
            "labels": STATUS_LABELS,
            "choices": ASSESSMENT_CHOICES,
            "forms": forms or {},
            "work_key": _work_key,
            "flash": _pop(request, "flash"),
        },
        status_code=status_code,
    )


@router.get("/admin/final-works", response_class=HTMLResponse)
def final_works_page(
    request: Request,
    session: SessionDep,
    user: PageStaff,
    edition_slug: Annotated[str, Query(alias="edition", max_length=80)] = "",
    show: Annotated[
        Literal["", "none", "submitted", "presented", "accepted", "rejected"], Query()
    ] = "",
) -> Response:
    """Participants of an edition with their final work, to download and assess."""
    edition = chosen_edition(session, edition_slug, prefer="upcoming")
    return _staff_page(request, session, user, edition, show=show)


@router.get("/admin/applications/{application_id}/final-work.pdf")
def staff_final_work_file(
    application_id: int, session: SessionDep, storage: StorageDep, user: PageStaff
) -> Response:
    """A participant's final work, for tutors and administrators."""
    application_service.get_application(session, application_id)
    filename, data = service.final_work_file(
        session, application_id=application_id, storage=storage
    )
    return _pdf(filename, data)


@router.post("/admin/applications/{application_id}/final-work", response_class=HTMLResponse)
def assess_final_work(
    application_id: int,
    request: Request,
    form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    user: PageStaff,
) -> Response:
    """Record an assessment; a stale form shows what is stored now instead of overwriting it."""
    application = application_service.get_application(session, application_id)
    edition = _edition_of(session, application)
    values = {"status": form_text(form, "status"), "note": form_text(form, "note")}
    raw_version = form_text(form, "version")
    if raw_version and not raw_version.isdigit():
        return _staff_page(
            request,
            session,
            user,
            edition,
            forms={
                application_id: {"values": values, "errors": {"form": gettext("Reload the page.")}}
            },
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    try:
        service.assess_final_work(
            session,
            application_id=application_id,
            status=values["status"],
            note=values["note"],
            actor=user.email,
            expected_version=int(raw_version) if raw_version else None,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
        )
    except service.StaleFinalWork as exc:
        return _staff_page(
            request,
            session,
            user,
            edition,
            forms={
                application_id: {"values": values, "errors": {}, "conflict": translate(exc.message)}
            },
            status_code=status.HTTP_409_CONFLICT,
        )
    except InvalidInput as exc:
        return _staff_page(
            request,
            session,
            user,
            edition,
            forms={application_id: {"values": values, "errors": translate_fields(exc.fields)}},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    except DomainError as exc:
        return _staff_page(
            request,
            session,
            user,
            edition,
            forms={
                application_id: {"values": values, "errors": {}, "conflict": translate(exc.message)}
            },
            status_code=status.HTTP_409_CONFLICT,
        )
    request.session["flash"] = (
        gettext("Final work of %(name)s recorded as %(status)s. They were e-mailed.")
        if values["status"] in ("accepted", "rejected")
        else gettext("Final work of %(name)s recorded as %(status)s.")
    ) % {"name": application.full_name, "status": translate(values["status"])}
    return see_other(f"/admin/final-works?edition={edition.slug}#participant-{application_id}")


@router.post("/admin/applications/{application_id}/eligibility-override")
def grant_override(
    application_id: int,
    request: Request,
    form: FormDep,
    session: SessionDep,
    user: PageAdmin,
) -> Response:
    """Make a participant eligible despite unmet conditions, with the reason on record."""
    reason = form_text(form, "override_reason")
    try:
        eligibility_service.grant_override(
            session, application_id=application_id, reason=reason, actor=user
        )
    except InvalidInput as exc:
        request.session["eligibility_form"] = {
            "override_reason": reason,
            "errors": {"override_reason": translate(exc.fields.get("reason", exc.message))},
        }
    except DomainError as exc:
        request.session["eligibility_form"] = {"errors": {"override": translate(exc.message)}}
    else:
        request.session["flash"] = gettext("Eligibility overridden; the reason is on record.")
    return see_other(f"/admin/applications/{application_id}#eligibility-heading")


@router.post("/admin/applications/{application_id}/eligibility-override/remove")
def remove_override(
    application_id: int,
    request: Request,
    form: FormDep,
    session: SessionDep,
    user: PageAdmin,
) -> Response:
    """Withdraw an override, saying why."""
    reason = form_text(form, "removal_reason")
    try:
        eligibility_service.remove_override(
            session, application_id=application_id, reason=reason, actor=user
        )
    except InvalidInput as exc:
        request.session["eligibility_form"] = {
            "removal_reason": reason,
            "errors": {"removal_reason": translate(exc.fields.get("reason", exc.message))},
        }
    except DomainError as exc:
        request.session["eligibility_form"] = {"errors": {"override": translate(exc.message)}}
    else:
        request.session["flash"] = gettext("The override is removed; the reason is on record.")
    return see_other(f"/admin/applications/{application_id}#eligibility-heading")


# The JSON API


class AssessmentIn(BaseModel):
    """A tutor's assessment of a final work."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["submitted", "presented", "accepted", "rejected"]
    note: str = Field(default="", max_length=service.NOTE_MAX)
    version: int | None = Field(
        default=None, description="The version the assessment was made on; a stale one is 409."
    )


class FinalWorkOut(BaseModel):
    """A final work and its assessment."""

    status: str
    note: str
    filename: str | None
    size_bytes: int | None
    uploaded_at: str | None
    assessed_by: str | None
    assessed_at: str | None
    version: int


def final_work_out(work: FinalWork, edition: Edition) -> dict[str, Any]:
    """The JSON form of a final work, with times on the edition's clock."""
    return {
        "status": work.status,
        "note": work.note,
        "filename": work.filename,
        "size_bytes": work.size_bytes,
        "uploaded_at": local_time(edition, work.uploaded_at).isoformat()
        if work.uploaded_at
        else None,
        "assessed_by": work.assessed_by,
        "assessed_at": local_time(edition, work.assessed_at).isoformat()
        if work.assessed_at
        else None,
        "version": work.version,
    }


@api_router.put(
    "/applications/{application_id}/final-work",
    response_model=FinalWorkOut,
    responses={409: {"description": "Changed meanwhile; `current` holds the stored state."}},
)
def put_final_work(
    application_id: int,
    data: AssessmentIn,
    session: SessionDep,
    settings: SettingsDep,
    staff: ApiStaff,
) -> Any:
    """Record a tutor's assessment of a participant's final work (admin or tutor)."""
    application = application_service.get_application(session, application_id)
    edition = _edition_of(session, application)
    try:
        work = service.assess_final_work(
            session,
            application_id=application_id,
            status=data.status,
            note=data.note,
            actor=staff.email,
            expected_version=data.version,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
        )
    except service.StaleFinalWork as exc:
        return JSONResponse(
            {"detail": exc.message, "current": final_work_out(exc.current, edition)},
            status_code=status.HTTP_409_CONFLICT,
        )
    return final_work_out(work, edition)


def api_final_work(session: Session, application: Application) -> dict[str, Any] | None:
    """`final_work` of `GET /api/v1/applications/{id}`: status, note and its times."""
    work = service.final_work_of(session, application.id or 0)
    if work is None:
        return None
    edition = _edition_of(session, application)
    return final_work_out(work, edition)


def api_eligibility(session: Session, application: Application) -> dict[str, Any]:
    """`eligibility` of `GET /api/v1/applications/{id}`."""
    answer = eligibility_service.evaluate(session, application)
    return {
        "eligible": answer.eligible,
        "reasons": answer.reasons,
        "overridden": answer.overridden,
        "override_reason": answer.override_reason,
    }
