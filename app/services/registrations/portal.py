"""The applicant's portal: every panel of their own page, read at once, as values to show."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlmodel import Session

from app.models import (
    Application,
    ApplicationStatus,
    AttendanceStatus,
    Cancellation,
    Certificate,
    CourseSession,
    Edition,
    FinalWork,
    Invoice,
    Module,
    Refund,
    RefundStatus,
    SeatOffer,
)
from app.services.billing.invoices import outstanding
from app.services.billing.payments import Balance, participant_balance, participant_invoices
from app.services.billing.refunds import refunds_of
from app.services.certificates.credentials import WalletOffer, wallet_offer
from app.services.certificates.issuing import (
    CertificateOptions,
    certificate_of,
    linkedin_url,
    verification_url,
)
from app.services.errors import NotFound
from app.services.registrations.cancellation_intake import (
    CANCELLABLE,
    cancellations_of,
    policy_deadline,
)
from app.services.registrations.waitlist import open_offer
from app.services.registry.countries import all_countries
from app.services.teaching import attendance, check_in, final_work, logistics
from app.services.teaching.attendance import ParticipantProgress
from app.services.teaching.programme import programme

WITHDRAWABLE = (ApplicationStatus.submitted.value, ApplicationStatus.waitlisted.value)
# The programme is shown from admission on; attendance and check-in only to participants.
PROGRAMME_STATUSES = (
    ApplicationStatus.admitted.value,
    ApplicationStatus.confirmed.value,
    ApplicationStatus.completed.value,
)
FINAL_WORK_STATUSES = PROGRAMME_STATUSES


class InvoiceLine(NamedTuple):
    """An invoice or credit note of the participant, with what is still open on it."""

    invoice: Invoice
    open_amount: Decimal


@dataclass(frozen=True)
class CertificatePanel:
    """The participant's certificate and where it is verified and shared, if one was issued."""

    certificate: Certificate | None = None
    verification_url: str = ""
    linkedin_url: str = ""
    wallet_offer: WalletOffer | None = None


@dataclass(frozen=True)
class LogisticsPanel:
    """The week-of-the-course form: shown from admission until the participant is confirmed."""

    show: bool
    travel_window: tuple[date, date] | None = None
    nationality_choices: tuple[tuple[str, str], ...] = ()
    passport_on_file: str = ""


@dataclass(frozen=True)
class AttendancePanel:
    """The programme, and for a participant their attendance and the check-in form."""

    show: bool
    participant: bool = False
    edition: Edition | None = None
    programme: tuple[tuple[Module, list[CourseSession]], ...] = ()
    progress: ParticipantProgress | None = None
    checked_in: tuple[CourseSession, ...] = ()
    open_sessions: tuple[CourseSession, ...] = ()
    next_session: CourseSession | None = None
    prefill: str = ""
    kind_labels: dict[str, str] | None = None
    status_labels: dict[str, str] | None = None
    state_labels: dict[str, str] | None = None
    rule: str = ""


@dataclass(frozen=True)
class FinalWorkPanel:
    """The participant's final work and whether they may upload one."""

    show: bool
    work: FinalWork | None = None
    edition: Edition | None = None
    can_upload: bool = False
    max_mb: int = final_work.FINAL_WORK_MAX_BYTES // (1024 * 1024)
    status_words: dict[str, str] | None = None


@dataclass(frozen=True)
class RefundLine:
    """A refund owed or paid to the participant; a bank refund may still need their details."""

    refund: Refund
    needs_details: bool


@dataclass(frozen=True)
class CancellationPanel:
    """Cancelling a place, requests refused, refunds, and a seat offered from the waiting list."""

    edition: Edition
    timezone: str
    can_cancel: bool
    deadline: datetime
    cancellation: Cancellation | None
    cancelled_on: datetime | None
    refused: tuple[Cancellation, ...]
    refunds: tuple[RefundLine, ...]
    offer: SeatOffer | None
    offer_expires: datetime | None


@dataclass(frozen=True)
class PortalView:
    """Everything the applicant's page shows; rendering it reads nothing more."""

    application: Application
    edition: Edition
    can_withdraw: bool
    invoices: tuple[InvoiceLine, ...]
    balance: Balance
    card_payments: bool
    certificate: CertificatePanel
    logistics: LogisticsPanel
    attendance: AttendancePanel
    final_work: FinalWorkPanel
    cancellation: CancellationPanel

    @property
    def remembers_check_in(self) -> bool:
        """Whether this browser should keep the link, so a session's QR code leads back here."""
        return self.attendance.participant


