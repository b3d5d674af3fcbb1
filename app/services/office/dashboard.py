"""An edition at a glance for its administrators: the funnel, seats, money, refunds, where
applicants come from, attendance by session, who is at risk of not completing, key dates.

Everything is read in a fixed number of queries (grouped counts, sums, and the eligibility
of the edition's participants read in bulk), so the page costs the same for 5 or 500
participants among any number of applications.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.clock import edition_today, utcnow
from app.models import (
    Application,
    ApplicationStatus,
    AttendanceMark,
    Cancellation,
    CourseSession,
    Edition,
    Invoice,
    InvoiceLine,
    Module,
    Organisation,
    Refund,
    RefundStatus,
)
from app.money import ZERO, as_money
from app.platform.i18n import N_
from app.services.billing.money_overview import MoneyOverview, edition_money
from app.services.certificates.eligibility import evaluate_edition
from app.services.editions.editions import cancellation_deadline
from app.services.registry.countries import local_country_name

S = ApplicationStatus
# Holding a place: admitted (promised, not yet paid), confirmed or completed.
WITH_PLACE = (S.admitted.value, S.confirmed.value, S.completed.value)
# On the attendance sheets and counted as seats taken: paid (or waived) places.
PAID = (S.confirmed.value, S.completed.value)
MEMBERSHIP_LABELS = {
    "member": N_("Member, dues paid"),
    "behind": N_("Member behind on dues"),
    "non_member": N_("Non-member in the registry"),
    "unlisted": N_("Not in the registry"),
}
TOP_COUNTRIES = 12
# Reasons the eligibility check gives that are not yet a risk: the session is still to come.
NOT_YET = "has not taken place yet"
# Final work is only late once the edition is over; before that these are simply pending.
FINAL_WORK_PENDING = (
    "no final work uploaded",
    "final work not yet assessed",
    "final work was presented but is not yet accepted",
)


@dataclass(frozen=True)
class Funnel:
    """Applications by where they stand now, and how far each got."""

    counts: dict[str, int]
    # Cancelled after their place was confirmed (paid or waived), not before.
    cancelled_after_confirming: int

    def count(self, status: str) -> int:
        """Applications in this status now."""
        return self.counts.get(status, 0)

    @property
    def applied(self) -> int:
        """Every application: each one was submitted."""
        return sum(self.counts.values())

    @property
    def admitted(self) -> int:
        """Applications that were admitted at some point (including those later cancelled)."""
        return sum(self.count(s) for s in (*WITH_PLACE, S.cancelled.value))

    @property
    def confirmed(self) -> int:
        """Places that were confirmed at some point (paid or waived)."""
        return (
            self.count(S.confirmed.value)
            + self.count(S.completed.value)
            + (self.cancelled_after_confirming)
        )

    @property
    def completed(self) -> int:
        """Participants whose certificate is issued."""
        return self.count(S.completed.value)

    @property
    def cancelled_before_paying(self) -> int:
        """Cancelled while only admitted."""
        return self.count(S.cancelled.value) - self.cancelled_after_confirming


@dataclass(frozen=True)
class Seats:
    """The edition's seats: paid, promised but unpaid, and still free."""

    capacity: int
    paid: int
    awaiting_payment: int

    @property
    def free(self) -> int:
        """Seats neither paid nor promised."""
        return max(self.capacity - self.paid - self.awaiting_payment, 0)

    @property
    def over(self) -> int:
        """Places promised beyond the seats."""
        return max(self.paid + self.awaiting_payment - self.capacity, 0)


@dataclass(frozen=True)
class RefundDue:
    """An owed refund and whom it is for."""

    refund: Refund
    # None for an overpayment of a group invoice (its organisation paid).
    application: Application | None
    days_left: int


@dataclass(frozen=True)
class Refunds:
    """Refunds after cancellations: owed (due, overdue) and paid out."""

    owed: list[RefundDue]
    completed_count: int
    completed_amount: Decimal

    @property
    def overdue(self) -> list[RefundDue]:
        """Owed refunds past their due day, the longest overdue first."""
        return [r for r in self.owed if r.days_left < 0]

    @property
    def owed_amount(self) -> Decimal:
        """What is still to pay back."""
        return sum((r.refund.amount for r in self.owed), ZERO)

    @property
    def overdue_amount(self) -> Decimal:
        """What should have been paid back already."""
        return sum((r.refund.amount for r in self.overdue), ZERO)


