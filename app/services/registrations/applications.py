"""Applications: submitting, the private portal link, groups, withdrawal and admission decisions."""

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator
from sqlalchemy import bindparam, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from app.clock import utcnow
from app.models import (
    ApplicantGroup,
    Application,
    ApplicationStatus,
    Edition,
    Organisation,
    OutboxMessage,
    StaffUser,
)
from app.platform.audit import audit_entry, record_change
from app.platform.i18n import N_, current_language, localized, prefer_language
from app.platform.mail import Attachment, compose_email, normalise_email, queue_email
from app.platform.pdf import render_pdf
from app.platform.rows import has_sequences, insert_rows, new_row, next_id, reserve_id
from app.platform.signed_links import GROUP_SALT, PORTAL_SALT, link_expiry, make_token, read_token
from app.platform.storage import Storage, new_key
from app.services.billing.einvoices import ubl_attachments
from app.services.billing.invoices import Seller, issue_invoice
from app.services.billing.numbering import format_number, next_number
from app.services.billing.quotes import quote_as_json, quote_for_edition, quote_from_facts
from app.services.editions.editions import applications_are_open, get_edition, get_edition_alone
from app.services.editions.fees import Quote
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registry.countries import country_name, parse_country
from app.services.registry.organisations import income_group_in, income_group_query

log = logging.getLogger("diplomat.applications")

MOTIVATION_MIN = 50
MOTIVATION_MAX = 2000
CV_MAX_BYTES = 5 * 1024 * 1024
# Re-sent portal links per application and hour (the request form is public).
LINK_RESENDS_PER_HOUR = 3
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Draws of a reference before giving up; with 30 random bits a repeat is already rare.
REFERENCE_ATTEMPTS = 5
ACTIVE_GROUP_STATUSES = (
    ApplicationStatus.submitted.value,
    ApplicationStatus.waitlisted.value,
    ApplicationStatus.admitted.value,
    ApplicationStatus.confirmed.value,
    ApplicationStatus.completed.value,
)
CONSENT_TEXT = N_(
    "I agree that Metropolis stores and uses the data in this application to assess it, to "
    "run the course, and to issue invoices and my certificate; it is not shared with anyone "
    "else and is erased when no longer needed."
)

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ApplicationsClosed(Conflict):
    """The edition is not taking applications now."""


