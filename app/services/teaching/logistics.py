"""Logistics for the week of the course: certificate name, diet, access, travel, visa letters."""

import csv
import io
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlmodel import Session, col, select

from app.clock import edition_today, utcnow
from app.models import Application, ApplicationStatus, Edition
from app.platform.audit import record_change
from app.platform.i18n import N_, localized
from app.platform.mail import queue_email
from app.platform.pdf import StaticOnlyFetcher, render_pdf
from app.platform.storage import Storage, new_key
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registrations.applications import get_application, portal_url
from app.services.registry.countries import local_country_name, parse_country

LOGISTICS_STATUSES = (ApplicationStatus.admitted.value, ApplicationStatus.confirmed.value)
# Travel dates outside this margin around the course are almost always typing mistakes.
TRAVEL_MARGIN = timedelta(days=14)
CERTIFICATE_NAME_MIN = 2
CERTIFICATE_NAME_MAX = 200
NEEDS_MAX = 500
MIN_AGE = 16
MAX_AGE = 100
PASSPORT = re.compile(r"[A-Z0-9]{5,20}")
VISA_DETAILS = ("nationality", "passport_number", "date_of_birth")
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "Reference",
    "Name on certificate",
    "Organisation",
    "Status",
    "Dietary requirements",
    "Accessibility needs",
    "Arrival",
    "Departure",
)
DEFAULT_SIGNER_NAME = "Course director"


class NotAdmitted(Conflict):
    """Logistics are asked for only from admitted or confirmed participants."""


class VisaLetterNotPossible(Conflict):
    """The participant did not ask for a visa letter, or their details are missing."""


def date_in_words(value: date) -> str:
    """`18 November 2024`."""
    return f"{value.day} {value:%B} {value.year}"


def travel_window(edition: Edition) -> tuple[date, date]:
    """The first and last day a participant may plausibly arrive or leave."""
    return edition.start_date - TRAVEL_MARGIN, edition.end_date + TRAVEL_MARGIN


def _travel_date_problem(value: date, *, first: date, last: date, what: str) -> str | None:
    if first <= value <= last:
        return None
    return (
        f"{what} must be between {date_in_words(first)} and {date_in_words(last)}: "
        "the course dates give or take 14 days."
    )


def validation_context(
    edition: Edition, *, today: date | None = None, passport_on_file: bool = False
) -> dict[str, Any]:
    """What LogisticsIn needs to judge dates: the edition's travel window and today's date."""
    first, last = travel_window(edition)
    return {
        "first_travel_day": first,
        "last_travel_day": last,
        "today": today or utcnow().date(),
        "passport_on_file": passport_on_file,
    }


