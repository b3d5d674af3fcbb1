"""Logistics pages: the participant's form and visa letter, the office's list, CSV and letters."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.datastructures import FormData

from app.clock import utcnow
from app.config import Settings
from app.models import Application, Edition
from app.platform.i18n import gettext, translate, translate_fields
from app.routers.registrations import public as applicants
from app.services.errors import DomainError, NotFound
from app.services.registrations import applications as application_service
from app.services.registrations.portal import logistics_panel
from app.services.teaching import logistics as service
from app.web.dependencies import (
    FormDep,
    PageAdmin,
    SessionDep,
    SettingsDep,
    StorageDep,
    form_errors,
    templates,
)
from app.web.kit import chosen_edition, form_text, see_other
from app.web.security import verify_csrf

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

PORTAL_PAGE = "registrations/applicants/portal.html"
LOGISTICS_PARTIAL = "registrations/applicants/_logistics.html"
LIST_PAGE = "teaching/logistics/list.html"
FORM_FIELDS = (
    "certificate_name",
    "dietary",
    "accessibility",
    "arrival_date",
    "departure_date",
    "visa_letter_needed",
    "nationality",
    "passport_number",
    "date_of_birth",
)
# A letter holds a passport number: no shared cache may keep it.
PRIVATE_FILE_HEADERS = {"Cache-Control": "private, no-store"}


def _typed(form: FormData) -> dict[str, Any]:
    """The form as typed: strings to show again, the checkbox as a boolean."""
    values: dict[str, Any] = {name: form_text(form, name, strip=False) for name in FORM_FIELDS}
    values["visa_letter_needed"] = values["visa_letter_needed"] in ("yes", "on", "true", "1")
    return values


def _context(application: Application, edition: Edition) -> dict[str, Any]:
    return service.validation_context(
        edition,
        today=utcnow().date(),
        passport_on_file=bool(application.passport_number),
    )


def _portal_application(session: Session, token: str, secret_key: str) -> Application:
    return application_service.application_for_token(session, token, secret_key=secret_key)


def _edition_of(session: Session, application: Application) -> Edition:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return edition


def _portal_with_errors(
    request: Request,
    session: Session,
    settings: Settings,
    application: Application,
    token: str,
    *,
    values: dict[str, Any],
    errors: dict[str, str],
) -> Response:
    """The applicant's page again, with the logistics form as typed and its messages."""
    # The portal's own route builds its context (invoices, balance...): reuse it whole, so
    # the page with errors is the same page.
    page = applicants.portal(token, request, session, settings)
    context: dict[str, Any] = dict(getattr(page, "context", {}))
    context.setdefault("application", application)
    context.setdefault("edition", _edition_of(session, application))
    context.setdefault("token", token)
    context.update(
        submitted=False,
        flash=None,
        logistics_form={"values": values, "errors": errors},
    )
    return templates.TemplateResponse(
        request, PORTAL_PAGE, context, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


@router.post("/portal/{token}/logistics", response_class=HTMLResponse)
def save_logistics(
    token: str,
    request: Request,
    form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
) -> Response:
    """Save the participant's details for the week; errors go back next to their fields."""
    application = _portal_application(session, token, settings.secret_key)
    edition = _edition_of(session, application)
    values = _typed(form)
    if not service.can_give_logistics(application):
        request.session["flash"] = gettext(
            "Details for the week of the course can be given once you are admitted."
        )
        return see_other(f"/portal/{token}")
    try:
        data = service.LogisticsIn.model_validate(values, context=_context(application, edition))
        service.save_logistics(
            session, application=application, data=data, actor=application.email, storage=storage
        )
    except ValidationError as exc:
        return _portal_with_errors(
            request, session, settings, application, token, values=values, errors=form_errors(exc)
        )
    except DomainError as exc:
        errors = translate_fields(exc.fields) or {"certificate_name": translate(exc.message)}
        return _portal_with_errors(
            request, session, settings, application, token, values=values, errors=errors
        )
    request.session["flash"] = gettext(
        "Thank you: your details for the week in %(place)s are saved."
    ) % {"place": edition.place}
    return see_other(f"/portal/{token}#logistics-heading")


@router.get("/portal/{token}/logistics/visa-fields", response_class=HTMLResponse)
def visa_fields(
    token: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    visa_letter_needed: Annotated[str, Query(max_length=10)] = "",
    nationality: Annotated[str, Query(max_length=100)] = "",
    passport_number: Annotated[str, Query(max_length=40)] = "",
    date_of_birth: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """The visa fieldset for htmx: the fields when a letter is needed, else a short note."""
    application = _portal_application(session, token, settings.secret_key)
    values = {
        "visa_letter_needed": visa_letter_needed in ("yes", "on", "true", "1"),
        "nationality": nationality or application.nationality or "",
        "passport_number": passport_number,
        "date_of_birth": date_of_birth
        or (application.date_of_birth.isoformat() if application.date_of_birth else ""),
    }
    return templates.TemplateResponse(
        request,
        LOGISTICS_PARTIAL,
        {
            "application": application,
            "edition": _edition_of(session, application),
            "token": token,
            "logistics": logistics_panel(application, _edition_of(session, application)),
            "logistics_form": {"values": values, "errors": {}},
            "visa_toggled": True,
        },
    )


def _letter_response(application: Application, data: bytes) -> Response:
    filename = f"visa-letter-{application.reference}.pdf"
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            **PRIVATE_FILE_HEADERS,
        },
    )


