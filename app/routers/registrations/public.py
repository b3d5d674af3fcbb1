"""Pages for applicants: the application form, the private portal, link re-sending, groups."""

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.datastructures import FormData, UploadFile

from app.clock import utcnow
from app.db import writer_engine
from app.models import Edition, Organisation
from app.platform import jobs
from app.platform.i18n import N_, current_language, gettext, translate
from app.routers.billing.api import ubl_response
from app.services.billing import buyers, invoice_files
from app.services.billing.payments import participant_invoices
from app.services.billing.quotes import quote_for_edition
from app.services.editions.editions import applications_are_open, get_edition
from app.services.editions.fees import Quote
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registrations import applications as service
from app.services.registrations.portal import portal_view
from app.services.registry.countries import all_countries
from app.services.registry.organisations import search_organisations
from app.web.dependencies import (
    FormDep,
    SessionDep,
    SettingsDep,
    StorageDep,
    certificate_options,
    form_errors,
    read_upload,
    templates,
)
from app.web.kit import form_text
from app.web.security import upload_body_limit, verify_csrf

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

# The portal remembers, in this browser's signed session, which participant's page it opened,
# so that scanning a session's QR code can lead straight back to it.
REMEMBERED_PORTAL = "portal_token"

FORM_FIELDS = (
    "given_name",
    "family_name",
    "email",
    "organisation_id",
    "organisation_name",
    "country",
    "job_title",
    "department",
    "years_in_international_affairs",
    "motivation",
    "group_code",
    "consent",
    "language",
)
# A CV of 5 MB plus the other fields; larger bodies are refused before they are read.
MAX_BODY_BYTES = upload_body_limit(service.CV_MAX_BYTES)


