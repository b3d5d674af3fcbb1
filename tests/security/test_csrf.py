"""Every form refuses a request without the session's CSRF token, and changes nothing.

`tests/routers/test_structure.py` checks that every state-changing page route declares the
check; this sends the forged requests: each such route is walked from the application and
posted by a logged-in administrator (so only the token can stop it), without a token, with
another session's token, and with a wrong header, the way a hostile page would.
"""

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Edition, StaffUser
from tests.conftest import ADMIN_PASSWORD
from tests.routers.office.test_auth import login
from tests.security import (
    Participant,
    all_routes,
    csrf_for,
    database_state,
    fill,
    two_participants,
)

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
NO_CSRF_PREFIXES = ("/api/", "/stripe/")


def form_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every page route that changes state."""
    return [
        (method, route.path)
        for route in all_routes(app)
        if not route.path.startswith(NO_CSRF_PREFIXES)
        for method in sorted((route.methods or set()) & UNSAFE)
    ]


@pytest.fixture
def people(session: Session) -> tuple[Edition, Participant, Participant]:
    """An edition with two paying participants."""
    edition, attacker, victim = two_participants(session)
    session.refresh(edition)
    return edition, attacker, victim


def _values(people: tuple[Edition, Participant, Participant]) -> dict[str, Any]:
    edition, attacker, _ = people
    return {
        "slug": edition.slug,
        "token": attacker.token,
        "application_id": attacker.application.id,
        "number": attacker.invoice.number,
        "session_id": edition.modules[0].sessions[0].id,
    }


def _plausible_form(people: tuple[Edition, Participant, Participant]) -> dict[str, str]:
    """Fields a forged form would fill so that, without the check, it would do something."""
    _, attacker, _ = people
    return {
        "decision": "reject",
        "amount": "10.00",
        "received_on": "2026-01-02",
        "method": "bank_transfer",
        "email": "admin@example.org",
        "password": ADMIN_PASSWORD,
        "note": "forged",
        "status": "absent",
        "invoice": attacker.invoice.number,
        "confirm": "yes",
    }


def test_every_form_route_is_found(test_app: FastAPI) -> None:
    routes = form_routes(test_app)
    assert ("POST", "/admin/login") in routes
    assert ("POST", "/portal/{token}/withdraw") in routes
    assert len(routes) >= 40


@pytest.mark.parametrize(
    "forgery",
    ["no token", "another session's token", "a wrong header", "an empty token"],
)
def test_a_forged_form_is_refused_everywhere_and_changes_nothing(
    forgery: str,
    client: TestClient,
    session: Session,
    test_app: FastAPI,
    admin_user: StaffUser,
    people: tuple[Edition, Participant, Participant],
) -> None:
    values = _values(people)
    # A token that is valid, but for somebody else's session.
    stranger = TestClient(test_app)
    foreign = csrf_for(stranger, "/admin/login")
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    own = csrf_for(client, "/admin")
    assert own != foreign
    before = database_state(session)
    for method, path in form_routes(test_app):
        data = _plausible_form(people)
        headers: dict[str, str] = {}
        if forgery == "another session's token":
            data["csrf_token"] = foreign
        elif forgery == "a wrong header":
            headers["X-CSRF-Token"] = own[::-1]
        elif forgery == "an empty token":
            data["csrf_token"] = ""
            headers["X-CSRF-Token"] = ""
        response = client.request(
            method, fill(path, values), data=data, headers=headers, follow_redirects=False
        )
        assert response.status_code == 403, (forgery, method, path, response.status_code)
        assert "did not come from this site" in response.text
    assert database_state(session) == before
    # The session itself still works: the refusal was the token's, not the login's.
    assert client.get("/admin").status_code == 200


def test_the_same_forms_with_the_sessions_token_get_past_the_check(
    client: TestClient,
    session: Session,
    test_app: FastAPI,
    admin_user: StaffUser,
    people: tuple[Edition, Participant, Participant],
) -> None:
    values = _values(people)
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    own = csrf_for(client, "/admin")
    for method, path in form_routes(test_app):
        if path in ("/admin/logout", "/admin/login"):
            continue
        response = client.request(
            method,
            fill(path, values),
            data={"csrf_token": own},
            follow_redirects=False,
        )
        assert response.status_code < 500, (method, path)
        assert "did not come from this site" not in response.text, (method, path)
