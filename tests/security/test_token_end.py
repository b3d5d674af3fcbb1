"""An API token ends with its owner's logout, a new password or the account closed."""

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import StaffUser
from app.services.office.staff import change_password, deactivate_user
from tests.conftest import ADMIN_PASSWORD, bearer


def can_call(client: TestClient, headers: dict[str, str]) -> bool:
    status = client.get("/api/v1/applications", headers=headers).status_code
    assert status in (200, 401)
    return status == 200


def test_logout_ends_the_token_it_carries(client: TestClient, admin_user: StaffUser) -> None:
    headers = bearer(client, "admin@example.org", ADMIN_PASSWORD)
    assert can_call(client, headers)
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert not can_call(client, headers)
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 401


def test_logout_ends_every_token_of_the_account_and_a_new_one_works(
    client: TestClient, admin_user: StaffUser
) -> None:
    first = bearer(client, "admin@example.org", ADMIN_PASSWORD)
    second = bearer(client, "admin@example.org", ADMIN_PASSWORD)
    assert client.post("/api/v1/auth/logout", headers=first).status_code == 204
    assert not can_call(client, second)
    assert can_call(client, bearer(client, "admin@example.org", ADMIN_PASSWORD))


def test_a_password_change_ends_the_tokens_issued_before(
    client: TestClient, admin_user: StaffUser, session: Session
) -> None:
    headers = bearer(client, "admin@example.org", ADMIN_PASSWORD)
    change_password(session, email="admin@example.org", password="a-brand-new-password")
    assert not can_call(client, headers)
    assert can_call(client, bearer(client, "admin@example.org", "a-brand-new-password"))


def test_setting_the_same_password_again_still_ends_the_tokens(
    client: TestClient, admin_user: StaffUser, session: Session
) -> None:
    headers = bearer(client, "admin@example.org", ADMIN_PASSWORD)
    change_password(session, email="admin@example.org", password=ADMIN_PASSWORD)
    assert not can_call(client, headers)


def test_deactivating_an_account_ends_its_tokens_and_its_logins(
    client: TestClient, admin_user: StaffUser, session: Session
) -> None:
    headers = bearer(client, "admin@example.org", ADMIN_PASSWORD)
    deactivate_user(session, email="admin@example.org")
    assert not can_call(client, headers)
    refused = client.post(
        "/api/v1/auth/token", data={"username": "admin@example.org", "password": ADMIN_PASSWORD}
    )
    assert refused.status_code == 401