class ApplicationIn(BaseModel):
    """What an applicant sends (the CV travels separately as bytes)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    given_name: Name
    family_name: Name
    email: EmailStr = Field(max_length=254)
    organisation_id: int | None = None
    organisation_name: str | None = Field(default=None, max_length=200)
    country: str | None = Field(default=None, max_length=100)
    job_title: str = Field(min_length=2, max_length=200)
    department: str = Field(default="", max_length=200)
    years_in_international_affairs: int | None = Field(default=None, ge=0, le=60)
    motivation: str = Field(min_length=MOTIVATION_MIN, max_length=MOTIVATION_MAX)
    group_code: str | None = Field(default=None, max_length=20)
    consent: Literal[True]
    language: Literal["en", "es", "fr"] = "en"

    @model_validator(mode="after")
    def _organisation_given(self) -> "ApplicationIn":
        if self.organisation_id is None and not self.group_code:
            missing = []
            if not self.organisation_name or len(self.organisation_name) < 2:
                missing.append("organisation_name")
            if not self.country:
                missing.append("country")
            if missing:
                raise ValueError(
                    N_("Choose your organisation from the list, or give its name and country.")
                )
        return self


@dataclass(frozen=True)
class _ReadWithEdition:
    """What a submission reads before it writes, read with its edition: the country, the new
    application's id where the database reserves one, and the country's income group."""

    iso3: str
    reserved_id: int | None
    income_group: str | None


@dataclass(frozen=True)
class SubmittedApplication:
    """A stored application and the private link to its portal."""

    application: Application
    portal_url: str


def _random_code(length: int) -> str:
    # One read of the system's randomness, not one per character: each byte's low five bits
    # pick one of the 32 characters, every one equally likely (256 is 8 x 32).
    return "".join(CROCKFORD[byte % 32] for byte in secrets.token_bytes(length))


def _new_reference(edition: Edition) -> str:
    """`MD27-7KQ3XW`: 30 random bits; the unique constraint catches the rare repeat."""
    return f"MD{edition.start_date.year % 100:02d}-{_random_code(6)}"


def _has_applied(session: Session, edition_id: int, email: str) -> bool:
    return (
        session.exec(
            select(Application.id).where(
                Application.edition_id == edition_id, Application.email == email
            )
        ).first()
        is not None
    )


def _already_applied() -> Conflict:
    return Conflict(
        "An application with this e-mail address exists for this edition.",
        fields={"email": "You have already applied with this address."},
    )


def is_pdf(data: bytes) -> bool:
    """Whether the bytes are a PDF document by content (header and end marker), not by name."""
    return data.startswith(b"%PDF-") and b"%%EOF" in data[-2048:]


def check_cv(data: bytes | None) -> None:
    """A CV is optional; when given it is a PDF of at most 5 MB."""
    if data is None:
        return
    if len(data) > CV_MAX_BYTES:
        raise InvalidInput(
            "The CV is too large.", fields={"cv": N_("The CV must be a PDF of at most 5 MB.")}
        )
    if not is_pdf(data):
        raise InvalidInput(
            "The CV is not a PDF.",
            fields={"cv": N_("The CV must be a PDF file (this one is not).")},
        )


def portal_token(application: Application, edition: Edition, *, secret_key: str) -> str:
    """The signed token of an application's portal."""
    return make_token(
        secret_key=secret_key,
        salt=PORTAL_SALT,
        subject_id=application.id or 0,
        version=application.portal_token_version,
        expires=link_expiry(edition.end_date),
    )


def portal_url(
    application: Application, edition: Edition, *, secret_key: str, base_url: str
) -> str:
    """The full address of an application's portal."""
    return (
        f"{base_url.rstrip('/')}/portal/{portal_token(application, edition, secret_key=secret_key)}"
    )


def application_for_token(session: Session, token: str, *, secret_key: str) -> Application:
    """The one application a portal token opens; NotFound for any bad, old or revoked token."""
    found = read_token(token, secret_key=secret_key, salt=PORTAL_SALT)
    application = session.get(Application, found[0]) if found else None
    if application is None or found is None or application.portal_token_version != found[1]:
        raise NotFound(N_("This link is not valid any more. Ask for a new one by e-mail."))
    # Every portal page speaks the language the applicant chose, unless this browser picked
    # another with the switcher.
    prefer_language(application.language)
    return application


def _group_by_code(session: Session, edition: Edition, code: str) -> ApplicantGroup:
    group = session.exec(
        select(ApplicantGroup).where(
            ApplicantGroup.code == code.strip().upper(), ApplicantGroup.edition_id == edition.id
        )
    ).first()
    if group is None:
        raise InvalidInput(
            "Unknown group code.",
            fields={
                "group_code": N_("No group of this edition has this code; ask your coordinator.")
            },
        )
    return group


def group_size(session: Session, group_id: int) -> int:
    """Members of a group still in the running (not withdrawn, rejected or cancelled)."""
    count: int = session.exec(
        select(func.count())
        .select_from(Application)
        .where(
            Application.group_id == group_id,
            col(Application.status).in_(ACTIVE_GROUP_STATUSES),
        )
    ).one()
    return count


def _mail_context(application: Application, edition: Edition, url: str) -> dict[str, Any]:
    return {
        "application": application,
        "edition": edition,
        "portal_url": url,
        "organisation": application.organisation_name,
    }


# An edition with the country's income group in its fiscal year and, on PostgreSQL, a new
# application's id: one query for all a submission reads. Built once; only the slug and the
# country are bound.
_EDITION_FOR_SUBMISSION = {
    sequence: select(Edition, income_group_in(Edition.income_fy), *extra).where(
        col(Edition.slug) == bindparam("slug")
    )
    for sequence, extra in ((True, (next_id(Application),)), (False, ()))
}


