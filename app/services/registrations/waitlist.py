"""The waiting list: a freed seat is offered in turn, for a limited time, and taken or passed on."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, update
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.db import writer_engine
from app.models import (
    Application,
    ApplicationStatus,
    Edition,
    Invoice,
    OfferStatus,
    SeatOffer,
)
from app.platform.audit import record_change
from app.platform.i18n import N_, Message, Term, localized
from app.platform.mail import Attachment, queue_email
from app.platform.storage import Storage
from app.services.billing.einvoices import ubl_attachments
from app.services.billing.invoices import Seller, issue_invoice
from app.services.errors import Conflict, NotFound
from app.services.registrations.applications import (
    change_status,
    fix_fee_at_admission,
    portal_url,
)

# Who holds a seat: admitted participants were promised one, confirmed ones paid for it.
HOLDING_A_SEAT = (
    ApplicationStatus.admitted.value,
    ApplicationStatus.confirmed.value,
    ApplicationStatus.completed.value,
)
SYSTEM_ACTOR = "waiting list"


class OfferClosed(Conflict):
    """The offer was answered already, or its time ran out."""


def course_starts(edition: Edition) -> datetime:
    """The first instant of the course on the edition's wall clock."""
    return datetime.combine(edition.start_date, time(0, 0), tzinfo=ZoneInfo(edition.timezone))


def _count(session: Session, *conditions: Any) -> int:
    count: int = session.exec(
        select(func.count()).select_from(Application).where(*conditions)
    ).one()
    return count


def seats_to_offer(session: Session, edition: Edition, *, now: datetime) -> int:
    """Seats nobody holds or has been offered (offers still running count as held)."""
    holding = _count(
        session,
        Application.edition_id == edition.id,
        col(Application.status).in_(HOLDING_A_SEAT),
    )
    offered: int = session.exec(
        select(func.count())
        .select_from(SeatOffer)
        .where(
            SeatOffer.edition_id == edition.id,
            SeatOffer.status == OfferStatus.open.value,
            col(SeatOffer.expires_at) > now,
        )
    ).one()
    return max(edition.capacity - holding - offered, 0)


def next_in_line(session: Session, edition: Edition) -> list[Application]:
    """Waitlisted applicants in the order seats are offered, less those offered one already.

    Someone who let an offer expire or declined it stays on the list, but the next seat goes to
    the next person: the office can still admit them by hand.
    """
    offered = select(SeatOffer.application_id).where(SeatOffer.edition_id == edition.id)
    return list(
        session.exec(
            select(Application)
            .where(
                Application.edition_id == edition.id,
                Application.status == ApplicationStatus.waitlisted.value,
                col(Application.id).not_in(offered),
            )
            .order_by(
                col(Application.waitlisted_at).is_(None),
                col(Application.waitlisted_at),
                col(Application.submitted_at),
                col(Application.id),
            )
        ).all()
    )


def _offer_context(
    offer: SeatOffer, application: Application, edition: Edition, url: str
) -> dict[str, Any]:
    return {
        "offer": offer,
        "application": application,
        "edition": edition,
        "portal_url": url,
        "expires_local": offer.expires_at.astimezone(ZoneInfo(edition.timezone)),
    }


def offer_free_seats(
    session: Session,
    *,
    edition: Edition,
    now: datetime,
    offer_days: int,
    secret_key: str,
    base_url: str,
) -> list[SeatOffer]:
    """Offer each free seat to the next person on the waiting list (inside the caller's
    transaction), until the course starts."""
    starts = course_starts(edition)
    if now >= starts:
        return []
    free = seats_to_offer(session, edition, now=now)
    offers: list[SeatOffer] = []
    for application in next_in_line(session, edition)[:free]:
        offer = SeatOffer(
            application_id=application.id or 0,
            edition_id=edition.id or 0,
            offered_at=now,
            expires_at=min(now + timedelta(days=offer_days), starts),
        )
        session.add(offer)
        session.flush()
        url = portal_url(application, edition, secret_key=secret_key, base_url=base_url)
        queue_email(
            session,
            kind="seat_offer",
            to=application.email,
            subject=N_("A seat in the %(course)s is free for you"),
            subject_values={"course": localized(edition, "title", application.language)},
            context=_offer_context(offer, application, edition, url),
            application_id=application.id,
        )
        record_change(
            session,
            actor=SYSTEM_ACTOR,
            action="seat_offer.made",
            entity="application",
            entity_id=application.id or 0,
            after={"offer": offer.id, "expires_at": offer.expires_at.isoformat()},
        )
        offers.append(offer)
    return offers


