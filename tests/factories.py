"""Small builders for test data."""

import io
import itertools
import secrets
import tempfile
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pypdf import PdfWriter
from sqlmodel import Session, select

from app.clock import utcnow
from app.models import (
    Application,
    AttendanceMark,
    CourseSession,
    Edition,
    Invoice,
    InvoiceLine,
    Module,
    Organisation,
    SessionKind,
    StaffUser,
)
from app.platform.storage import LocalStorage, Storage
from app.services.billing import payments
from app.services.billing.invoices import Seller
from app.services.billing.quotes import quote_as_json, quote_for_edition
from app.services.editions.editions import DIPLOMA_LESSONS, EditionCreate, create_edition
from app.services.office.staff import create_user
from app.services.registrations import applications as applications_service
from app.services.registry.organisations import OrganisationIn, create_organisation
from app.services.teaching import final_work

# The clock of the editions these factories make.
OFFICE_ZONE = ZoneInfo("Europe/Madrid")


def office_today() -> date:
    """Today on the editions' clock: the day that dates their invoices, refunds and
    revocations, which is not the machine's day around midnight."""
    return utcnow().astimezone(OFFICE_ZONE).date()


def edition_payload(**overrides: Any) -> dict[str, Any]:
    """A valid body for POST /api/v1/editions."""
    body: dict[str, Any] = {
        "slug": "diploma-test",
        "title": "Diploma in Internationalization",
        "place": "Barcelona",
        "start_date": "2024-11-18",
        "end_date": "2024-11-22",
        "timezone": "Europe/Madrid",
        "capacity": 30,
        "currency": "EUR",
        "dues_year": 2023,
        "income_fy": 2023,
        "fees": {
            "standard": "1500.00",
            "member": "1000.00",
            "group_tiers": [{"min_size": 2, "percent": "10"}],
        },
    }
    body.update(overrides)
    return body


def make_edition(session: Session, **overrides: Any) -> Edition:
    """An edition stored through the service."""
    return create_edition(
        session, data=EditionCreate.model_validate(edition_payload(**overrides)), actor="test"
    )


def make_organisation(
    session: Session,
    name: str = "Lilongwe City Council",
    country: str = "MWI",
    is_member: bool = True,
    dues_paid_through: int | None = 2023,
) -> Organisation:
    """An organisation stored through the service."""
    return create_organisation(
        session,
        data=OrganisationIn(
            name=name, country=country, is_member=is_member, dues_paid_through=dues_paid_through
        ),
        actor="test",
    )


START = date(2024, 11, 18)


def application_payload(**overrides: Any) -> dict[str, Any]:
    """A valid body for POST /api/v1/editions/{slug}/applications (needs an open edition)."""
    body: dict[str, Any] = {
        "given_name": "Ama",
        "family_name": "Banda",
        "email": "ama.banda@lilongwe.example",
        "country": "MWI",
        "organisation_name": "Lilongwe City Council",
        "job_title": "International relations officer",
        "department": "Mayor's office",
        "years_in_international_affairs": 4,
        "motivation": "I coordinate our city's partnerships and want to build a strategy. " * 2,
        "consent": True,
    }
    body.update(overrides)
    return body


def open_edition(session: Session, **overrides: Any) -> Edition:
    """An edition in the future whose applications are open now."""
    values: dict[str, Any] = {
        "slug": "diploma-open",
        "start_date": "2099-11-16",
        "end_date": "2099-11-20",
        "applications_open": "2020-01-01T00:00:00+00:00",
    }
    values.update(overrides)
    return make_edition(session, **values)


FACTORY_SECRET = "test-secret-key-" + "x" * 32
FACTORY_BASE_URL = "http://testserver"
FACTORY_ADMIN = "factory-admin@example.org"
FACTORY_SELLER = Seller(
    name="Metropolis",
    address="Avinyó, 15\n08002 Barcelona",
    tax_id="ESG00000000",
    bank_name="Example Bank",
    iban="ES91 2100 0418 4502 0005 1332",
    bic="CAIXESBBXXX",
    due_days=14,
)


# --- Applying, admitting and paying through the services --------------------------------