def _edition_for_submission(
    session: Session, slug: str, data: ApplicationIn
) -> tuple[Edition, _ReadWithEdition | None]:
    """The edition with this slug (or NotFound), and what was read with it.

    An applicant who gives a country rather than an organisation or a group code (the usual
    case) needs nothing else read before the application is written: the country's income
    group and, on PostgreSQL, the application's id come in the same query. Otherwise, or
    when the country is not one, the edition alone (the submission reports the faults).
    """
    iso3: str | None = None
    if data.organisation_id is None and not data.group_code:
        try:
            iso3 = parse_country(data.country or "")
        except InvalidInput:
            iso3 = None
    if iso3 is None:
        # Only a group's applicant has a use for the group discounts.
        if data.group_code:
            return get_edition(session, slug), None
        return get_edition_alone(session, slug), None
    sequence = has_sequences(session)
    row = session.execute(_EDITION_FOR_SUBMISSION[sequence], {"slug": slug, "iso3": iso3}).first()
    if row is None:
        raise NotFound(f"There is no edition {slug!r}.")
    edition, income_group = row[0], row[1]
    return edition, _ReadWithEdition(
        iso3=iso3, reserved_id=row[2] if sequence else None, income_group=income_group
    )


def submit_application(
    session: Session,
    *,
    edition_slug: str,
    data: ApplicationIn,
    cv: bytes | None,
    cv_filename: str | None,
    storage: Storage,
    secret_key: str,
    base_url: str,
    now: datetime | None = None,
) -> SubmittedApplication:
    """Store an application to the edition with this slug, its quote and the receipt e-mail
    in one transaction (the form and the API alike)."""
    edition, prepared = _edition_for_submission(session, edition_slug, data)
    now = now or utcnow()
    if not applications_are_open(edition, now=now):
        raise ApplicationsClosed("This edition is not taking applications now.")
    email = normalise_email(str(data.email))
    check_cv(cv)

    faults: dict[str, str] = {}
    group: ApplicantGroup | None = None
    organisation: Organisation | None = None
    if data.group_code:
        try:
            group = _group_by_code(session, edition, data.group_code)
        except InvalidInput as exc:
            faults.update(exc.fields)
        else:
            if data.organisation_id is not None and data.organisation_id != group.organisation_id:
                faults["group_code"] = "This group belongs to another organisation."
            organisation = session.get(Organisation, group.organisation_id)
    elif data.organisation_id is not None:
        organisation = session.get(Organisation, data.organisation_id)
        if organisation is None:
            faults["organisation_id"] = "Choose an organisation from the list."
    iso3 = organisation.country if organisation else None
    if organisation is None and "organisation_id" not in faults and not group:
        try:
            iso3 = parse_country(data.country or "")
        except InvalidInput as exc:
            faults.update(exc.fields)
    if faults:
        raise InvalidInput("Some answers need a correction.", fields=faults)
    assert iso3 is not None

    size = (group_size(session, group.id or 0) + 1) if group else 1
    # One trip for the income group the quote needs and, on PostgreSQL, the application's id:
    # with the id known, the application, its receipt and its audit entry (both refer to it)
    # are written in one statement below.
    if prepared is not None and prepared.iso3 == iso3:
        reserved_id, income_group = prepared.reserved_id, prepared.income_group
    else:
        reserved_id, income_group = reserve_id(
            session,
            Application,
            income_group_query(),
            params={"iso3": iso3, "fiscal_year": edition.income_fy},
        )
    quote = quote_from_facts(
        edition=edition,
        organisation=organisation,
        iso3=iso3,
        income_group=income_group,
        group_size=size,
    )
    edition_id = edition.id or 0
    cv_key = None
    if cv is not None:
        cv_key = new_key("cv", ".pdf")
        storage.put(cv_key, cv)
    # The unique constraints decide, without a look-up first: the same e-mail twice (also two
    # submissions at once, as a double click sends) is refused; a repeated reference is drawn
    # again. Either way nothing of the failed attempt stays.
    for attempt in range(1, REFERENCE_ATTEMPTS + 1):
        application = _new_application(
            edition=edition,
            data=data,
            email=email,
            iso3=iso3,
            organisation=organisation,
            group=group,
            quote=quote,
            cv_key=cv_key,
            cv_filename=cv_filename,
            now=now,
            reserved_id=reserved_id,
        )
        try:
            pending: list[SQLModel] = [application]
            if application.id is None:
                # No id reserved (SQLite): the application is stored first, to learn its id.
                insert_rows(session, application)
                pending = []
            url = portal_url(application, edition, secret_key=secret_key, base_url=base_url)
            receipt = compose_email(
                kind="application_received",
                to=email,
                subject=N_("We received your application %(reference)s"),
                subject_values={"reference": application.reference},
                context=_mail_context(application, edition, url),
                application_id=application.id,
                language=application.language,
            )
            entry = audit_entry(
                actor=email,
                action="application.submitted",
                entity="application",
                entity_id=application.id or 0,
                after={
                    "reference": application.reference,
                    "total": str(quote.total),
                    "group": size,
                },
            )
            insert_rows(session, *pending, receipt, entry)
            break
        except IntegrityError:
            session.rollback()
            if _has_applied(session, edition_id, email):
                if cv_key is not None:
                    storage.delete(cv_key)
                raise _already_applied() from None
            if attempt == REFERENCE_ATTEMPTS:
                raise
    session.commit()
    return SubmittedApplication(application, url)