@dataclass(frozen=True)
class CategoryCount:
    """Applications of one country or kind of organisation, and how many of them hold a place."""

    key: str
    label: str
    applications: int
    with_place: int

    @property
    def without_place(self) -> int:
        """Applications without a place (pending, waitlisted, refused, withdrawn, cancelled)."""
        return self.applications - self.with_place


@dataclass(frozen=True)
class SessionAttendance:
    """Marks at one session, against the participants expected there."""

    course_session: CourseSession
    module_position: int
    module_title: str
    present: int
    absent: int
    excused: int
    participants: int
    ended: bool

    @property
    def marked(self) -> int:
        """Participants with a mark."""
        return self.present + self.absent + self.excused

    @property
    def unmarked(self) -> int:
        """Participants without a mark."""
        return max(self.participants - self.marked, 0)

    @property
    def state(self) -> str:
        """`future` (nothing marked, still to come), `unmarked` (over, nothing marked), else
        `measured`."""
        if self.marked:
            return "measured"
        return "unmarked" if self.ended else "future"

    @property
    def share(self) -> float | None:
        """Share of participants present, once anything is marked."""
        if not self.marked or not self.participants:
            return None
        return self.present / self.participants


@dataclass(frozen=True)
class AttendanceSummary:
    """The sessions held so far, added up."""

    sessions: int
    held: int
    present: int
    absent: int
    excused: int
    unmarked: int

    @property
    def expected(self) -> int:
        """Marks expected at the sessions held."""
        return self.present + self.absent + self.excused + self.unmarked

    @property
    def share(self) -> float | None:
        """Share of expected attendances that were present."""
        return self.present / self.expected if self.expected else None


@dataclass(frozen=True)
class AtRisk:
    """A participant who may not complete, and why."""

    application: Application
    reasons: list[str]
    concerns: tuple[str, ...]


@dataclass(frozen=True)
class KeyDates:
    """The edition's dates and how far away they are on its own calendar."""

    today: date
    start: date
    end: date
    cancellation_deadline: datetime
    to_be_confirmed: bool

    @property
    def days_to_start(self) -> int:
        """Days until the first day (negative once started)."""
        return (self.start - self.today).days

    @property
    def days_to_deadline(self) -> int:
        """Days until the cancellation deadline (0 or less: passed)."""
        return (self.cancellation_deadline.date() - self.today).days

    @property
    def last_cancellation_day(self) -> date:
        """The last day a cancellation is accepted (the deadline is 00:00 the day after)."""
        return self.cancellation_deadline.date() - timedelta(days=1)

    @property
    def running(self) -> bool:
        """Whether today is one of the edition's days."""
        return self.start <= self.today <= self.end

    @property
    def ended(self) -> bool:
        """Whether the last day is over."""
        return self.today > self.end


@dataclass(frozen=True)
class Dashboard:
    """Every figure of the edition's dashboard."""

    edition: Edition
    today: date
    funnel: Funnel
    seats: Seats
    money: MoneyOverview
    retained: Decimal
    refunds: Refunds
    countries: list[CategoryCount]
    other_countries: int
    all_countries: list[CategoryCount]
    membership: list[CategoryCount]
    attendance: list[SessionAttendance]
    at_risk: list[AtRisk]
    participants: int
    dates: KeyDates

    @property
    def attendance_summary(self) -> AttendanceSummary:
        """Every session that took place (or has marks), added up."""
        held = [s for s in self.attendance if s.state != "future"]
        return AttendanceSummary(
            sessions=len(self.attendance),
            held=len(held),
            present=sum(s.present for s in held),
            absent=sum(s.absent for s in held),
            excused=sum(s.excused for s in held),
            unmarked=sum(s.unmarked for s in held if s.ended),
        )


def _status_by_country(
    session: Session, edition: Edition
) -> tuple[Funnel, dict[str, dict[str, int]]]:
    rows = session.exec(
        select(
            Application.country,
            Application.status,
            col(Application.confirmed_at).is_not(None),
            func.count(),
        )
        .where(Application.edition_id == edition.id)
        .group_by(
            col(Application.country),
            col(Application.status),
            col(Application.confirmed_at).is_not(None),
        )
    ).all()
    counts: dict[str, int] = defaultdict(int)
    by_country: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    cancelled_after_confirming = 0
    for country, status, was_confirmed, count in rows:
        counts[status] += count
        by_country[country][status] += count
        if status == S.cancelled.value and was_confirmed:
            cancelled_after_confirming += count
    return Funnel(dict(counts), cancelled_after_confirming), by_country


