"""Administrators' pages for applicants' personal data: export, erasure and retention."""

import json
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app.clock import utcnow
from app.models import Application, Edition, StaffUser
from app.platform.i18n import gettext, translate, translate_fields
from app.platform.pdf import render_pdf
from app.services.editions.editions import EditionPatch, get_edition, update_edition
from app.services.errors import InvalidInput
from app.services.office import personal_data as service
from app.services.registrations.applications import get_application
from app.web.dependencies import PageAdmin, SessionDep, StorageDep, templates
from app.web.security import verify_csrf

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)])

APPLICATIONS_PATH = "/admin/applications"
ERASE_TEMPLATE = "office/personal_data/erase.html"
RETENTION_TEMPLATE = "office/personal_data/retention.html"
RETENTION_MIN, RETENTION_MAX = 30, 3650


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def _export_name(application: Application, suffix: str) -> str:
    return f"personal-data-{application.reference}-{date.today().isoformat()}.{suffix}"


@router.post("/applications/{application_id}/personal-data/export.json")
def export_json(
    application_id: int, session: SessionDep, storage: StorageDep, user: PageAdmin
) -> Response:
    """Everything held about the applicant, across editions, as JSON (recorded in the audit)."""
    application = get_application(session, application_id)
    data = service.export_personal_data(
        session, application_id=application_id, storage=storage, actor=user.email, format="json"
    )
    body = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
    return _download(body, "application/json", _export_name(application, "json"))


@router.post("/applications/{application_id}/personal-data/export.pdf")
def export_pdf(
    application_id: int, session: SessionDep, storage: StorageDep, user: PageAdmin
) -> Response:
    """The same export as a PDF a person can read (recorded in the audit)."""
    application = get_application(session, application_id)
    data = service.export_personal_data(
        session, application_id=application_id, storage=storage, actor=user.email, format="pdf"
    )
    pdf = render_pdf("personal_data.html", service.export_document(data))
    return _download(pdf, "application/pdf", _export_name(application, "pdf"))


def _erase_page(
    request: Request,
    session: Session,
    user: StaffUser,
    application: Application,
    *,
    status_code: int = status.HTTP_200_OK,
    **extra: Any,
) -> Response:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    context: dict[str, Any] = {
        "user": user,
        "active": "applications",
        "application": application,
        "edition": edition,
        "blockers": (
            []
            if application.erased_at
            else service.erasure_blockers(session, application, now=utcnow())
        ),
        "reason": "",
        "errors": {},
        "refused": None,
        "back": f"{APPLICATIONS_PATH}/{application.id}",
    }
    context.update(extra)
    return templates.TemplateResponse(request, ERASE_TEMPLATE, context, status_code=status_code)


@router.get("/applications/{application_id}/erase", response_class=HTMLResponse)
def erase_form(
    application_id: int, request: Request, session: SessionDep, user: PageAdmin
) -> Response:
    """What erasure removes and keeps, why it may not be possible yet, and the form."""
    application = get_application(session, application_id)
    return _erase_page(request, session, user, application)


@router.post("/applications/{application_id}/erase", response_model=None)
def erase(
    application_id: int,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    user: PageAdmin,
    reason: Annotated[str, Form(max_length=5000)] = "",
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Erase the applicant's personal data on their request, with the written reason."""
    application = get_application(session, application_id)
    if application.erased_at is not None:
        return _erase_page(
            request,
            session,
            user,
            application,
            status_code=status.HTTP_409_CONFLICT,
            refused=gettext(
                "The personal data of %(reference)s was already erased on %(day)s; nothing is "
                "left to erase."
            )
            % {"reference": application.reference, "day": application.erased_at.date().isoformat()},
        )
    errors: dict[str, str] = {}
    if confirm != "yes":
        errors["confirm"] = gettext("Tick the box to confirm that the erasure cannot be undone.")
    try:
        service.written_reason(reason)
    except InvalidInput as exc:
        errors.update(translate_fields(exc.fields))
    if errors:
        return _erase_page(
            request,
            session,
            user,
            application,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            reason=reason,
            errors=errors,
        )
    try:
        outcome = service.erase_application(
            session,
            application_id=application_id,
            actor=user.email,
            reason=reason,
            storage=storage,
        )
    except service.ErasureRefused as exc:
        return _erase_page(
            request,
            session,
            user,
            application,
            status_code=status.HTTP_409_CONFLICT,
            reason=reason,
            blockers=exc.reasons,
            refused=translate(exc.message),
        )
    except service.AlreadyErased as exc:
        return _erase_page(
            request,
            session,
            user,
            get_application(session, application_id),
            status_code=status.HTTP_409_CONFLICT,
            refused=translate(exc.message),
        )
    counts = {
        "reference": outcome.reference,
        "files": outcome.files_deleted,
        "emails": outcome.messages_erased,
    }
    if outcome.withdrawn:
        erased = gettext(
            "The personal data of %(reference)s was erased and the application withdrawn: "
            "%(files)s stored file(s) deleted, %(emails)s e-mail(s) emptied. Invoices and the "
            "certificate record were kept."
        )
    else:
        erased = gettext(
            "The personal data of %(reference)s was erased: %(files)s stored file(s) deleted, "
            "%(emails)s e-mail(s) emptied. Invoices and the certificate record were kept."
        )
    request.session["flash"] = erased % counts
    return RedirectResponse(
        f"{APPLICATIONS_PATH}/{application_id}", status_code=status.HTTP_303_SEE_OTHER
    )


# Retention per edition


def _retention_page(
    request: Request,
    session: Session,
    user: StaffUser,
    edition: Edition,
    *,
    status_code: int = status.HTTP_200_OK,
    **extra: Any,
) -> Response:
    context: dict[str, Any] = {
        "user": user,
        "active": "home",
        "edition": edition,
        "retained_until": service.retention_ends(edition),
        "over": service.retention_is_over(edition, utcnow()),
        "counts": service.retention_counts(session, edition),
        "value": str(edition.retention_days),
        "errors": {},
        "flash": request.session.pop("flash", None),
        "minimum": RETENTION_MIN,
        "maximum": RETENTION_MAX,
    }
    context.update(extra)
    return templates.TemplateResponse(request, RETENTION_TEMPLATE, context, status_code=status_code)


@router.get("/editions/{slug}/personal-data", response_class=HTMLResponse)
def retention_page(slug: str, request: Request, session: SessionDep, user: PageAdmin) -> Response:
    """How long the edition keeps applicants' personal data, and what it will erase."""
    return _retention_page(request, session, user, get_edition(session, slug))


@router.post("/editions/{slug}/personal-data", response_model=None)
def save_retention(
    slug: str,
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    retention_days: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Change the edition's retention period (recorded in the audit log)."""
    edition = get_edition(session, slug)
    typed = retention_days.strip()
    if not typed.isdigit() or not RETENTION_MIN <= int(typed) <= RETENTION_MAX:
        return _retention_page(
            request,
            session,
            user,
            edition,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            value=typed,
            errors={
                "retention_days": gettext(
                    "Enter a whole number of days from %(minimum)s to %(maximum)s."
                )
                % {"minimum": RETENTION_MIN, "maximum": RETENTION_MAX}
            },
        )
    update_edition(
        session, slug=slug, data=EditionPatch(retention_days=int(typed)), actor=user.email
    )
    request.session["flash"] = gettext(
        "Personal data of this edition is now kept %(days)s days."
    ) % {"days": int(typed)}
    return RedirectResponse(
        f"/admin/editions/{slug}/personal-data", status_code=status.HTTP_303_SEE_OTHER
    )