@dataclass
class ApplyForm:
    """What the applicant typed, the organisations offered, the live quote and any errors."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    options: list[Organisation] = field(default_factory=list)
    quote: Quote | None = None
    cv_was_chosen: bool = False
    # Who the invoice is made out to, when someone else pays (optional).
    billing: dict[str, str] = field(default_factory=dict)
    billing_errors: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        """A typed value, or empty."""
        return self.values.get(name, "")


def _values(form: FormData) -> dict[str, str]:
    return {name: form_text(form, name) for name in (*FORM_FIELDS, "org_q")}


def _application_input(values: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {
        name: values[name]
        for name in ("given_name", "family_name", "email", "job_title", "department", "motivation")
    }
    # The language the form was read in (its hidden field), else the one of this request.
    data["language"] = values.get("language") or current_language()
    data["consent"] = values.get("consent") in ("on", "yes", "true", "1")
    organisation_id = values.get("organisation_id", "")
    if organisation_id.isdigit():
        data["organisation_id"] = int(organisation_id)
    else:
        data["organisation_name"] = values.get("organisation_name") or None
        data["country"] = values.get("country") or None
    years = values.get("years_in_international_affairs", "")
    data["years_in_international_affairs"] = years or None
    data["group_code"] = values.get("group_code") or None
    return data


# Messages are catalog ids (English); they are translated when the form is rendered.
_MESSAGES = {
    "consent": N_(
        "Please agree to the processing of your data; we cannot consider the application "
        "without it."
    ),
    "email": N_("Enter an e-mail address like name@city.gov."),
    "motivation": N_("Tell us in %(min)s to %(max)s characters why you want to take part."),
    "job_title": N_("Enter your job title."),
    "given_name": N_("Enter your given name."),
    "family_name": N_("Enter your family name."),
    "years_in_international_affairs": N_("Enter a whole number of years from 0 to 60."),
}
_MESSAGE_VALUES = {"min": service.MOTIVATION_MIN, "max": service.MOTIVATION_MAX}
DUPLICATE_EMAIL = N_(
    "You have already applied to this edition with this address. "
    "We can send you the link to your application again."
)


def _errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name, message in form_errors(exc).items():
        if name == "form" or name not in FORM_FIELDS:
            errors.setdefault("organisation_id", message)
            continue
        known = _MESSAGES.get(name)
        errors[name] = gettext(known) % _MESSAGE_VALUES if known else message
    return errors


def _validate(session: Session, edition: Edition, form: ApplyForm) -> service.ApplicationIn | None:
    try:
        data = service.ApplicationIn.model_validate(_application_input(form.values))
    except ValidationError as exc:
        form.errors.update(_errors(exc))
        return None
    return data


def _live_quote(session: Session, edition: Edition, form: ApplyForm) -> None:
    organisation_id = form.get("organisation_id")
    try:
        form.quote = quote_for_edition(
            session,
            edition=edition,
            organisation_id=int(organisation_id) if organisation_id.isdigit() else None,
            country=form.get("country") or None,
        )
    except InvalidInput:
        form.quote = None


def _organisation_choices(session: Session, query: str, chosen_id: str) -> list[Organisation]:
    """Registry matches for what was typed, with the one already chosen kept first."""
    found = search_organisations(session, query=query, limit=8) if query else []
    chosen = session.get(Organisation, int(chosen_id)) if chosen_id.isdigit() else None
    if chosen is not None and chosen not in found:
        found.insert(0, chosen)
    return found


def _options(session: Session, form: ApplyForm) -> list[Organisation]:
    return _organisation_choices(session, form.get("org_q"), form.get("organisation_id"))


def _form_context(edition: Edition, form: ApplyForm) -> dict[str, Any]:
    chosen = form.get("organisation_id")
    return {
        "edition": edition,
        "form": form,
        "calc": {
            "org_q": form.get("org_q"),
            "organisation_id": int(chosen) if chosen.isdigit() else None,
            "options": form.options,
            "quote": form.quote,
            "errors": {},
        },
        "countries": all_countries(),
        "consent_text": service.CONSENT_TEXT,
        "motivation_max": service.MOTIVATION_MAX,
        "motivation_min": service.MOTIVATION_MIN,
    }


def _render_form(
    request: Request, edition: Edition, form: ApplyForm, *, status_code: int = 200, **extra: Any
) -> Response:
    # Messages from the rules arrive in English; they are shown in the reader's language.
    form.errors = {name: translate(message) for name, message in form.errors.items()}
    return templates.TemplateResponse(
        request,
        "registrations/applicants/apply.html",
        {**_form_context(edition, form), **extra},
        status_code=status_code,
    )


def _closed_page(request: Request, session: Session, edition: Edition) -> Response | None:
    if not applications_are_open(edition):
        return templates.TemplateResponse(
            request,
            "registrations/applicants/closed.html",
            {"edition": edition, "reason": "closed"},
        )
    seats = service.capacity(session, edition)
    if seats.confirmed >= seats.seats:
        return templates.TemplateResponse(
            request, "registrations/applicants/closed.html", {"edition": edition, "reason": "full"}
        )
    return None


@router.get("/editions/{slug}/apply", response_class=HTMLResponse)
def apply_form(slug: str, request: Request, session: SessionDep) -> Response:
    """The application form, or a page saying why there is none."""
    edition = get_edition(session, slug)
    closed = _closed_page(request, session, edition)
    if closed is not None:
        return closed
    form = ApplyForm()
    return _render_form(request, edition, form)


@router.post("/editions/{slug}/apply/validate", response_class=HTMLResponse)
def validate_form(slug: str, request: Request, session: SessionDep, form_data: FormDep) -> Response:
    """Check the form as fields are left; htmx picks the message of the field it asked about."""
    edition = get_edition(session, slug)
    form = ApplyForm(values=_values(form_data))
    _validate(session, edition, form)
    form.options = _options(session, form)
    _live_quote(session, edition, form)
    return _render_form(request, edition, form)


@router.post("/editions/{slug}/apply", response_class=HTMLResponse)
def submit(
    slug: str,
    request: Request,
    raw: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
) -> Response:
    """Store the application and send the receipt; errors go back next to their fields."""
    edition = get_edition(session, slug)
    closed = _closed_page(request, session, edition)
    if closed is not None:
        return closed
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        form = ApplyForm(errors={"cv": "The CV must be a PDF of at most 5 MB."})
        return _render_form(request, edition, form, status_code=413)
    form = ApplyForm(values=_values(raw))
    form.options = _options(session, form)
    _live_quote(session, edition, form)
    cv, cv_name = None, None
    upload = raw.get("cv")
    if isinstance(upload, UploadFile) and upload.filename:
        form.cv_was_chosen = True
        cv = read_upload(upload, service.CV_MAX_BYTES + 1)
        cv_name = upload.filename
        try:
            service.check_cv(cv)
        except InvalidInput as exc:
            form.errors.update(exc.fields)
    form.billing = buyers.submitted_values(raw)
    billing = None
    try:
        billing = buyers.billing_from_form(raw)
        if billing is not None:
            buyers.checked_values(billing)
    except InvalidInput as exc:
        form.billing_errors = buyers.form_errors(exc)
    data = _validate(session, edition, form)
    if data is None or form.errors or form.billing_errors:
        return _render_form(request, edition, form, status_code=422)
    try:
        submitted = service.submit_application(
            session,
            edition_slug=edition.slug,
            data=data,
            cv=cv,
            cv_filename=cv_name,
            storage=storage,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
        )
    except Conflict as exc:
        if "email" in exc.fields:
            form.errors["email"] = DUPLICATE_EMAIL
            return _render_form(request, edition, form, status_code=409, duplicate=True)
        raise
    except InvalidInput as exc:
        form.errors.update(exc.fields or {"organisation_id": exc.message})
        return _render_form(request, edition, form, status_code=422)
    if billing is not None:
        buyers.save_application_billing(
            session, application=submitted.application, data=billing, actor=data.email
        )
        session.commit()
    token = submitted.portal_url.rsplit("/", 1)[-1]
    return RedirectResponse(f"/portal/{token}?submitted=1", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/portal/{token}", response_class=HTMLResponse)
def portal(token: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The applicant's own page: one application, its status, quote and next steps."""
    return _portal_page(token, request, session, settings)


