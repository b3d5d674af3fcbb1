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
from app.services.office.staff import LoginFailed, LoginThrottled, authenticate, login_delay
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


def _try_login(session: Session, settings: Settings, address: str, password: str) -> None:
    authenticate(
        session,
        email="admin@example.org",
        password=password,
        address=address,
        max_failures=settings.login_max_failures,
        window_seconds=settings.login_window_seconds,
        delay_seconds=settings.login_delay_seconds,
    )


def test_failures_from_one_address_never_keep_the_owner_out_from_another(
    admin_user: StaffUser, settings: Settings, session: Session
) -> None:
    for _ in range(settings.login_max_failures * 3):
        with pytest.raises((LoginFailed, LoginThrottled)):
            _try_login(session, settings, "203.0.113.66", "wrong")
    with pytest.raises(LoginThrottled):
        _try_login(session, settings, "203.0.113.66", ADMIN_PASSWORD)
    # The owner, at the office, is not locked out by what an outsider sent.
    _try_login(session, settings, "198.51.100.7", ADMIN_PASSWORD)


def test_the_wait_after_failures_doubles_with_each_failure_up_to_the_window() -> None:
    waits = [
        login_delay(n, max_failures=5, delay_seconds=30, cap_seconds=900) for n in range(4, 12)
    ]
    assert waits == [0, 30, 60, 120, 240, 480, 900, 900]


def test_after_the_wait_the_right_password_logs_in_from_the_same_address(
    admin_user: StaffUser, settings: Settings, session: Session
) -> None:
    for _ in range(settings.login_max_failures):
        with pytest.raises(LoginFailed):
            _try_login(session, settings, "203.0.113.66", "wrong")
    with pytest.raises(LoginThrottled) as throttled:
        _try_login(session, settings, "203.0.113.66", ADMIN_PASSWORD)
    wait = throttled.value.retry_after
    assert 0 < wait <= settings.login_delay_seconds * 2
    # The throttled attempt counted as one more failure: the next wait is twice as long.
    later = utcnow() - timedelta(seconds=settings.login_delay_seconds * 2 + 1)
    session.exec(update(LoginAttempt).values(at=later))
    session.commit()
    _try_login(session, settings, "203.0.113.66", ADMIN_PASSWORD)


def test_a_throttled_login_says_how_long_to_wait(
    client: TestClient, admin_user: StaffUser, settings: Settings
) -> None:
    for _ in range(settings.login_max_failures):
        assert token_status(client, "admin@example.org", "wrong") == 401
    response = client.post(
        "/api/v1/auth/token", data={"username": "admin@example.org", "password": "wrong"}
    )
    assert response.status_code == 429
    assert 0 < int(response.headers["retry-after"]) <= settings.login_window_seconds


def test_the_owner_is_told_once_by_email_of_repeated_failed_logins(
    client: TestClient, admin_user: StaffUser, settings: Settings, session: Session
) -> None:
    for _ in range(settings.login_max_failures + 3):
        assert token_status(client, "admin@example.org", "wrong") in (401, 429)
    notices = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "login_failures")
    ).all()
    assert [n.to_address for n in notices] == ["admin@example.org"]
    assert str(settings.login_max_failures) in notices[0].body_text


def test_failed_logins_to_an_unknown_account_send_no_mail(
    client: TestClient, settings: Settings, session: Session
) -> None:
    for _ in range(settings.login_max_failures + 1):
        token_status(client, "nobody@example.org", "wrong")
    notices = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "login_failures"))
    assert notices.all() == []