@router.get("/portal/{token}/visa-letter.pdf")
def portal_visa_letter(
    token: str, session: SessionDep, settings: SettingsDep, storage: StorageDep
) -> Response:
    """The participant's own visa invitation letter."""
    application = _portal_application(session, token, settings.secret_key)
    if not application.visa_letter_key:
        raise NotFound("There is no visa letter for this application.")
    return _letter_response(application, storage.get(application.visa_letter_key))


# The office's side


def _pop(request: Request, key: str) -> str | None:
    message = request.session.pop(key, None)
    return message if isinstance(message, str) else None


@router.get("/admin/logistics", response_class=HTMLResponse)
def logistics_page(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    edition_slug: Annotated[str, Query(alias="edition", max_length=80)] = "",
) -> Response:
    """Admitted and confirmed participants with their needs, travel and visa letters."""
    edition = chosen_edition(session, edition_slug, prefer="upcoming")
    participants = service.logistics_list(session, edition) if edition else []
    editions = list(session.exec(select(Edition).order_by(col(Edition.start_date).desc())).all())
    return templates.TemplateResponse(
        request,
        LIST_PAGE,
        {
            "user": user,
            "edition": edition,
            "editions": editions,
            "participants": participants,
            "counts": {
                "dietary": sum(1 for a in participants if a.dietary),
                "accessibility": sum(1 for a in participants if a.accessibility),
                "visa": sum(1 for a in participants if a.visa_letter_needed),
                "letters": sum(1 for a in participants if a.visa_letter_key),
                "missing": sum(1 for a in participants if a.logistics_updated_at is None),
            },
            "complete": service.visa_details_complete,
            "flash": _pop(request, "flash"),
            "flash_error": _pop(request, "flash_error"),
        },
    )


@router.get("/admin/logistics.csv")
def logistics_csv(
    session: SessionDep,
    user: PageAdmin,
    edition_slug: Annotated[str, Query(alias="edition", max_length=80)] = "",
) -> Response:
    """The list for caterers and venues, without any visa details."""
    edition = chosen_edition(session, edition_slug, prefer="upcoming")
    if edition is None:
        raise NotFound("There is no edition yet.")
    body = service.logistics_csv(service.logistics_list(session, edition))
    stamp = utcnow().date().isoformat()
    return Response(
        # A byte-order mark lets spreadsheet programs read accented names as UTF-8.
        "\ufeff" + body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="logistics-{edition.slug}-{stamp}.csv"',
            **PRIVATE_FILE_HEADERS,
        },
    )


@router.post("/admin/applications/{application_id}/visa-letter")
def issue_visa_letter(
    application_id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    user: PageAdmin,
) -> Response:
    """Issue (or issue again) a participant's visa letter and tell them by e-mail."""
    application = application_service.get_application(session, application_id)
    edition = _edition_of(session, application)
    try:
        service.issue_visa_letter(
            session,
            application_id=application_id,
            actor=user.email,
            storage=storage,
            organisation_name=settings.organisation_name,
            organisation_address=settings.organisation_address,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
        )
    except DomainError as exc:
        request.session["flash_error"] = translate(exc.message)
    else:
        request.session["flash"] = gettext(
            "Visa letter issued for %(name)s (%(reference)s); they were e-mailed that it is on "
            "their page."
        ) % {
            "name": application.certificate_name or application.full_name,
            "reference": application.reference,
        }
    return see_other(f"/admin/logistics?edition={edition.slug}#participant-{application_id}")


@router.get("/admin/applications/{application_id}/visa-letter.pdf")
def admin_visa_letter(
    application_id: int, session: SessionDep, storage: StorageDep, user: PageAdmin
) -> Response:
    """The visa letter as issued to the participant."""
    application = application_service.get_application(session, application_id)
    if not application.visa_letter_key:
        raise NotFound(f"No visa letter was issued for {application.reference}.")
    return _letter_response(application, storage.get(application.visa_letter_key))