def _portal_page(
    token: str,
    request: Request,
    session: Session,
    settings: Any,
    billing: dict[str, Any] | None = None,
    billing_errors: dict[str, str] | None = None,
) -> Response:
    application = service.application_for_token(session, token, secret_key=settings.secret_key)
    view = portal_view(
        session,
        application=application,
        now=utcnow(),
        certificate_options=certificate_options(request),
        card_payments=settings.stripe_enabled,
        typed_check_in_code=request.query_params.get("checkin", ""),
    )
    if view.remembers_check_in:
        request.session[REMEMBERED_PORTAL] = token
    if billing is None:
        billing = buyers.form_values(buyers.application_billing(session, application.id or 0))
    return templates.TemplateResponse(
        request,
        "registrations/applicants/portal.html",
        {
            "portal": view,
            "application": view.application,
            "edition": view.edition,
            "token": token,
            "submitted": request.query_params.get("submitted") == "1",
            "flash": request.session.pop("flash", None),
            "billing": billing,
            "billing_errors": billing_errors or {},
            "billing_id": "portal",
        },
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT if billing_errors else status.HTTP_200_OK,
    )


@router.post("/portal/{token}/billing", response_class=HTMLResponse)
def portal_billing(
    token: str, request: Request, session: SessionDep, settings: SettingsDep, form: FormDep
) -> Response:
    """The applicant's invoice details: who their next invoice is made out to."""
    application = service.application_for_token(session, token, secret_key=settings.secret_key)
    try:
        data = buyers.billing_from_form(form)
        if data is None:
            raise InvalidInput(
                "Give the legal name.", fields={"legal_name": gettext("Give the legal name.")}
            )
        buyers.save_application_billing(
            session, application=application, data=data, actor=application.email
        )
    except InvalidInput as exc:
        session.rollback()
        return _portal_page(
            token,
            request,
            session,
            settings,
            billing=buyers.submitted_values(form),
            billing_errors=buyers.form_errors(exc),
        )
    session.commit()
    request.session["flash"] = gettext("Your invoice details are saved for your next invoice.")
    return RedirectResponse(
        f"/portal/{token}#invoice-details", status_code=status.HTTP_303_SEE_OTHER
    )


