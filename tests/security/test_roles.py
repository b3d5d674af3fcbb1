"""Roles: a tutor sees no money, admissions, registry, fees or certificates; strangers nothing.

Every route is walked from the application, so a new route is covered the day it exists:
an API route is administrators' only unless it is listed below as public or as open to
tutors, and a staff page whose address names money, admissions, the registry, fees,
certificates, the outbox, exports or the audit log must refuse tutors.
"""

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import StaffUser
from app.web.errors import api_routes
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD
from tests.routers.office.test_auth import login
from tests.security import (
    Participant,
    all_routes,
    csrf_for,
    database_state,
    fill,
    two_participants,
)

# Calls anyone may make.
PUBLIC_API = {
    ("POST", "/api/v1/auth/token"),
    ("GET", "/api/v1/editions"),
    ("GET", "/api/v1/editions/{slug}"),
    ("POST", "/api/v1/editions/{slug}/quote"),
    ("GET", "/api/v1/organisations"),
    ("POST", "/api/v1/editions/{slug}/applications"),
    ("POST", "/api/v1/editions/{slug}/groups"),
    ("GET", "/api/v1/certificates/{number}"),
    ("GET", "/api/v1/certificates/{number}/credential"),
}
# A tutor takes attendance and assesses final work (DOMAIN.md "People").
TUTOR_API = {
    ("PUT", "/api/v1/sessions/{session_id}/attendance/{application_id}"),
    ("GET", "/api/v1/editions/{slug}/attendance"),
    ("PUT", "/api/v1/applications/{application_id}/final-work"),
    # Every member of staff may end their own tokens.
    ("POST", "/api/v1/auth/logout"),
}
# What a tutor must never reach, API or page.
FORBIDDEN_TO_TUTORS = re.compile(
    r"invoice|payment|refund|statement|money|fees|income-groups|organisations|quote"
    r"|decision|cancellation|waiting-list|offers|new-link|notes|/cv$|fee-waiver|visa-letter"
    r"|certificate|eligibility-override|outbox|export|audit|logistics|bulk"
    r"|^/admin/applications(/\{application_id\})?$"
)
# Pages tutors use although their address matches a word above.
TUTOR_PAGES = {
    ("GET", "/admin/applications/{application_id}/final-work.pdf"),
    ("POST", "/admin/applications/{application_id}/final-work"),
}


def _values(session: Session, people: tuple[Any, Participant, Participant]) -> dict[str, Any]:
    edition, attacker, _ = people
    first_session = edition.modules[0].sessions[0]
    return {
        "slug": edition.slug,
        "application_id": attacker.application.id,
        "number": attacker.invoice.number,
        "session_id": first_session.id,
        "refund_id": 1,
        "fiscal_year": "2023",
        "code": "G-AAAA-AAAA",
        "organisation_id": 1,
        "message_id": 1,
        "cancellation_id": 1,
        "token": attacker.token,
    }


def _call(client: TestClient, method: str, url: str, **kwargs: Any) -> Any:
    if method == "GET":
        return client.get(url, follow_redirects=False, **kwargs)
    return client.request(method, url, json={}, follow_redirects=False, **kwargs)


@pytest.fixture
def people(session: Session) -> tuple[Any, Participant, Participant]:
    """An edition with two participants whose records the calls name."""
    edition, attacker, victim = two_participants(session)
    session.refresh(edition)
    return edition, attacker, victim


def test_every_api_route_is_classified(test_app: FastAPI) -> None:
    routes = {(m, r.path) for r in api_routes(test_app) for m in r.methods or ()}
    leaking = {(m, p) for m, p in TUTOR_API | PUBLIC_API if FORBIDDEN_TO_TUTORS.search(p)}
    # Meant for anyone: verifying a certificate, a price, the registry search (no dues data).
    assert leaking <= {
        ("GET", "/api/v1/certificates/{number}"),
        # The credential a wallet fetches: no name, the e-mail address only as a salted hash.
        ("GET", "/api/v1/certificates/{number}/credential"),
        ("POST", "/api/v1/editions/{slug}/quote"),
        ("GET", "/api/v1/organisations"),
    }
    assert routes >= TUTOR_API


