"""Cancelling a registration: the written request, the policy's answer and the books.

The decision itself is pure (`app.services.registrations.cancellation_policy`); this module
gathers its facts from the database and carries out an accepted cancellation in one
transaction: the credit note, the cancellation-fee invoice for what is retained, the refund
owed, the freed seat and the e-mails.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.parser import BytesHeaderParser
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.clock import edition_today, local_day, utcnow
from app.models import (
    Application,
    ApplicationStatus,
    Cancellation,
    CancellationChannel,
    Edition,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    PayeeKind,
    Payment,
    PaymentMethod,
    Refund,
    RefundMethod,
)
from app.money import CENT, HUNDRED, ZERO, percent_of, round_cents
from app.platform.audit import record_change
from app.platform.i18n import N_, Amount, Day, Listing, Message, Term, localized
from app.platform.mail import Attachment, queue_email
from app.platform.storage import Storage, new_key
from app.services.billing.einvoices import ubl_attachments
from app.services.billing.invoices import Seller, invoice_lines, issue_document
from app.services.billing.payments import refund_payee
from app.services.billing.refunds import (
    credited_line_ids,
    paid_share,
    refund_method,
    registration_invoice,
)
from app.services.errors import Conflict, DomainError, InvalidInput
from app.services.registrations.applications import change_status, get_application, portal_url
from app.services.registrations.cancellation_policy import (
    CancellationDecision,
    PolicyFacts,
    deadline,
    decide_cancellation,
)
from app.services.registrations.waitlist import offer_free_seats

CANCELLABLE = (ApplicationStatus.admitted.value, ApplicationStatus.confirmed.value)
# The brochure's four items, in the words a refusal uses.
REQUIRED_ITEMS = {
    "course_name": N_("the name of the course"),
    "full_name": N_("the student's name and surname"),
    "registration_date": N_("the date of registration"),
    "contact": N_("contact information"),
}
EMAIL_MAX_BYTES = 2 * 1024 * 1024
# A clock a little ahead on the office's computer is not "in the future".
CLOCK_SKEW = timedelta(minutes=5)
FEE_PURPOSE = "cancellation_fee"
TRANSFER_SOURCE = "transfer"


class AlreadyCancelled(Conflict):
    """The place was cancelled before: nothing more happens."""


class NotCancellable(Conflict):
    """Only an admitted or confirmed participant has a place to cancel."""


@dataclass(frozen=True)
class CancellationRequest:
    """A written cancellation as received: when, how, and the four items it carried."""

    received_at: datetime
    channel: str
    course_name: str | None
    full_name: str | None
    registration_date: date | None
    contact: str | None
    # The e-mail as the office saved it from its mail (.eml), kept with the record.
    email_file: bytes | None = None
    email_filename: str | None = None


@dataclass(frozen=True)
class CancellationOffice:
    """What the office lends to carrying out a cancellation: where files are kept, the seller
    on credit notes and fee invoices, the portal's links, the office's own address for its
    note, and how many days a freed seat is offered to the waiting list."""

    storage: Storage
    seller: Seller
    secret_key: str
    base_url: str
    office_email: str
    offer_days: int


@dataclass(frozen=True)
class Assessment:
    """What the policy says about cancelling a registration at a given instant, with the money."""

    accepted: bool
    reason: Message
    deadline: datetime
    paid: Decimal
    refund: Decimal
    retained: Decimal
    due_by: date | None
    method: str | None
    invoice: Invoice | None


@dataclass(frozen=True)
class CancellationOutcome:
    """A recorded cancellation and what it caused."""

    cancellation: Cancellation
    refund: Refund | None
    credit_note: Invoice | None
    fee_invoice: Invoice | None


def policy_for(edition: Edition) -> PolicyFacts:
    """The edition's cancellation policy values."""
    return PolicyFacts(
        start_date=edition.start_date,
        timezone=edition.timezone,
        cutoff_days=edition.cancellation_cutoff_days,
        refund_percent=edition.refund_percent,
        refund_within_days=edition.refund_within_days,
    )


