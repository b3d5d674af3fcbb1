"""Final work on the portal, the tutors' page and the API; eligibility on the office's page."""

import re
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Application, AuditEntry, Edition, FinalWork, OutboxMessage, StaffUser
from app.services.registrations import applications as applications_service
from app.services.teaching import final_work as service
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD
from tests.factories import (
    FACTORY_SECRET,
    make_edition,
    make_eligible_participant,
    pdf_bytes,
)
from tests.routers.office.test_auth import csrf_from, login


@pytest.fixture
def edition(session: Session) -> Edition:
    """An edition that ended last week (portal links still work)."""
    start = date.today() - timedelta(days=14)
    return make_edition(
        session,
        slug="diploma-recent",
        start_date=start.isoformat(),
        end_date=(start + timedelta(days=4)).isoformat(),
    )


@pytest.fixture
def participant(session: Session, edition: Edition) -> Application:
    """A confirmed participant who has not handed in a final work yet."""
    application = make_eligible_participant(session, edition, given_name="Ama")
    work = session.exec(select(FinalWork).where(FinalWork.application_id == application.id)).one()
    session.delete(work)
    session.commit()
    return application


def token_of(session: Session, application: Application) -> str:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return applications_service.portal_token(application, edition, secret_key=FACTORY_SECRET)


def upload(client: TestClient, token: str, data: bytes, filename: str = "work.pdf") -> Any:
    csrf = csrf_from(client.get(f"/portal/{token}").text)
    return client.post(
        f"/portal/{token}/final-work",
        data={"csrf_token": csrf},
        files={"final_work": (filename, data, "application/pdf")},
        follow_redirects=False,
    )


def work_of(session: Session, application: Application) -> FinalWork:
    session.expire_all()
    return session.exec(select(FinalWork).where(FinalWork.application_id == application.id)).one()


# The portal


def test_the_portal_offers_a_labelled_upload_to_a_participant(
    client: TestClient, session: Session, participant: Application
) -> None:
    html = client.get(f"/portal/{token_of(session, participant)}").text
    assert 'id="final-work-heading"' in html
    assert 'for="final_work"' in html and 'id="final_work"' in html
    assert "at most 20 MB" in html


def test_a_file_named_pdf_that_is_not_a_pdf_is_refused_next_to_the_field(
    client: TestClient, session: Session, participant: Application
) -> None:
    response = upload(client, token_of(session, participant), b"PK\x03\x04 a zip file", "work.pdf")
    assert response.status_code == 422
    assert 'id="final_work-error"' in response.text
    assert "is not a PDF document" in response.text
    assert session.exec(select(FinalWork)).all() == []


def test_a_pdf_header_without_a_readable_document_is_refused(
    client: TestClient, session: Session, participant: Application
) -> None:
    fake = b"%PDF-1.7\nthis is not really a PDF\n%%EOF\n"
    response = upload(client, token_of(session, participant), fake)
    assert response.status_code == 422
    assert "is not a PDF document" in response.text


def test_a_final_work_over_20_mb_is_refused_with_a_message(
    client: TestClient, session: Session, participant: Application
) -> None:
    big = pdf_bytes()
    big = big[:-6] + b" " * (service.FINAL_WORK_MAX_BYTES + 1 - len(big)) + big[-6:]
    response = upload(client, token_of(session, participant), big)
    assert response.status_code == 422
    assert "at most 20 MB; this file is larger" in response.text


def test_an_upload_is_stored_replaced_and_refused_once_accepted(
    client: TestClient, session: Session, participant: Application, tutor_user: StaffUser
) -> None:
    token = token_of(session, participant)
    first = upload(client, token, pdf_bytes(), "Strategy draft.pdf")
    assert first.status_code == 303
    assert first.headers["location"].endswith("#final-work-heading")
    work = work_of(session, participant)
    assert (work.status, work.filename, work.version) == ("submitted", "Strategy draft.pdf", 1)
    first_key = work.file_key
    storage = client.app.state.storage  # type: ignore[attr-defined]
    assert storage.exists(first_key)

    second = upload(client, token, pdf_bytes(pages=2), "Strategy final.pdf")
    assert second.status_code == 303
    work = work_of(session, participant)
    assert work.filename == "Strategy final.pdf" and work.version == 2
    assert work.file_key != first_key
    assert not storage.exists(first_key)
    download = client.get(f"/portal/{token}/final-work.pdf")
    assert download.status_code == 200
    assert download.content == pdf_bytes(pages=2)
    assert download.headers["cache-control"] == "private, no-store"

    service.assess_final_work(
        session,
        application_id=participant.id or 0,
        status="accepted",
        note="",
        actor=tutor_user.email,
        secret_key=FACTORY_SECRET,
        base_url="http://testserver",
    )
    page = client.get(f"/portal/{token}").text
    assert "accepted and can no longer be replaced" in page
    assert 'id="final_work"' not in page
    refused = upload(client, token, pdf_bytes(), "late.pdf")
    assert refused.status_code == 409
    assert "can no longer be replaced" in refused.text
    assert work_of(session, participant).filename == "Strategy final.pdf"
    actions = session.exec(
        select(AuditEntry.action).where(AuditEntry.entity_id == str(participant.id))
    ).all()
    assert {"final_work.uploaded", "final_work.replaced", "final_work.assessed"} <= set(actions)