def expire_offers(
    session: Session,
    *,
    now: datetime | None = None,
    offer_days: int,
    secret_key: str,
    base_url: str,
) -> list[SeatOffer]:
    """Close the open offers whose time ran out and offer those seats to the next people."""
    now = now or utcnow()
    due = list(
        session.exec(
            select(SeatOffer)
            .where(SeatOffer.status == OfferStatus.open.value, col(SeatOffer.expires_at) <= now)
            .order_by(col(SeatOffer.expires_at), col(SeatOffer.id))
            # Several workers may run this round at once: each offer is passed on by one.
            .with_for_update(skip_locked=True)
        ).all()
    )
    editions: dict[int, Edition] = {}
    for offer in due:
        offer.status = OfferStatus.expired.value
        session.add(offer)
        application = session.get(Application, offer.application_id)
        edition = session.get(Edition, offer.edition_id)
        assert application is not None and edition is not None
        editions[edition.id or 0] = edition
        url = portal_url(application, edition, secret_key=secret_key, base_url=base_url)
        queue_email(
            session,
            kind="seat_offer_expired",
            to=application.email,
            subject=N_("The seat offered to you in the %(course)s has expired"),
            subject_values={"course": localized(edition, "title", application.language)},
            context=_offer_context(offer, application, edition, url),
            application_id=application.id,
        )
        record_change(
            session,
            actor=SYSTEM_ACTOR,
            action="seat_offer.expired",
            entity="application",
            entity_id=application.id or 0,
            after={"offer": offer.id},
        )
    session.flush()
    for edition in editions.values():
        offer_free_seats(
            session,
            edition=edition,
            now=now,
            offer_days=offer_days,
            secret_key=secret_key,
            base_url=base_url,
        )
    session.commit()
    return due


def run_offer_expiry(
    engine: Engine, *, offer_days: int, secret_key: str, base_url: str, now: datetime | None = None
) -> int:
    """One scheduled round: expire what ran out and pass the seats on; how many expired."""
    with Session(writer_engine(engine), expire_on_commit=False) as session:
        return len(
            expire_offers(
                session, now=now, offer_days=offer_days, secret_key=secret_key, base_url=base_url
            )
        )


def open_offer(session: Session, application_id: int, *, now: datetime) -> SeatOffer | None:
    """The offer this applicant can still answer, if any."""
    return session.exec(
        select(SeatOffer).where(
            SeatOffer.application_id == application_id,
            SeatOffer.status == OfferStatus.open.value,
            col(SeatOffer.expires_at) > now,
        )
    ).first()


def _answerable(session: Session, application: Application, now: datetime) -> SeatOffer:
    offer = open_offer(session, application.id or 0, now=now)
    if offer is not None:
        return offer
    last = session.exec(
        select(SeatOffer)
        .where(SeatOffer.application_id == application.id)
        .order_by(col(SeatOffer.offered_at).desc())
    ).first()
    if last is None:
        raise NotFound(N_("No seat has been offered to you."))
    if last.status == OfferStatus.open.value or last.status == OfferStatus.expired.value:
        raise OfferClosed(
            N_(
                "The time to accept this seat has run out and it has gone to the next person on "
                "the waiting list. You stay on the list."
            )
        )
    raise OfferClosed(
        Message(N_("You have already %(status)s this seat."), {"status": Term(last.status)})
    )