def policy_deadline(edition: Edition) -> datetime:
    """The instant from which the edition accepts no cancellation."""
    return deadline(policy_for(edition))


def as_received(edition: Edition, value: datetime) -> datetime:
    """A time of receipt; one without a zone is read on the edition's wall clock."""
    if value.tzinfo is None:
        return value.replace(tzinfo=ZoneInfo(edition.timezone))
    return value


# The policy's answer


def assess(session: Session, *, application: Application, received_at: datetime) -> Assessment:
    """Accepted or refused, and the money, for a cancellation received at `received_at`.

    An overpayment beyond the participant's price is not part of what the policy retains a
    quarter of: it was never owed, so it is refunded in full with the 75 %.
    """
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    found = registration_invoice(session, application.id or 0)
    invoice, price, share = None, ZERO, ZERO
    if found is not None:
        invoice, lines = found
        price = sum((line.gross for line in lines), ZERO)
        share = max(paid_share(session, invoice, application.id or 0), ZERO)
    counted = min(share, price)
    excess = share - counted
    decision: CancellationDecision = decide_cancellation(
        policy_for(edition), received_at=received_at, payments_received=counted
    )
    if not decision.accepted:
        return Assessment(
            accepted=False,
            reason=decision.reason,
            deadline=decision.deadline,
            paid=share,
            refund=ZERO,
            retained=share,
            due_by=None,
            method=None,
            invoice=invoice,
        )
    refund = decision.refund + excess
    reason = decision.reason
    due_by = decision.refund_due_by
    if excess > ZERO:
        due_by = due_by or (
            local_day(received_at, edition.timezone) + timedelta(days=edition.refund_within_days)
        )
        reason = Message(
            N_(
                "%(reason)s The %(excess)s paid beyond the price is refunded in full as well "
                "(%(refund)s in all)."
            ),
            {"reason": reason, "excess": Amount(excess), "refund": Amount(refund)},
        )
    return Assessment(
        accepted=True,
        reason=reason,
        deadline=decision.deadline,
        paid=share,
        refund=refund,
        retained=decision.retained,
        due_by=due_by,
        method=refund_method(session, invoice.id or 0, refund) if invoice and refund else None,
        invoice=invoice,
    )


def refusal_for_status(application: Application) -> str | None:
    """Why this application has no place to cancel, or None when it has one."""
    status = application.status
    if status in CANCELLABLE:
        return None
    if status == ApplicationStatus.cancelled.value:
        return N_("This place is already cancelled; nothing more happens.")
    if status == ApplicationStatus.submitted.value:
        return N_(
            "This application has no place to cancel yet: it is under review. "
            "You can withdraw it instead."
        )
    if status == ApplicationStatus.waitlisted.value:
        return N_(
            "This application has no place to cancel yet: it is on the waiting list. "
            "You can withdraw it instead."
        )
    if status == ApplicationStatus.completed.value:
        return N_("The course is completed; a completed registration cannot be cancelled.")
    return Message(
        N_("This application is %(status)s; there is no place to cancel."), {"status": Term(status)}
    )


def missing_items(request: CancellationRequest) -> dict[str, str]:
    """Each of the four required items the request lacks, with a message naming it."""
    values: dict[str, object] = {
        "course_name": request.course_name,
        "full_name": request.full_name,
        "registration_date": request.registration_date,
        "contact": request.contact,
    }
    missing: dict[str, str] = {}
    for name, words in REQUIRED_ITEMS.items():
        value = values[name]
        if value is None or (isinstance(value, str) and not value.strip()):
            missing[name] = Message(
                N_("The cancellation does not give %(item)s."), {"item": Term(words)}
            )
    return missing


def _check_email_file(data: bytes, filename: str) -> None:
    if len(data) > EMAIL_MAX_BYTES:
        raise InvalidInput(
            N_("The e-mail file is too large."),
            fields={"email_file": N_("The e-mail must be an .eml file of at most 2 MB.")},
        )
    headers = BytesHeaderParser().parsebytes(data[:65536])
    if not filename.lower().endswith(".eml") or not (headers.get("From") or headers.get("Date")):
        raise InvalidInput(
            N_("The file is not an e-mail."),
            fields={
                "email_file": N_("Attach the e-mail as an .eml file (save it from your mail).")
            },
        )


