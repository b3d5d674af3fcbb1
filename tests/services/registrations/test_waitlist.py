"""The waiting list: freed seats offered in turn, for a limited time."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from app.models import Application, Edition, Invoice, OutboxMessage, SeatOffer, StaffUser
from app.platform.storage import LocalStorage
from app.services.registrations import applications as applications_service
from app.services.registrations import waitlist
from tests.factories import admit, make_organisation, open_edition, submit
from tests.services.billing.test_invoicing import BASE, SECRET, SELLER
from tests.services.registrations.test_cancellations import BEFORE, cancel


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def put_on_waiting_list(
    session: Session, storage: LocalStorage, admin: StaffUser, application: Application
) -> Application:
    return applications_service.decide(
        session,
        application_id=application.id or 0,
        decision="waitlist",
        actor=admin,
        storage=storage,
        secret_key=SECRET,
        base_url=BASE,
        seller=SELLER,
    )


def full_edition(
    session: Session, storage: LocalStorage, admin: StaffUser
) -> tuple[Edition, Application, list[Application]]:
    """One seat, held by an admitted participant; two people waiting, in order."""
    edition = open_edition(session, capacity=1)
    holder = admit(session, storage, admin, submit(session, storage, edition, email="h@x.org"))
    waiting = [
        put_on_waiting_list(
            session, storage, admin, submit(session, storage, edition, email=f"w{i}@x.org")
        )
        for i in range(2)
    ]
    return edition, holder, waiting


def offers(session: Session) -> list[SeatOffer]:
    return list(session.exec(select(SeatOffer).order_by(col(SeatOffer.id))).all())


ANSWER: dict[str, Any] = {"offer_days": 5, "secret_key": SECRET, "base_url": BASE}


def test_a_freed_seat_is_offered_to_the_first_person_waiting_for_five_days(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    _, holder, waiting = full_edition(session, storage, admin_user)
    cancel(session, storage, holder)
    [offer] = offers(session)
    assert offer.application_id == waiting[0].id
    assert offer.status == "open"
    assert offer.expires_at == BEFORE + timedelta(days=5)
    mail = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "seat_offer")).one()
    assert mail.to_address == "w0@x.org"
    assert "12 October 2099" in mail.body_text


def test_accepting_the_offer_admits_and_invoices(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    _, holder, waiting = full_edition(session, storage, admin_user)
    cancel(session, storage, holder)
    accepted = waitlist.accept_offer(
        session,
        application=waiting[0],
        storage=storage,
        seller=SELLER,
        secret_key=SECRET,
        base_url=BASE,
        now=BEFORE + timedelta(days=1),
    )
    assert accepted.application.status == "admitted"
    assert accepted.application.decided_by == "waiting list"
    assert accepted.invoice is not None
    assert accepted.invoice.total == accepted.application.quoted_total
    [offer] = offers(session)
    assert (offer.status, offer.responded_at) == ("accepted", BEFORE + timedelta(days=1))
    mail = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "seat_offer_accepted")
    ).one()
    assert mail.attachments[0]["filename"] == f"invoice-{accepted.invoice.number}.pdf"
    with pytest.raises(waitlist.OfferClosed, match="already accepted"):
        waitlist.accept_offer(
            session,
            application=waiting[0],
            storage=storage,
            seller=SELLER,
            secret_key=SECRET,
            base_url=BASE,
            now=BEFORE + timedelta(days=1),
        )
    assert len(session.exec(select(Invoice)).all()) == 3  # holder's, its credit note, this one


def test_a_waived_applicant_accepting_is_confirmed_at_once(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session, capacity=1)
    holder = admit(session, storage, admin_user, submit(session, storage, edition, email="h@x.org"))
    member = make_organisation(session)
    waiting = put_on_waiting_list(
        session,
        storage,
        admin_user,
        submit(session, storage, edition, email="w@x.org", organisation_id=member.id),
    )
    cancel(session, storage, holder)
    accepted = waitlist.accept_offer(
        session,
        application=waiting,
        storage=storage,
        seller=SELLER,
        secret_key=SECRET,
        base_url=BASE,
        now=BEFORE,
    )
    assert accepted.application.status == "confirmed"
    assert accepted.invoice is None and accepted.application.fee_waiver_number


def test_declining_passes_the_seat_to_the_next_person_who_stays_listed(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    _, holder, waiting = full_edition(session, storage, admin_user)
    cancel(session, storage, holder)
    waitlist.decline_offer(session, application=waiting[0], now=BEFORE, **ANSWER)
    first, second = offers(session)
    assert (first.application_id, first.status) == (waiting[0].id, "declined")
    assert (second.application_id, second.status) == (waiting[1].id, "open")
    session.refresh(waiting[0])
    assert waiting[0].status == "waitlisted"


def test_an_offer_that_runs_out_expires_and_goes_to_the_next_person(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    _, holder, waiting = full_edition(session, storage, admin_user)
    cancel(session, storage, holder)
    assert waitlist.expire_offers(session, now=BEFORE + timedelta(days=4), **ANSWER) == []
    later = BEFORE + timedelta(days=5)
    expired = waitlist.expire_offers(session, now=later, **ANSWER)
    assert [o.application_id for o in expired] == [waiting[0].id]
    first, second = offers(session)
    assert first.status == "expired"
    assert (second.application_id, second.status) == (waiting[1].id, "open")
    kinds = [m.kind for m in session.exec(select(OutboxMessage)).all()]
    assert kinds.count("seat_offer_expired") == 1
    with pytest.raises(waitlist.OfferClosed, match="run out"):
        waitlist.accept_offer(
            session,
            application=waiting[0],
            storage=storage,
            seller=SELLER,
            secret_key=SECRET,
            base_url=BASE,
            now=later,
        )


def test_an_offer_not_yet_marked_expired_cannot_be_accepted_after_its_time(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    _, holder, waiting = full_edition(session, storage, admin_user)
    cancel(session, storage, holder)
    with pytest.raises(waitlist.OfferClosed, match="run out"):
        waitlist.accept_offer(
            session,
            application=waiting[0],
            storage=storage,
            seller=SELLER,
            secret_key=SECRET,
            base_url=BASE,
            now=BEFORE + timedelta(days=5, seconds=1),
        )
    session.refresh(waiting[0])
    assert waiting[0].status == "waitlisted"


def test_no_seat_is_offered_once_the_course_has_started_and_none_runs_past_the_start(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition, _, _ = full_edition(session, storage, admin_user)
    starts = waitlist.course_starts(edition)
    edition.capacity = 2
    session.add(edition)
    session.commit()
    assert waitlist.offer_free_seats(session, edition=edition, now=starts, **ANSWER) == []
    [offer] = waitlist.offer_free_seats(
        session,
        edition=edition,
        now=starts - timedelta(days=1),
        **ANSWER,
    )
    assert offer.expires_at == starts.astimezone(UTC)


def test_seats_held_or_offered_are_not_offered_again(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition, holder, _ = full_edition(session, storage, admin_user)
    now = datetime(2099, 1, 1, tzinfo=UTC)
    assert waitlist.seats_to_offer(session, edition, now=now) == 0
    cancel(session, storage, holder)
    assert waitlist.seats_to_offer(session, edition, now=BEFORE) == 0  # one open offer
    assert waitlist.offer_free_seats(session, edition=edition, now=BEFORE, **ANSWER) == []