def _close(session: Session, offer: SeatOffer, status: OfferStatus, now: datetime) -> None:
    # Only an offer still open changes: a double click answers it once.
    result = session.execute(
        update(SeatOffer)
        .where(col(SeatOffer.id) == offer.id, col(SeatOffer.status) == OfferStatus.open.value)
        .values(status=status.value, responded_at=now)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        raise OfferClosed(N_("This offer was answered already."))
    session.refresh(offer)


@dataclass(frozen=True)
class AcceptedOffer:
    """An accepted seat and, for a paying participant not in a group, their invoice."""

    application: Application
    invoice: Invoice | None


def accept_offer(
    session: Session,
    *,
    application: Application,
    storage: Storage,
    seller: Seller,
    secret_key: str,
    base_url: str,
    now: datetime | None = None,
) -> AcceptedOffer:
    """The applicant takes the offered seat: admitted as an administrator's decision would,
    a waived fee confirmed at once, anyone else invoiced unless their group is billed together."""
    now = now or utcnow()
    offer = _answerable(session, application, now)
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    _close(session, offer, OfferStatus.accepted, now)
    change_status(
        session,
        application,
        allowed_from=(ApplicationStatus.waitlisted.value,),
        to=ApplicationStatus.admitted.value,
        expected_version=None,
        values={
            "decided_at": now,
            "decided_by": SYSTEM_ACTOR,
            "decision_note": "Accepted a seat offered from the waiting list.",
        },
    )
    fix_fee_at_admission(session, application, edition, storage=storage, now=now)
    attachments: list[Attachment] = []
    invoice = None
    if application.fee_waiver_key:
        attachments.append(
            Attachment(
                f"fee-waiver-{application.fee_waiver_number}.pdf", application.fee_waiver_key
            )
        )
    elif application.group_id is None:
        invoice = issue_invoice(
            session,
            application=application,
            seller=seller,
            actor=SYSTEM_ACTOR,
            storage=storage,
            now=now,
        )
        attachments.append(Attachment(f"invoice-{invoice.number}.pdf", invoice.pdf_key or ""))
        attachments.extend(ubl_attachments(invoice))
    url = portal_url(application, edition, secret_key=secret_key, base_url=base_url)
    queue_email(
        session,
        kind="seat_offer_accepted",
        to=application.email,
        subject=N_("You are admitted to the %(course)s"),
        subject_values={"course": localized(edition, "title", application.language)},
        context={
            **_offer_context(offer, application, edition, url),
            "invoice": invoice,
            "waived": application.status == ApplicationStatus.confirmed.value,
        },
        application_id=application.id,
        attachments=attachments,
    )
    record_change(
        session,
        actor=application.email,
        action="seat_offer.accepted",
        entity="application",
        entity_id=application.id or 0,
        before={"status": ApplicationStatus.waitlisted.value},
        after={"status": application.status, "offer": offer.id},
    )
    session.commit()
    return AcceptedOffer(application, invoice)


def decline_offer(
    session: Session,
    *,
    application: Application,
    offer_days: int,
    secret_key: str,
    base_url: str,
    now: datetime | None = None,
) -> SeatOffer:
    """The applicant passes on the seat; it goes to the next person, and they stay on the list."""
    now = now or utcnow()
    offer = _answerable(session, application, now)
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    _close(session, offer, OfferStatus.declined, now)
    record_change(
        session,
        actor=application.email,
        action="seat_offer.declined",
        entity="application",
        entity_id=application.id or 0,
        after={"offer": offer.id},
    )
    offer_free_seats(
        session,
        edition=edition,
        now=now,
        offer_days=offer_days,
        secret_key=secret_key,
        base_url=base_url,
    )
    session.commit()
    return offer


@dataclass(frozen=True)
class OfferRow:
    """An offer with its applicant."""

    offer: SeatOffer
    application: Application


def offers_of_edition(session: Session, edition: Edition) -> dict[str, list[OfferRow]]:
    """An edition's offers by status (open, accepted, declined, expired), newest first."""
    rows = session.exec(
        select(SeatOffer, Application)
        .join(Application, col(Application.id) == col(SeatOffer.application_id))
        .where(SeatOffer.edition_id == edition.id)
        .order_by(col(SeatOffer.offered_at).desc(), col(SeatOffer.id).desc())
    ).all()
    grouped: dict[str, list[OfferRow]] = {status.value: [] for status in OfferStatus}
    for offer, application in rows:
        grouped.setdefault(offer.status, []).append(OfferRow(offer, application))
    return grouped
