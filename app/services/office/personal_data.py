"""Applicants' personal data: the access-request export, erasure on request, and retention.

What erasure keeps is what the law or a verifier still needs (docs/decisions.md, "Personal
data"): invoices and credit notes as issued (accounting retention), the certificate's
holder, course, dates, number, version and status (public verification), and the facts of
attendance and money without the person's contact details.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Engine, delete, func, or_, update
from sqlmodel import Session, SQLModel, col, select

from app.clock import edition_today, utcnow
from app.db import writer_engine
from app.models import (
    ApplicantGroup,
    Application,
    ApplicationStatus,
    AttendanceChange,
    AttendanceMark,
    AuditEntry,
    Cancellation,
    Certificate,
    CertificateVersion,
    CheckInAttempt,
    CourseSession,
    Edition,
    EligibilityOverride,
    FinalWork,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    OfferStatus,
    OutboxMessage,
    Payment,
    Refund,
    RefundStatus,
    SeatOffer,
)
from app.platform.audit import record_change
from app.platform.i18n import N_, Message, Money, Term
from app.platform.storage import Storage
from app.services.billing.invoices import outstanding
from app.services.billing.payments import participant_invoices
from app.services.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger("diplomat.personal_data")

ERASED_GIVEN_NAME = "Erased"
ERASED_FAMILY_NAME = "applicant"
ERASED_NAME = f"{ERASED_GIVEN_NAME} {ERASED_FAMILY_NAME}"
ERASED_TEXT = "[erased]"
ERASED_ACTOR = "applicant (erased)"
RETENTION_ACTOR = "retention period"
DEFAULT_RETENTION_DAYS = 365
REASON_MIN = 10
REASON_MAX = 2000

# Never admitted: nothing of theirs is needed once the retention period is over.
NEVER_ADMITTED = (
    ApplicationStatus.submitted.value,
    ApplicationStatus.waitlisted.value,
    ApplicationStatus.rejected.value,
    ApplicationStatus.withdrawn.value,
)
# Participants: invoices and certificates still name them, so only optional data goes.
PARTICIPANTS = (
    ApplicationStatus.admitted.value,
    ApplicationStatus.confirmed.value,
    ApplicationStatus.completed.value,
    ApplicationStatus.cancelled.value,
)
# Still in the running: erasing them withdraws the application.
IN_THE_RUNNING = (ApplicationStatus.submitted.value, ApplicationStatus.waitlisted.value)
# Registered for a week that has not happened yet: their seat must be cancelled first.
REGISTERED = (ApplicationStatus.admitted.value, ApplicationStatus.confirmed.value)

# Values in audit entries about a person that say what happened, not who they are.
AUDIT_KEYS_KEPT = frozenset(
    {
        "status",
        "version",
        "number",
        "revoked",
        "offer",
        "expires_at",
        "issued_at",
        "received_at",
        "channel",
        "paid",
        "refund",
        "retained",
        "credit_note",
        "total",
        "group",
        "reference",
        "amount",
        "invoice",
        "completed_on",
        "method",
        "replaced_earlier_letter",
        "size",
        "format",
        "files_deleted",
        "messages_erased",
    }
)
# Outbox states a message stops in when its recipient is erased before it went out.
UNSENT = ("pending", "failed")


class AlreadyErased(Conflict):
    """The application's personal data was erased before."""


class ErasureRefused(Conflict):
    """Erasing now would lose what a pending obligation needs; `reasons` says which."""

    def __init__(self, message: str, *, reasons: list[str]) -> None:
        super().__init__(message)
        self.reasons = reasons


# Export


def _plain(value: Any) -> Any:
    """A JSON value: instants and days in ISO 8601, amounts as strings with two places."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _row(row: SQLModel, *, leave_out: Iterable[str] = ()) -> dict[str, Any]:
    """A stored row as plain values, without the columns named (internal keys)."""
    omitted = set(leave_out)
    return {k: _plain(v) for k, v in row.model_dump().items() if k not in omitted}


def _same_person(session: Session, application: Application) -> list[Application]:
    """Every application made with this application's e-mail address, in any edition."""
    return list(
        session.exec(
            select(Application)
            .where(func.lower(Application.email) == application.email.lower())
            .order_by(col(Application.submitted_at), col(Application.id))
        ).all()
    )


