"""Cancellations, refunds and seat offers: the portal, the office's pages, and the JSON API."""

import logging
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import object_session
from sqlmodel import Session
from starlette.datastructures import FormData, UploadFile

from app.clock import utcnow
from app.models import Application, Cancellation, Edition, Refund, RefundStatus
from app.platform.i18n import N_, gettext, stored_money, translate
from app.services.billing import refunds as refund_service
from app.services.editions.editions import applications_are_open, get_edition, list_editions
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registrations import cancellation_intake as service
from app.services.registrations import waitlist
from app.services.registrations.applications import application_for_token, get_application
from app.services.schemas import DateIn, LocalOrAwareIn
from app.web.dependencies import (
    ApiAdmin,
    FormDep,
    PageAdmin,
    SellerDep,
    SessionDep,
    SettingsDep,
    StorageDep,
    read_upload,
    templates,
)
from app.web.errors import error_responses
from app.web.security import verify_csrf

log = logging.getLogger("diplomat.cancellations")

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])
api_router = APIRouter(prefix="/api/v1", tags=["cancellations"])

# The e-mail file plus the form's text fields; larger bodies are refused before they are read.
MAX_FORM_BYTES = service.EMAIL_MAX_BYTES + 64 * 1024
CHANNEL_LABELS = {
    "email": N_("E-mail (reply to the place reservation)"),
    "portal": N_("Participant's page"),
}


# The portal panel: read-only, from the session that loaded the portal's application


def cancellation_panel(request: Request, application: Application) -> dict[str, Any]:
    """What the portal shows about cancelling, refunds and seat offers for one application."""
    session = object_session(application)
    if isinstance(session, Session):
        return _panel(session, application)
    with Session(request.app.state.engine) as fresh:
        return _panel(fresh, application)


def _panel(session: Session, application: Application) -> dict[str, Any]:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    zone = ZoneInfo(edition.timezone)
    now = utcnow()
    requests = service.cancellations_of(session, application.id or 0)
    accepted = next((c for c in requests if c.accepted), None)
    refunds = refund_service.refunds_of(session, application.id or 0)
    offer = waitlist.open_offer(session, application.id or 0, now=now)
    return {
        "edition": edition,
        "can_cancel": application.status in service.CANCELLABLE,
        "deadline": service.policy_deadline(edition).astimezone(zone),
        "cancellation": accepted,
        "cancelled_on": accepted.received_at.astimezone(zone) if accepted else None,
        "refused": [c for c in requests if not c.accepted],
        "refunds": [
            {
                "refund": refund,
                "needs_details": refund.status == RefundStatus.owed.value
                and refund.method == "bank_transfer"
                and refund.payee_kind == "person",
            }
            for refund in refunds
        ],
        "offer": offer,
        "offer_expires": offer.expires_at.astimezone(zone) if offer else None,
        "timezone": edition.timezone,
    }


templates.env.globals["cancellation_panel"] = cancellation_panel


# Shared pieces


def _flash(request: Request, message: str) -> None:
    """Keep a message for the next page, in the language of the request that caused it."""
    request.session["flash"] = translate(message)


def _in_words(fields: dict[str, str]) -> dict[str, str]:
    """A service's messages per field in the request's language."""
    return {name: translate(message) for name, message in fields.items()}


def _pop_flash(request: Request) -> str | None:
    message = request.session.pop("flash", None)
    return message if isinstance(message, str) else None


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def _text(form: FormData, name: str, limit: int = 300) -> str:
    raw = form.get(name)
    return raw.strip()[:limit] if isinstance(raw, str) else ""


def _edition_of(session: Session, application: Application) -> Edition:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return edition


def _outcome_message(outcome: service.CancellationOutcome) -> str:
    cancellation = outcome.cancellation
    reason = translate(cancellation.reason)
    if not cancellation.accepted:
        return gettext(
            "Your request was received and recorded, but it cannot be accepted: "
            "%(reason)s We have written to you with the explanation."
        ) % {"reason": reason}
    return gettext("Your place is cancelled. %(reason)s We have sent you a confirmation.") % {
        "reason": reason
    }


# Portal: cancel my place


