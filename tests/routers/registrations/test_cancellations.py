"""Cancelling through the API, the participant's page and the office's pages."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import (
    Application,
    Cancellation,
    Edition,
    OutboxMessage,
    Refund,
    SeatOffer,
    StaffUser,
)
from app.platform.storage import LocalStorage
from app.services.billing import payments
from app.services.billing import refunds as refund_service
from app.services.registrations import applications as applications_service
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD
from tests.factories import admit, open_edition, submit
from tests.routers.office.test_auth import csrf_from, login
from tests.services.billing.test_invoicing import BASE, SECRET, SELLER

EML = b"From: Ama Banda <ama@x.org>\r\nSubject: Cancellation\r\n\r\nPlease cancel my place.\r\n"


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def participant(
    session: Session,
    storage: LocalStorage,
    admin: StaffUser,
    *,
    paid: str | None = "1500.00",
    method: str = "bank_transfer",
    starts: str | None = None,
    email: str = "ama@x.org",
) -> Application:
    """An admitted participant who paid `paid`; `starts` moves the course to that date."""
    edition = session.exec(select(Edition).where(Edition.slug == "diploma-open")).first()
    if edition is None:
        edition = open_edition(session)
    application = admit(session, storage, admin, submit(session, storage, edition, email=email))
    found = refund_service.registration_invoice(session, application.id or 0)
    assert found is not None
    invoice = found[0]
    if paid:
        payments.record_payment(
            session,
            invoice_number=invoice.number,
            amount=Decimal(paid),
            received_on=date.today(),
            method=method,
            reference="",
            actor=admin.email,
        )
    if starts:
        edition.start_date = date.fromisoformat(starts)
        edition.end_date = date.fromisoformat(starts)
        session.add(edition)
        # Moved back with the course: a cancellation is never received before the application.
        application.submitted_at = datetime.combine(
            edition.start_date - timedelta(days=365), time(0), tzinfo=UTC
        )
        session.add(application)
        session.commit()
    session.refresh(application)
    return application


def body(application: Application, received_at: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "received_at": received_at,
        "channel": "email",
        "course_name": "Diploma in Internationalization",
        "full_name": application.full_name,
        "registration_date": application.submitted_at.date().isoformat(),
        "contact": application.email,
    }
    data.update(overrides)
    return data


def portal_path(session: Session, application: Application) -> str:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    url = applications_service.portal_url(application, edition, secret_key=SECRET, base_url=BASE)
    return url.removeprefix(BASE)


# The API


@pytest.mark.parametrize(
    ("starts", "received_at", "accepted"),
    [
        # Deadline 2024-10-19 00:00 in Madrid (CEST, +02:00) = 2024-10-18 22:00 UTC.
        ("2024-11-18", "2024-10-18T21:59:59Z", True),
        ("2024-11-18", "2024-10-18T22:00:00Z", False),
        ("2024-11-18", "2024-10-18T23:59:59+02:00", True),
        ("2024-11-18", "2024-10-19T00:00:00+02:00", False),
        # Summer time ends on 27 October 2024 at 03:00: the deadline is still at +02:00.
        ("2024-11-26", "2024-10-26T21:59:59Z", True),
        ("2024-11-26", "2024-10-26T22:00:00Z", False),
        ("2024-11-26", "2024-10-27T00:00:00+02:00", False),
        # Summer time starts on 30 March 2025 at 02:00: that midnight is still at +01:00.
        ("2025-04-29", "2025-03-29T22:59:59Z", True),
        ("2025-04-29", "2025-03-29T23:00:00Z", False),
        ("2025-04-29", "2025-03-29T23:59:59+01:00", True),
        ("2025-04-29", "2025-03-30T01:00:00+02:00", False),
    ],
)
def test_the_deadline_holds_to_the_second_in_utc_and_local_offsets_across_summer_time(
    client: TestClient,
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    admin_headers: dict[str, str],
    starts: str,
    received_at: str,
    accepted: bool,
) -> None:
    application = participant(session, storage, admin_user, paid="1000.00", starts=starts)
    response = client.post(
        f"/api/v1/applications/{application.id}/cancellation",
        json=body(application, received_at),
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] is accepted
    session.refresh(application)
    if accepted:
        assert answer["refund"]["amount"] == "750.00"
        assert application.status == "cancelled"
    else:
        assert answer["refund"] is None
        assert answer["reason"].startswith("Cancellations are accepted only before")
        assert application.status == "admitted"


def test_the_api_answers_accepted_with_the_refund_and_lists_it_on_the_application(
    client: TestClient,
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    admin_headers: dict[str, str],
) -> None:
    application = participant(session, storage, admin_user, starts="2024-11-18")
    response = client.post(
        f"/api/v1/applications/{application.id}/cancellation",
        json=body(application, "2024-10-01T10:00:00+02:00"),
        headers=admin_headers,
    )
    answer = response.json()
    assert answer["accepted"] is True
    assert answer["refund"]["amount"] == "1125.00"
    assert answer["refund"]["due_by"] == "2024-10-31"
    assert "75 % of the 1500.00 paid is refunded by 31 October 2024" in answer["reason"]
    detail = client.get(f"/api/v1/applications/{application.id}", headers=admin_headers).json()
    assert [(r["amount"], r["status"], r["method"]) for r in detail["refunds"]] == [
        ("1125.00", "owed", "bank_transfer")
    ]
    assert {i["kind"] for i in detail["invoices"]} == {"invoice", "credit_note"}
    again = client.post(
        f"/api/v1/applications/{application.id}/cancellation",
        json=body(application, "2024-10-02T10:00:00+02:00"),
        headers=admin_headers,
    )
    assert again.status_code == 409
    assert "already cancelled on 1 October 2024" in again.json()["detail"]
    assert len(session.exec(select(Refund)).all()) == 1


def test_missing_items_are_422_naming_each(
    client: TestClient,
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    admin_headers: dict[str, str],
) -> None:
    application = participant(session, storage, admin_user, starts="2024-11-18")
    response = client.post(
        f"/api/v1/applications/{application.id}/cancellation",
        json={"received_at": "2024-10-01T10:00:00+02:00", "channel": "email", "full_name": " "},
        headers=admin_headers,
    )
    assert response.status_code == 422
    named = {e["loc"][-1]: e["msg"] for e in response.json()["detail"]}
    assert named == {
        "course_name": "The cancellation does not give the name of the course.",
        "full_name": "The cancellation does not give the student's name and surname.",
        "registration_date": "The cancellation does not give the date of registration.",
        "contact": "The cancellation does not give contact information.",
    }
    assert session.exec(select(Cancellation)).all() == []


def test_other_channels_are_refused(
    client: TestClient,
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    admin_headers: dict[str, str],
) -> None:
    application = participant(session, storage, admin_user, starts="2024-11-18")
    response = client.post(
        f"/api/v1/applications/{application.id}/cancellation",
        json=body(application, "2024-10-01T10:00:00Z", channel="telephone"),
        headers=admin_headers,
    )
    assert response.status_code == 422


def test_only_administrators_record_cancellations(
    client: TestClient,
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    tutor_headers: dict[str, str],
) -> None:
    application = participant(session, storage, admin_user, starts="2024-11-18")
    url = f"/api/v1/applications/{application.id}/cancellation"
    data = body(application, "2024-10-01T10:00:00Z")
    assert client.post(url, json=data).status_code == 401
    assert client.post(url, json=data, headers=tutor_headers).status_code == 403
    done = {"completed_on": "2024-10-02", "reference": "T"}
    assert client.post(
        "/api/v1/refunds/1/complete", json=done, headers=tutor_headers
    ).status_code == (403)


def test_completing_a_refund_through_the_api_once(
    client: TestClient,
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    admin_headers: dict[str, str],
) -> None:
    application = participant(session, storage, admin_user, starts="2024-11-18")
    answer = client.post(
        f"/api/v1/applications/{application.id}/cancellation",
        json=body(application, "2024-10-01T10:00:00Z"),
        headers=admin_headers,
    ).json()
    refund_id = answer["refund"]["id"]
    done = {"completed_on": date.today().isoformat(), "reference": "TRF-2024-77"}
    first = client.post(f"/api/v1/refunds/{refund_id}/complete", json=done, headers=admin_headers)
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["reference"]) == ("completed", "TRF-2024-77")
    second = client.post(f"/api/v1/refunds/{refund_id}/complete", json=done, headers=admin_headers)
    assert second.status_code == 409
    assert "already marked as paid" in second.json()["detail"]
    missing = client.post("/api/v1/refunds/999999/complete", json=done, headers=admin_headers)
    assert missing.status_code == 404


# The participant's page


def test_the_portal_previews_then_cancels_then_asks_for_bank_details(
    client: TestClient, session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application = participant(session, storage, admin_user, paid="1000.00")
    path = portal_path(session, application)
    portal = client.get(path)
    assert f'href="{path}/cancel"' in portal.text
    preview = client.get(f"{path}/cancel")
    assert preview.status_code == 200
    assert "What will happen" in preview.text
    assert "1,000.00 EUR" in preview.text and "750.00 EUR" in preview.text
    assert "250.00 EUR" in preview.text
    for item in ("Diploma in Internationalization", "Ama Banda", application.email):
        assert item in preview.text
    session.refresh(application)
    assert application.status == "admitted"  # a preview changes nothing
    done = client.post(
        f"{path}/cancel", data={"csrf_token": csrf_from(preview.text)}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == path
    page = client.get(path).text
    assert "Your place is cancelled." in page
    assert "Refund of 750.00 EUR" in page
    assert 'for="iban"' in page and 'for="account_holder"' in page and 'for="bic"' in page
    assert f'href="{path}/cancel"' not in page
    session.refresh(application)
    assert application.status == "cancelled"
    cancellation = session.exec(select(Cancellation)).one()
    assert (cancellation.channel, cancellation.contact) == ("portal", application.email)
    kinds = [m.kind for m in session.exec(select(OutboxMessage)).all()]
    assert "cancellation_accepted" in kinds
    # A second confirmation (a double click) changes nothing and says so.
    twice = client.post(f"{path}/cancel", data={"csrf_token": csrf_from(page)})
    assert "already cancelled" in twice.text
    assert len(session.exec(select(Refund)).all()) == 1

    bad = client.post(
        f"{path}/refund-details",
        data={
            "csrf_token": csrf_from(page),
            "account_holder": "Ama Banda",
            "iban": "ES91 2100 0418 4502 0005 1333",
            "bic": "",
        },
    )
    assert bad.status_code == 422
    assert 'id="iban-error"' in bad.text and "This IBAN is not valid" in bad.text
    assert 'value="ES91 2100 0418 4502 0005 1333"' in bad.text
    good = client.post(
        f"{path}/refund-details",
        data={
            "csrf_token": csrf_from(page),
            "account_holder": "Ama Banda",
            "iban": "ES91 2100 0418 4502 0005 1332",
            "bic": "",
        },
    )
    assert "account ending in 1332" in good.text
    refund = session.exec(select(Refund)).one()
    assert refund.iban == "ES9121000418450200051332"


def test_after_the_deadline_the_portal_explains_and_records_a_refusal(
    client: TestClient, session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    # The course starts in ten days: past the deadline, while the portal link still works.
    soon = (date.today() + timedelta(days=10)).isoformat()
    application = participant(session, storage, admin_user, starts=soon)
    path = portal_path(session, application)
    preview = client.get(f"{path}/cancel")
    assert "This request would not be accepted." in preview.text
    assert "Send the request anyway" in preview.text
    done = client.post(f"{path}/cancel", data={"csrf_token": csrf_from(preview.text)})
    assert "cannot be accepted" in done.text
    session.refresh(application)
    assert application.status == "confirmed"
    kinds = sorted(m.kind for m in session.exec(select(OutboxMessage)).all())
    assert "cancellation_refused" in kinds and "cancellation_office_note" in kinds


def test_a_card_refund_needs_no_bank_details(
    client: TestClient, session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application = participant(session, storage, admin_user, method="card")
    path = portal_path(session, application)
    preview = client.get(f"{path}/cancel")
    assert "to the card you paid with" in preview.text
    client.post(f"{path}/cancel", data={"csrf_token": csrf_from(preview.text)})
    page = client.get(path).text
    assert 'for="iban"' not in page
    assert "back to the card you paid with" in page


def test_the_portal_offers_a_freed_seat_to_accept(
    client: TestClient, session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session, capacity=1)
    holder = admit(session, storage, admin_user, submit(session, storage, edition, email="h@x.org"))
    waiting = applications_service.decide(
        session,
        application_id=submit(session, storage, edition, email="w@x.org").id or 0,
        decision="waitlist",
        actor=admin_user,
        storage=storage,
        secret_key=SECRET,
        base_url=BASE,
        seller=SELLER,
    )
    holder_path = portal_path(session, holder)
    preview = client.get(f"{holder_path}/cancel")
    client.post(f"{holder_path}/cancel", data={"csrf_token": csrf_from(preview.text)})
    path = portal_path(session, waiting)
    page = client.get(path).text
    assert "A seat is free for you" in page
    assert f'action="{path}/offer/accept"' in page
    accepted = client.post(f"{path}/offer/accept", data={"csrf_token": csrf_from(page)})
    assert "You accepted the seat and are admitted." in accepted.text
    session.refresh(waiting)
    assert waiting.status == "admitted"
    again = client.post(f"{path}/offer/decline", data={"csrf_token": csrf_from(page)})
    assert "already accepted" in again.text


def test_portal_forms_need_the_csrf_token(
    client: TestClient, session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application = participant(session, storage, admin_user)
    path = portal_path(session, application)
    client.get(f"{path}/cancel")
    assert client.post(f"{path}/cancel", data={}).status_code == 403
    session.refresh(application)
    assert application.status == "confirmed"


# The office's pages


def test_an_administrator_records_an_emailed_cancellation_with_the_email_kept(
    client: TestClient, session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application = participant(session, storage, admin_user, starts="2024-11-18")
    login(client, "admin@example.org", ADMIN_PASSWORD)
    url = f"/admin/applications/{application.id}/cancellation"
    form = client.get(url)
    assert form.status_code == 200
    for name in (
        "received_at",
        "channel",
        "course_name",
        "full_name",
        "registration_date",
        "contact",
        "email_file",
    ):
        assert f'for="{name}"' in form.text and f'id="{name}"' in form.text
    token = csrf_from(form.text)
    incomplete = client.post(
        url,
        data={"csrf_token": token, "received_at": "2024-10-01T10:00", "channel": "email"},
    )
    assert incomplete.status_code == 422
    for message in (
        "The cancellation does not give the name of the course.",
        "The cancellation does not give the student&#39;s name and surname.",
        "The cancellation does not give the date of registration.",
        "The cancellation does not give contact information.",
    ):
        assert message in incomplete.text
    assert 'id="course_name-error"' in incomplete.text
    done = client.post(
        url,
        data={
            "csrf_token": token,
            "received_at": "2024-10-18T23:59:59",
            "channel": "email",
            "course_name": "Diploma",
            "full_name": "Ama Banda",
            "registration_date": "2024-06-01",
            "contact": "ama@x.org",
        },
        files={"email_file": ("cancel.eml", EML, "message/rfc822")},
        follow_redirects=False,
    )
    assert done.status_code == 303
    page = client.get(url).text
    assert "Cancellation accepted and recorded." in page
    cancellation = session.exec(select(Cancellation)).one()
    assert cancellation.accepted and cancellation.recorded_by == "admin@example.org"
    eml = client.get(f"/admin/cancellations/{cancellation.id}/email.eml")
    assert eml.status_code == 200 and eml.content == EML


def test_an_emailed_cancellation_after_the_deadline_is_recorded_as_refused(
    client: TestClient, session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application = participant(session, storage, admin_user, starts="2024-11-18")
    login(client, "admin@example.org", ADMIN_PASSWORD)
    url = f"/admin/applications/{application.id}/cancellation"
    token = csrf_from(client.get(url).text)
    page = client.post(
        url,
        data={
            "csrf_token": token,
            "received_at": "2024-10-19T00:00",
            "channel": "email",
            "course_name": "Diploma",
            "full_name": "Ama Banda",
            "registration_date": "2024-06-01",
            "contact": "ama@x.org",
        },
    ).text
    assert "Cancellation refused and recorded" in page
    session.refresh(application)
    assert application.status == "confirmed"


def test_a_file_that_is_not_an_email_is_refused_next_to_its_field(
    client: TestClient, session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application = participant(session, storage, admin_user, starts="2024-11-18")
    login(client, "admin@example.org", ADMIN_PASSWORD)
    url = f"/admin/applications/{application.id}/cancellation"
    response = client.post(
        url,
        data={
            "csrf_token": csrf_from(client.get(url).text),
            "received_at": "2024-10-01T10:00",
            "channel": "email",
            "course_name": "Diploma",
            "full_name": "Ama Banda",
            "registration_date": "2024-06-01",
            "contact": "ama@x.org",
        },
        files={"email_file": ("cancel.pdf", b"%PDF-1.4", "application/pdf")},
    )
    assert response.status_code == 422
    assert 'id="email_file-error"' in response.text
    assert session.exec(select(Cancellation)).all() == []


def test_the_refunds_page_lists_overdue_refunds_and_marks_bank_ones_paid(
    client: TestClient,
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    admin_headers: dict[str, str],
) -> None:
    bank = participant(session, storage, admin_user, starts="2024-11-18")
    client.post(
        f"/api/v1/applications/{bank.id}/cancellation",
        json=body(bank, "2024-10-01T10:00:00Z"),
        headers=admin_headers,
    )
    login(client, "admin@example.org", ADMIN_PASSWORD)
    page = client.get("/admin/refunds")
    assert page.status_code == 200
    assert "Overdue" in page.text and "Ama Banda" in page.text
    assert "days overdue" in page.text
    refund = session.exec(select(Refund)).one()
    token = csrf_from(page.text)
    empty = client.post(
        f"/admin/refunds/{refund.id}/complete",
        data={"csrf_token": token, "completed_on": date.today().isoformat(), "reference": ""},
    )
    assert empty.status_code == 422
    assert "Enter the bank&#39;s reference of the transfer." in empty.text
    paid = client.post(
        f"/admin/refunds/{refund.id}/complete",
        data={"csrf_token": token, "completed_on": date.today().isoformat(), "reference": "T-1"},
    )
    assert "is marked as paid" in paid.text
    again = client.post(
        f"/admin/refunds/{refund.id}/complete",
        data={"csrf_token": token, "completed_on": date.today().isoformat(), "reference": "T-2"},
    )
    assert "already marked as paid" in again.text
    session.refresh(refund)
    assert (refund.status, refund.reference) == ("completed", "T-1")


def test_card_refunds_say_refund_through_stripe(
    client: TestClient, session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application = participant(session, storage, admin_user, method="card")
    path = portal_path(session, application)
    client.post(f"{path}/cancel", data={"csrf_token": csrf_from(client.get(f"{path}/cancel").text)})
    login(client, "admin@example.org", ADMIN_PASSWORD)
    page = client.get("/admin/refunds").text
    assert "Refund through Stripe." in page
    assert "/complete" not in page


def test_the_offers_page_shows_offers_by_status(
    client: TestClient, session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session, capacity=1)
    holder = admit(session, storage, admin_user, submit(session, storage, edition, email="h@x.org"))
    applications_service.decide(
        session,
        application_id=submit(session, storage, edition, email="w@x.org").id or 0,
        decision="waitlist",
        actor=admin_user,
        storage=storage,
        secret_key=SECRET,
        base_url=BASE,
        seller=SELLER,
    )
    path = portal_path(session, holder)
    client.post(f"{path}/cancel", data={"csrf_token": csrf_from(client.get(f"{path}/cancel").text)})
    assert session.exec(select(SeatOffer)).one().status == "open"
    login(client, "admin@example.org", ADMIN_PASSWORD)
    page = client.get(f"/admin/offers?edition={edition.slug}")
    assert page.status_code == 200
    assert 'Open <span class="muted">(1)</span>' in page.text
    assert "Ama Banda" in page.text


def test_tutors_see_no_cancellation_pages(
    client: TestClient, session: Session, storage: LocalStorage, tutor_user: StaffUser
) -> None:
    login(client, "tutor@example.org", TUTOR_PASSWORD)
    for url in ("/admin/refunds", "/admin/offers", "/admin/applications/1/cancellation"):
        assert client.get(url).status_code == 403