def _file_entry(
    storage: Storage, kind: str, key: str | None, filename: str | None
) -> dict[str, Any]:
    stored = bool(key) and storage.exists(key or "")
    return {
        "kind": kind,
        "filename": filename or "",
        "stored": stored,
        "size_bytes": len(storage.get(key or "")) if stored else None,
    }


def _invoices(session: Session, application: Application, storage: Storage) -> list[dict[str, Any]]:
    """Their invoices and credit notes: a group's shows only this person's own lines."""
    found = []
    for invoice in participant_invoices(session, application.id or 0):
        group = invoice.group_id is not None
        lines = session.exec(
            select(InvoiceLine)
            .where(InvoiceLine.invoice_id == invoice.id)
            .order_by(col(InvoiceLine.position))
        ).all()
        refers_to = session.get(Invoice, invoice.refers_to_id) if invoice.refers_to_id else None
        entry: dict[str, Any] = {
            "number": invoice.number,
            "kind": invoice.kind,
            "purpose": invoice.purpose,
            "refers_to": refers_to.number if refers_to else None,
            "issue_date": _plain(invoice.issue_date),
            "due_date": _plain(invoice.due_date),
            "currency": invoice.currency,
            "status": invoice.status,
            "subject": invoice.subject,
            "billed_to_group": group,
            # The organisation is billed for a group: its contact may be someone else.
            "buyer": (
                {k: invoice.buyer.get(k, "") for k in ("name", "organisation", "country")}
                if group
                else _plain(dict(invoice.buyer))
            ),
            "lines": [
                _row(line, leave_out=("id", "invoice_id", "credits_line_id"))
                for line in lines
                if line.application_id == application.id
            ],
            "pdf_stored": bool(invoice.pdf_key) and storage.exists(invoice.pdf_key or ""),
        }
        if not group:
            entry["total"] = _plain(invoice.total)
            entry["payments"] = [
                _row(p, leave_out=("id", "invoice_id"))
                for p in session.exec(
                    select(Payment)
                    .where(Payment.invoice_id == invoice.id)
                    .order_by(col(Payment.recorded_at))
                ).all()
            ]
        found.append(entry)
    return found


def _attendance(session: Session, application_id: int) -> list[dict[str, Any]]:
    rows = session.exec(
        select(AttendanceMark, CourseSession)
        .join(CourseSession, col(CourseSession.id) == col(AttendanceMark.course_session_id))
        .where(AttendanceMark.application_id == application_id)
        .order_by(col(CourseSession.starts_at))
    ).all()
    return [
        {
            "session": course_session.title,
            "starts_at": _plain(course_session.starts_at),
            **_row(mark, leave_out=("id", "application_id", "course_session_id")),
        }
        for mark, course_session in rows
    ]


def _audit_about(session: Session, application_id: int, refund_ids: list[int]) -> list[AuditEntry]:
    """Audit entries about an application and its refunds, oldest first."""
    about = (col(AuditEntry.entity) == "application") & (
        col(AuditEntry.entity_id) == str(application_id)
    )
    if refund_ids:
        about = about | (
            (col(AuditEntry.entity) == "refund")
            & col(AuditEntry.entity_id).in_([str(i) for i in refund_ids])
        )
    return list(session.exec(select(AuditEntry).where(about).order_by(col(AuditEntry.at))).all())


