"""Staff login: tokens, sessions, throttling, CSRF and security headers."""

import re

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import LoginAttempt, StaffUser
from app.services.office.staff import hash_password
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD


def csrf_from(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def login(client: TestClient, email: str, password: str, next_url: str = "/admin"):  # type: ignore[no-untyped-def]
    page = client.get("/admin/login")
    return client.post(
        "/admin/login",
        data={
            "email": email,
            "password": password,
            "next": next_url,
            "csrf_token": csrf_from(page.text),
        },
        follow_redirects=False,
    )


def test_token_for_good_credentials(client: TestClient, admin_user: StaffUser) -> None:
    response = client.post(
        "/api/v1/auth/token", data={"username": "ADMIN@example.org ", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"


def test_wrong_password_is_401_and_logged(
    client: TestClient, admin_user: StaffUser, session: Session
) -> None:
    response = client.post(
        "/api/v1/auth/token", data={"username": "admin@example.org", "password": "wrong"}
    )
    assert response.status_code == 401
    attempts = session.exec(select(LoginAttempt)).all()
    assert [(a.email, a.succeeded) for a in attempts] == [("admin@example.org", False)]


def test_token_request_without_fields_is_422(client: TestClient) -> None:
    response = client.post("/api/v1/auth/token", data={})
    assert response.status_code == 422
    assert {e["loc"][-1] for e in response.json()["detail"]} == {"username", "password"}


def test_repeated_failures_are_throttled_even_with_the_right_password(
    client: TestClient, admin_user: StaffUser
) -> None:
    for _ in range(3):  # the test settings allow 3 failures
        client.post("/api/v1/auth/token", data={"username": "admin@example.org", "password": "x"})
    response = client.post(
        "/api/v1/auth/token", data={"username": "admin@example.org", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 429
    page = login(client, "admin@example.org", ADMIN_PASSWORD)
    assert page.status_code == 429
    assert "Too many failed attempts" in page.text


def test_a_deactivated_account_cannot_log_in(
    client: TestClient, admin_user: StaffUser, session: Session
) -> None:
    admin_user.active = False
    session.add(admin_user)
    session.commit()
    response = client.post(
        "/api/v1/auth/token", data={"username": "admin@example.org", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 401


def test_changing_the_password_ends_old_tokens(
    client: TestClient, admin_user: StaffUser, admin_headers: dict[str, str], session: Session
) -> None:
    admin_user.password_hash = hash_password("a-brand-new-password")
    session.add(admin_user)
    session.commit()
    response = client.post(
        "/api/v1/organisations", json={"name": "X", "country": "ES"}, headers=admin_headers
    )
    assert response.status_code == 401


def test_admin_pages_redirect_to_login(client: TestClient) -> None:
    response = client.get("/admin", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?next=%2Fadmin"


def test_login_starts_a_session_and_shows_the_admin_home(
    client: TestClient, admin_user: StaffUser
) -> None:
    response = login(client, "admin@example.org", ADMIN_PASSWORD)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"
    cookie = response.headers["set-cookie"]
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    home = client.get("/admin")
    assert home.status_code == 200
    assert "admin@example.org" in home.text


def test_login_never_redirects_off_site(client: TestClient, admin_user: StaffUser) -> None:
    response = login(client, "admin@example.org", ADMIN_PASSWORD, next_url="https://evil.example")
    assert response.headers["location"] == "/admin"
    response = login(client, "admin@example.org", ADMIN_PASSWORD, next_url="//evil.example")
    assert response.headers["location"] == "/admin"


def test_wrong_password_on_the_form_keeps_the_email_and_says_why(
    client: TestClient, admin_user: StaffUser
) -> None:
    response = login(client, "admin@example.org", "nope")
    assert response.status_code == 401
    assert "Wrong e-mail or password." in response.text
    assert 'value="admin@example.org"' in response.text


def test_tutor_sees_the_staff_home(client: TestClient, tutor_user: StaffUser) -> None:
    login(client, "tutor@example.org", TUTOR_PASSWORD)
    assert client.get("/admin").status_code == 200


def test_form_post_without_csrf_token_is_refused(client: TestClient, admin_user: StaffUser) -> None:
    client.get("/admin/login")
    response = client.post(
        "/admin/login",
        data={"email": "admin@example.org", "password": ADMIN_PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "expired" in response.text


def test_form_post_with_another_sessions_token_is_refused(
    client: TestClient, admin_user: StaffUser
) -> None:
    token = csrf_from(client.get("/admin/login").text)
    client.cookies.clear()
    client.get("/admin/login")
    response = client.post(
        "/admin/login",
        data={"email": "admin@example.org", "password": ADMIN_PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 403


def test_logout_needs_the_token_and_ends_the_session(
    client: TestClient, admin_user: StaffUser
) -> None:
    login(client, "admin@example.org", ADMIN_PASSWORD)
    home = client.get("/admin")
    assert client.post("/admin/logout", follow_redirects=False).status_code == 403
    response = client.post(
        "/admin/logout", data={"csrf_token": csrf_from(home.text)}, follow_redirects=False
    )
    assert response.status_code == 303
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_htmx_requests_may_carry_the_token_in_a_header(
    client: TestClient, admin_user: StaffUser
) -> None:
    login(client, "admin@example.org", ADMIN_PASSWORD)
    home = client.get("/admin")
    header_token = re.search(r'"X-CSRF-Token": "([^"]+)"', home.text)
    assert header_token
    response = client.post(
        "/admin/logout", headers={"X-CSRF-Token": header_token.group(1)}, follow_redirects=False
    )
    assert response.status_code == 303


def test_every_page_carries_the_security_headers(client: TestClient) -> None:
    for path in ("/", "/admin/login", "/api/v1/editions", "/nowhere"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self';" in csp
        assert "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"


def test_pages_have_no_inline_script(client: TestClient) -> None:
    html = client.get("/admin/login").text
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None
    assert " on" + "click=" not in html