def _new_application(
    *,
    edition: Edition,
    data: ApplicationIn,
    email: str,
    iso3: str,
    organisation: Organisation | None,
    group: ApplicantGroup | None,
    quote: Quote,
    cv_key: str | None,
    cv_filename: str | None,
    now: datetime,
    reserved_id: int | None,
) -> Application:
    """The application row, not stored yet, with a newly drawn reference."""
    return new_row(
        Application,
        id=reserved_id,
        edition_id=edition.id or 0,
        reference=_new_reference(edition),
        given_name=data.given_name,
        family_name=data.family_name,
        email=email,
        organisation_id=organisation.id if organisation else None,
        organisation_name=organisation.name if organisation else (data.organisation_name or ""),
        country=iso3,
        job_title=data.job_title,
        department=data.department,
        years_in_international_affairs=data.years_in_international_affairs,
        motivation=data.motivation,
        cv_key=cv_key,
        cv_filename=(cv_filename or "cv.pdf")[:200] if cv_key else None,
        group_id=group.id if group else None,
        language=data.language,
        consent_at=now,
        quote=quote_as_json(quote),
        quoted_total=quote.total,
        submitted_at=now,
    )


def resend_portal_link(
    session: Session, *, edition: Edition, email: str, secret_key: str, base_url: str
) -> None:
    """E-mail the portal link to an address that applied; says nothing about others.

    At most `LINK_RESENDS_PER_HOUR` an hour: the form is public, and without a cap anyone
    could fill an applicant's mailbox with links. The answer stays the same either way.
    """
    application = session.exec(
        select(Application).where(
            Application.edition_id == edition.id, Application.email == normalise_email(email)
        )
    ).first()
    if application is None:
        return
    recent = session.exec(
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.application_id == application.id,
            OutboxMessage.kind == "portal_link",
            OutboxMessage.created_at >= utcnow() - timedelta(hours=1),
        )
    ).one()
    if recent >= LINK_RESENDS_PER_HOUR:
        log.warning(
            "portal link not re-sent to application %s: %s this hour", application.id, recent
        )
        return
    url = portal_url(application, edition, secret_key=secret_key, base_url=base_url)
    queue_email(
        session,
        kind="portal_link",
        to=application.email,
        subject=N_("Your link to application %(reference)s"),
        subject_values={"reference": application.reference},
        context=_mail_context(application, edition, url),
        application_id=application.id,
    )
    session.commit()


