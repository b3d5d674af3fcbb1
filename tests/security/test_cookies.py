"""The session cookie: HttpOnly, SameSite=Lax, Secure behind https, signed, ended by logout."""

import base64
import json
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.config import Settings
from app.main import create_app
from app.models import StaffUser
from app.web.sessions import get_session
from tests.conftest import ADMIN_PASSWORD
from tests.routers.office.test_auth import csrf_from, login
from tests.security import two_participants

COOKIE = "diplomat_session"


def session_cookie(response: object) -> dict[str, str | bool]:
    """The attributes of the session cookie a response sets (lower-case names)."""
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    for header in headers:
        parsed = SimpleCookie()
        parsed.load(header)
        if COOKIE in parsed:
            morsel = parsed[COOKIE]
            attributes: dict[str, str | bool] = {"value": morsel.value}
            for name in ("path", "samesite", "max-age", "expires", "domain"):
                if morsel[name]:
                    attributes[name] = str(morsel[name]).lower()
            lowered = header.lower()
            attributes["httponly"] = "httponly" in lowered
            attributes["secure"] = "; secure" in lowered
            return attributes
    raise AssertionError(f"no {COOKIE} cookie in {headers}")


def session_data(value: str) -> dict[str, object]:
    """What a session cookie holds (signed, not encrypted: nothing secret belongs in it)."""
    if value == "null":  # Starlette's way of deleting the cookie of an emptied session
        return {}
    payload = value.split(".", 1)[0]
    data: dict[str, object] = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    return data


@pytest.fixture
def https_app(app_settings: Settings, session: Session) -> Iterator[FastAPI]:
    """The application as production runs it: its public address is https."""
    settings = app_settings.model_copy(update={"base_url": "https://courses.example.org"})
    app = create_app(settings)

    def _session(_: Request) -> Iterator[Session]:
        yield session

    app.dependency_overrides[get_session] = _session
    yield app
    app.dependency_overrides.clear()


def test_over_http_the_cookie_is_httponly_lax_and_scoped_to_the_site(
    client: TestClient, admin_user: StaffUser
) -> None:
    cookie = session_cookie(login(client, "admin@example.org", ADMIN_PASSWORD))
    assert set(session_data(str(cookie["value"]))) == {"staff_id", "pw", "gen", "csrf"}
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "lax"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == str(12 * 3600)
    assert "domain" not in cookie
    # A development server on plain http: a Secure cookie would never come back.
    assert cookie["secure"] is False


def test_behind_https_the_cookie_is_secure_and_hsts_is_sent(
    https_app: FastAPI, admin_user: StaffUser
) -> None:
    with TestClient(https_app, base_url="https://courses.example.org") as client:
        page = client.get("/admin/login")
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        assert session_cookie(page)["secure"] is True
        response = client.post(
            "/admin/login",
            data={
                "email": "admin@example.org",
                "password": ADMIN_PASSWORD,
                "next": "/admin",
                "csrf_token": csrf_from(page.text),
            },
            follow_redirects=False,
        )
        assert response.status_code == 303
        cookie = session_cookie(response)
        assert cookie["secure"] is True and cookie["httponly"] is True
        assert cookie["samesite"] == "lax"


def test_a_portal_page_sets_the_same_kind_of_cookie(https_app: FastAPI, session: Session) -> None:
    _, attacker, _ = two_participants(session)
    with TestClient(https_app, base_url="https://courses.example.org") as client:
        cookie = session_cookie(client.get(f"/portal/{attacker.token}"))
    assert cookie["secure"] is True and cookie["httponly"] is True
    assert cookie["samesite"] == "lax"


def test_a_tampered_cookie_is_ignored(client: TestClient, admin_user: StaffUser) -> None:
    value = str(session_cookie(login(client, "admin@example.org", ADMIN_PASSWORD))["value"])
    payload, _, signature = value.partition(".")
    client.cookies.clear()
    client.cookies.set(COOKIE, payload + "." + signature[::-1])
    assert client.get("/admin", follow_redirects=False).status_code == 303
    client.cookies.set(COOKIE, value)
    assert client.get("/admin", follow_redirects=False).status_code == 200


def test_logging_out_ends_the_session_for_that_cookie(
    client: TestClient, admin_user: StaffUser
) -> None:
    login(client, "admin@example.org", ADMIN_PASSWORD)
    home = client.get("/admin")
    logout = client.post(
        "/admin/logout", data={"csrf_token": csrf_from(home.text)}, follow_redirects=False
    )
    assert "staff_id" not in session_data(str(session_cookie(logout)["value"]))
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_logging_out_ends_a_copy_of_the_cookie_taken_before_and_other_sessions(
    client: TestClient, admin_user: StaffUser, session: Session
) -> None:
    copied = str(session_cookie(login(client, "admin@example.org", ADMIN_PASSWORD))["value"])
    home = client.get("/admin")
    # The same member logged in on another computer.
    elsewhere = TestClient(client.app, base_url="http://testserver")
    login(elsewhere, "admin@example.org", ADMIN_PASSWORD)
    assert elsewhere.get("/admin", follow_redirects=False).status_code == 200
    client.post("/admin/logout", data={"csrf_token": csrf_from(home.text)})
    client.cookies.clear()
    client.cookies.set(COOKIE, copied)
    assert client.get("/admin", follow_redirects=False).status_code == 303
    assert elsewhere.get("/admin", follow_redirects=False).status_code == 303
    # Logging in again works, with a session of the new generation.
    login(client, "admin@example.org", ADMIN_PASSWORD)
    assert client.get("/admin", follow_redirects=False).status_code == 200
    session.refresh(admin_user)
    assert admin_user.session_generation == 2


def test_api_answers_set_no_cookie(client: TestClient, admin_user: StaffUser) -> None:
    response = client.post(
        "/api/v1/auth/token", data={"username": "admin@example.org", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
