"""What routers share: templates with their filters, and the dependency aliases."""

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from jinja2_fragments.fastapi import Jinja2Blocks
from markupsafe import Markup
from pydantic import ValidationError
from sqlmodel import Session
from starlette.datastructures import FormData, UploadFile

from app.config import Settings
from app.models import Role, StaffUser
from app.platform import i18n
from app.platform.storage import Storage
from app.platform.stored_messages import (
    cancellation_reason,
    quote_label,
    quote_reason,
    stored_reasons,
)
from app.services.billing.invoices import Seller
from app.services.billing.verifactu import TaxRecordSettings
from app.services.certificates.issuing import CertificateOptions
from app.services.office.staff import user_for_token
from app.services.registry.countries import local_country_name
from app.web.language import language_links
from app.web.security import csrf_token
from app.web.sessions import get_read_session, get_session

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

templates = Jinja2Blocks(directory=str(TEMPLATES_DIR))
# Templates ship with the code: read once, not checked on disk at every request.
templates.env.auto_reload = False


def local(value: datetime, timezone: str) -> datetime:
    """An instant on the wall clock of `timezone`."""
    return value.astimezone(ZoneInfo(timezone))


_TIME = Markup('<time datetime="%s">%s</time>')


def short_date(instant: datetime, timezone: str) -> Markup:
    """`<time>` with the day on the wall clock of `timezone`: `4 Nov 2024` in English (as the
    office has always printed it), the language's own form otherwise. A function rather than
    a macro: long lists show one per row."""
    day = local(instant, timezone)
    if i18n.current_language() == "en":
        text = f"{day.day} {day:%b %Y}"
    else:
        text = i18n.day_month_year(day.date())
    # `%` escapes each value as `format` does, without building a formatter per call.
    return _TIME % (day.isoformat(timespec="seconds"), text)


# Dates, money and percentages follow the language of the request (app.platform.i18n); English keeps
# the formats the office has always printed.
date_in_words = i18n.date_words
date_range_in_words = i18n.date_range_words
money = i18n.money
percent = i18n.percent


i18n.install(templates.env)
templates.env.filters.update(
    local=local,
    country_name=local_country_name,
    quote_label=quote_label,
    quote_reason=quote_reason,
    cancellation_reason=cancellation_reason,
    stored_reasons=stored_reasons,
)
templates.env.globals.update(
    csrf_token=csrf_token, language_links=language_links, short_date=short_date
)


async def app_settings(request: Request) -> Settings:
    """The settings the serving application was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def app_storage(request: Request) -> Storage:
    """Where the serving application keeps files."""
    storage: Storage = request.app.state.storage
    return storage


async def app_seller(request: Request) -> Seller:
    """The seller on invoices and the bank details for payments, from settings."""
    return seller_from(request.app.state.settings)


def seller_from(settings: Settings) -> Seller:
    """The seller on invoices and the bank details for payments, from these settings."""
    return Seller(
        name=settings.organisation_name,
        address=settings.organisation_address,
        tax_id=settings.organisation_tax_id,
        bank_name=settings.bank_name,
        iban=settings.bank_iban,
        bic=settings.bank_bic,
        due_days=settings.invoice_due_days,
        tax_records=TaxRecordSettings.from_settings(settings),
        street=settings.organisation_street,
        city=settings.organisation_city,
        postcode=settings.organisation_postcode,
        country_code=settings.organisation_country,
        electronic_address=settings.organisation_electronic_address,
        electronic_address_scheme=settings.organisation_electronic_address_scheme,
    )


def certificate_options(request: Request) -> CertificateOptions:
    """The certificate options of the serving application, built once per application."""
    options: CertificateOptions | None = getattr(request.app.state, "certificate_options", None)
    if options is None:
        settings: Settings = request.app.state.settings
        options = CertificateOptions.from_settings(settings, cpu_count=os.cpu_count())
        request.app.state.certificate_options = options
    return options


async def submitted_form(request: Request) -> FormData:
    """The parsed form (cached on the request: the CSRF check parsed it first)."""
    return await request.form()


def read_upload(upload: UploadFile, limit: int) -> bytes:
    """Up to `limit` bytes of an uploaded file, read in the calling (worker) thread."""
    upload.file.seek(0)
    data: bytes = upload.file.read(limit)
    return data


SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]
SettingsDep = Annotated[Settings, Depends(app_settings)]
StorageDep = Annotated[Storage, Depends(app_storage)]
SellerDep = Annotated[Seller, Depends(app_seller)]
# Endpoints that use the database are plain functions, run in the thread pool: a blocking
# database call inside the event loop would stall every request (and, on SQLite, wait for a
# lock that only the stalled loop could release). Forms and bodies arrive as dependencies.
# Dependencies that only read the request or the application (settings, storage, a role
# check) are coroutines: a trip through the thread pool would cost more than their work.
FormDep = Annotated[FormData, Depends(submitted_form)]


class LoginRequired(Exception):
    """A staff page was asked for without a staff session."""


class Forbidden(Exception):
    """The staff member's role does not allow this page."""