def revoke_portal_links(
    session: Session, *, application_id: int, actor: str, secret_key: str, base_url: str
) -> Application:
    """End every link issued so far and send the applicant a new one."""
    application = get_application(session, application_id)
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    application.portal_token_version += 1
    session.add(application)
    record_change(
        session,
        actor=actor,
        action="application.portal_link_revoked",
        entity="application",
        entity_id=application_id,
    )
    url = portal_url(application, edition, secret_key=secret_key, base_url=base_url)
    queue_email(
        session,
        kind="portal_link",
        to=application.email,
        subject=N_("Your new link to application %(reference)s"),
        subject_values={"reference": application.reference},
        context=_mail_context(application, edition, url),
        application_id=application.id,
    )
    session.commit()
    return application


def get_application(session: Session, application_id: int) -> Application:
    """The application with this id, or NotFound."""
    application = session.get(Application, application_id)
    if application is None:
        raise NotFound(f"There is no application {application_id}.")
    return application


def change_status(
    session: Session,
    application: Application,
    *,
    allowed_from: tuple[str, ...],
    to: str,
    expected_version: int | None,
    values: dict[str, Any],
) -> None:
    """Move to `to` only from `allowed_from` and only if nobody changed it meanwhile."""
    version = application.version if expected_version is None else expected_version
    result = session.execute(
        update(Application)
        .where(
            col(Application.id) == application.id,
            col(Application.version) == version,
            col(Application.status).in_(allowed_from),
        )
        .values(status=to, version=version + 1, updated_at=utcnow(), **values)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        session.refresh(application)
        raise Conflict(
            f"Application {application.reference} is {application.status} now "
            f"(changed by someone else, or not possible from there); nothing was changed."
        )
    session.refresh(application)


def withdraw(
    session: Session, *, application: Application, now: datetime | None = None
) -> Application:
    """The applicant withdraws while the application is submitted or waitlisted."""
    change_status(
        session,
        application,
        allowed_from=(ApplicationStatus.submitted.value, ApplicationStatus.waitlisted.value),
        to=ApplicationStatus.withdrawn.value,
        expected_version=None,
        values={"withdrawn_at": now or utcnow()},
    )
    record_change(
        session,
        actor=application.email,
        action="application.withdrawn",
        entity="application",
        entity_id=application.id or 0,
    )
    session.commit()
    return application


Decision = Literal["admit", "waitlist", "reject"]
_DECISIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "admit": (
        (ApplicationStatus.submitted.value, ApplicationStatus.waitlisted.value),
        ApplicationStatus.admitted.value,
    ),
    "waitlist": ((ApplicationStatus.submitted.value,), ApplicationStatus.waitlisted.value),
    "reject": (
        (ApplicationStatus.submitted.value, ApplicationStatus.waitlisted.value),
        ApplicationStatus.rejected.value,
    ),
}


@dataclass(frozen=True)
class Capacity:
    """Seats of an edition: confirmed (guaranteed), admitted (awaiting payment), total."""

    seats: int
    confirmed: int
    admitted: int
    waitlisted: int

    @property
    def free(self) -> int:
        """Seats not yet guaranteed to anyone."""
        return max(self.seats - self.confirmed, 0)

    @property
    def over_if_admitting(self) -> bool:
        """Whether one more admission would promise more places than there are seats."""
        return self.confirmed + self.admitted + 1 > self.seats


def capacity(session: Session, edition: Edition) -> Capacity:
    """Confirmed, admitted and waitlisted counts against the edition's seats."""
    rows = session.exec(
        select(Application.status, func.count())
        .where(Application.edition_id == edition.id)
        .group_by(Application.status)
    ).all()
    return capacity_of(edition, dict(rows))