def _every_country(by_country: dict[str, dict[str, int]]) -> list[CategoryCount]:
    """Every country with applications, the most first."""
    return sorted(
        (
            CategoryCount(
                key=code,
                label=local_country_name(code) or code,
                applications=sum(statuses.values()),
                with_place=sum(statuses.get(s, 0) for s in WITH_PLACE),
            )
            for code, statuses in by_country.items()
        ),
        key=lambda c: (-c.applications, -c.with_place, c.label),
    )


def _countries(found: list[CategoryCount]) -> tuple[list[CategoryCount], int]:
    """The countries with the most applications, and the rest summed in a last row."""
    if len(found) <= TOP_COUNTRIES + 1:
        return found, 0
    top, rest = found[:TOP_COUNTRIES], found[TOP_COUNTRIES:]
    others = CategoryCount(
        key="other",
        label=f"{len(rest)} other countries",
        applications=sum(c.applications for c in rest),
        with_place=sum(c.with_place for c in rest),
    )
    return [*top, others], len(rest)


def _membership(session: Session, edition: Edition) -> list[CategoryCount]:
    """Applications by the organisation's standing in the registry today, for the dues year."""
    rows = session.exec(
        # Without an organisation the outer join leaves `is_member` empty: not in the registry.
        select(
            Organisation.is_member,
            Organisation.dues_paid_through,
            Application.status,
            func.count(),
        )
        .select_from(Application)
        .outerjoin(Organisation, col(Organisation.id) == col(Application.organisation_id))
        .where(Application.edition_id == edition.id)
        .group_by(
            col(Organisation.is_member),
            col(Organisation.dues_paid_through),
            col(Application.status),
        )
    ).all()
    totals: dict[str, list[int]] = {key: [0, 0] for key in MEMBERSHIP_LABELS}
    for is_member, dues, status, count in rows:
        if is_member is None:
            key = "unlisted"
        elif not is_member:
            key = "non_member"
        elif dues is not None and dues >= edition.dues_year:
            key = "member"
        else:
            key = "behind"
        totals[key][0] += count
        if status in WITH_PLACE:
            totals[key][1] += count
    return [
        CategoryCount(key, MEMBERSHIP_LABELS[key], applications, with_place)
        for key, (applications, with_place) in totals.items()
    ]


def _retained(session: Session, edition: Edition) -> Decimal:
    """What accepted cancellations kept as the cancellation fee."""
    total = session.exec(
        select(func.sum(Cancellation.retained))
        .join(Application, col(Application.id) == col(Cancellation.application_id))
        .where(Application.edition_id == edition.id, col(Cancellation.accepted))
    ).one()
    return as_money(total)


def _refunds(session: Session, edition: Edition, today: date) -> Refunds:
    rows = session.exec(
        select(Refund, Application)
        .join(Invoice, col(Invoice.id) == col(Refund.invoice_id))
        .outerjoin(Application, col(Application.id) == col(Refund.application_id))
        .where(Invoice.edition_id == edition.id)
        .order_by(col(Refund.due_by), col(Refund.id))
    ).all()
    owed: list[RefundDue] = []
    completed_count = 0
    completed_amount = ZERO
    for refund, application in rows:
        if refund.status == RefundStatus.completed.value:
            completed_count += 1
            completed_amount += refund.amount
        elif refund.status == RefundStatus.owed.value:
            owed.append(RefundDue(refund, application, (refund.due_by - today).days))
    return Refunds(owed, completed_count, completed_amount)


def _attendance(
    session: Session, edition: Edition, participants: int, now: datetime
) -> list[SessionAttendance]:
    """Marks of the edition's paid participants per session, module by module."""
    sessions = session.exec(
        select(CourseSession, Module)
        .join(Module, col(Module.id) == col(CourseSession.module_id))
        .where(Module.edition_id == edition.id)
        .order_by(col(Module.position), col(CourseSession.starts_at), col(CourseSession.id))
    ).all()
    if not sessions:
        return []
    marks: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for session_id, status, count in session.exec(
        select(AttendanceMark.course_session_id, AttendanceMark.status, func.count())
        .join(Application, col(Application.id) == col(AttendanceMark.application_id))
        .where(
            col(AttendanceMark.course_session_id).in_([s.id for s, _ in sessions]),
            col(Application.status).in_(PAID),
        )
        .group_by(col(AttendanceMark.course_session_id), col(AttendanceMark.status))
    ).all():
        marks[session_id][status] += count
    return [
        SessionAttendance(
            course_session=course_session,
            module_position=module.position,
            module_title=module.title,
            present=marks[course_session.id or 0]["present"],
            absent=marks[course_session.id or 0]["absent"],
            excused=marks[course_session.id or 0]["excused"],
            participants=participants,
            ended=course_session.ends_at <= now,
        )
        for course_session, module in sessions
    ]


