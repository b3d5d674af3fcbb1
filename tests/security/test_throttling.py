"""Guessing is throttled: staff log-in (per account and per address), certificate
verification, and re-sending a portal link (which would otherwise fill a mailbox).

The per-account log-in limit with the right password refused is in tests/routers/test_auth.py.
"""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select, update

from app.clock import utcnow
from app.config import Settings
from app.models import LoginAttempt, OutboxMessage, StaffUser
from app.platform import rate_limit
from app.services.registrations.applications import LINK_RESENDS_PER_HOUR
from tests.conftest import ADMIN_PASSWORD
from tests.security import csrf_for, two_participants


def token_status(client: TestClient, email: str, password: str) -> int:
    response = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    return response.status_code


def test_one_address_trying_many_accounts_is_throttled_for_every_account(
    client: TestClient, admin_user: StaffUser, settings: Settings, session: Session
) -> None:
    # Spread over accounts so no single account reaches its own limit.
    per_address = settings.login_max_failures * 4
    for n in range(per_address):
        assert token_status(client, f"guess{n}@example.org", "wrong") == 401
    assert token_status(client, "admin@example.org", ADMIN_PASSWORD) == 429
    assert token_status(client, "someone-new@example.org", "x") == 429
    refused = session.exec(select(LoginAttempt).where(col(LoginAttempt.succeeded).is_(False)))
    assert len(refused.all()) == per_address + 2


def test_the_throttle_lifts_when_the_failures_leave_the_window(
    client: TestClient, admin_user: StaffUser, settings: Settings, session: Session
) -> None:
    for _ in range(settings.login_max_failures):
        assert token_status(client, "admin@example.org", "wrong") == 401
    assert token_status(client, "admin@example.org", ADMIN_PASSWORD) == 429
    session.exec(
        update(LoginAttempt).values(
            at=utcnow() - timedelta(seconds=settings.login_window_seconds + 1)
        )
    )
    session.commit()
    assert token_status(client, "admin@example.org", ADMIN_PASSWORD) == 200


def test_the_login_form_is_throttled_like_the_api(
    client: TestClient, admin_user: StaffUser, settings: Settings
) -> None:
    for _ in range(settings.login_max_failures):
        csrf = csrf_for(client, "/admin/login")
        client.post(
            "/admin/login",
            data={"email": "admin@example.org", "password": "wrong", "csrf_token": csrf},
        )
    csrf = csrf_for(client, "/admin/login")
    page = client.post(
        "/admin/login",
        data={"email": "admin@example.org", "password": ADMIN_PASSWORD, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert page.status_code == 429
    assert "Too many failed attempts" in page.text
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_certificate_verification_is_throttled_per_address(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One instant for every look-up: a slow run must not cross into the next window.
    instant = rate_limit.utcnow()
    monkeypatch.setattr(rate_limit, "utcnow", lambda: instant)
    limit = settings.certificate_verify_limit
    for n in range(limit):
        response = client.get(f"/verify/C-2026-{n:05d}", follow_redirects=False)
        assert response.status_code != 429, n
    throttled = client.get("/verify/C-2026-99999", follow_redirects=False)
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0


def test_a_portal_link_is_re_sent_only_a_few_times_an_hour(
    client: TestClient, session: Session
) -> None:
    edition, attacker, _ = two_participants(session)
    page = f"/editions/{edition.slug}/portal-link"
    for _ in range(LINK_RESENDS_PER_HOUR + 5):
        csrf = csrf_for(client, page)
        response = client.post(page, data={"email": attacker.application.email, "csrf_token": csrf})
        # The same answer every time: the page never tells whether an address applied.
        assert response.status_code == 200
    sent = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.kind == "portal_link",
            OutboxMessage.application_id == attacker.application.id,
        )
    ).all()
    assert len(sent) == LINK_RESENDS_PER_HOUR
