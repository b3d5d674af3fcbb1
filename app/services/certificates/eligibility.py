"""Whether a participant may receive the certificate, and every condition still unmet, in words.

The rules (DOMAIN.md): confirmed, with nothing left to pay (or the fee waived); present at the
sessions of every module as the edition's attendance rule asks (an excused absence is not
attendance); and the final work accepted. An administrator may override with a written
reason; the unmet conditions are still reported beside the override.
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.models import (
    Application,
    ApplicationStatus,
    AttendanceMark,
    AttendanceStatus,
    AuditEntry,
    CourseSession,
    Edition,
    EligibilityOverride,
    FinalWork,
    FinalWorkStatus,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    Module,
    Payment,
    Refund,
    RefundStatus,
    Role,
    SessionKind,
    StaffUser,
)
from app.money import ZERO, round_cents
from app.platform.audit import record_change
from app.platform.i18n import N_, Listing, Message, Money, Term
from app.services.billing.invoices import counted_payments
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registrations.applications import get_application

OVERRIDE_REASON_MIN = 10
OVERRIDE_REASON_MAX = 2000
CONFIRMED = (ApplicationStatus.confirmed.value, ApplicationStatus.completed.value)
KIND_WORDS = {
    SessionKind.knowledge.value: "knowledge session",
    SessionKind.skills.value: "skills session",
    SessionKind.site_visit.value: "site visit",
}


@dataclass(frozen=True)
class Eligibility:
    """The answer for one participant."""

    eligible: bool
    # Unmet conditions in words, in a stable order (payment, attendance by module and
    # session, final work); kept when an override makes the participant eligible anyway.
    reasons: list[str]
    overridden: bool
    override_reason: str | None


# Money


def _outstanding_by_application(
    session: Session, application_ids: list[int]
) -> dict[int, list[tuple[Invoice, Decimal]]]:
    """Per participant, each issued invoice on which their share is not fully paid.

    The participant's share follows the portal's balance (`payments.participant_balance`):
    their uncredited lines, against their line's share of what the invoice holds (payments
    less refunds still owed out of it). Computed for many participants in four queries.
    """
    if not application_ids:
        return {}
    invoice_ids = (
        select(InvoiceLine.invoice_id)
        .where(col(InvoiceLine.application_id).in_(application_ids))
        .scalar_subquery()
    )
    rows = session.exec(
        select(InvoiceLine, Invoice)
        .join(Invoice, col(Invoice.id) == col(InvoiceLine.invoice_id))
        .where(
            col(Invoice.id).in_(invoice_ids),
            Invoice.kind == InvoiceKind.invoice.value,
            Invoice.status == "issued",
        )
        .order_by(col(Invoice.issued_at), col(Invoice.id), col(InvoiceLine.position))
    ).all()
    if not rows:
        return {}
    line_ids = [line.id for line, _ in rows if line.id is not None]
    credited = {
        row
        for row in session.exec(
            select(InvoiceLine.credits_line_id).where(
                col(InvoiceLine.credits_line_id).in_(line_ids)
            )
        ).all()
        if row is not None
    }
    ids = list({invoice.id for _, invoice in rows if invoice.id is not None})
    paid: dict[int, Decimal] = {
        invoice_id: amount or ZERO
        for invoice_id, amount in session.exec(
            select(Payment.invoice_id, func.sum(Payment.amount))
            .where(col(Payment.invoice_id).in_(ids), counted_payments())
            .group_by(col(Payment.invoice_id))
        ).all()
    }
    owed: dict[int, Decimal] = {
        invoice_id: amount or ZERO
        for invoice_id, amount in session.exec(
            select(Refund.invoice_id, func.sum(Refund.amount))
            .where(col(Refund.invoice_id).in_(ids), Refund.status == RefundStatus.owed.value)
            .group_by(col(Refund.invoice_id))
        ).all()
    }
    invoices: dict[int, Invoice] = {}
    active: dict[int, list[InvoiceLine]] = defaultdict(list)
    for line, invoice in rows:
        invoices[invoice.id or 0] = invoice
        if line.id not in credited:
            active[invoice.id or 0].append(line)
    wanted = set(application_ids)
    result: dict[int, list[tuple[Invoice, Decimal]]] = defaultdict(list)
    for invoice_id, invoice in invoices.items():
        lines = active[invoice_id]
        active_total = sum((line.gross for line in lines), ZERO)
        if active_total <= ZERO:
            continue
        held = paid.get(invoice_id, ZERO) - owed.get(invoice_id, ZERO)
        mine: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for line in lines:
            if line.application_id in wanted:
                mine[line.application_id] += line.gross
        for application_id, share in mine.items():
            paid_share = held if share == active_total else round_cents(held * share / active_total)
            due = share - paid_share
            if due > ZERO:
                result[application_id].append((invoice, due))
    return result


def _payment_reasons(
    application: Application, outstanding: list[tuple[Invoice, Decimal]]
) -> list[str]:
    reasons: list[str] = []
    if application.status not in CONFIRMED:
        reasons.append(
            Message(
                N_("registration is not confirmed (status: %(status)s)"),
                {"status": Term(application.status)},
            )
        )
    reasons.extend(
        Message(
            N_("invoice %(number)s has %(sum)s outstanding"),
            {"number": invoice.number, "sum": Money(round_cents(due), invoice.currency)},
        )
        for invoice, due in outstanding
    )
    return reasons


# Attendance


@dataclass(frozen=True)
class _Schedule:
    """The edition's modules and sessions in order, with a label for each session."""

    modules: list[tuple[Module, list[CourseSession]]]
    labels: dict[int, str]