def test_a_tutor_token_is_refused_every_administrators_call_and_changes_nothing(
    client: TestClient,
    session: Session,
    test_app: FastAPI,
    tutor_headers: dict[str, str],
    people: tuple[Any, Participant, Participant],
) -> None:
    values = _values(session, people)
    before = database_state(session)
    refused = []
    for route in api_routes(test_app):
        for method in sorted(route.methods or ()):
            if (method, route.path) in PUBLIC_API | TUTOR_API:
                continue
            response = _call(client, method, fill(route.path, values), headers=tutor_headers)
            refused.append((method, route.path))
            assert response.status_code == 403, (method, route.path, response.text)
            assert response.json() == {"detail": "Your role does not allow this call."}
    assert len(refused) >= 12
    money = [p for _, p in refused if re.search(r"invoice|payment|refund", p)]
    admission = [p for _, p in refused if re.search(r"decision|cancellation|applications$", p)]
    assert money and admission
    assert database_state(session) == before


def test_a_tutor_token_may_take_attendance_and_assess_final_work(
    client: TestClient,
    session: Session,
    tutor_headers: dict[str, str],
    people: tuple[Any, Participant, Participant],
) -> None:
    values = _values(session, people)
    # Logging out ends the token: it goes last.
    for method, path in sorted(sorted(TUTOR_API), key=lambda call: call[1].endswith("/logout")):
        response = _call(client, method, fill(path, values), headers=tutor_headers)
        assert response.status_code not in (401, 403), (method, path, response.text)


def test_without_a_token_only_the_public_calls_answer(
    client: TestClient,
    session: Session,
    test_app: FastAPI,
    people: tuple[Any, Participant, Participant],
) -> None:
    values = _values(session, people)
    for route in api_routes(test_app):
        for method in sorted(route.methods or ()):
            if (method, route.path) in PUBLIC_API:
                continue
            response = _call(client, method, fill(route.path, values))
            assert response.status_code == 401, (method, route.path)
            assert response.headers["www-authenticate"] == "Bearer"
            for bad in ("Bearer nonsense", f"Bearer {values['token']}", "Basic YWRtaW46eA=="):
                forged = _call(
                    client, method, fill(route.path, values), headers={"Authorization": bad}
                )
                assert forged.status_code == 401, (method, route.path, bad)


def test_a_tutor_is_refused_every_staff_page_about_money_admissions_and_the_registry(
    client: TestClient,
    session: Session,
    test_app: FastAPI,
    tutor_user: StaffUser,
    people: tuple[Any, Participant, Participant],
) -> None:
    values = _values(session, people)
    assert login(client, "tutor@example.org", TUTOR_PASSWORD).status_code == 303
    csrf = csrf_for(client, "/admin")
    before = database_state(session)
    checked = []
    for route in all_routes(test_app):
        if not route.path.startswith("/admin/") or not FORBIDDEN_TO_TUTORS.search(route.path):
            continue
        for method in sorted(route.methods or ()):
            if (method, route.path) in TUTOR_PAGES:
                continue
            url = fill(route.path, values)
            if method == "GET":
                response = client.get(url, follow_redirects=False)
            else:
                response = client.post(url, data={"csrf_token": csrf}, follow_redirects=False)
            checked.append((method, route.path))
            assert response.status_code == 403, (method, route.path, response.status_code)
            assert "Your role does not allow this page." in response.text
            for secret in people[1].secrets[:3] + people[2].secrets[:3]:
                assert secret not in response.text
    assert len(checked) >= 30
    assert database_state(session) == before


def test_an_administrator_reaches_the_pages_a_tutor_is_refused(
    client: TestClient, admin_user: StaffUser, people: tuple[Any, Participant, Participant]
) -> None:
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    for page in ("/admin/invoices", "/admin/money", "/admin/organisations", "/admin/refunds"):
        assert client.get(page).status_code == 200, page