def capacity_of(edition: Edition, counts: dict[str, int]) -> Capacity:
    """The edition's seats against its applications counted by status (all of them)."""
    return Capacity(
        seats=edition.capacity,
        confirmed=counts.get(ApplicationStatus.confirmed.value, 0)
        + counts.get(ApplicationStatus.completed.value, 0),
        admitted=counts.get(ApplicationStatus.admitted.value, 0),
        waitlisted=counts.get(ApplicationStatus.waitlisted.value, 0),
    )


def decide(
    session: Session,
    *,
    application_id: int,
    decision: Decision,
    actor: StaffUser,
    note: str = "",
    expected_version: int | None = None,
    storage: Storage,
    secret_key: str,
    base_url: str,
    seller: Seller | None = None,
    now: datetime | None = None,
) -> Application:
    """Admit, waitlist or reject.

    A waived admission is confirmed with a numbered confirmation; a paying participant who is
    not in a group is invoiced at once (a group is invoiced together by an administrator).
    """
    now = now or utcnow()
    application = get_application(session, application_id)
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    if decision not in _DECISIONS:
        raise InvalidInput("Unknown decision.", fields={"decision": "admit, waitlist or reject"})
    allowed_from, target = _DECISIONS[decision]
    before = application.status
    values: dict[str, Any] = {"decided_at": now, "decided_by": actor.email, "decision_note": note}
    if decision == "waitlist":
        values["waitlisted_at"] = now
    change_status(
        session,
        application,
        allowed_from=allowed_from,
        to=target,
        expected_version=expected_version,
        values=values,
    )
    url = portal_url(application, edition, secret_key=secret_key, base_url=base_url)
    context = {**_mail_context(application, edition, url), "note": note}
    attachments: list[Attachment] = []
    invoice = None
    if decision == "admit":
        fix_fee_at_admission(session, application, edition, storage=storage, now=now)
        if application.fee_waiver_key:
            attachments.append(
                Attachment(
                    f"fee-waiver-{application.fee_waiver_number}.pdf", application.fee_waiver_key
                )
            )
        elif seller is not None and application.group_id is None:
            invoice = issue_invoice(
                session,
                application=application,
                seller=seller,
                actor=actor.email,
                storage=storage,
                now=now,
            )
            attachments.append(
                Attachment(
                    f"invoice-{invoice.number}.pdf",
                    invoice.pdf_key or "",
                    invoice_number=invoice.number,
                )
            )
            attachments.extend(ubl_attachments(invoice))
    context["invoice"] = invoice
    context["waived"] = application.status == ApplicationStatus.confirmed.value
    subjects = {
        "admit": N_("You are admitted to the %(edition)s"),
        "waitlist": N_("Your application %(reference)s is on the waiting list"),
        "reject": N_("Your application %(reference)s"),
    }
    queue_email(
        session,
        kind=f"decision_{decision}",
        to=application.email,
        subject=subjects[decision],
        subject_values={
            "edition": localized(edition, "title", application.language),
            "reference": application.reference,
        },
        context=context,
        application_id=application.id,
        attachments=attachments,
    )
    record_change(
        session,
        actor=actor.email,
        action=f"application.{decision}",
        entity="application",
        entity_id=application.id or 0,
        before={"status": before},
        after={"status": application.status, "note": note},
    )
    session.commit()
    return application


def fix_fee_at_admission(
    session: Session, application: Application, edition: Edition, *, storage: Storage, now: datetime
) -> None:
    """A waived fee is confirmed now, with a numbered confirmation; others await their invoice."""
    quote = quote_for_edition(
        session,
        edition=edition,
        organisation_id=application.organisation_id,
        country=application.country,
        group_size=1,
    )
    if not quote.waived or quote.total != Decimal("0.00"):
        return
    year = now.year
    number = format_number("W", year, next_number(session, series="fee_waiver", year=year))
    key = new_key("fee-waivers", ".pdf")
    storage.put(
        key,
        render_pdf(
            "fee_waiver.html",
            waiver_document(
                application, edition, number=number, quote=quote_as_json(quote), issued=now
            ),
            language=application.language,
        ),
    )
    application.fee_waiver_number = number
    application.fee_waiver_key = key
    application.status = ApplicationStatus.confirmed.value
    application.confirmed_at = now
    application.version += 1
    session.add(application)
    session.flush()