def _schedule(session: Session, edition: Edition) -> _Schedule:
    rows = session.exec(
        select(CourseSession, Module)
        .join(Module, col(Module.id) == col(CourseSession.module_id))
        .where(Module.edition_id == edition.id)
        .order_by(col(Module.position), col(CourseSession.starts_at), col(CourseSession.id))
    ).all()
    zone = ZoneInfo(edition.timezone)
    modules: dict[int, tuple[Module, list[CourseSession]]] = {}
    for course_session, module in rows:
        modules.setdefault(module.id or 0, (module, []))[1].append(course_session)
    labels: dict[int, str] = {}
    for module, sessions in modules.values():
        days = defaultdict(list)
        for course_session in sessions:
            start = course_session.starts_at.astimezone(zone)
            days[(course_session.kind, start.date())].append(course_session)
        for course_session in sessions:
            start = course_session.starts_at.astimezone(zone)
            kind = KIND_WORDS.get(course_session.kind, course_session.kind.replace("_", " "))
            label = f"Lesson {module.position}, {kind} on {start.day} {start:%b}"
            # Two sessions of one kind on one day of a module are told apart by the hour.
            if len(days[(course_session.kind, start.date())]) > 1:
                label += f" at {start:%H:%M}"
            labels[course_session.id or 0] = label
    return _Schedule(modules=list(modules.values()), labels=labels)


def _marks_by_application(
    session: Session, edition: Edition, application_ids: list[int]
) -> dict[int, dict[int, str]]:
    if not application_ids:
        return {}
    rows = session.exec(
        select(
            AttendanceMark.application_id, AttendanceMark.course_session_id, AttendanceMark.status
        )
        .join(CourseSession, col(CourseSession.id) == col(AttendanceMark.course_session_id))
        .join(Module, col(Module.id) == col(CourseSession.module_id))
        .where(
            Module.edition_id == edition.id, col(AttendanceMark.application_id).in_(application_ids)
        )
    ).all()
    marks: dict[int, dict[int, str]] = defaultdict(dict)
    for application_id, session_id, status in rows:
        marks[application_id][session_id] = status
    return marks


def _missed(
    course_session: CourseSession, label: str, status: str | None, now: datetime
) -> Message:
    if status == AttendanceStatus.absent.value:
        return Message(N_("absent from %(session)s"), {"session": label})
    if status == AttendanceStatus.excused.value:
        return Message(N_("excused from %(session)s"), {"session": label})
    if course_session.ends_at > now:
        return Message(N_("%(session)s has not taken place yet"), {"session": label})
    return Message(N_("no attendance recorded for %(session)s"), {"session": label})