@router.get("/portal/{token}/cancel", response_class=HTMLResponse)
def cancel_preview(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """What cancelling now would do (refund and date, or why it is refused), then a confirm."""
    application = application_for_token(session, token, secret_key=settings.secret_key)
    edition = _edition_of(session, application)
    now = utcnow()
    refusal = service.refusal_for_status(application)
    assessment = (
        service.assess(session, application=application, received_at=now)
        if refusal is None
        else None
    )
    return templates.TemplateResponse(
        request,
        "applicants/cancel.html",
        {
            "application": application,
            "edition": edition,
            "token": token,
            "refusal": translate(refusal),
            "assessment": assessment,
            "items": service.portal_request(application, edition, now=now),
            "deadline": service.policy_deadline(edition).astimezone(ZoneInfo(edition.timezone)),
        },
    )


@router.post("/portal/{token}/cancel")
def cancel_confirm(
    token: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    seller: SellerDep,
) -> Response:
    """The participant confirms: a written cancellation, answered by the policy and by e-mail."""
    application = application_for_token(session, token, secret_key=settings.secret_key)
    edition = _edition_of(session, application)
    now = utcnow()
    try:
        outcome = service.cancel_registration(
            session,
            application_id=application.id or 0,
            request=service.portal_request(application, edition, now=now),
            actor=application.email,
            storage=storage,
            seller=seller,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
            office_email=settings.mail_from,
            offer_days=settings.waitlist_offer_days,
            now=now,
        )
    except Conflict as exc:
        _flash(request, exc.message)
    else:
        _flash(request, _outcome_message(outcome))
    return _see_other(f"/portal/{token}")


# Portal: bank details for a refund


@router.post("/portal/{token}/refund-details", response_class=HTMLResponse)
def refund_details(
    token: str, request: Request, session: SessionDep, settings: SettingsDep, form: FormDep
) -> Response:
    """The account a bank refund is paid to; errors come back next to their fields."""
    application = application_for_token(session, token, secret_key=settings.secret_key)
    values = {
        "account_holder": _text(form, "account_holder", 200),
        "iban": _text(form, "iban", 60),
        "bic": _text(form, "bic", 20),
    }
    try:
        refund = refund_service.give_bank_details(session, application=application, **values)
    except InvalidInput as exc:
        return templates.TemplateResponse(
            request,
            "applicants/cancel_refund_details.html",
            {
                "application": application,
                "edition": _edition_of(session, application),
                "token": token,
                "values": values,
                "errors": _in_words(exc.fields),
            },
            status_code=422,
        )
    except Conflict as exc:
        _flash(request, exc.message)
        return _see_other(f"/portal/{token}")
    _flash(
        request,
        gettext("Thank you. We will pay your refund of %(sum)s to the account ending in %(end)s.")
        % {"sum": stored_money(f"{refund.amount:.2f}", refund.currency), "end": refund.iban[-4:]},
    )
    return _see_other(f"/portal/{token}")


# Portal: a seat offered from the waiting list


@router.post("/portal/{token}/offer/accept")
def offer_accept(
    token: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    seller: SellerDep,
) -> Response:
    """Take the offered seat: admitted, and invoiced unless the fee is waived."""
    application = application_for_token(session, token, secret_key=settings.secret_key)
    try:
        accepted = waitlist.accept_offer(
            session,
            application=application,
            storage=storage,
            seller=seller,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
        )
    except (Conflict, NotFound) as exc:
        _flash(request, exc.message)
    else:
        invoice = accepted.invoice
        _flash(
            request,
            gettext(
                "You accepted the seat and are admitted. Your invoice %(number)s is below; your "
                "seat is guaranteed once it is paid in full."
            )
            % {"number": invoice.number}
            if invoice
            else gettext("You accepted the seat and are admitted."),
        )
    return _see_other(f"/portal/{token}")


@router.post("/portal/{token}/offer/decline")
def offer_decline(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Pass on the offered seat; it goes to the next person."""
    application = application_for_token(session, token, secret_key=settings.secret_key)
    try:
        waitlist.decline_offer(
            session,
            application=application,
            offer_days=settings.waitlist_offer_days,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
        )
    except (Conflict, NotFound) as exc:
        _flash(request, exc.message)
    else:
        _flash(
            request,
            gettext("You declined the seat; it goes to the next person. You stay on the list."),
        )
    return _see_other(f"/portal/{token}")


# Office: record a cancellation received by e-mail


def _record_context(
    session: Session,
    application: Application,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    notice: str | None = None,
) -> dict[str, Any]:
    edition = _edition_of(session, application)
    now = utcnow()
    refusal = service.refusal_for_status(application)
    return {
        "application": application,
        "edition": edition,
        "values": values,
        "errors": _in_words(errors),
        "notice": translate(notice) or None,
        "channels": [(code, translate(label)) for code, label in CHANNEL_LABELS.items()],
        "history": service.cancellations_of(session, application.id or 0),
        "refunds": refund_service.refunds_of(session, application.id or 0),
        "refusal": translate(refusal),
        "assessment": service.assess(session, application=application, received_at=now)
        if refusal is None
        else None,
        "deadline": service.policy_deadline(edition).astimezone(ZoneInfo(edition.timezone)),
        "record": service.portal_request(application, edition, now=now),
    }


@router.get("/admin/applications/{application_id}/cancellation", response_class=HTMLResponse)
def record_form(
    application_id: int, request: Request, session: SessionDep, user: PageAdmin
) -> Response:
    """The form for a cancellation received by e-mail, with earlier requests and refunds."""
    application = get_application(session, application_id)
    return templates.TemplateResponse(
        request,
        "admin/cancellations/record.html",
        {
            "user": user,
            "active": "applications",
            "flash": _pop_flash(request),
            **_record_context(session, application, values={"channel": "email"}, errors={}),
        },
    )


def _parse_received(value: str, edition: Edition) -> datetime:
    parsed = datetime.fromisoformat(value)
    return service.as_received(edition, parsed)


@router.post("/admin/applications/{application_id}/cancellation", response_class=HTMLResponse)
def record_cancellation(
    application_id: int,
    request: Request,
    form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    seller: SellerDep,
    user: PageAdmin,
) -> Response:
    """Record an e-mailed cancellation; each missing item is named next to its field."""
    application = get_application(session, application_id)
    edition = _edition_of(session, application)

    def again(
        values: dict[str, str], errors: dict[str, str], code: int, notice: str = ""
    ) -> Response:
        return templates.TemplateResponse(
            request,
            "admin/cancellations/record.html",
            {
                "user": user,
                "active": "applications",
                "flash": None,
                **_record_context(
                    session, application, values=values, errors=errors, notice=notice or None
                ),
            },
            status_code=code,
        )

    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        return again(
            {"channel": "email"},
            {"email_file": "The e-mail must be an .eml file of at most 2 MB."},
            413,
        )
    values = {
        name: _text(form, name)
        for name in ("received_at", "channel", "course_name", "full_name", "registration_date")
    }
    values["contact"] = _text(form, "contact")
    errors: dict[str, str] = {}
    received_at: datetime | None = None
    registration_date: date | None = None
    try:
        received_at = _parse_received(values["received_at"], edition)
    except ValueError:
        errors["received_at"] = gettext(
            "Enter the day and time the e-mail arrived (%(timezone)s time)."
        ) % {"timezone": edition.timezone}
    if values["registration_date"]:
        try:
            registration_date = date.fromisoformat(values["registration_date"])
        except ValueError:
            errors["registration_date"] = N_("Enter the date of registration the e-mail gives.")
    upload = form.get("email_file")
    email_file: bytes | None = None
    email_filename: str | None = None
    if isinstance(upload, UploadFile) and upload.filename:
        email_file = read_upload(upload, service.EMAIL_MAX_BYTES + 1)
        email_filename = upload.filename
    if errors or received_at is None:
        # Name every missing item at once, not only the unreadable time.
        errors = {
            **service.missing_items(
                service.CancellationRequest(
                    received_at=utcnow(),
                    channel=values["channel"],
                    course_name=values["course_name"],
                    full_name=values["full_name"],
                    registration_date=registration_date,
                    contact=values["contact"],
                )
            ),
            **errors,
        }
        return again(values, errors, 422)
    try:
        outcome = service.cancel_registration(
            session,
            application_id=application_id,
            request=service.CancellationRequest(
                received_at=received_at,
                channel=values["channel"],
                course_name=values["course_name"],
                full_name=values["full_name"],
                registration_date=registration_date,
                contact=values["contact"],
            ),
            actor=user.email,
            storage=storage,
            seller=seller,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
            office_email=settings.mail_from,
            offer_days=settings.waitlist_offer_days,
            email_file=email_file,
            email_filename=email_filename,
        )
    except InvalidInput as exc:
        return again(values, exc.fields, 422, exc.message)
    except Conflict as exc:
        return again(values, {}, 409, exc.message)
    cancellation = outcome.cancellation
    reason = translate(cancellation.reason)
    if cancellation.accepted:
        message = gettext("Cancellation accepted and recorded. %(reason)s") % {"reason": reason}
    else:
        message = gettext(
            "Cancellation refused and recorded; the participant stays registered and was told "
            "why. %(reason)s"
        ) % {"reason": reason}
    _flash(request, message)
    return _see_other(f"/admin/applications/{application_id}/cancellation")


@router.get("/admin/cancellations/{cancellation_id}/email.eml")
def cancellation_email(
    cancellation_id: int, session: SessionDep, storage: StorageDep, user: PageAdmin
) -> Response:
    """The e-mail a cancellation was received in, as it was attached."""
    cancellation = session.get(Cancellation, cancellation_id)
    if cancellation is None or not cancellation.email_key:
        raise NotFound("There is no e-mail kept for this cancellation.")
    return Response(
        storage.get(cancellation.email_key),
        media_type="message/rfc822",
        headers={
            "Content-Disposition": f'attachment; filename="cancellation-{cancellation.id}.eml"'
        },
    )


# Office: refunds due


def _refunds_page(
    request: Request,
    session: Session,
    user: Any,
    *,
    errors: dict[int, dict[str, str]] | None = None,
    values: dict[int, dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    due = refund_service.refunds_due(session)
    return templates.TemplateResponse(
        request,
        "admin/cancellations/refunds.html",
        {
            "user": user,
            "active": "refunds",
            "flash": _pop_flash(request),
            "due": due,
            "errors": errors or {},
            "values": values or {},
            "now": utcnow(),
        },
        status_code=status_code,
    )


@router.get("/admin/refunds", response_class=HTMLResponse)
def refunds(request: Request, session: SessionDep, user: PageAdmin) -> Response:
    """Refunds owed: overdue, due this week, due later; bank ones can be marked as paid."""
    return _refunds_page(request, session, user)


@router.post("/admin/refunds/{refund_id}/complete", response_class=HTMLResponse)
def refund_complete(
    refund_id: int, request: Request, session: SessionDep, user: PageAdmin, form: FormDep
) -> Response:
    """Mark a bank refund as paid: the money leaves the original invoice."""
    values = {
        "completed_on": _text(form, "completed_on", 20),
        "reference": _text(form, "reference"),
    }
    try:
        completed_on = date.fromisoformat(values["completed_on"])
    except ValueError:
        return _refunds_page(
            request,
            session,
            user,
            errors={refund_id: {"completed_on": gettext("Enter the day the transfer was made.")}},
            values={refund_id: values},
            status_code=422,
        )
    try:
        refund = refund_service.complete_refund(
            session,
            refund_id=refund_id,
            completed_on=completed_on,
            reference=values["reference"],
            actor=user.email,
        )
    except InvalidInput as exc:
        return _refunds_page(
            request,
            session,
            user,
            errors={refund_id: _in_words(exc.fields)},
            values={refund_id: values},
            status_code=422,
        )
    except Conflict as exc:
        _flash(request, exc.message)
        return _see_other("/admin/refunds")
    _flash(
        request,
        gettext("Refund %(id)s of %(sum)s is marked as paid on %(day)s.")
        % {
            "id": refund.id,
            "sum": stored_money(f"{refund.amount:.2f}", refund.currency),
            "day": refund.completed_on,
        },
    )
    return _see_other("/admin/refunds")


# Office: seat offers


@router.get("/admin/offers", response_class=HTMLResponse)
def offers(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: PageAdmin,
    edition: Annotated[str, Query(max_length=80)] = "",
) -> Response:
    """An edition's seat offers: open, accepted, declined, expired (those past time expire now)."""
    try:
        waitlist.expire_offers(
            session,
            offer_days=settings.waitlist_offer_days,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
        )
    except OperationalError:
        # The database was busy; the scheduled round or the next visit expires them.
        session.rollback()
        log.warning("could not expire seat offers on page load", exc_info=True)
    editions = list_editions(session)
    chosen: Edition | None
    if edition:
        chosen = get_edition(session, edition)
    else:
        current = next((e for e in editions if applications_are_open(e)), None)
        chosen = current or (editions[0] if editions else None)
    return templates.TemplateResponse(
        request,
        "admin/cancellations/offers.html",
        {
            "user": user,
            "active": "offers",
            "editions": editions,
            "edition": chosen,
            "offers": waitlist.offers_of_edition(session, chosen) if chosen else {},
            "free": waitlist.seats_to_offer(session, chosen, now=utcnow()) if chosen else 0,
            "waiting": len(waitlist.next_in_line(session, chosen)) if chosen else 0,
        },
    )


# The JSON API


class CancellationIn(BaseModel):
    """A written cancellation as received; the four items may be missing (then 422 names each)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    received_at: LocalOrAwareIn = Field(
        description="When it arrived; without an offset it is read in the edition's time zone."
    )
    channel: Literal["email", "portal"]
    course_name: str | None = Field(default=None, max_length=300)
    full_name: str | None = Field(default=None, max_length=200)
    registration_date: DateIn | None = None
    contact: str | None = Field(default=None, max_length=300)


class RefundOut(BaseModel):
    """A refund owed or paid."""

    id: int
    amount: str
    currency: str
    due_by: date
    method: str
    status: str
    completed_on: date | None
    reference: str


class CancellationOut(BaseModel):
    """The policy's answer to a cancellation."""

    cancellation_id: int
    accepted: bool
    reason: str
    refund: RefundOut | None


class RefundCompleteIn(BaseModel):
    """A bank refund was paid."""

    model_config = ConfigDict(extra="forbid")

    completed_on: DateIn
    reference: str = Field(max_length=200)


def _refund_out(refund: Refund) -> RefundOut:
    return RefundOut.model_validate(refund_service.refund_summary(refund))


@api_router.post(
    "/applications/{application_id}/cancellation",
    response_model=CancellationOut,
    responses=error_responses(409),
)
def api_cancel(
    application_id: int,
    data: CancellationIn,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    seller: SellerDep,
    admin: ApiAdmin,
) -> CancellationOut:
    """Record a written cancellation: accepted with its refund, or refused with why (both kept).

    A missing item is 422 naming each; a place cancelled already is 409 and nothing changes.
    """
    application = get_application(session, application_id)
    edition = _edition_of(session, application)
    outcome = service.cancel_registration(
        session,
        application_id=application_id,
        request=service.CancellationRequest(
            received_at=service.as_received(edition, data.received_at),
            channel=data.channel,
            course_name=data.course_name,
            full_name=data.full_name,
            registration_date=data.registration_date,
            contact=data.contact,
        ),
        actor=admin.email,
        storage=storage,
        seller=seller,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
        office_email=settings.mail_from,
        offer_days=settings.waitlist_offer_days,
    )
    return CancellationOut(
        cancellation_id=outcome.cancellation.id or 0,
        accepted=outcome.cancellation.accepted,
        reason=outcome.cancellation.reason,
        refund=_refund_out(outcome.refund) if outcome.refund else None,
    )


@api_router.post(
    "/refunds/{refund_id}/complete", response_model=RefundOut, responses=error_responses(409)
)
def api_complete_refund(
    refund_id: int, data: RefundCompleteIn, session: SessionDep, admin: ApiAdmin
) -> RefundOut:
    """Mark a bank refund as paid (a negative payment on the original invoice); twice is 409."""
    refund = refund_service.complete_refund(
        session,
        refund_id=refund_id,
        completed_on=data.completed_on,
        reference=data.reference,
        actor=admin.email,
    )
    return _refund_out(refund)
