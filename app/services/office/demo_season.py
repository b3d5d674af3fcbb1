"""A past edition filled through the services, as an office would have filled it.

`Office` does one step at a time (apply, admit, pay, cancel, mark, assess) at a chosen
moment, so an edition can be built as it happened weeks ago; `fill_demo_week` uses it to
give the demo's 2nd edition a realistic season: applications from many countries, the
decisions, invoices and payments, two cancellations, a week of attendance and final works.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.clock import local_day
from app.models import (
    Application,
    AttendanceMark,
    CourseSession,
    Edition,
    FinalWork,
    Invoice,
    InvoiceLine,
    Module,
    Organisation,
    StaffUser,
)
from app.platform.storage import Storage
from app.services.billing import payments
from app.services.billing import refunds as refund_service
from app.services.billing.invoices import Seller
from app.services.registrations import applications as applications_service
from app.services.registrations import cancellation_intake as cancellations


@dataclass(frozen=True)
class OfficeSettings:
    """What the services need from the configuration to act for the office."""

    seller: Seller
    secret_key: str
    base_url: str
    office_email: str


MOTIVATION = (
    "I coordinate my city's international partnerships and want to turn them into a "
    "strategy with goals we can measure and explain to our council."
)


@dataclass
class Office:
    """The course office at work on one edition."""

    session: Session
    edition: Edition
    storage: Storage
    admin: StaffUser
    settings: OfficeSettings

    def apply(
        self,
        given_name: str,
        family_name: str,
        *,
        at: datetime,
        organisation: Organisation | None = None,
        organisation_name: str = "",
        country: str = "",
        **extra: Any,
    ) -> Application:
        """An application submitted at `at`."""
        email = f"{given_name}.{family_name}".lower().replace(" ", "-")
        payload: dict[str, Any] = {
            "given_name": given_name,
            "family_name": family_name,
            "email": f"{email}@example.org",
            "job_title": "International relations officer",
            "motivation": MOTIVATION,
            "consent": True,
        }
        if organisation is not None:
            payload["organisation_id"] = organisation.id
        else:
            payload["organisation_name"] = organisation_name
            payload["country"] = country
        payload.update(extra)
        return applications_service.submit_application(
            self.session,
            edition_slug=self.edition.slug,
            data=applications_service.ApplicationIn.model_validate(payload),
            cv=None,
            cv_filename=None,
            storage=self.storage,
            secret_key=self.settings.secret_key,
            base_url=self.settings.base_url,
            now=at,
        ).application

    def decide(self, application: Application, decision: str, *, at: datetime) -> Application:
        """Admit (which invoices or confirms a waiver), waitlist or reject."""
        return applications_service.decide(
            self.session,
            application_id=application.id or 0,
            decision=decision,  # type: ignore[arg-type]
            actor=self.admin,
            storage=self.storage,
            secret_key=self.settings.secret_key,
            base_url=self.settings.base_url,
            seller=self.settings.seller,
            now=at,
        )

    def withdraw(self, application: Application, *, at: datetime) -> Application:
        """The applicant withdraws."""
        return applications_service.withdraw(self.session, application=application, now=at)

    def invoice_of(self, application: Application) -> Invoice:
        """The participant's registration invoice."""
        return self.session.exec(
            select(Invoice)
            .join(InvoiceLine, col(InvoiceLine.invoice_id) == col(Invoice.id))
            .where(InvoiceLine.application_id == application.id, Invoice.kind == "invoice")
            .order_by(col(Invoice.id))
        ).first() or _missing(application)

    def pay(
        self,
        application: Application,
        *,
        at: datetime,
        amount: Decimal | None = None,
        method: str = "bank_transfer",
    ) -> None:
        """A payment on the participant's invoice (in full unless `amount` is given)."""
        invoice = self.invoice_of(application)
        payments.record_payment(
            self.session,
            invoice_number=invoice.number,
            amount=amount if amount is not None else invoice.total,
            received_on=local_day(at, self.edition.timezone),
            method=method,
            reference=invoice.number,
            actor=self.admin.email,
            now=at,
        )

    def cancel(
        self, application: Application, *, at: datetime
    ) -> cancellations.CancellationOutcome:
        """A written cancellation received (and recorded) at `at`."""
        self.session.refresh(application)
        return cancellations.cancel_registration(
            self.session,
            application_id=application.id or 0,
            request=cancellations.CancellationRequest(
                received_at=at,
                channel="email",
                course_name=self.edition.title,
                full_name=application.full_name,
                registration_date=application.submitted_at.date(),
                contact=application.email,
            ),
            actor=self.admin.email,
            office=cancellations.CancellationOffice(
                storage=self.storage,
                seller=self.settings.seller,
                secret_key=self.settings.secret_key,
                base_url=self.settings.base_url,
                office_email=self.settings.office_email,
                offer_days=5,
            ),
            now=at,
        )

    def complete_refund(self, refund_id: int, *, on: date, at: datetime) -> None:
        """The bank transfer of a refund went out."""
        refund_service.complete_refund(
            self.session,
            refund_id=refund_id,
            completed_on=on,
            reference=f"TRF-{refund_id}",
            actor=self.admin.email,
            now=at,
        )

    def sessions(self) -> list[CourseSession]:
        """The edition's sessions, lesson by lesson."""
        return list(
            self.session.exec(
                select(CourseSession)
                .join(Module, col(Module.id) == col(CourseSession.module_id))
                .where(Module.edition_id == self.edition.id)
                .order_by(col(Module.position), col(CourseSession.starts_at))
            ).all()
        )

    def mark(self, application: Application, course_session: CourseSession, status: str) -> None:
        """A tutor's mark, written as the sheet stores it."""
        self.session.add(
            AttendanceMark(
                course_session_id=course_session.id or 0,
                application_id=application.id or 0,
                status=status,
                source="sheet",
                marked_by="tutor@example.org",
                marked_at=course_session.ends_at,
            )
        )

    def final_work(self, application: Application, status: str, *, at: datetime) -> None:
        """A final work handed in and assessed (`submitted` while not yet assessed)."""
        self.session.add(
            FinalWork(
                application_id=application.id or 0,
                file_key=f"final-work/demo-{application.id}.pdf",
                filename="final-work.pdf",
                size_bytes=120_000,
                uploaded_at=at,
                status=status,
                note="The goals need measurable indicators." if status == "rejected" else "",
                assessed_by=None if status == "submitted" else "tutor@example.org",
                assessed_at=None if status == "submitted" else at + timedelta(days=2),
            )
        )