def _one_application(
    session: Session, application: Application, storage: Storage
) -> dict[str, Any]:
    """Everything held about one application."""
    application_id = application.id or 0
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    group = session.get(ApplicantGroup, application.group_id) if application.group_id else None
    cancellations = session.exec(
        select(Cancellation)
        .where(Cancellation.application_id == application_id)
        .order_by(col(Cancellation.received_at))
    ).all()
    refunds = session.exec(
        select(Refund).where(Refund.application_id == application_id).order_by(col(Refund.id))
    ).all()
    work = session.exec(select(FinalWork).where(FinalWork.application_id == application_id)).first()
    override = session.exec(
        select(EligibilityOverride).where(EligibilityOverride.application_id == application_id)
    ).first()
    certificate = session.exec(
        select(Certificate).where(Certificate.application_id == application_id)
    ).first()
    versions = (
        session.exec(
            select(CertificateVersion)
            .where(CertificateVersion.certificate_id == certificate.id)
            .order_by(col(CertificateVersion.version))
        ).all()
        if certificate
        else []
    )
    messages = session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.application_id == application_id)
        .order_by(col(OutboxMessage.created_at), col(OutboxMessage.id))
    ).all()
    files = [
        _file_entry(storage, "cv", application.cv_key, application.cv_filename),
        _file_entry(
            storage,
            "visa_letter",
            application.visa_letter_key,
            "visa-letter.pdf" if application.visa_letter_key else None,
        ),
        _file_entry(
            storage,
            "fee_waiver",
            application.fee_waiver_key,
            f"fee-waiver-{application.fee_waiver_number}.pdf"
            if application.fee_waiver_key
            else None,
        ),
    ]
    if work is not None:
        files.append(_file_entry(storage, "final_work", work.file_key, work.filename))
    files.extend(
        _file_entry(storage, "cancellation_email", c.email_key, c.email_filename)
        for c in cancellations
        if c.email_key
    )
    if certificate is not None:
        files.append(
            _file_entry(
                storage, "certificate", certificate.pdf_key, f"certificate-{certificate.number}.pdf"
            )
        )
    return {
        "application": _row(
            application,
            leave_out=("cv_key", "visa_letter_key", "fee_waiver_key", "portal_token_version"),
        ),
        "edition": {
            "slug": edition.slug,
            "title": edition.title,
            "edition_label": edition.edition_label,
            "place": edition.place,
            "start_date": _plain(edition.start_date),
            "end_date": _plain(edition.end_date),
            "retention_days": edition.retention_days,
            "retained_until": _plain(retention_ends(edition)),
        },
        "group": (
            {
                "code": group.code,
                "organisation_id": group.organisation_id,
                "created_at": _plain(group.created_at),
                "is_group_contact": group.contact_email.lower() == application.email.lower(),
                **(
                    {"contact_name": group.contact_name, "contact_email": group.contact_email}
                    if group.contact_email.lower() == application.email.lower()
                    else {}
                ),
            }
            if group
            else None
        ),
        "invoices": _invoices(session, application, storage),
        "cancellations": [
            _row(c, leave_out=("email_key", "application_id", "accepted_application_id"))
            for c in cancellations
        ],
        "refunds": [_row(r, leave_out=("application_id",)) for r in refunds],
        "seat_offers": [
            _row(o, leave_out=("application_id",))
            for o in session.exec(
                select(SeatOffer)
                .where(SeatOffer.application_id == application_id)
                .order_by(col(SeatOffer.offered_at))
            ).all()
        ],
        "attendance": _attendance(session, application_id),
        "attendance_changes": [
            _row(c, leave_out=("application_id",))
            for c in session.exec(
                select(AttendanceChange)
                .where(AttendanceChange.application_id == application_id)
                .order_by(col(AttendanceChange.marked_at), col(AttendanceChange.id))
            ).all()
        ],
        "check_in_attempts": [
            _row(a, leave_out=("application_id",))
            for a in session.exec(
                select(CheckInAttempt)
                .where(CheckInAttempt.application_id == application_id)
                .order_by(col(CheckInAttempt.attempted_at))
            ).all()
        ],
        "final_work": _row(work, leave_out=("file_key", "application_id")) if work else None,
        "eligibility_override": (
            _row(override, leave_out=("application_id",)) if override else None
        ),
        "certificate": (
            {
                **_row(certificate, leave_out=("pdf_key", "application_id")),
                "versions": [_row(v, leave_out=("pdf_key", "certificate_id")) for v in versions],
            }
            if certificate
            else None
        ),
        "messages": [
            _row(m, leave_out=("application_id", "attachments", "body_html", "message_id"))
            | {"attachments": [a.get("filename", "") for a in m.attachments]}
            for m in messages
        ],
        "audit": [
            _row(e) for e in _audit_about(session, application_id, [r.id or 0 for r in refunds])
        ],
        "files": [f for f in files if f["filename"] or f["stored"]],
    }