def staff_from_session(request: Request, session: Session) -> StaffUser | None:
    """The staff member whose session the request carries, if it is still good: the account
    active, its password and its session generation those the session was started with."""
    staff_id = request.session.get("staff_id")
    if not isinstance(staff_id, int):
        return None
    user = session.get(StaffUser, staff_id)
    if (
        user is None
        or not user.active
        or request.session.get("pw") != user.password_hash[-12:]
        or request.session.get("gen") != user.session_generation
    ):
        request.session.pop("staff_id", None)
        return None
    return user


def page_staff(request: Request, session: SessionDep) -> StaffUser:
    """The logged-in staff member of a page request; else a redirect to the login page."""
    user = staff_from_session(request, session)
    if user is None:
        raise LoginRequired
    return user


async def page_admin(user: Annotated[StaffUser, Depends(page_staff)]) -> StaffUser:
    """The logged-in administrator; tutors are refused."""
    if user.role != Role.admin.value:
        raise Forbidden
    return user


PageStaff = Annotated[StaffUser, Depends(page_staff)]
PageAdmin = Annotated[StaffUser, Depends(page_admin)]

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


class ApiUnauthenticated(Exception):
    """No valid bearer token."""


class ApiForbidden(Exception):
    """A valid token whose role may not do this."""


def api_staff(
    token: Annotated[str | None, Depends(oauth2_scheme)],
    session: SessionDep,
    settings: SettingsDep,
) -> StaffUser:
    """The staff member a bearer token names; 401 otherwise."""
    if not token:
        raise ApiUnauthenticated
    user = user_for_token(
        session,
        token,
        secret_key=settings.secret_key,
        max_age_seconds=settings.api_token_hours * 3600,
    )
    if user is None:
        raise ApiUnauthenticated
    return user


async def api_admin(user: Annotated[StaffUser, Depends(api_staff)]) -> StaffUser:
    """An administrator's token; a tutor's gets 403."""
    if user.role != Role.admin.value:
        raise ApiForbidden
    return user


ApiStaff = Annotated[StaffUser, Depends(api_staff)]
ApiAdmin = Annotated[StaffUser, Depends(api_admin)]


def form_errors(exc: ValidationError) -> dict[str, str]:
    """Field name -> message for a form, from a pydantic validation error."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        name = ".".join(str(part) for part in error.get("loc", ())) or "form"
        message = str(error.get("msg", "Invalid value.")).removeprefix("Value error, ")
        errors.setdefault(name, message[:1].upper() + message[1:])
    return errors


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (answer with a fragment, not a whole page)."""
    return request.headers.get("hx-request") == "true"


def client_address(request: Request) -> str:
    """The caller's address: the peer, or what a proxy named in DIPLOMAT_FORWARDED_ALLOW_IPS
    reports (see app.main); a forwarded header from anyone else is ignored."""
    return request.client.host if request.client else "unknown"