def _check_request(
    request: CancellationRequest, *, now: datetime, applied_at: datetime | None = None
) -> None:
    faults = missing_items(request)
    if request.channel not in {c.value for c in CancellationChannel}:
        faults["channel"] = N_(
            "Cancellations are accepted only in writing: by e-mail in reply to the place "
            "reservation, or from the participant's page."
        )
    if request.received_at.tzinfo is None:
        faults["received_at"] = N_("Give the time the cancellation was received, with its zone.")
    elif request.received_at > now + CLOCK_SKEW:
        faults["received_at"] = N_("The time received cannot be in the future.")
    elif applied_at is not None and request.received_at < applied_at - CLOCK_SKEW:
        # Nobody cancels a place before applying for it: a typing mistake, never a refund.
        faults["received_at"] = N_("The time received cannot be before the application.")
    if faults:
        missing = [REQUIRED_ITEMS[name] for name in REQUIRED_ITEMS if name in faults]
        message = (
            Message(
                N_("The cancellation cannot be recorded: it does not give %(items)s."),
                {"items": Listing(tuple(Term(item) for item in missing))},
            )
            if missing
            else N_("The cancellation cannot be recorded.")
        )
        raise InvalidInput(message, fields=faults)


def portal_request(
    application: Application, edition: Edition, *, now: datetime
) -> CancellationRequest:
    """A portal cancellation: written by the participant, its four items taken from the record."""
    return CancellationRequest(
        received_at=now,
        channel=CancellationChannel.portal.value,
        course_name=_course_words(edition),
        full_name=application.full_name,
        registration_date=local_day(application.submitted_at, edition.timezone),
        contact=application.email,
    )


def _course_words(edition: Edition) -> str:
    label = f", {edition.edition_label}" if edition.edition_label else ""
    return f"{edition.title}{label}"


# Carrying out an accepted cancellation


def _fee_nets(retained: Decimal, tax_rate: Decimal) -> list[Decimal]:
    """Net amounts whose gross (net plus tax, each rounded) adds up to exactly `retained`."""
    if tax_rate == ZERO:
        return [retained]
    guess = round_cents(retained * HUNDRED / (HUNDRED + tax_rate))
    below: Decimal | None = None
    for step in (0, -1, 1, -2, 2, -3, 3):
        net = guess + step * CENT
        gross = net + percent_of(net, tax_rate)
        if gross == retained:
            return [net]
        if gross == retained - CENT:
            below = net
    # Rounding the tax can step over a cent: a one-cent line with no tax makes it exact.
    if below is not None and percent_of(CENT, tax_rate) == ZERO:
        return [below, CENT]
    raise DomainError(
        Message(
            N_(
                "No fee invoice of exactly %(amount)s exists at a tax rate of %(rate)s %%; issue "
                "it by hand."
            ),
            {"amount": Amount(retained), "rate": str(tax_rate)},
        )
    )


def _as_issued(edition: Edition, invoice: Invoice) -> Edition:
    """The edition with the tax of the invoice being credited, should the rate have changed."""
    if edition.tax_rate == invoice.tax_rate and edition.tax_note == invoice.tax_note:
        return edition
    # A transient copy, never added to the session: the stored edition keeps its own rate.
    values = edition.model_dump()
    values.update(tax_rate=invoice.tax_rate, tax_note=invoice.tax_note)
    return Edition(**values)