def _parse_date(value: Any, message: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(message) from None


def _visa_needed(info: ValidationInfo) -> bool:
    return bool(info.data.get("visa_letter_needed"))


def _context(info: ValidationInfo) -> dict[str, Any]:
    return info.context if isinstance(info.context, dict) else {}


class LogisticsIn(BaseModel):
    """What a participant tells the office for the week of the course.

    Validate with `context=validation_context(edition)` to check travel dates and age.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    certificate_name: str = Field(default="", validate_default=True)
    dietary: str = ""
    accessibility: str = ""
    arrival_date: date | None = Field(default=None, validate_default=True)
    departure_date: date | None = Field(default=None, validate_default=True)
    # The order matters: the three visa details below are judged knowing this answer.
    visa_letter_needed: bool = False
    nationality: str | None = Field(default=None, validate_default=True)
    passport_number: str | None = Field(default=None, validate_default=True)
    date_of_birth: date | None = Field(default=None, validate_default=True)

    @field_validator("certificate_name")
    @classmethod
    def _certificate_name(cls, value: str) -> str:
        name = " ".join(value.split())
        if not CERTIFICATE_NAME_MIN <= len(name) <= CERTIFICATE_NAME_MAX:
            raise ValueError(
                "Give your name exactly as it should appear on the certificate "
                f"({CERTIFICATE_NAME_MIN} to {CERTIFICATE_NAME_MAX} characters)."
            )
        return name

    @field_validator("dietary", "accessibility")
    @classmethod
    def _needs(cls, value: str, info: ValidationInfo) -> str:
        if len(value) > NEEDS_MAX:
            what = "dietary requirements" if info.field_name == "dietary" else "accessibility needs"
            raise ValueError(
                f"Describe your {what} in at most {NEEDS_MAX} characters (this has {len(value)})."
            )
        return value

    @field_validator("arrival_date", "departure_date", mode="before")
    @classmethod
    def _travel_date_format(cls, value: Any) -> date | None:
        return _parse_date(value, "Enter the date as year-month-day, for example 2024-11-17.")

    @field_validator("arrival_date", "departure_date")
    @classmethod
    def _travel_date(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is None:
            return None
        context = _context(info)
        arriving = info.field_name == "arrival_date"
        if "first_travel_day" in context:
            problem = _travel_date_problem(
                value,
                first=context["first_travel_day"],
                last=context["last_travel_day"],
                what="Your arrival" if arriving else "Your departure",
            )
            if problem:
                raise ValueError(problem)
        arrival = info.data.get("arrival_date")
        if not arriving and arrival is not None and value < arrival:
            raise ValueError(
                f"Your departure cannot be before your arrival ({date_in_words(arrival)})."
            )
        return value

    @field_validator("nationality", mode="before")
    @classmethod
    def _nationality(cls, value: Any, info: ValidationInfo) -> str | None:
        if not _visa_needed(info):
            return None
        text = str(value or "").strip()
        if not text:
            raise ValueError("Choose the nationality shown in your passport.")
        try:
            return parse_country(text, field="nationality")
        except InvalidInput as exc:
            raise ValueError(exc.fields.get("nationality", exc.message)) from None

    @field_validator("passport_number", mode="before")
    @classmethod
    def _passport_number(cls, value: Any, info: ValidationInfo) -> str | None:
        if not _visa_needed(info):
            return None
        number = re.sub(r"[\s-]", "", str(value or "")).upper()
        if not number and _context(info).get("passport_on_file"):
            return None  # keep the number already on file
        if not PASSPORT.fullmatch(number):
            raise ValueError(
                "Enter your passport number as printed in it: 5 to 20 letters and digits."
            )
        return number

    @field_validator("date_of_birth", mode="before")
    @classmethod
    def _date_of_birth_format(cls, value: Any, info: ValidationInfo) -> date | None:
        if not _visa_needed(info):
            return None
        born = _parse_date(value, "Enter your date of birth as year-month-day, e.g. 1985-04-23.")
        if born is None:
            raise ValueError("Enter your date of birth as shown in your passport.")
        return born

    @field_validator("date_of_birth")
    @classmethod
    def _date_of_birth(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is None:
            return None
        today: date = _context(info).get("today") or utcnow().date()
        if value >= today:
            raise ValueError("Your date of birth must be in the past.")
        age = today.year - value.year - ((today.month, today.day) < (value.month, value.day))
        if not MIN_AGE <= age <= MAX_AGE:
            raise ValueError(
                f"Check your date of birth: participants are {MIN_AGE} to {MAX_AGE} years old."
            )
        return value


def mask_passport(number: str | None) -> str:
    """A passport number with all but its last three characters hidden."""
    if not number:
        return ""
    return "•" * max(len(number) - 3, 0) + number[-3:]


def can_give_logistics(application: Application) -> bool:
    """Whether the portal asks this application for its logistics."""
    return application.status in LOGISTICS_STATUSES


def visa_details_complete(application: Application) -> bool:
    """Whether everything a visa letter states is on file."""
    return bool(
        application.visa_letter_needed
        and application.nationality
        and application.passport_number
        and application.date_of_birth
    )


def _audit_values(application: Application) -> dict[str, Any]:
    """Logistics as the audit log may keep them: the visa details never appear in it."""
    return {
        "certificate_name": application.certificate_name,
        "dietary": application.dietary,
        "accessibility": application.accessibility,
        "arrival_date": application.arrival_date.isoformat() if application.arrival_date else None,
        "departure_date": (
            application.departure_date.isoformat() if application.departure_date else None
        ),
        "visa_letter_needed": application.visa_letter_needed,
    }


def _visa_details(application: Application) -> tuple[Any, ...]:
    return tuple(getattr(application, name) for name in VISA_DETAILS)


def save_logistics(
    session: Session,
    *,
    application: Application,
    data: LogisticsIn,
    actor: str,
    storage: Storage | None = None,
    now: datetime | None = None,
) -> Application:
    """Store a participant's logistics; visa details are kept only while a letter is needed."""
    if not can_give_logistics(application):
        raise NotAdmitted(
            "Details for the week of the course can be given once you are admitted; "
            f"this application is {application.status}."
        )
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    first, last = travel_window(edition)
    faults: dict[str, str] = {}
    for name, what in (("arrival_date", "Your arrival"), ("departure_date", "Your departure")):
        value = getattr(data, name)
        problem = value and _travel_date_problem(value, first=first, last=last, what=what)
        if problem:
            faults[name] = problem
    if data.arrival_date and data.departure_date and data.departure_date < data.arrival_date:
        faults["departure_date"] = "Your departure cannot be before your arrival."
    passport = data.passport_number or application.passport_number
    if data.visa_letter_needed:
        if not data.nationality:
            faults["nationality"] = "Choose the nationality shown in your passport."
        if not passport:
            faults["passport_number"] = "Enter your passport number as printed in it."
        if not data.date_of_birth:
            faults["date_of_birth"] = "Enter your date of birth as shown in your passport."
    if faults:
        raise InvalidInput("Some details need correcting.", fields=faults)

    before = _audit_values(application)
    visa_before = _visa_details(application)
    application.certificate_name = data.certificate_name
    application.dietary = data.dietary
    application.accessibility = data.accessibility
    application.arrival_date = data.arrival_date
    application.departure_date = data.departure_date
    application.visa_letter_needed = data.visa_letter_needed
    application.nationality = data.nationality if data.visa_letter_needed else None
    application.passport_number = passport if data.visa_letter_needed else None
    application.date_of_birth = data.date_of_birth if data.visa_letter_needed else None
    withdrawn_letter = None
    if not data.visa_letter_needed and application.visa_letter_key and storage is not None:
        # The letter states the passport number: it goes with the details it was made from.
        withdrawn_letter = application.visa_letter_key
        application.visa_letter_key = None
        application.visa_letter_issued_at = None

    after = _audit_values(application)
    visa_after = _visa_details(application)
    changed = {key for key in after if after[key] != before[key]}
    if visa_before != visa_after:
        changed.add("visa_details")
    if not changed and withdrawn_letter is None:
        return application
    audit_before = {key: before[key] for key in changed if key in before}
    audit_after = {key: after[key] for key in changed if key in after}
    if "visa_details" in changed:
        # Passport number and date of birth never reach the audit log.
        audit_before["visa_details"] = (
            "visa details given" if any(visa_before) else "no visa details"
        )
        audit_after["visa_details"] = (
            ("visa details changed" if any(visa_before) else "visa details given")
            if any(visa_after)
            else "visa details removed"
        )
    if withdrawn_letter:
        audit_after["visa_letter"] = "withdrawn: no longer needed"
    now = now or utcnow()
    application.logistics_updated_at = now
    application.updated_at = now
    session.add(application)
    record_change(
        session,
        actor=actor,
        action="application.logistics_saved",
        entity="application",
        entity_id=application.id or 0,
        before=audit_before,
        after=audit_after,
    )
    session.commit()
    if withdrawn_letter and storage is not None:
        storage.delete(withdrawn_letter)
    return application


def visa_letter_document(
    application: Application,
    edition: Edition,
    *,
    organisation_name: str,
    organisation_address: str,
    signer_name: str,
    signer_title: str,
    issued_on: date,
) -> dict[str, Any]:
    """Plain values for the visa invitation letter (no ORM objects reach WeasyPrint)."""
    if not visa_details_complete(application):
        raise VisaLetterNotPossible(
            f"Application {application.reference} has no complete visa details "
            "(nationality, passport number and date of birth)."
        )
    assert application.nationality and application.date_of_birth
    return {
        "reference": application.reference,
        "issued_on": date_in_words(issued_on),
        "participant": application.certificate_name or application.full_name,
        "nationality": local_country_name(application.nationality),
        "passport_number": application.passport_number,
        "date_of_birth": date_in_words(application.date_of_birth),
        "job_title": application.job_title,
        "employer": application.organisation_name,
        "employer_country": local_country_name(application.country),
        "course": edition.title,
        "edition": edition.edition_label,
        "place": edition.place,
        "start_date": date_in_words(edition.start_date),
        "end_date": date_in_words(edition.end_date),
        "dates_to_be_confirmed": edition.dates_to_be_confirmed,
        "arrival": date_in_words(application.arrival_date) if application.arrival_date else "",
        "departure": (
            date_in_words(application.departure_date) if application.departure_date else ""
        ),
        "purpose": "to attend the course in person",
        "organisation_name": organisation_name,
        "organisation_address": [
            line.strip() for line in organisation_address.splitlines() if line.strip()
        ],
        "signer_name": signer_name,
        "signer_title": signer_title,
    }


def issue_visa_letter(
    session: Session,
    *,
    application_id: int,
    actor: str,
    storage: Storage,
    organisation_name: str,
    organisation_address: str,
    secret_key: str,
    base_url: str,
    signer_name: str = DEFAULT_SIGNER_NAME,
    signer_title: str = "",
    now: datetime | None = None,
    fetcher: StaticOnlyFetcher | None = None,
) -> Application:
    """Render, store and announce the visa invitation letter; a new one replaces the old."""
    now = now or utcnow()
    application = get_application(session, application_id)
    if not can_give_logistics(application):
        raise VisaLetterNotPossible(
            f"Application {application.reference} is {application.status}: letters are issued "
            "only to admitted or confirmed participants."
        )
    if not application.visa_letter_needed:
        raise VisaLetterNotPossible(
            f"The participant of {application.reference} did not ask for a visa letter."
        )
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    document = visa_letter_document(
        application,
        edition,
        organisation_name=organisation_name,
        organisation_address=organisation_address,
        signer_name=signer_name,
        signer_title=signer_title,
        issued_on=edition_today(edition, now),
    )
    key = new_key("visa-letters", ".pdf")
    storage.put(key, render_pdf("visa_letter.html", document, fetcher=fetcher))
    replaced = application.visa_letter_key
    application.visa_letter_key = key
    application.visa_letter_issued_at = now
    application.updated_at = now
    session.add(application)
    url = portal_url(application, edition, secret_key=secret_key, base_url=base_url)
    queue_email(
        session,
        kind="visa_letter_ready",
        to=application.email,
        subject=N_("Your visa invitation letter for the %(course)s"),
        subject_values={"course": localized(edition, "title", application.language)},
        context={"application": application, "edition": edition, "portal_url": url},
        application_id=application.id,
    )
    record_change(
        session,
        actor=actor,
        action="application.visa_letter_issued",
        entity="application",
        entity_id=application.id or 0,
        after={"issued_at": now.isoformat(), "replaced_earlier_letter": replaced is not None},
    )
    try:
        session.commit()
    except Exception:
        storage.delete(key)
        raise
    if replaced:
        storage.delete(replaced)
    return application


def _edition_has_ended(edition: Edition, now: datetime) -> bool:
    return edition_today(edition, now) > edition.end_date


def erase_visa_details(
    session: Session,
    *,
    storage: Storage,
    now: datetime | None = None,
    edition_id: int | None = None,
    actor: str = "system",
) -> int:
    """Erase visa details and letters of ended editions (one, or all when no id is given).

    Returns how many applications had something erased.
    """
    now = now or utcnow()
    query = select(Edition)
    if edition_id is not None:
        query = query.where(Edition.id == edition_id)
    editions = list(session.exec(query).all())
    if edition_id is not None:
        if not editions:
            raise NotFound(f"There is no edition {edition_id}.")
        if not _edition_has_ended(editions[0], now):
            raise Conflict(
                f"The edition {editions[0].slug} ends on {date_in_words(editions[0].end_date)}; "
                "visa details are kept until it is over."
            )
    erased = 0
    letters: list[str] = []
    for edition in editions:
        if not _edition_has_ended(edition, now):
            continue
        holders = session.exec(
            select(Application).where(
                Application.edition_id == edition.id,
                (col(Application.nationality).is_not(None))
                | (col(Application.passport_number).is_not(None))
                | (col(Application.date_of_birth).is_not(None))
                | (col(Application.visa_letter_key).is_not(None)),
            )
        ).all()
        edition_letters = [a.visa_letter_key for a in holders if a.visa_letter_key]
        letters.extend(edition_letters)
        for application in holders:
            application.nationality = None
            application.passport_number = None
            application.date_of_birth = None
            application.visa_letter_key = None
            application.updated_at = now
            session.add(application)
        if holders:
            erased += len(holders)
            record_change(
                session,
                actor=actor,
                action="edition.visa_details_erased",
                entity="edition",
                entity_id=edition.id or 0,
                after={"applications": len(holders), "letters_deleted": len(edition_letters)},
            )
    session.commit()
    # Files go only after the commit: a failed commit must not leave rows pointing at nothing.
    for key in letters:
        storage.delete(key)
    return erased


def logistics_list(session: Session, edition: Edition) -> list[Application]:
    """Admitted and confirmed participants of an edition, by family name."""
    return list(
        session.exec(
            select(Application)
            .where(
                Application.edition_id == edition.id,
                col(Application.status).in_(LOGISTICS_STATUSES),
            )
            .order_by(col(Application.family_name), col(Application.given_name))
        ).all()
    )


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def logistics_csv(applications: Iterable[Application]) -> str:
    """The list for caterers and venues: no passport numbers, nationalities or birth dates."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for application in applications:
        writer.writerow(
            [
                csv_cell(value)
                for value in (
                    application.reference,
                    application.certificate_name or application.full_name,
                    application.organisation_name,
                    application.status,
                    application.dietary,
                    application.accessibility,
                    application.arrival_date.isoformat() if application.arrival_date else "",
                    application.departure_date.isoformat() if application.departure_date else "",
                )
            ]
        )
    return buffer.getvalue()