def required_sessions(count: int, min_percent: int) -> int:
    """Sessions of a module a participant must attend: the edition's share, rounded up."""
    if min_percent >= 100:
        return count
    return min(count, math.ceil(count * max(min_percent, 0) / 100))


def _attendance_reasons(
    schedule: _Schedule, edition: Edition, marks: dict[int, str], now: datetime
) -> list[str]:
    reasons: list[str] = []
    for module, sessions in schedule.modules:
        missed = [
            (s, marks.get(s.id or 0))
            for s in sessions
            if marks.get(s.id or 0) != AttendanceStatus.present.value
        ]
        if not missed:
            continue
        words = [_missed(s, schedule.labels[s.id or 0], status, now) for s, status in missed]
        if edition.attendance_min_percent >= 100:
            reasons.extend(words)
            continue
        needed = required_sessions(len(sessions), edition.attendance_min_percent)
        attended = len(sessions) - len(missed)
        if attended >= needed:
            continue
        reasons.append(
            Message(
                N_(
                    "Lesson %(lesson)s: present at %(attended)s of %(count)s sessions, at least "
                    "%(needed)s needed (%(missed)s)"
                ),
                {
                    "lesson": module.position,
                    "attended": attended,
                    "count": len(sessions),
                    "needed": needed,
                    "missed": Listing(tuple(words), joiner="; "),
                },
            )
        )
    return reasons


# Final work


def _final_work_reason(work: FinalWork | None) -> str | None:
    if work is None or work.file_key is None:
        return N_("no final work uploaded")
    if work.status == FinalWorkStatus.accepted.value:
        return None
    if work.status == FinalWorkStatus.rejected.value:
        note = " ".join(work.note.split())
        if not note:
            return N_("final work was rejected")
        return Message(N_("final work was rejected: %(note)s"), {"note": note})
    if work.status == FinalWorkStatus.presented.value:
        return N_("final work was presented but is not yet accepted")
    return N_("final work not yet assessed")


# Putting it together


def _evaluate_many(
    session: Session, edition: Edition, applications: list[Application], now: datetime
) -> dict[int, Eligibility]:
    ids = [a.id for a in applications if a.id is not None]
    schedule = _schedule(session, edition)
    marks = _marks_by_application(session, edition, ids)
    outstanding = _outstanding_by_application(session, ids)
    works = (
        {
            w.application_id: w
            for w in session.exec(
                select(FinalWork).where(col(FinalWork.application_id).in_(ids))
            ).all()
        }
        if ids
        else {}
    )
    overrides = (
        {
            o.application_id: o
            for o in session.exec(
                select(EligibilityOverride).where(col(EligibilityOverride.application_id).in_(ids))
            ).all()
        }
        if ids
        else {}
    )
    answers: dict[int, Eligibility] = {}
    for application in applications:
        application_id = application.id or 0
        reasons = _payment_reasons(application, outstanding.get(application_id, []))
        reasons += _attendance_reasons(schedule, edition, marks.get(application_id, {}), now)
        work_reason = _final_work_reason(works.get(application_id))
        if work_reason:
            reasons.append(work_reason)
        override = overrides.get(application_id)
        answers[application_id] = Eligibility(
            eligible=not reasons or override is not None,
            reasons=reasons,
            overridden=override is not None,
            override_reason=override.reason if override else None,
        )
    return answers


def evaluate(
    session: Session, application: Application, *, now: datetime | None = None
) -> Eligibility:
    """Whether this participant may receive the certificate, with every unmet condition."""
    edition = session.get(Edition, application.edition_id)
    if edition is None:
        raise NotFound(f"There is no edition {application.edition_id}.")
    return _evaluate_many(session, edition, [application], now or utcnow())[application.id or 0]