def waiver_document(
    application: Application,
    edition: Edition,
    *,
    number: str,
    quote: dict[str, Any],
    issued: datetime,
) -> dict[str, Any]:
    """Plain values for the fee-waiver confirmation PDF (no ORM objects reach WeasyPrint)."""
    return {
        "number": number,
        "issued_on": issued.date().isoformat(),
        "holder": application.full_name,
        "email": application.email,
        "organisation": application.organisation_name,
        "country": country_name(application.country),
        "reference": application.reference,
        "course": localized(edition, "title", application.language),
        "edition": edition.edition_label,
        "place": edition.place,
        "start_date": edition.start_date.isoformat(),
        "end_date": edition.end_date.isoformat(),
        "income_fy": edition.income_fy,
        "dues_year": edition.dues_year,
        "lines": quote["lines"],
        "total": quote["total"],
        "currency": quote["currency"],
    }


def create_group(
    session: Session,
    *,
    edition_slug: str,
    organisation_id: int,
    contact_email: str,
    contact_name: str = "",
    secret_key: str,
    base_url: str,
) -> tuple[ApplicantGroup, str]:
    """A group code for colleagues of one organisation; the coordinator gets code and link."""
    edition = get_edition(session, edition_slug)
    organisation = session.get(Organisation, organisation_id)
    if organisation is None:
        raise InvalidInput(
            "Unknown organisation.",
            fields={"organisation_id": "Choose an organisation from the list."},
        )
    while True:
        code = f"G-{_random_code(4)}-{_random_code(4)}"
        if (
            session.exec(select(ApplicantGroup.id).where(ApplicantGroup.code == code)).first()
            is None
        ):
            break
    group = ApplicantGroup(
        edition_id=edition.id or 0,
        organisation_id=organisation_id,
        code=code,
        contact_email=normalise_email(contact_email),
        contact_name=contact_name.strip()[:200],
    )
    session.add(group)
    session.flush()
    url = group_url(group, edition, secret_key=secret_key, base_url=base_url)
    queue_email(
        session,
        kind="group_created",
        to=group.contact_email,
        subject=N_("Your group code for the %(course)s: %(code)s"),
        subject_values={"course": localized(edition, "title"), "code": code},
        # The contact reads the language they asked for the group in.
        language=current_language(),
        context={
            "group": group,
            "edition": edition,
            "organisation": organisation,
            "group_url": url,
        },
    )
    record_change(
        session,
        actor=group.contact_email,
        action="group.created",
        entity="group",
        entity_id=group.id or 0,
        after={"code": code, "organisation": organisation.name},
    )
    session.commit()
    return group, url


def group_url(group: ApplicantGroup, edition: Edition, *, secret_key: str, base_url: str) -> str:
    """The coordinator's private page for a group."""
    token = make_token(
        secret_key=secret_key,
        salt=GROUP_SALT,
        subject_id=group.id or 0,
        version=group.coordinator_token_version,
        expires=link_expiry(edition.end_date),
    )
    return f"{base_url.rstrip('/')}/groups/{token}"


def group_for_token(session: Session, token: str, *, secret_key: str) -> ApplicantGroup:
    """The one group a coordinator link opens."""
    found = read_token(token, secret_key=secret_key, salt=GROUP_SALT)
    group = session.get(ApplicantGroup, found[0]) if found else None
    if group is None or found is None or group.coordinator_token_version != found[1]:
        raise NotFound("This link is not valid any more.")
    return group


def group_members(session: Session, group_id: int) -> list[Application]:
    """Everyone who applied with a group's code, in order of application."""
    return list(
        session.exec(
            select(Application)
            .where(Application.group_id == group_id)
            .order_by(col(Application.submitted_at))
        ).all()
    )