def submission(
    session: Session,
    storage: Storage,
    edition: Edition,
    *,
    cv: bytes | None = None,
    cv_filename: str = "cv.pdf",
    **overrides: Any,
) -> applications_service.SubmittedApplication:
    """An application submitted through the service; keyword arguments change the form."""
    return applications_service.submit_application(
        session,
        edition_slug=edition.slug,
        data=applications_service.ApplicationIn.model_validate(application_payload(**overrides)),
        cv=cv,
        cv_filename=cv_filename if cv else None,
        storage=storage,
        secret_key=FACTORY_SECRET,
        base_url=FACTORY_BASE_URL,
    )


def submit(
    session: Session,
    storage: Storage,
    edition: Edition,
    *,
    cv: bytes | None = None,
    cv_filename: str = "cv.pdf",
    **overrides: Any,
) -> Application:
    """The application `submission` stores."""
    return submission(
        session, storage, edition, cv=cv, cv_filename=cv_filename, **overrides
    ).application


def admit(
    session: Session,
    storage: Storage,
    admin: StaffUser,
    application: Application,
    *,
    seller: Seller = FACTORY_SELLER,
) -> Application:
    """The application admitted by `admin`, which issues its invoice unless the fee is waived."""
    return applications_service.decide(
        session,
        application_id=application.id or 0,
        decision="admit",
        actor=admin,
        storage=storage,
        secret_key=FACTORY_SECRET,
        base_url=FACTORY_BASE_URL,
        seller=seller,
    )


_transfers = itertools.count()


def pay(
    session: Session,
    invoice: Invoice | str,
    amount: str | Decimal,
    method: str = "bank_transfer",
    *,
    received_on: date | None = None,
    reference: str | None = None,
    actor: str = "admin@example.org",
) -> payments.PaymentResult:
    """A payment against the invoice (or invoice number), received today unless told.

    Without a `reference` each call is a transfer of its own (its own bank reference), never
    the same one twice."""
    return payments.record_payment(
        session,
        invoice_number=invoice if isinstance(invoice, str) else invoice.number,
        amount=Decimal(amount),
        received_on=received_on or date.today(),
        method=method,
        reference=f"transfer {next(_transfers)}" if reference is None else reference,
        actor=actor,
    )


# --- Eligible participants (final work and eligibility) ---------------------------------


def pdf_bytes(pages: int = 1) -> bytes:
    """A small, valid PDF document."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _factory_admin(session: Session) -> StaffUser:
    user = session.exec(select(StaffUser).where(StaffUser.email == FACTORY_ADMIN)).first()
    return user or create_user(
        session, email=FACTORY_ADMIN, password=secrets.token_urlsafe(16), role="admin"
    )


def ensure_schedule(session: Session, edition: Edition) -> list[CourseSession]:
    """The edition's sessions; an edition without modules gets five, with 2-3 past sessions each."""
    session.refresh(edition)
    if not edition.modules:
        zone = ZoneInfo(edition.timezone)
        ended = edition.end_date < utcnow().astimezone(zone).date()
        first_day = edition.start_date if ended else utcnow().date() - timedelta(days=30)
        kinds = [SessionKind.knowledge, SessionKind.skills, SessionKind.site_visit]
        for index, (title, _) in enumerate(DIPLOMA_LESSONS):
            day = first_day + timedelta(days=index)
            module = Module(position=index + 1, title=title)
            module.sessions = [
                CourseSession(
                    kind=kind.value,
                    title=f"Lesson {index + 1}: {kind.value.replace('_', ' ')}",
                    starts_at=datetime.combine(
                        day, time(9 + 3 * number, 0), tzinfo=zone
                    ).astimezone(UTC),
                    ends_at=datetime.combine(day, time(11 + 3 * number, 0), tzinfo=zone).astimezone(
                        UTC
                    ),
                )
                for number, kind in enumerate(kinds[: 2 + index % 2])
            ]
            edition.modules.append(module)
        session.add(edition)
        session.commit()
        session.refresh(edition)
    return [s for module in edition.modules for s in module.sessions]