def test_a_token_opens_only_its_own_final_work(
    client: TestClient, session: Session, participant: Application, edition: Edition
) -> None:
    other = make_eligible_participant(session, edition, given_name="Other")
    upload(client, token_of(session, participant), pdf_bytes(), "mine.pdf")
    # The other participant's file is stored elsewhere: their token never reaches this one.
    response = client.get(f"/portal/{token_of(session, other)}/final-work.pdf")
    assert response.status_code == 404
    assert client.get("/portal/not-a-token/final-work.pdf").status_code == 404


# The tutors' page


def test_a_tutor_lists_downloads_and_assesses_final_works(
    client: TestClient,
    session: Session,
    participant: Application,
    edition: Edition,
    tutor_user: StaffUser,
) -> None:
    upload(client, token_of(session, participant), pdf_bytes(), "work.pdf")
    assert login(client, "tutor@example.org", TUTOR_PASSWORD).status_code == 303
    page = client.get(f"/admin/final-works?edition={edition.slug}")
    assert page.status_code == 200
    assert f'id="participant-{participant.id}"' in page.text
    assert 'href="/admin/final-works"' in page.text
    assert client.get(f"/admin/applications/{participant.id}/final-work.pdf").content == (
        pdf_bytes()
    )
    work = work_of(session, participant)
    response = client.post(
        f"/admin/applications/{participant.id}/final-work",
        data={
            "csrf_token": csrf_from(page.text),
            "status": "rejected",
            "note": "The indicators section is missing.",
            "version": str(work.version),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    work = work_of(session, participant)
    assert (work.status, work.assessed_by) == ("rejected", "tutor@example.org")
    mail = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "final_work_rejected")
    ).one()
    assert mail.to_address == participant.email
    assert "The indicators section is missing." in mail.body_text
    assert "/portal/" in mail.body_text
    listing = client.get(f"/admin/final-works?edition={edition.slug}&show=rejected").text
    assert "The indicators section is missing." in listing


def test_a_stale_assessment_form_gets_409_with_what_is_stored_now(
    client: TestClient,
    session: Session,
    participant: Application,
    edition: Edition,
    tutor_user: StaffUser,
    admin_user: StaffUser,
) -> None:
    upload(client, token_of(session, participant), pdf_bytes(), "work.pdf")
    seen = work_of(session, participant).version
    assert login(client, "tutor@example.org", TUTOR_PASSWORD).status_code == 303
    page = client.get(f"/admin/final-works?edition={edition.slug}")
    # Another tutor decided first.
    service.assess_final_work(
        session,
        application_id=participant.id or 0,
        status="accepted",
        note="Well argued.",
        actor="other.tutor@example.org",
        secret_key=FACTORY_SECRET,
        base_url="http://testserver",
    )
    response = client.post(
        f"/admin/applications/{participant.id}/final-work",
        data={
            "csrf_token": csrf_from(page.text),
            "status": "rejected",
            "note": "Needs more sources.",
            "version": str(seen),
        },
    )
    assert response.status_code == 409
    assert "Someone else changed this final work meanwhile" in response.text
    assert "other.tutor@example.org" in response.text
    assert "Needs more sources." in response.text
    assert work_of(session, participant).status == "accepted"


def test_rejecting_without_a_note_is_refused_next_to_the_note(
    client: TestClient,
    session: Session,
    participant: Application,
    edition: Edition,
    tutor_user: StaffUser,
) -> None:
    upload(client, token_of(session, participant), pdf_bytes(), "work.pdf")
    assert login(client, "tutor@example.org", TUTOR_PASSWORD).status_code == 303
    page = client.get(f"/admin/final-works?edition={edition.slug}")
    response = client.post(
        f"/admin/applications/{participant.id}/final-work",
        data={"csrf_token": csrf_from(page.text), "status": "rejected", "note": " "},
    )
    assert response.status_code == 422
    assert f'id="note-{participant.id}-error"' in response.text
    assert work_of(session, participant).status == "submitted"