def _missing(application: Application) -> Invoice:
    raise AssertionError(f"{application.reference} has no invoice")


def moment(day: date, hour: int = 10, timezone: str = "Europe/Madrid") -> datetime:
    """A day at an hour on the edition's clock, as an aware UTC instant."""
    return datetime.combine(day, time(hour), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


# The demo's 2nd edition, filled

# (given, family, registry organisation or (organisation, country), what happened)
# what: confirmed, waived, unpaid (admitted, invoice overdue), part_paid, cancelled_paid,
# cancelled_refunded, waitlisted, rejected, withdrawn
PEOPLE: tuple[tuple[str, str, str | tuple[str, str], str], ...] = (
    ("Marta", "Puig", "Barcelona City Council", "confirmed"),
    ("Jordi", "Vidal", "Barcelona City Council", "confirmed"),
    ("Lucía", "Hernández", "Mexico City Government", "confirmed"),
    ("Diego", "Ramírez", "Mexico City Government", "confirmed"),
    ("Anna", "Schmidt", "Berlin Senate Chancellery", "confirmed"),
    ("Jonas", "Weber", "Berlin Senate Chancellery", "cancelled_refunded"),
    ("Camille", "Tremblay", "City of Montréal", "confirmed"),
    ("Ji-woo", "Park", "Seoul Metropolitan Government", "confirmed"),
    ("Min-jun", "Kim", "Seoul Metropolitan Government", "confirmed"),
    ("Andrés", "Gómez", "Bogotá District Mayor's Office", "confirmed"),
    ("Valentina", "Rojas", "Bogotá District Mayor's Office", "unpaid"),
    ("Thandiwe", "Nkosi", "eThekwini Municipality", "confirmed"),
    ("Sipho", "Dlamini", "eThekwini Municipality", "rejected"),
    ("Chisomo", "Banda", "Lilongwe City Council", "waived"),
    ("Tiwonge", "Phiri", "Lilongwe City Council", "waived"),
    ("Selam", "Tadesse", "Addis Ababa City Administration", "waived"),
    ("Mulenga", "Chanda", "Lusaka City Council", "waived"),
    ("Grace", "Namutebi", "Kampala Capital City Authority", "part_paid"),
    ("Oliver", "Hughes", "Bristol City Council", "confirmed"),
    ("Amelia", "Clarke", "Bristol City Council", "withdrawn"),
    ("Patrick", "Mbuyi", "Kinshasa City Hall", "cancelled_paid"),
    ("Rania", "Haddad", "Greater Amman Municipality", "confirmed"),
    ("Beatriz", "Souza", ("São Paulo City Hall", "BRA"), "confirmed"),
    ("Rafael", "Lima", ("São Paulo City Hall", "BRA"), "waitlisted"),
    ("Martín", "Fernández", ("Buenos Aires City Government", "ARG"), "confirmed"),
    ("Sofía", "López", ("Buenos Aires City Government", "ARG"), "rejected"),
    ("Youssef", "El Amrani", ("Rabat City Council", "MAR"), "confirmed"),
    ("Priya", "Sen", ("Kolkata Municipal Corporation", "IND"), "confirmed"),
    ("Arjun", "Mehta", ("Kolkata Municipal Corporation", "IND"), "waitlisted"),
    ("Putri", "Wulandari", ("Jakarta Provincial Government", "IDN"), "confirmed"),
    ("Elif", "Yılmaz", ("Istanbul Metropolitan Municipality", "TUR"), "confirmed"),
    ("Maria", "Santos", ("Quezon City Government", "PHL"), "unpaid"),
    ("Nguyen", "Thi Lan", ("Hanoi People's Committee", "VNM"), "rejected"),
    ("Aigerim", "Sadykova", ("Almaty Akimat", "KAZ"), "withdrawn"),
    ("Kwame", "Mensah", ("Accra Metropolitan Assembly", "GHA"), "confirmed"),
    ("Fatou", "Diop", ("Dakar City Council", "SEN"), "rejected"),
    ("Hiroshi", "Tanaka", ("Tokyo Metropolitan Government", "JPN"), "waitlisted"),
    ("Laura", "Rossi", ("Turin City Council", "ITA"), "confirmed"),
)
# Who missed what (by family name): (lesson, index of the session in the lesson, mark).
MISSED: dict[str, tuple[tuple[int, int, str], ...]] = {
    "Hernández": ((2, 1, "absent"), (3, 0, "absent")),
    "Park": ((4, 0, "excused"),),
    "Mensah": ((1, 2, "absent"),),
    "Rossi": ((5, 0, "excused"), (5, 1, "absent")),
}
# Sessions nobody marked for these participants (the tutor forgot a row of the sheet).
UNMARKED: dict[str, tuple[tuple[int, int], ...]] = {"Haddad": ((5, 1),), "Souza": ((5, 1),)}
FINAL_WORK: dict[str, str] = {
    "Tremblay": "rejected",
    "Nkosi": "presented",
    "Yılmaz": "missing",
    "Chanda": "submitted",
}


def fill_demo_week(
    session: Session,
    edition: Edition,
    *,
    storage: Storage,
    admin: StaffUser,
    settings: OfficeSettings,
) -> dict[str, Application]:
    """The 2nd edition's season, from applications in May to final works after the week."""
    office = Office(session, edition, storage, admin, settings)
    organisations = {o.name: o for o in session.exec(select(Organisation)).all()}
    zone = edition.timezone
    opened = edition.applications_open.astimezone(ZoneInfo(zone)).date()
    people: dict[str, Application] = {}
    for index, (given, family, where, _) in enumerate(PEOPLE):
        at = moment(opened + timedelta(days=3 + index * 3), 9 + index % 8, zone)
        if isinstance(where, str):
            people[family] = office.apply(given, family, at=at, organisation=organisations[where])
        else:
            name, country = where
            people[family] = office.apply(
                given, family, at=at, organisation_name=name, country=country
            )
    decided = moment(date(2024, 9, 2), 11, zone)
    for index, (_, family, _, what) in enumerate(PEOPLE):
        application = people[family]
        at = decided + timedelta(hours=index)
        if what == "withdrawn":
            office.withdraw(application, at=at)
        elif what in ("rejected", "waitlisted"):
            office.decide(application, "reject" if what == "rejected" else "waitlist", at=at)
        else:
            office.decide(application, "admit", at=at)
    paid = moment(date(2024, 9, 12), 12, zone)
    for index, (_, family, _, what) in enumerate(PEOPLE):
        application = people[family]
        at = paid + timedelta(days=index % 10)
        if what in ("confirmed", "cancelled_paid", "cancelled_refunded"):
            office.pay(application, at=at, method="card" if index % 5 == 1 else "bank_transfer")
        elif what == "part_paid":
            office.pay(application, at=at, amount=Decimal("500.00"))
    refund = office.cancel(people["Weber"], at=moment(date(2024, 10, 3), 16, zone)).refund
    assert refund is not None
    if refund.method == "bank_transfer":
        office.complete_refund(
            refund.id or 0, on=date(2024, 10, 21), at=moment(date(2024, 10, 21), 12, zone)
        )
    office.cancel(people["Mbuyi"], at=moment(date(2024, 10, 14), 10, zone))
    participants = [
        people[family]
        for _, family, _, what in PEOPLE
        if what in ("confirmed", "waived", "part_paid")
    ]
    for application in participants:
        session.refresh(application)
    by_lesson: dict[int, list[CourseSession]] = {}
    module_positions = {
        m.id: m.position
        for m in session.exec(select(Module).where(Module.edition_id == edition.id)).all()
    }
    for course_session in office.sessions():
        by_lesson.setdefault(module_positions[course_session.module_id], []).append(course_session)
    for application in participants:
        if application.status not in ("confirmed", "completed"):
            continue
        missed = {(lesson, i): mark for lesson, i, mark in MISSED.get(application.family_name, ())}
        skipped = set(UNMARKED.get(application.family_name, ()))
        for lesson, sessions in by_lesson.items():
            for i, course_session in enumerate(sessions):
                if (lesson, i) in skipped:
                    continue
                office.mark(application, course_session, missed.get((lesson, i), "present"))
        outcome = FINAL_WORK.get(application.family_name, "accepted")
        if outcome != "missing":
            office.final_work(application, outcome, at=moment(date(2024, 12, 2), 15, zone))
    session.commit()
    return people