def portal_view(
    session: Session,
    *,
    application: Application,
    now: datetime,
    certificate_options: CertificateOptions,
    card_payments: bool,
    typed_check_in_code: str = "",
) -> PortalView:
    """The applicant's whole portal: status, invoices, payment, certificate, logistics,
    programme and attendance, final work, cancellation, refunds and a seat offer."""
    edition = session.get(Edition, application.edition_id)
    if edition is None:
        raise NotFound(f"There is no edition {application.edition_id}.")
    application_id = application.id or 0
    # Read once: the balance is worked out from the same invoices the table lists.
    invoices = participant_invoices(session, application_id)
    return PortalView(
        application=application,
        edition=edition,
        can_withdraw=application.status in WITHDRAWABLE,
        invoices=tuple(InvoiceLine(i, outstanding(session, i)) for i in invoices),
        balance=participant_balance(session, application_id, invoices),
        card_payments=card_payments,
        certificate=_certificate_panel(session, application_id, edition, certificate_options),
        logistics=logistics_panel(application, edition),
        attendance=_attendance_panel(
            session, application, edition, now=now, typed_code=typed_check_in_code
        ),
        final_work=_final_work_panel(session, application, edition),
        cancellation=_cancellation_panel(session, application, edition, now=now),
    )


def _certificate_panel(
    session: Session, application_id: int, edition: Edition, options: CertificateOptions
) -> CertificatePanel:
    certificate = certificate_of(session, application_id)
    if certificate is None:
        return CertificatePanel()
    return CertificatePanel(
        certificate=certificate,
        verification_url=verification_url(options, certificate.number),
        linkedin_url=linkedin_url(options, certificate, edition),
        wallet_offer=wallet_offer(options.base_url, certificate.number),
    )


def logistics_panel(application: Application, edition: Edition) -> LogisticsPanel:
    """The week-of-the-course form of the portal (also sent alone when htmx asks for it)."""
    if not logistics.can_give_logistics(application):
        return LogisticsPanel(show=False)
    return LogisticsPanel(
        show=True,
        travel_window=logistics.travel_window(edition),
        nationality_choices=tuple(all_countries()),
        passport_on_file=logistics.mask_passport(application.passport_number),
    )


def _attendance_panel(
    session: Session, application: Application, edition: Edition, *, now: datetime, typed_code: str
) -> AttendancePanel:
    if application.status not in PROGRAMME_STATUSES:
        # Nothing of the panel is shown before admission (nor after a withdrawal or a
        # cancellation): the programme and the sessions are not read.
        return AttendancePanel(show=False)
    participant = application.status in attendance.SHEET_STATUSES
    open_now = check_in.open_sessions(session, edition, now=now) if participant else []
    progress = attendance.participant_progress(session, application) if participant else None
    marks = progress.marks if progress else {}
    present = [
        s
        for s in open_now
        if (mark := marks.get(s.id or 0)) is not None
        and mark.status == AttendanceStatus.present.value
    ]
    upcoming = [s for s in attendance.edition_sessions(session, edition) if s.starts_at > now]
    return AttendancePanel(
        show=True,
        participant=participant,
        edition=edition,
        programme=tuple(programme(session, edition)),
        progress=progress,
        checked_in=tuple(present),
        open_sessions=tuple(s for s in open_now if s not in present),
        next_session=min(upcoming, key=lambda s: s.starts_at) if upcoming else None,
        prefill=check_in.normalise_code(typed_code)[:12],
        kind_labels=attendance.KIND_LABELS,
        status_labels=attendance.STATUS_LABELS,
        state_labels=attendance.STATE_LABELS,
        rule=attendance.attendance_rule(edition),
    )


def _final_work_panel(
    session: Session, application: Application, edition: Edition
) -> FinalWorkPanel:
    if application.status not in FINAL_WORK_STATUSES:
        return FinalWorkPanel(show=False)
    work = final_work.final_work_of(session, application.id or 0)
    return FinalWorkPanel(
        show=True,
        work=work,
        edition=edition,
        can_upload=application.status in final_work.UPLOAD_STATUSES
        and (work is None or work.status != "accepted"),
        status_words=final_work.STATUS_WORDS,
    )


def _cancellation_panel(
    session: Session, application: Application, edition: Edition, *, now: datetime
) -> CancellationPanel:
    zone = ZoneInfo(edition.timezone)
    application_id = application.id or 0
    requests = cancellations_of(session, application_id)
    accepted = next((c for c in requests if c.accepted), None)
    offer = open_offer(session, application_id, now=now)
    return CancellationPanel(
        edition=edition,
        timezone=edition.timezone,
        can_cancel=application.status in CANCELLABLE,
        deadline=policy_deadline(edition).astimezone(zone),
        cancellation=accepted,
        cancelled_on=accepted.received_at.astimezone(zone) if accepted else None,
        refused=tuple(c for c in requests if not c.accepted),
        refunds=tuple(
            RefundLine(
                refund=refund,
                needs_details=refund.status == RefundStatus.owed.value
                and refund.method == "bank_transfer"
                and refund.payee_kind == "person",
            )
            for refund in refunds_of(session, application_id)
        ),
        offer=offer,
        offer_expires=offer.expires_at.astimezone(zone) if offer else None,
    )