def test_the_tutors_page_needs_a_login(client: TestClient, edition: Edition) -> None:
    response = client.get("/admin/final-works", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login")


# The API


def test_a_tutor_records_an_assessment_through_the_api(
    client: TestClient,
    session: Session,
    participant: Application,
    tutor_headers: dict[str, str],
) -> None:
    upload(client, token_of(session, participant), pdf_bytes(), "work.pdf")
    response = client.put(
        f"/api/v1/applications/{participant.id}/final-work",
        json={"status": "accepted", "note": "Clear and well sourced."},
        headers=tutor_headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "accepted"
    assert body["assessed_by"] == "tutor@example.org"
    assert body["assessed_at"].endswith(("+01:00", "+02:00"))
    assert body["version"] == 2


def test_the_api_refuses_anonymous_calls_and_portal_tokens(
    client: TestClient, session: Session, participant: Application
) -> None:
    token = token_of(session, participant)
    upload(client, token, pdf_bytes(), "work.pdf")
    path = f"/api/v1/applications/{participant.id}/final-work"
    anonymous = client.put(path, json={"status": "accepted"})
    assert anonymous.status_code == 401
    with_portal_token = client.put(
        path, json={"status": "accepted"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert with_portal_token.status_code == 401
    assert work_of(session, participant).status == "submitted"


def test_the_api_answers_409_with_the_current_state_and_422_for_bad_input(
    client: TestClient,
    session: Session,
    participant: Application,
    tutor_headers: dict[str, str],
) -> None:
    upload(client, token_of(session, participant), pdf_bytes(), "work.pdf")
    path = f"/api/v1/applications/{participant.id}/final-work"
    first = client.put(path, json={"status": "presented", "version": 1}, headers=tutor_headers)
    assert first.status_code == 200
    stale = client.put(
        path, json={"status": "rejected", "note": "No.", "version": 1}, headers=tutor_headers
    )
    assert stale.status_code == 409
    assert stale.json()["current"]["status"] == "presented"
    assert stale.json()["current"]["version"] == 2
    wrong = client.put(path, json={"status": "great"}, headers=tutor_headers)
    assert wrong.status_code == 422
    no_note = client.put(path, json={"status": "rejected"}, headers=tutor_headers)
    assert no_note.status_code == 422
    assert no_note.json()["detail"][0]["loc"] == ["body", "note"]
    nothing = client.put(
        "/api/v1/applications/999999/final-work", json={"status": "accepted"}, headers=tutor_headers
    )
    assert nothing.status_code == 404


def test_the_application_api_shows_final_work_and_eligibility(
    client: TestClient,
    session: Session,
    edition: Edition,
    admin_headers: dict[str, str],
) -> None:
    application = make_eligible_participant(session, edition)
    body = client.get(f"/api/v1/applications/{application.id}", headers=admin_headers).json()
    assert body["final_work"]["status"] == "accepted"
    assert body["final_work"]["note"] == "A clear strategy with measurable goals."
    assert body["final_work"]["uploaded_at"] and body["final_work"]["assessed_at"]
    assert body["eligibility"] == {
        "eligible": True,
        "reasons": [],
        "overridden": False,
        "override_reason": None,
    }
    assert body["attendance"] is None or isinstance(body["attendance"], dict)


# Eligibility and overrides on the office's page


def test_the_office_sees_unmet_conditions_overrides_with_a_reason_and_sees_it_kept(
    client: TestClient,
    session: Session,
    participant: Application,
    admin_user: StaffUser,
) -> None:
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    page = client.get(f"/admin/applications/{participant.id}")
    assert page.status_code == 200
    assert 'id="eligibility-heading"' in page.text
    assert "No final work uploaded" in page.text
    assert 'for="override_reason"' in page.text

    short = client.post(
        f"/admin/applications/{participant.id}/eligibility-override",
        data={"csrf_token": csrf_from(page.text), "override_reason": "ok"},
    )
    assert short.status_code == 200
    assert 'id="override_reason-error"' in short.text
    assert "at least 10 characters" in short.text

    reason = "Handed in the final work on paper; the tutor accepted it in person."
    granted = client.post(
        f"/admin/applications/{participant.id}/eligibility-override",
        data={"csrf_token": csrf_from(page.text), "override_reason": reason},
    )
    assert granted.status_code == 200
    assert "Eligible by override" in granted.text
    assert reason in granted.text
    assert "Made eligible for the certificate by override" in granted.text
    entry = session.exec(
        select(AuditEntry).where(AuditEntry.action == "eligibility.override_granted")
    ).one()
    assert entry.after is not None and entry.after["reason"] == reason
    assert entry.after["unmet"] == ["no final work uploaded"]

    removed = client.post(
        f"/admin/applications/{participant.id}/eligibility-override/remove",
        data={
            "csrf_token": csrf_from(page.text),
            "removal_reason": "The paper copy was never received by the office.",
        },
    )
    assert removed.status_code == 200
    assert "Not eligible" in removed.text
    history = re.findall(r"Override (granted|removed):", removed.text)
    assert history == ["granted", "removed"]


def test_a_tutor_cannot_override_eligibility(
    client: TestClient, session: Session, participant: Application, tutor_user: StaffUser
) -> None:
    assert login(client, "tutor@example.org", TUTOR_PASSWORD).status_code == 303
    page = client.get("/admin/final-works")
    response = client.post(
        f"/admin/applications/{participant.id}/eligibility-override",
        data={"csrf_token": csrf_from(page.text), "override_reason": "A reason long enough."},
    )
    assert response.status_code == 403
    assert session.exec(select(AuditEntry).where(AuditEntry.action.startswith("elig"))).all() == []  # type: ignore[attr-defined]