def _concern(reason: str) -> str:
    if reason.startswith("registration") or "invoice" in reason:
        return "payment"
    if "final work" in reason:
        return "final work"
    return "attendance"


def _at_risk(
    session: Session, edition: Edition, money: MoneyOverview, dates: KeyDates, now: datetime
) -> list[AtRisk]:
    """Participants with an unmet condition that is already a problem, not merely to come.

    Confirmed participants: the eligibility check, less sessions still to come and (while
    the edition runs) final work not yet due. Admitted participants: an overdue invoice.
    """
    found: list[AtRisk] = []
    answers = evaluate_edition(session, edition, now=now)
    applications = {}
    if answers:
        applications = {
            a.id: a
            for a in session.exec(
                select(Application).where(col(Application.id).in_(list(answers)))
            ).all()
        }
    for application_id, answer in answers.items():
        if answer.eligible:
            continue
        reasons = [
            r
            for r in answer.reasons
            if not r.endswith(NOT_YET) and (dates.ended or r not in FINAL_WORK_PENDING)
        ]
        if reasons and application_id in applications:
            concerns = tuple(dict.fromkeys(_concern(r) for r in reasons))
            found.append(AtRisk(applications[application_id], reasons, concerns))
    overdue = {row.invoice.id: row for row in money.overdue}
    if overdue:
        unpaid: dict[int, tuple[Application, list[str]]] = {}
        for application, invoice_id in session.exec(
            select(Application, InvoiceLine.invoice_id)
            .join(InvoiceLine, col(InvoiceLine.application_id) == col(Application.id))
            .where(
                col(InvoiceLine.invoice_id).in_(list(overdue)),
                Application.status == S.admitted.value,
            )
            .order_by(col(InvoiceLine.invoice_id), col(InvoiceLine.position))
        ).all():
            row = overdue[invoice_id]
            words = (
                f"invoice {row.invoice.number} is {row.days_overdue} days overdue "
                f"({row.outstanding:,.2f} {row.invoice.currency} outstanding); "
                "the place is not guaranteed"
            )
            unpaid.setdefault(application.id or 0, (application, []))[1].append(words)
        found.extend(AtRisk(a, reasons, ("payment",)) for a, reasons in unpaid.values())
    return sorted(
        found,
        key=lambda r: (
            -len(r.reasons),
            r.application.family_name.casefold(),
            r.application.given_name.casefold(),
            r.application.id or 0,
        ),
    )


def edition_dashboard(
    session: Session, edition: Edition, *, now: datetime | None = None
) -> Dashboard:
    """Every figure of an edition's dashboard, as of now on the edition's calendar."""
    now = now or utcnow()
    today = edition_today(edition, now)
    funnel, by_country = _status_by_country(session, edition)
    all_countries = _every_country(by_country)
    countries, other_countries = _countries(all_countries)
    money = edition_money(session, edition, today=today)
    participants = funnel.count(S.confirmed.value) + funnel.count(S.completed.value)
    dates = KeyDates(
        today=today,
        start=edition.start_date,
        end=edition.end_date,
        cancellation_deadline=cancellation_deadline(edition),
        to_be_confirmed=edition.dates_to_be_confirmed,
    )
    return Dashboard(
        edition=edition,
        today=today,
        funnel=funnel,
        seats=Seats(
            capacity=edition.capacity,
            paid=participants,
            awaiting_payment=funnel.count(S.admitted.value),
        ),
        money=money,
        retained=_retained(session, edition),
        refunds=_refunds(session, edition, today),
        countries=countries,
        other_countries=other_countries,
        all_countries=all_countries,
        membership=_membership(session, edition),
        attendance=_attendance(session, edition, participants, now),
        at_risk=_at_risk(session, edition, money, dates, now),
        participants=participants,
        dates=dates,
    )