def evaluate_edition(
    session: Session, edition: Edition, *, now: datetime | None = None
) -> dict[int, Eligibility]:
    """Eligibility of every confirmed or completed participant of an edition, by application id.

    A fixed number of queries, however many participants the edition has.
    """
    applications = list(
        session.exec(
            select(Application)
            .where(Application.edition_id == edition.id, col(Application.status).in_(CONFIRMED))
            .order_by(col(Application.id))
        ).all()
    )
    return _evaluate_many(session, edition, applications, now or utcnow())


# Overrides by an administrator


def override_of(session: Session, application_id: int) -> EligibilityOverride | None:
    """The administrator's override for this participant, if any."""
    return session.exec(
        select(EligibilityOverride).where(EligibilityOverride.application_id == application_id)
    ).first()


def override_history(session: Session, application_id: int) -> list[AuditEntry]:
    """Every override granted or removed for this participant, oldest first, with reasons."""
    return list(
        session.exec(
            select(AuditEntry)
            .where(
                AuditEntry.entity == "application",
                AuditEntry.entity_id == str(application_id),
                col(AuditEntry.action).in_(
                    ("eligibility.override_granted", "eligibility.override_removed")
                ),
            )
            .order_by(col(AuditEntry.at), col(AuditEntry.id))
        ).all()
    )


def _written_reason(reason: str, field: str = "reason") -> str:
    reason = " ".join(reason.split())
    if len(reason) < OVERRIDE_REASON_MIN:
        raise InvalidInput(
            N_("Write the reason for the record."),
            fields={
                field: Message(
                    N_("Write at least %(count)s characters: it is kept."),
                    {"count": OVERRIDE_REASON_MIN},
                )
            },
        )
    if len(reason) > OVERRIDE_REASON_MAX:
        raise InvalidInput(
            N_("The reason is too long."),
            fields={
                field: Message(N_("At most %(count)s characters."), {"count": OVERRIDE_REASON_MAX})
            },
        )
    return reason


def _require_admin(actor: StaffUser) -> None:
    if actor.role != Role.admin.value:
        raise Conflict(N_("Only an administrator may override eligibility."))


def grant_override(
    session: Session,
    *,
    application_id: int,
    reason: str,
    actor: StaffUser,
    now: datetime | None = None,
) -> EligibilityOverride:
    """Make a participant eligible despite unmet conditions; the written reason is kept."""
    _require_admin(actor)
    reason = _written_reason(reason)
    application = get_application(session, application_id)
    # Money is settled by recording the payment, not by an override: only confirmed
    # participants can be made eligible, so the edition's list always shows them.
    if application.status not in CONFIRMED:
        raise Conflict(
            Message(
                N_(
                    "Only confirmed participants can be made eligible; this application is "
                    "%(status)s."
                ),
                {"status": Term(application.status)},
            )
        )
    unmet = evaluate(session, application, now=now).reasons
    override = override_of(session, application_id)
    before = {"reason": override.reason, "granted_by": override.granted_by} if override else None
    if override is None:
        override = EligibilityOverride(application_id=application_id, reason=reason, granted_by="")
    override.reason = reason
    override.granted_by = actor.email
    override.granted_at = now or utcnow()
    session.add(override)
    record_change(
        session,
        actor=actor.email,
        action="eligibility.override_granted",
        entity="application",
        entity_id=application_id,
        before=before,
        after={"reason": reason, "unmet": unmet},
    )
    session.commit()
    return override


def remove_override(
    session: Session, *, application_id: int, reason: str, actor: StaffUser
) -> None:
    """Withdraw an override; why it was withdrawn is kept beside why it was granted."""
    _require_admin(actor)
    reason = _written_reason(reason)
    override = override_of(session, application_id)
    if override is None:
        raise NotFound(N_("This participant has no override to remove."))
    record_change(
        session,
        actor=actor.email,
        action="eligibility.override_removed",
        entity="application",
        entity_id=application_id,
        before={
            "reason": override.reason,
            "granted_by": override.granted_by,
            "granted_at": override.granted_at.isoformat(),
        },
        after={"reason": reason},
    )
    session.delete(override)
    session.commit()
