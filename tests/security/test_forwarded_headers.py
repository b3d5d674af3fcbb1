"""A client's X-Forwarded-For is believed only from the proxies named in the settings
(none by default), so changing the header dodges no throttle."""

from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings
from app.main import create_app
from app.models import LoginAttempt
from app.web.sessions import get_read_session, get_session


def test_serve_believes_no_forwarded_header_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 0, result.output
    # uvicorn's own default trusts whatever 127.0.0.1 sends; the application decides instead.
    assert seen["proxy_headers"] is False


@pytest.fixture(scope="module")
def behind_proxy(app_settings: Settings) -> FastAPI:
    """The application behind a proxy at 10.0.0.1."""
    return create_app(app_settings.model_copy(update={"forwarded_allow_ips": "10.0.0.1"}))


@pytest.fixture
def wire_session(behind_proxy: FastAPI, session: Session) -> Iterator[None]:
    def _session(_: Request) -> Iterator[Session]:
        yield session

    behind_proxy.dependency_overrides[get_session] = _session
    behind_proxy.dependency_overrides[get_read_session] = _session
    yield
    behind_proxy.dependency_overrides.clear()


def recorded_address(app: FastAPI, session: Session, peer: str, forwarded: str) -> str:
    with TestClient(app, client=(peer, 40000)) as client:
        client.post(
            "/api/v1/auth/token",
            data={"username": "x@example.org", "password": "wrong"},
            headers={"X-Forwarded-For": forwarded},
        )
    return session.exec(select(LoginAttempt.address)).one()


def test_the_named_proxy_reports_the_client(
    behind_proxy: FastAPI, wire_session: None, session: Session
) -> None:
    assert recorded_address(behind_proxy, session, "10.0.0.1", "198.51.100.7") == "198.51.100.7"


def test_anyone_else_forging_the_header_is_seen_as_themselves(
    behind_proxy: FastAPI, wire_session: None, session: Session
) -> None:
    assert recorded_address(behind_proxy, session, "203.0.113.5", "198.51.100.7") == "203.0.113.5"


def test_by_default_no_forwarded_header_is_believed(
    test_app: FastAPI, session: Session, client: TestClient
) -> None:
    # The fixture client already wires the session; a peer at 127.0.0.1 is no proxy either.
    assert recorded_address(test_app, session, "127.0.0.1", "198.51.100.7") == "127.0.0.1"


def test_a_changing_forwarded_header_does_not_dodge_the_certificate_throttle(
    behind_proxy: FastAPI, wire_session: None, settings: Settings
) -> None:
    statuses = []
    with TestClient(behind_proxy, client=("203.0.113.5", 40000)) as client:
        for n in range(settings.certificate_verify_limit + 1):
            response = client.get(
                f"/verify/C-2026-{n:05d}",
                headers={"X-Forwarded-For": f"192.0.2.{n % 250}"},
                follow_redirects=False,
            )
            statuses.append(response.status_code)
    assert statuses[-1] == 429