def personal_data(
    session: Session, *, application_id: int, storage: Storage, actor: str, now: datetime
) -> dict[str, Any]:
    """Everything held about the person behind an application, across editions, as JSON values."""
    application = _get(session, application_id)
    applications = _same_person(session, application)
    ids = [a.id for a in applications]
    addressed = session.exec(
        select(OutboxMessage)
        .where(
            func.lower(OutboxMessage.to_address) == application.email.lower(),
            or_(
                col(OutboxMessage.application_id).is_(None),
                col(OutboxMessage.application_id).not_in(ids),
            ),
        )
        .order_by(col(OutboxMessage.created_at))
    ).all()
    return {
        "generated_at": _plain(now),
        "generated_by": actor,
        "subject": {
            "name": application.full_name,
            "email": application.email,
            "applications": [a.reference for a in applications],
        },
        "applications": [_one_application(session, a, storage) for a in applications],
        "other_messages": [
            _row(m, leave_out=("attachments", "body_html", "message_id")) for m in addressed
        ],
    }


def export_personal_data(
    session: Session,
    *,
    application_id: int,
    storage: Storage,
    actor: str,
    format: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The access-request export, recorded in the audit log (who took which copy, when)."""
    now = now or utcnow()
    data = personal_data(
        session, application_id=application_id, storage=storage, actor=actor, now=now
    )
    record_change(
        session,
        actor=actor,
        action="application.personal_data_exported",
        entity="application",
        entity_id=application_id,
        after={"format": format, "reference": data["subject"]["applications"]},
    )
    session.commit()
    return data


# The export as a document


@dataclass(frozen=True)
class DocumentSection:
    """A heading and its records, each a list of (label, value) pairs."""

    title: str
    records: list[list[tuple[str, str]]]


@dataclass(frozen=True)
class DocumentPart:
    """One application of the person, in sections."""

    title: str
    sections: list[DocumentSection]


SECTION_TITLES = {
    "application": N_("Application"),
    "edition": N_("Edition"),
    "group": N_("Group"),
    "invoices": N_("Invoices and credit notes"),
    "cancellations": N_("Cancellations"),
    "refunds": N_("Refunds"),
    "seat_offers": N_("Seats offered"),
    "attendance": N_("Attendance"),
    "attendance_changes": N_("Changes of attendance marks"),
    "check_in_attempts": N_("Check-in attempts"),
    "final_work": N_("Final work"),
    "eligibility_override": N_("Eligibility decided by the office"),
    "certificate": N_("Certificate"),
    "messages": N_("E-mails sent"),
    "audit": N_("Audit log entries"),
    "files": N_("Stored files"),
}


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _words(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return "; ".join(f"{_label(str(k))}: {_words(v)}" for k, v in value.items()) or "–"
    if isinstance(value, list):
        return "; ".join(_words(v) for v in value) or "–"
    return str(value)


def _records(value: Any) -> list[list[tuple[str, str]]]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [
        [(_label(k), _words(v)) for k, v in item.items()]
        if isinstance(item, dict)
        else [("", _words(item))]
        for item in items
    ]


def export_document(data: dict[str, Any]) -> dict[str, Any]:
    """The plain values of the export's PDF: every section of the JSON, in words."""
    parts = [
        DocumentPart(
            title=f"{entry['application']['reference']} · {entry['edition']['title']}"
            + (
                f" · {entry['edition']['edition_label']}"
                if entry["edition"]["edition_label"]
                else ""
            ),
            sections=[
                DocumentSection(title=SECTION_TITLES.get(key, _label(key)), records=_records(value))
                for key, value in entry.items()
            ],
        )
        for entry in data["applications"]
    ]
    return {
        "subject_name": data["subject"]["name"],
        "subject_email": data["subject"]["email"],
        "references": ", ".join(data["subject"]["applications"]),
        "generated_at": data["generated_at"],
        "generated_by": data["generated_by"],
        "parts": parts,
        "other_messages": _records(data["other_messages"]),
    }


# Erasure


@dataclass
class ErasureOutcome:
    """What one erasure did."""

    reference: str
    files_deleted: int = 0
    messages_erased: int = 0
    withdrawn: bool = False
    keys: list[str] = field(default_factory=list)


def _get(session: Session, application_id: int) -> Application:
    application = session.get(Application, application_id)
    if application is None:
        raise NotFound(f"There is no application {application_id}.")
    return application


def retention_ends(edition: Edition) -> date:
    """The first day the edition's applicants' data is no longer kept."""
    return edition.end_date + timedelta(days=edition.retention_days)


def edition_has_ended(edition: Edition, now: datetime) -> bool:
    """Whether the edition's last day is over on its own clock."""
    return edition_today(edition, now) > edition.end_date


def retention_is_over(edition: Edition, now: datetime) -> bool:
    """Whether the edition's retention period has run out."""
    return edition_today(edition, now) >= retention_ends(edition)


def erasure_blockers(session: Session, application: Application, *, now: datetime) -> list[str]:
    """Why erasing now would lose what an open obligation needs (empty when nothing does)."""
    reasons: list[str] = []
    application_id = application.id or 0
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    for refund in session.exec(
        select(Refund).where(
            Refund.application_id == application_id, Refund.status == RefundStatus.owed.value
        )
    ).all():
        needs = (
            N_("it is paid to the bank account they gave (IBAN and holder)")
            if refund.method == "bank_transfer"
            else N_("it goes back to the card that paid")
        )
        reasons.append(
            Message(
                N_(
                    "A refund of %(sum)s due by %(day)s is still owed to them and %(needs)s: "
                    "complete the refund first."
                ),
                {
                    "sum": Money(refund.amount, refund.currency),
                    "day": refund.due_by.isoformat(),
                    "needs": Term(needs),
                },
            )
        )
    for invoice in participant_invoices(session, application_id):
        if invoice.kind != InvoiceKind.invoice.value or invoice.group_id is not None:
            # A group's invoice is owed by its organisation, not by this person.
            continue
        due = outstanding(session, invoice)
        if due > 0:
            reasons.append(
                Message(
                    N_(
                        "Invoice %(number)s still has %(sum)s to pay: record the payment or "
                        "cancel the registration (credit note) first."
                    ),
                    {"number": invoice.number, "sum": Money(due, invoice.currency)},
                )
            )
        unresolved = session.exec(
            select(Payment).where(
                Payment.invoice_id == invoice.id,
                col(Payment.flagged).is_(True),
                col(Payment.resolved_at).is_(None),
            )
        ).all()
        for payment in unresolved:
            flag = payment.flag_reason or "see the invoice"
            reasons.append(
                Message(
                    N_(
                        "A payment of %(sum)s on invoice %(number)s is flagged and not resolved "
                        "(%(flag)s): money may be owed back to them."
                    ),
                    {
                        "sum": Money(payment.amount, invoice.currency),
                        "number": invoice.number,
                        "flag": flag,
                    },
                )
            )
    if application.status in REGISTERED and not edition_has_ended(edition, now):
        reasons.append(
            Message(
                N_(
                    "They are %(status)s for %(course)s (%(start)s to %(end)s), which has not "
                    "ended: record their cancellation first."
                ),
                {
                    "status": Term(application.status),
                    "course": edition.title,
                    "start": edition.start_date.isoformat(),
                    "end": edition.end_date.isoformat(),
                },
            )
        )
    open_offer = session.exec(
        select(SeatOffer).where(
            SeatOffer.application_id == application_id,
            SeatOffer.status == OfferStatus.open.value,
            col(SeatOffer.expires_at) > now,
        )
    ).first()
    if open_offer is not None:
        reasons.append(
            Message(
                N_(
                    "A seat offered to them is open until %(until)s: let them answer or let it "
                    "run out, so the seat passes on."
                ),
                {"until": open_offer.expires_at.isoformat()},
            )
        )
    return reasons


def _scrub_audit_values(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: (v if k in AUDIT_KEYS_KEPT else ERASED_TEXT) for k, v in values.items()}


def _claim(session: Session, application_id: int, column: Any, now: datetime) -> bool:
    """Mark the row taken, once: of several workers or clicks, exactly one gets it."""
    result = session.execute(
        update(Application)
        .where(col(Application.id) == application_id, column.is_(None))
        .values({column.key: now, "version": Application.version + 1, "updated_at": now})
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _erase_rows(
    session: Session, application: Application, *, actor: str, reason: str, now: datetime
) -> ErasureOutcome:
    """Replace the person's data by a tombstone in the session (the caller commits)."""
    application_id = application.id or 0
    email = application.email.lower()
    outcome = ErasureOutcome(reference=application.reference)
    keys = [application.cv_key, application.visa_letter_key, application.fee_waiver_key]

    application.given_name = ERASED_GIVEN_NAME
    application.family_name = ERASED_FAMILY_NAME
    application.email = f"erased-{application_id}@erased.invalid"
    application.job_title = ""
    application.department = ""
    application.years_in_international_affairs = None
    application.motivation = ""
    application.cv_key = None
    application.cv_filename = None
    application.decision_note = ""
    application.staff_notes = ""
    application.certificate_name = ""
    application.fee_waiver_key = None
    _strip_optional(application)
    application.logistics_updated_at = None
    # Every private link sent so far stops working.
    application.portal_token_version += 1
    if application.status in IN_THE_RUNNING:
        application.status = ApplicationStatus.withdrawn.value
        application.withdrawn_at = now
        outcome.withdrawn = True
    application.updated_at = now
    session.add(application)

    if application.group_id is not None:
        group = session.get(ApplicantGroup, application.group_id)
        if group is not None and group.contact_email.lower() == email:
            contact_name = group.contact_name
            group.contact_email = ""
            group.contact_name = ""
            group.coordinator_token_version += 1
            session.add(group)
            for invoice in session.exec(select(Invoice).where(Invoice.group_id == group.id)).all():
                buyer = {k: v for k, v in invoice.buyer.items() if k != "email"}
                if contact_name and buyer.get("attention") == contact_name:
                    buyer["attention"] = ""
                invoice.buyer = buyer
                session.add(invoice)
    for invoice in participant_invoices(session, application_id):
        if str(invoice.buyer.get("email", "")).lower() == email:
            # The invoice keeps the buyer's name, organisation, address and tax id as issued.
            invoice.buyer = {k: v for k, v in invoice.buyer.items() if k != "email"}
            session.add(invoice)

    for cancellation in session.exec(
        select(Cancellation).where(Cancellation.application_id == application_id)
    ).all():
        keys.append(cancellation.email_key)
        cancellation.full_name = ERASED_NAME
        cancellation.contact = ""
        cancellation.email_key = None
        cancellation.email_filename = None
        if cancellation.recorded_by.lower() == email:
            cancellation.recorded_by = ERASED_ACTOR
        session.add(cancellation)
    refund_ids = []
    for refund in session.exec(select(Refund).where(Refund.application_id == application_id)).all():
        refund_ids.append(refund.id or 0)
        refund.account_holder = ""
        refund.iban = ""
        refund.bic = ""
        session.add(refund)
    session.execute(
        delete(CheckInAttempt).where(col(CheckInAttempt.application_id) == application_id)
    )
    work = session.exec(select(FinalWork).where(FinalWork.application_id == application_id)).first()
    if work is not None:
        keys.append(work.file_key)
        work.file_key = None
        work.filename = None
        work.note = ""
        session.add(work)
    override = session.exec(
        select(EligibilityOverride).where(EligibilityOverride.application_id == application_id)
    ).first()
    if override is not None:
        override.reason = ERASED_TEXT
        session.add(override)
    for model in (AttendanceMark, AttendanceChange):
        session.execute(
            update(model)
            .where(
                col(model.application_id) == application_id,
                func.lower(model.marked_by) == email,
            )
            .values(marked_by=ERASED_ACTOR)
        )

    messages = session.exec(
        select(OutboxMessage).where(
            or_(
                col(OutboxMessage.application_id) == application_id,
                func.lower(OutboxMessage.to_address) == email,
            )
        )
    ).all()
    for message in messages:
        message.to_address = application.email
        message.subject = ERASED_TEXT
        message.body_text = ""
        message.body_html = ""
        message.attachments = []
        message.last_error = ""
        if message.status in UNSENT:
            # Nobody is left to send it to.
            message.status = "cancelled"
        session.add(message)
    outcome.messages_erased = len(messages)

    for entry in _audit_about(session, application_id, refund_ids):
        entry.before = _scrub_audit_values(entry.before)
        entry.after = _scrub_audit_values(entry.after)
        session.add(entry)
    session.execute(
        update(AuditEntry).where(func.lower(AuditEntry.actor) == email).values(actor=ERASED_ACTOR)
    )

    outcome.keys = [k for k in keys if k]
    outcome.files_deleted = len(outcome.keys)
    record_change(
        session,
        actor=actor,
        action="application.erased",
        entity="application",
        entity_id=application_id,
        after={
            "reason": reason,
            "status": application.status,
            "files_deleted": outcome.files_deleted,
            "messages_erased": outcome.messages_erased,
        },
    )
    return outcome


def _strip_optional(application: Application) -> None:
    """Optional data: the CV, visa details, dietary and accessibility needs, travel days."""
    application.cv_key = None
    application.cv_filename = None
    application.visa_letter_needed = False
    application.nationality = None
    application.passport_number = None
    application.date_of_birth = None
    application.visa_letter_key = None
    application.visa_letter_issued_at = None
    application.dietary = ""
    application.accessibility = ""
    application.arrival_date = None
    application.departure_date = None


def _delete_files(storage: Storage, keys: list[str]) -> None:
    # Files go only after the commit: a failed commit must not leave rows pointing at nothing.
    for key in keys:
        try:
            storage.delete(key)
        except Exception:  # a file left behind is logged; the row no longer names it
            log.exception("could not delete stored file %s", key)


def written_reason(reason: str) -> str:
    """The reason for an erasure, whitespace tidied; InvalidInput when missing or too long."""
    text = " ".join(reason.split())
    if len(text) < REASON_MIN:
        raise InvalidInput(
            N_("Write why the data is erased."),
            fields={
                "reason": Message(
                    N_(
                        "Write the reason for the erasure (at least %(count)s characters), e.g. "
                        "the date and channel of the person's request."
                    ),
                    {"count": REASON_MIN},
                )
            },
        )
    if len(text) > REASON_MAX:
        raise InvalidInput(
            N_("The reason is too long."),
            fields={
                "reason": Message(
                    N_("Keep the reason to %(count)s characters."), {"count": REASON_MAX}
                )
            },
        )
    return text


def erase_application(
    session: Session,
    *,
    application_id: int,
    actor: str,
    reason: str,
    storage: Storage,
    now: datetime | None = None,
) -> ErasureOutcome:
    """Erase the personal data of one application on request; what the law needs stays."""
    now = now or utcnow()
    text = written_reason(reason)
    application = _get(session, application_id)
    if application.erased_at is not None:
        raise AlreadyErased(
            f"The personal data of {application.reference} was already erased on "
            f"{application.erased_at.date().isoformat()}; nothing is left to erase."
        )
    reasons = erasure_blockers(session, application, now=now)
    if reasons:
        raise ErasureRefused(
            Message(
                N_("The personal data of %(reference)s cannot be erased yet."),
                {"reference": application.reference},
            ),
            reasons=reasons,
        )
    if not _claim(session, application_id, col(Application.erased_at), now):
        session.rollback()
        raise AlreadyErased(
            Message(
                N_(
                    "The personal data of %(reference)s was erased meanwhile; nothing is left to "
                    "erase."
                ),
                {"reference": application.reference},
            )
        )
    session.refresh(application)
    outcome = _erase_rows(session, application, actor=actor, reason=text, now=now)
    session.commit()
    _delete_files(storage, outcome.keys)
    return outcome


# Retention


@dataclass
class RetentionOutcome:
    """What one retention round did."""

    erased: list[str] = field(default_factory=list)
    stripped: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class RetentionCounts:
    """What the retention period of an edition means for its applicants now."""

    to_erase: int
    to_strip: int
    erased: int


def _expired_editions(session: Session, now: datetime) -> list[Edition]:
    return [e for e in session.exec(select(Edition)).all() if retention_is_over(e, now)]


def _never_admitted_ids(session: Session, edition_id: int) -> list[int]:
    return [
        i
        for i in session.exec(
            select(Application.id).where(
                Application.edition_id == edition_id,
                col(Application.status).in_(NEVER_ADMITTED),
                col(Application.erased_at).is_(None),
            )
        ).all()
        if i is not None
    ]


def _participant_ids(session: Session, edition_id: int) -> list[int]:
    return [
        i
        for i in session.exec(
            select(Application.id).where(
                Application.edition_id == edition_id,
                col(Application.status).in_(PARTICIPANTS),
                col(Application.erased_at).is_(None),
                col(Application.optional_data_erased_at).is_(None),
            )
        ).all()
        if i is not None
    ]


def retention_counts(session: Session, edition: Edition) -> RetentionCounts:
    """How many applicants the period will erase or strip, and how many are erased already."""
    erased = session.exec(
        select(func.count())
        .select_from(Application)
        .where(Application.edition_id == edition.id, col(Application.erased_at).is_not(None))
    ).one()
    return RetentionCounts(
        to_erase=len(_never_admitted_ids(session, edition.id or 0)),
        to_strip=len(_participant_ids(session, edition.id or 0)),
        erased=erased,
    )


def _retention_reason(edition: Edition) -> str:
    return (
        f"Retention period of {edition.retention_days} days after {edition.slug} ended on "
        f"{edition.end_date.isoformat()} is over."
    )


def _erase_expired_one(
    session: Session,
    storage: Storage,
    application_id: int,
    now: datetime,
    outcome: RetentionOutcome,
) -> None:
    # Nothing is written before the claim: a path that gives up simply leaves the session.
    application = session.get(Application, application_id)
    if application is None or application.erased_at is not None:
        return
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    reasons = erasure_blockers(session, application, now=now)
    if reasons:
        outcome.skipped[application.reference] = reasons
        log.warning("retention: %s not erased: %s", application.reference, " ".join(reasons))
        return
    if not _claim(session, application_id, col(Application.erased_at), now):
        return
    session.refresh(application)
    erased = _erase_rows(
        session, application, actor=RETENTION_ACTOR, reason=_retention_reason(edition), now=now
    )
    session.commit()
    _delete_files(storage, erased.keys)
    outcome.erased.append(erased.reference)


def _strip_expired_one(
    session: Session,
    storage: Storage,
    application_id: int,
    now: datetime,
    outcome: RetentionOutcome,
) -> None:
    if not _claim(session, application_id, col(Application.optional_data_erased_at), now):
        return
    application = _get(session, application_id)
    session.refresh(application)
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    keys = [k for k in (application.cv_key, application.visa_letter_key) if k]
    _strip_optional(application)
    application.updated_at = now
    session.add(application)
    record_change(
        session,
        actor=RETENTION_ACTOR,
        action="application.optional_data_erased",
        entity="application",
        entity_id=application_id,
        after={"reason": _retention_reason(edition), "files_deleted": len(keys)},
    )
    session.commit()
    _delete_files(storage, keys)
    outcome.stripped.append(application.reference)


def erase_expired(
    engine: Engine, *, storage: Storage, now: datetime | None = None
) -> RetentionOutcome:
    """One scheduled round: apply every edition's retention period that has run out.

    Applicants never admitted are erased entirely; participants lose their optional data.
    Each application is claimed by a conditional update in its own short writer
    transaction, so several workers running this at once erase each one once.
    """
    now = now or utcnow()
    outcome = RetentionOutcome()
    with Session(engine) as reader:
        work = [
            (_never_admitted_ids(reader, e.id or 0), _participant_ids(reader, e.id or 0))
            for e in _expired_editions(reader, now)
        ]
    for never_admitted, participants in work:
        for application_id in never_admitted:
            with Session(writer_engine(engine), expire_on_commit=False) as session:
                _erase_expired_one(session, storage, application_id, now, outcome)
        for application_id in participants:
            with Session(writer_engine(engine), expire_on_commit=False) as session:
                _strip_expired_one(session, storage, application_id, now, outcome)
    if outcome.erased or outcome.stripped:
        log.info(
            "retention: %d applicants erased, %d participants' optional data erased",
            len(outcome.erased),
            len(outcome.stripped),
        )
    return outcome
