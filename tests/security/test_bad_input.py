"""Bad input gets a 4xx naming the field, never a 500 or a "database unavailable": dates
beyond any course, NUL characters, searches a megabyte long, cancellations without a zone or
received before the application."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Cancellation, Organisation, StaffUser
from app.platform.storage import LocalStorage
from tests.factories import edition_payload, open_edition
from tests.routers.registrations.test_cancellations import body, participant
from tests.security import csrf_for


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path)


def fields_at_fault(response_json: dict[str, object]) -> set[str]:
    detail = response_json["detail"]
    assert isinstance(detail, list)
    return {str(fault["loc"][-1]) for fault in detail}


@pytest.mark.parametrize(
    ("start", "end", "fields"),
    [
        ("9998-12-30", "9999-12-31", {"start_date", "end_date"}),
        ("2026-11-16", "9999-12-31", {"end_date"}),
        ("1900-01-01", "1900-01-05", {"start_date", "end_date"}),
    ],
)
def test_edition_dates_beyond_any_course_are_refused_naming_them(
    client: TestClient, admin_headers: dict[str, str], start: str, end: str, fields: set[str]
) -> None:
    response = client.post(
        "/api/v1/editions",
        json=edition_payload(start_date=start, end_date=end),
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text
    assert fields_at_fault(response.json()) == fields


def test_an_edition_cannot_be_moved_to_the_year_9999(
    client: TestClient, admin_headers: dict[str, str], session: Session
) -> None:
    edition = open_edition(session)
    response = client.patch(
        f"/api/v1/editions/{edition.slug}", json={"end_date": "9999-12-31"}, headers=admin_headers
    )
    assert response.status_code == 422
    assert fields_at_fault(response.json()) == {"end_date"}
    assert client.get(f"/editions/{edition.slug}/programme.ics").status_code == 200


def test_a_nul_in_a_json_text_is_refused_naming_the_field(
    client: TestClient, admin_headers: dict[str, str], session: Session
) -> None:
    response = client.post(
        "/api/v1/organisations",
        json={"name": "City\u0000Network", "country": "ES"},
        headers=admin_headers,
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]
    assert session.exec(select(Organisation)).all() == []


def test_a_nul_in_a_nested_json_text_names_its_place(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    payload = edition_payload()
    payload["fees"]["standard"] = "1500\u0000"
    response = client.post("/api/v1/editions", json=payload, headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "fees", "standard"]


def test_a_nul_in_a_form_field_is_refused_naming_the_field(
    client: TestClient, session: Session
) -> None:
    edition = open_edition(session)
    page = f"/editions/{edition.slug}/portal-link"
    csrf = csrf_for(client, page)
    response = client.post(page, data={"email": "ama\x00@x.org", "csrf_token": csrf})
    assert response.status_code == 422
    assert "email" in response.text


def test_a_nul_in_a_query_is_refused_naming_it(client: TestClient) -> None:
    response = client.get("/api/v1/organisations", params={"q": "Bar\x00celona"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "q"]


def test_a_megabyte_search_on_the_group_form_is_refused_not_answered_busy(
    client: TestClient, session: Session
) -> None:
    edition = open_edition(session)
    page = f"/editions/{edition.slug}/groups/new"
    # As long as a client sends in a URL; longer goes in the form's body instead.
    response = client.get(page, params={"org_q": "a" * 60_000})
    assert response.status_code == 422
    assert "org_q" in response.text
    csrf = csrf_for(client, page)
    response = client.post(
        page,
        data={"org_q": "a" * 200_000, "contact_email": "c@x.org", "csrf_token": csrf},
    )
    assert response.status_code == 422
    assert "The search is too long." in response.text


def test_an_organisation_search_longer_than_a_name_is_refused_naming_it(
    client: TestClient,
) -> None:
    response = client.get("/api/v1/organisations", params={"q": "a" * 500})
    assert response.status_code == 422
    assert fields_at_fault(response.json()) == {"q"}


def test_a_cancellation_time_without_a_zone_is_refused(
    client: TestClient,
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    admin_headers: dict[str, str],
) -> None:
    application = participant(session, storage, admin_user)
    bare = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    response = client.post(
        f"/api/v1/applications/{application.id}/cancellation",
        json=body(application, bare),
        headers=admin_headers,
    )
    assert response.status_code == 422
    assert fields_at_fault(response.json()) == {"received_at"}
    assert session.exec(select(Cancellation)).all() == []


def test_a_cancellation_received_before_the_application_is_refused_and_grants_nothing(
    client: TestClient,
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    admin_headers: dict[str, str],
) -> None:
    application = participant(session, storage, admin_user)
    before = (application.submitted_at - timedelta(days=30)).isoformat()
    response = client.post(
        f"/api/v1/applications/{application.id}/cancellation",
        json=body(application, before),
        headers=admin_headers,
    )
    assert response.status_code == 422
    assert fields_at_fault(response.json()) == {"received_at"}
    assert session.exec(select(Cancellation)).all() == []