@router.post("/portal/{token}/withdraw")
def withdraw(token: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Withdraw a submitted or waitlisted application."""
    application = service.application_for_token(session, token, secret_key=settings.secret_key)
    try:
        service.withdraw(session, application=application)
    except Conflict as exc:
        request.session["flash"] = exc.message
    else:
        request.session["flash"] = "Your application is withdrawn."
    return RedirectResponse(f"/portal/{token}", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/portal/{token}/fee-waiver.pdf")
def fee_waiver_pdf(
    token: str, session: SessionDep, settings: SettingsDep, storage: StorageDep
) -> Response:
    """The numbered fee-waiver confirmation of a waived participant."""
    application = service.application_for_token(session, token, secret_key=settings.secret_key)
    if not application.fee_waiver_key:
        raise NotFound("There is no fee-waiver confirmation for this application.")
    return Response(
        storage.get(application.fee_waiver_key),
        media_type="application/pdf",
        headers={
            "Content-Disposition": (
                f'attachment; filename="fee-waiver-{application.fee_waiver_number}.pdf"'
            )
        },
    )


@router.get("/portal/{token}/invoices/{number}.pdf")
def invoice_pdf(
    token: str, number: str, session: SessionDep, settings: SettingsDep, storage: StorageDep
) -> Response:
    """An invoice or credit note with a line for this application, and no other."""
    application = service.application_for_token(session, token, secret_key=settings.secret_key)
    invoice = next(
        (i for i in participant_invoices(session, application.id or 0) if i.number == number),
        None,
    )
    if invoice is None:
        raise NotFound("There is no such invoice for this application.")
    return Response(
        invoice_files.ensure_invoice_pdf(session, invoice, storage),
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{invoice.kind}-{invoice.number}.pdf"'
        },
    )


@router.get("/portal/{token}/invoices/{number}.xml")
def invoice_ubl(token: str, number: str, session: SessionDep, settings: SettingsDep) -> Response:
    """The UBL e-invoice of an invoice or credit note with a line for this application."""
    application = service.application_for_token(session, token, secret_key=settings.secret_key)
    invoice = next(
        (i for i in participant_invoices(session, application.id or 0) if i.number == number),
        None,
    )
    if invoice is None:
        raise NotFound("There is no such invoice for this application.")
    return ubl_response(session, invoice)


@router.get("/editions/{slug}/portal-link", response_class=HTMLResponse)
def portal_link_form(slug: str, request: Request, session: SessionDep) -> Response:
    """Ask for the link to one's application again."""
    edition = get_edition(session, slug)
    return templates.TemplateResponse(
        request,
        "registrations/applicants/portal_link.html",
        {"edition": edition, "sent": False, "email": ""},
    )


def _after_answer(engine: Engine, work: jobs.Work) -> None:
    with Session(writer_engine(engine), expire_on_commit=False) as session:
        work(session)


def link_launcher(request: Request, background: BackgroundTasks) -> jobs.Launcher:
    """How a portal link goes out: after the answer is sent, in a session of its own."""
    engine: Engine = request.app.state.engine

    def launch(work: jobs.Work) -> None:
        background.add_task(_after_answer, engine, work)

    return launch


@router.post("/editions/{slug}/portal-link", response_class=HTMLResponse)
def send_portal_link(
    slug: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    form: FormDep,
    launch: Annotated[jobs.Launcher, Depends(link_launcher)],
) -> Response:
    """Send the link if the address applied; the answer is the same either way.

    The address is looked up only after the answer has gone: an answer that took longer for
    an address that applied would tell anyone who applied.
    """
    edition = get_edition(session, slug)
    email = form_text(form, "email")[:254]
    if "@" not in email:
        return templates.TemplateResponse(
            request,
            "registrations/applicants/portal_link.html",
            {
                "edition": edition,
                "sent": False,
                "email": email,
                "error": "Enter the e-mail address you applied with.",
            },
            status_code=422,
        )
    secret_key, base_url = settings.secret_key, settings.base_url

    def send(own: Session | None) -> None:
        assert own is not None
        own_edition = own.get(Edition, edition.id)
        assert own_edition is not None
        service.resend_portal_link(
            own, edition=own_edition, email=email, secret_key=secret_key, base_url=base_url
        )

    launch(send)
    return templates.TemplateResponse(
        request,
        "registrations/applicants/portal_link.html",
        {"edition": edition, "sent": True, "email": email},
    )


@router.get("/editions/{slug}/groups/new", response_class=HTMLResponse)
def group_form(slug: str, request: Request, session: SessionDep, org_q: str = "") -> Response:
    """A coordinator starts a group for their organisation."""
    edition = get_edition(session, slug)
    options = search_organisations(session, query=org_q, limit=8) if org_q else []
    return templates.TemplateResponse(
        request,
        "registrations/applicants/group_new.html",
        {"edition": edition, "values": {"org_q": org_q}, "errors": {}, "options": options},
    )


@router.post("/editions/{slug}/groups/new", response_class=HTMLResponse)
def create_group(
    slug: str, request: Request, session: SessionDep, settings: SettingsDep, raw: FormDep
) -> Response:
    """Create the group and show its code; the coordinator also gets it by e-mail."""
    edition = get_edition(session, slug)
    values = {
        name: form_text(raw, name)
        for name in ("org_q", "organisation_id", "contact_email", "contact_name")
    }
    errors: dict[str, str] = {}
    if not values["organisation_id"].isdigit():
        errors["organisation_id"] = "Choose your organisation from the list."
    if "@" not in values["contact_email"] or len(values["contact_email"]) > 254:
        errors["contact_email"] = "Enter your e-mail address; the code and your link go there."
    if not errors:
        try:
            group, _ = service.create_group(
                session,
                edition_slug=slug,
                organisation_id=int(values["organisation_id"]),
                contact_email=values["contact_email"],
                contact_name=values["contact_name"],
                secret_key=settings.secret_key,
                base_url=settings.base_url,
            )
        except InvalidInput as exc:
            errors.update(exc.fields)
        else:
            return templates.TemplateResponse(
                request,
                "registrations/applicants/group_created.html",
                {"edition": edition, "group": group},
            )
    options = (
        search_organisations(session, query=values["org_q"], limit=8) if values["org_q"] else []
    )
    chosen = (
        session.get(Organisation, int(values["organisation_id"]))
        if values["organisation_id"].isdigit()
        else None
    )
    if chosen is not None and chosen not in options:
        options.insert(0, chosen)
    return templates.TemplateResponse(
        request,
        "registrations/applicants/group_new.html",
        {"edition": edition, "values": values, "errors": errors, "options": options},
        status_code=422,
    )


@router.get("/groups/{token}", response_class=HTMLResponse)
def group_page(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """The coordinator's page: the code and who applied with it."""
    group = service.group_for_token(session, token, secret_key=settings.secret_key)
    edition = session.get(Edition, group.edition_id)
    organisation = session.get(Organisation, group.organisation_id)
    return templates.TemplateResponse(
        request,
        "registrations/applicants/group.html",
        {
            "group": group,
            "edition": edition,
            "organisation": organisation,
            "members": service.group_members(session, group.id or 0),
        },
    )