def _lock_invoice(session: Session, invoice_id: int) -> None:
    """Serialise cancellations on one (group) invoice (SQLite already holds the write lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa_select(col(Invoice.id)).where(col(Invoice.id) == invoice_id).with_for_update()
        )


def _credit_the_invoice(
    session: Session,
    *,
    edition: Edition,
    invoice: Invoice,
    lines: list[InvoiceLine],
    application: Application,
    seller: Seller,
    actor: str,
    now: datetime,
    storage: Storage,
) -> Invoice:
    """A credit note for the participant's lines; the invoice is credited once all its lines
    are."""
    credit_note = issue_document(
        session,
        edition=_as_issued(edition, invoice),
        buyer=dict(invoice.buyer),
        lines=[
            (
                application,
                f"Cancels line {line.position} of {invoice.number}: {line.description}",
                -line.net,
                [dict(d) for d in line.details],
            )
            for line in lines
        ],
        seller=seller,
        actor=actor,
        now=now,
        storage=storage,
        group_id=invoice.group_id,
        kind=InvoiceKind.credit_note,
        refers_to=invoice,
        credits=[line.id for line in lines],
    )
    if credit_note.total != -sum((line.gross for line in lines), ZERO):
        raise DomainError(
            Message(
                N_("The credit note for %(number)s would not match it; nothing done."),
                {"number": invoice.number},
            )
        )
    all_lines = invoice_lines(session, invoice)
    if credited_line_ids(session, [ln.id or 0 for ln in all_lines]) >= {
        ln.id for ln in all_lines if ln.id is not None
    }:
        invoice.status = "credited"
        session.add(invoice)
    return credit_note


def _invoice_the_retained_fee(
    session: Session,
    *,
    edition: Edition,
    invoice: Invoice,
    application: Application,
    assessment: Assessment,
    seller: Seller,
    actor: str,
    now: datetime,
    storage: Storage,
) -> Invoice:
    """What the policy retains, invoiced as a cancellation fee and paid by moving that money
    over from the cancelled invoice."""
    retained = assessment.retained
    percent = format((HUNDRED - edition.refund_percent).normalize(), "f")
    details = [
        {
            "code": "cancellation_fee",
            "label": "Cancellation fee",
            "amount": f"{retained:.2f}",
            "reason": (
                f"{percent} % of the {assessment.paid:.2f} paid on {invoice.number} is retained "
                "under the written cancellation policy."
            ),
        }
    ]
    nets = _fee_nets(retained, edition.tax_rate)
    lines: list[tuple[Application | None, str, Decimal, list[dict[str, Any]]]] = [
        (application, f"Cancellation fee: {application.full_name}", nets[0], details)
    ]
    if len(nets) > 1:
        lines.append((application, "Rounding of the tax included in the fee", nets[1], []))
    fee = issue_document(
        session,
        edition=edition,
        buyer=dict(invoice.buyer),
        lines=lines,
        seller=seller,
        actor=actor,
        now=now,
        storage=storage,
        purpose=FEE_PURPOSE,
        refers_to=invoice,
    )
    if fee.total != retained:
        raise DomainError(
            Message(
                N_("The cancellation fee would not be %(amount)s; nothing done."),
                {"amount": Amount(retained)},
            )
        )
    # The retained money moves from the cancelled invoice to the fee invoice it now pays.
    day = edition_today(edition, now)
    for target, amount, words in (
        (invoice, -retained, f"Retained as cancellation fee {fee.number}"),
        (fee, retained, f"Retained from {invoice.number}"),
    ):
        session.add(
            Payment(
                invoice_id=target.id or 0,
                amount=amount,
                received_on=day,
                method=PaymentMethod.other.value,
                reference=words,
                source=TRANSFER_SOURCE,
                recorded_by=actor,
                recorded_at=now,
            )
        )
    return fee


def _store_email(storage: Storage, data: bytes | None) -> str | None:
    if data is None:
        return None
    key = new_key("cancellation-emails", ".eml")
    storage.put(key, data)
    return key


def _mail_context(
    application: Application,
    edition: Edition,
    *,
    cancellation: Cancellation,
    refund: Refund | None,
    credit_note: Invoice | None,
    fee_invoice: Invoice | None,
    url: str,
) -> dict[str, Any]:
    return {
        "application": application,
        "edition": edition,
        "cancellation": cancellation,
        "received_local": cancellation.received_at.astimezone(ZoneInfo(edition.timezone)),
        "deadline_local": cancellation.deadline.astimezone(ZoneInfo(edition.timezone)),
        "refund": refund,
        "credit_note": credit_note,
        "fee_invoice": fee_invoice,
        "portal_url": url,
    }


def cancel_registration(
    session: Session,
    *,
    application_id: int,
    request: CancellationRequest,
    actor: str,
    office: CancellationOffice,
    now: datetime | None = None,
) -> CancellationOutcome:
    """Record a written cancellation and carry out the policy's answer in one transaction.

    Refused (from the deadline on): recorded, the participant stays registered, and both the
    participant and the office are told why. Accepted: the seat is freed, the participant's
    invoice lines are credited, what is retained is invoiced as a cancellation fee and paid by
    moving that money over, the refund is owed by its due date, and the seat is offered to the
    waiting list. A second cancellation of the same place changes nothing.
    """
    now = now or utcnow()
    application = get_application(session, application_id)
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    check_cancellation(session, application=application, edition=edition, request=request, now=now)
    received_at = request.received_at.astimezone(UTC)
    url = portal_url(application, edition, secret_key=office.secret_key, base_url=office.base_url)
    first_look = assess(session, application=application, received_at=received_at)
    if not first_look.accepted:
        return _record_refusal(
            session,
            application=application,
            edition=edition,
            request=request,
            assessment=first_look,
            actor=actor,
            storage=office.storage,
            office_email=office.office_email,
            url=url,
        )
    before = application.status
    _release_the_place(session, application, edition)
    billed = _lock_registration_invoice(session, application)
    # The money as it stands once this participant is locked in.
    assessment = assess(session, application=application, received_at=received_at)
    credit_note = fee_invoice = None
    if assessment.invoice is not None and billed is not None:
        credit_note = _credit_the_invoice(
            session,
            edition=edition,
            invoice=assessment.invoice,
            lines=billed[1],
            application=application,
            seller=office.seller,
            actor=actor,
            now=now,
            storage=office.storage,
        )
        if assessment.retained > ZERO:
            fee_invoice = _invoice_the_retained_fee(
                session,
                edition=edition,
                invoice=assessment.invoice,
                application=application,
                assessment=assessment,
                seller=office.seller,
                actor=actor,
                now=now,
                storage=office.storage,
            )
    cancellation = _record_acceptance(
        session,
        application=application,
        request=request,
        assessment=assessment,
        credit_note=credit_note,
        fee_invoice=fee_invoice,
        email_key=_store_email(office.storage, request.email_file),
        status_before=before,
        actor=actor,
        now=now,
    )
    refund = _owe_the_refund(
        session, application=application, cancellation=cancellation, assessment=assessment, now=now
    )
    outcome = CancellationOutcome(cancellation, refund, credit_note, fee_invoice)
    _tell_of_the_acceptance(
        session,
        application=application,
        edition=edition,
        outcome=outcome,
        office_email=office.office_email,
        url=url,
    )
    # The freed seat goes to the waiting list in the same transaction.
    offer_free_seats(
        session,
        edition=edition,
        now=now,
        offer_days=office.offer_days,
        secret_key=office.secret_key,
        base_url=office.base_url,
    )
    session.commit()
    return outcome


# The steps of a cancellation


def check_cancellation(
    session: Session,
    *,
    application: Application,
    edition: Edition,
    request: CancellationRequest,
    now: datetime,
) -> None:
    """Refuse to record a request that lacks an item, a saved e-mail that is not one, and a
    place that is already cancelled or was never held."""
    _check_request(request, now=now, applied_at=application.submitted_at)
    if request.email_file is not None:
        _check_email_file(request.email_file, request.email_filename or "")
    if application.status == ApplicationStatus.cancelled.value:
        raise _already_cancelled(session, application, edition)
    refusal = refusal_for_status(application)
    if refusal is not None:
        raise NotCancellable(refusal)


def _release_the_place(
    session: Session,
    application: Application,
    edition: Edition,
) -> None:
    """The application becomes cancelled, which frees its seat."""
    try:
        # The version-checked change is the lock: of two cancellations at once, one proceeds.
        change_status(
            session,
            application,
            allowed_from=CANCELLABLE,
            to=ApplicationStatus.cancelled.value,
            expected_version=None,
            values={},
        )
    except Conflict:
        if application.status == ApplicationStatus.cancelled.value:
            raise _already_cancelled(session, application, edition) from None
        raise


def _lock_registration_invoice(
    session: Session, application: Application
) -> tuple[Invoice, list[InvoiceLine]] | None:
    """The invoice that billed this registration, with its lines, locked against the other
    members of a group cancelling at the same moment."""
    found = registration_invoice(session, application.id or 0)
    if found is not None:
        _lock_invoice(session, found[0].id or 0)
    return found


def _record_acceptance(
    session: Session,
    *,
    application: Application,
    request: CancellationRequest,
    assessment: Assessment,
    credit_note: Invoice | None,
    fee_invoice: Invoice | None,
    email_key: str | None,
    status_before: str,
    actor: str,
    now: datetime,
) -> Cancellation:
    """The accepted cancellation as a row, with the money and the documents it caused, and
    its entry in the audit log."""
    invoice = assessment.invoice
    cancellation = Cancellation(
        application_id=application.id or 0,
        accepted_application_id=application.id,
        received_at=request.received_at.astimezone(UTC),
        channel=request.channel,
        course_name=(request.course_name or "").strip()[:300],
        full_name=(request.full_name or "").strip()[:200],
        registration_date=request.registration_date or date.min,
        contact=(request.contact or "").strip()[:300],
        accepted=True,
        reason=assessment.reason,
        reason_message=assessment.reason.as_json(),
        deadline=assessment.deadline,
        paid=assessment.paid,
        refund_amount=assessment.refund,
        retained=assessment.retained,
        refund_due_by=assessment.due_by if assessment.refund > ZERO else None,
        original_invoice_id=invoice.id if invoice else None,
        credit_note_id=credit_note.id if credit_note else None,
        fee_invoice_id=fee_invoice.id if fee_invoice else None,
        email_key=email_key,
        email_filename=(request.email_filename or "")[:200] or None if email_key else None,
        recorded_by=actor,
        created_at=now,
    )
    session.add(cancellation)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="application.cancelled",
        entity="application",
        entity_id=application.id or 0,
        before={"status": status_before},
        after={
            "status": application.status,
            "channel": request.channel,
            "received_at": cancellation.received_at.isoformat(),
            "paid": f"{assessment.paid:.2f}",
            "refund": f"{assessment.refund:.2f}",
            "retained": f"{assessment.retained:.2f}",
            "credit_note": credit_note.number if credit_note else None,
            "fee_invoice": fee_invoice.number if fee_invoice else None,
        },
    )
    return cancellation


def _owe_the_refund(
    session: Session,
    *,
    application: Application,
    cancellation: Cancellation,
    assessment: Assessment,
    now: datetime,
) -> Refund | None:
    """The refund the policy grants, owed by its due date to whoever paid: a group invoice's
    organisation, not the member."""
    invoice = assessment.invoice
    if invoice is None or assessment.refund <= ZERO or assessment.due_by is None:
        return None
    payee_kind, payee_name, _ = refund_payee(session, invoice)
    refund = Refund(
        application_id=cancellation.application_id,
        cancellation_id=cancellation.id or 0,
        invoice_id=invoice.id or 0,
        amount=assessment.refund,
        currency=invoice.currency,
        due_by=assessment.due_by,
        method=assessment.method or RefundMethod.bank_transfer.value,
        payee_kind=payee_kind,
        payee_name=(application.full_name if payee_kind == PayeeKind.person.value else payee_name)[
            :200
        ],
        created_at=now,
    )
    session.add(refund)
    session.flush()
    return refund


def _tell_of_the_acceptance(
    session: Session,
    *,
    application: Application,
    edition: Edition,
    outcome: CancellationOutcome,
    office_email: str,
    url: str,
) -> None:
    """The participant gets the confirmation with its documents; the office gets a note."""
    context = _mail_context(
        application,
        edition,
        cancellation=outcome.cancellation,
        refund=outcome.refund,
        credit_note=outcome.credit_note,
        fee_invoice=outcome.fee_invoice,
        url=url,
    )
    attachments = [
        Attachment(f"{kind}-{doc.number}.pdf", doc.pdf_key or "")
        for kind, doc in (("credit-note", outcome.credit_note), ("invoice", outcome.fee_invoice))
        if doc is not None and doc.pdf_key
    ]
    attachments += [*ubl_attachments(outcome.credit_note), *ubl_attachments(outcome.fee_invoice)]
    queue_email(
        session,
        kind="cancellation_accepted",
        to=application.email,
        subject=N_("Your place in the %(course)s is cancelled"),
        subject_values={"course": localized(edition, "title", application.language)},
        context=context,
        application_id=application.id,
        attachments=attachments,
    )
    queue_email(
        session,
        kind="cancellation_office_note",
        to=office_email,
        subject=f"Cancellation accepted: {application.full_name} ({application.reference})",
        context=context,
        application_id=application.id,
        language="en",  # the office reads English whatever the participant chose
    )


def _record_refusal(
    session: Session,
    *,
    application: Application,
    edition: Edition,
    request: CancellationRequest,
    assessment: Assessment,
    actor: str,
    storage: Storage,
    office_email: str,
    url: str,
) -> CancellationOutcome:
    cancellation = Cancellation(
        application_id=application.id or 0,
        received_at=request.received_at.astimezone(UTC),
        channel=request.channel,
        course_name=(request.course_name or "").strip()[:300],
        full_name=(request.full_name or "").strip()[:200],
        registration_date=request.registration_date or date.min,
        contact=(request.contact or "").strip()[:300],
        accepted=False,
        reason=assessment.reason,
        reason_message=assessment.reason.as_json(),
        deadline=assessment.deadline,
        paid=assessment.paid,
        refund_amount=ZERO,
        retained=ZERO,
        email_key=_store_email(storage, request.email_file),
        email_filename=(request.email_filename or "")[:200] or None if request.email_file else None,
        recorded_by=actor,
    )
    session.add(cancellation)
    session.flush()
    context = _mail_context(
        application,
        edition,
        cancellation=cancellation,
        refund=None,
        credit_note=None,
        fee_invoice=None,
        url=url,
    )
    queue_email(
        session,
        kind="cancellation_refused",
        to=application.email,
        subject=N_("Your cancellation request for the %(course)s"),
        subject_values={"course": localized(edition, "title", application.language)},
        context=context,
        application_id=application.id,
    )
    queue_email(
        session,
        kind="cancellation_office_note",
        to=office_email,
        subject=f"Cancellation refused: {application.full_name} ({application.reference})",
        context=context,
        application_id=application.id,
        language="en",  # the office reads English whatever the participant chose
    )
    record_change(
        session,
        actor=actor,
        action="application.cancellation_refused",
        entity="application",
        entity_id=application.id or 0,
        after={
            "channel": request.channel,
            "received_at": cancellation.received_at.isoformat(),
            "reason": str(assessment.reason),
        },
    )
    session.commit()
    return CancellationOutcome(cancellation, None, None, None)


def accepted_cancellation(session: Session, application_id: int) -> Cancellation | None:
    """The accepted cancellation of an application, if any."""
    return session.exec(
        select(Cancellation).where(Cancellation.accepted_application_id == application_id)
    ).first()


def _already_cancelled(
    session: Session, application: Application, edition: Edition
) -> AlreadyCancelled:
    done = accepted_cancellation(session, application.id or 0)
    if done is None:
        return AlreadyCancelled(N_("This place is already cancelled; nothing more happens."))
    day = local_day(done.received_at, edition.timezone)
    return AlreadyCancelled(
        Message(
            N_(
                "This place was already cancelled on %(day)s; nothing more happens and nothing "
                "more is refunded."
            ),
            {"day": Day(day)},
        )
    )


def cancellations_of(session: Session, application_id: int) -> list[Cancellation]:
    """Every cancellation request of an application, newest first."""
    return list(
        session.exec(
            select(Cancellation)
            .where(Cancellation.application_id == application_id)
            .order_by(col(Cancellation.received_at).desc(), col(Cancellation.id).desc())
        ).all()
    )