def _submitted(
    session: Session, edition: Edition, payload: dict[str, Any], storage: Any
) -> Application:
    """Submitted through the service inside the window; an edition whose window is over or
    empty gets the row the service would have written."""
    data = applications_service.ApplicationIn.model_validate(payload)
    now = utcnow()
    if not applications_service.applications_are_open(edition, now=now):
        now = edition.applications_open + timedelta(seconds=1)
    if applications_service.applications_are_open(edition, now=now):
        return applications_service.submit_application(
            session,
            edition_slug=edition.slug,
            data=data,
            cv=None,
            cv_filename=None,
            storage=storage,
            secret_key=FACTORY_SECRET,
            base_url=FACTORY_BASE_URL,
            now=now,
        ).application
    organisation = session.get(Organisation, data.organisation_id) if data.organisation_id else None
    country = organisation.country if organisation else (data.country or "MWI")
    quote = quote_for_edition(
        session,
        edition=edition,
        organisation_id=organisation.id if organisation else None,
        country=country,
        group_size=1,
    )
    application = Application(
        edition_id=edition.id or 0,
        reference="MDT-" + secrets.token_hex(5).upper(),
        given_name=data.given_name,
        family_name=data.family_name,
        email=str(data.email).lower(),
        organisation_id=organisation.id if organisation else None,
        organisation_name=organisation.name if organisation else (data.organisation_name or ""),
        country=country,
        job_title=data.job_title,
        motivation=data.motivation,
        consent_at=now,
        quote=quote_as_json(quote),
        quoted_total=quote.total,
        submitted_at=now,
    )
    session.add(application)
    session.commit()
    return application


def make_eligible_participant(session: Session, edition: Edition, **overrides: Any) -> Application:
    """A confirmed participant who meets every condition for the certificate.

    Paid in full (or, with `waived=True`, a low-income member whose fee is waived), marked
    present at every session of the edition, and with an accepted final work. Other keyword
    arguments change the application (`given_name`, `email`, ...). The edition gets five
    past modules with sessions of each kind if it has none.
    """
    waived = bool(overrides.pop("waived", False))
    storage = LocalStorage(Path(tempfile.mkdtemp(prefix="diplomat-factory-")))
    admin = _factory_admin(session)
    sessions = ensure_schedule(session, edition)
    tag = secrets.token_hex(4)
    payload = application_payload(email=f"participant-{tag}@example.org")
    if waived:
        organisation = make_organisation(
            session,
            name=f"Lilongwe City Council {tag}",
            country="MWI",
            is_member=True,
            dues_paid_through=edition.dues_year,
        )
        payload.pop("organisation_name")
        payload.pop("country")
        payload["organisation_id"] = organisation.id
    payload.update(overrides)
    application = _submitted(session, edition, payload, storage)
    # Seats are not what this builder is about: make room so the payment confirms.
    if payments.confirmed_count(session, edition.id or 0) >= edition.capacity:
        edition.capacity = payments.confirmed_count(session, edition.id or 0) + 1
        session.add(edition)
        session.commit()
    application = applications_service.decide(
        session,
        application_id=application.id or 0,
        decision="admit",
        actor=admin,
        storage=storage,
        secret_key=FACTORY_SECRET,
        base_url=FACTORY_BASE_URL,
        seller=FACTORY_SELLER,
    )
    invoice = session.exec(
        select(Invoice)
        .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)  # type: ignore[arg-type]
        .where(InvoiceLine.application_id == application.id)
    ).first()
    if invoice is not None and invoice.total > Decimal("0.00"):
        payments.record_payment(
            session,
            invoice_number=invoice.number,
            amount=invoice.total,
            received_on=utcnow().date() - timedelta(days=1),
            method="bank_transfer",
            reference=invoice.number,
            actor=admin.email,
        )
    session.refresh(application)
    assert application.status == "confirmed", application.status
    for course_session in sessions:
        session.add(
            AttendanceMark(
                course_session_id=course_session.id or 0,
                application_id=application.id or 0,
                status="present",
                source="api",
                marked_by="tutor@example.org",
            )
        )
    session.commit()
    final_work.upload_final_work(
        session,
        application=application,
        data=pdf_bytes(),
        filename="final-work.pdf",
        storage=storage,
    )
    final_work.assess_final_work(
        session,
        application_id=application.id or 0,
        status="accepted",
        note="A clear strategy with measurable goals.",
        actor="tutor@example.org",
        secret_key=FACTORY_SECRET,
        base_url=FACTORY_BASE_URL,
    )
    session.refresh(application)
    return application
