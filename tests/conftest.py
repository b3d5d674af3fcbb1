"""Fixtures: every database test runs on SQLite and on PostgreSQL, each test rolls back."""

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

_TMP = Path(tempfile.mkdtemp(prefix="diplomat-tests-"))
os.environ["DIPLOMAT_ENVIRONMENT"] = "test"
os.environ["DIPLOMAT_VAR_DIR"] = str(_TMP / "var")
os.environ["DIPLOMAT_SECRET_KEY"] = "test-secret-key-" + "x" * 32
os.environ["DIPLOMAT_DATABASE_URL"] = f"sqlite:///{_TMP / 'default.db'}"

import app.services.office.staff  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import alembic_config, make_engine  # noqa: E402
from app.main import create_app  # noqa: E402
from app.platform.jobs import Work  # noqa: E402
from app.routers.billing.pages import import_launcher  # noqa: E402
from app.routers.certificates.issuing import run_launcher  # noqa: E402
from app.routers.registrations.public import link_launcher  # noqa: E402
from app.services.office.staff import create_user  # noqa: E402
from app.web.sessions import get_read_session, get_session  # noqa: E402
from tests.en16931 import Rules, compile_rules  # noqa: E402

# Argon2's production cost (about half a second a hash here) would dominate the suite; the
# tests check behaviour, not the cost, so they hash with the cheapest parameters.
app.services.office.staff._hasher = PasswordHasher.from_parameters(CHEAPEST)

POSTGRES_ENV = "DIPLOMAT_TEST_POSTGRES_URL"
ADMIN_PASSWORD = "admin-password-123"
TUTOR_PASSWORD = "tutor-password-123"


def migrate(url: str) -> None:
    """Bring a fresh database to the head revision, as `diplomat db upgrade` does."""
    command.upgrade(alembic_config(url), "head")


def require_in_ci(reason: str) -> None:
    """Skip with a visible reason on a developer's machine; fail under CI, where all must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def fresh_postgres_database(template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database on the test server, dropped afterwards: empty, or a copy of
    the database named `template` (which nobody may be connected to)."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        require_in_ci(f"{POSTGRES_ENV} is not set: the PostgreSQL half of the suite did not run")
        raise AssertionError("unreachable")
    name = f"diplomat_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin_engine = create_engine(base, isolation_level="AUTOCOMMIT")
    copy = f' TEMPLATE "{template}"' if template else ""
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin_engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run."""
    with fresh_postgres_database() as url:
        yield url


def sqlite_url(name: str) -> str:
    """A SQLite database file in this run's temporary folder."""
    return f"sqlite:///{_TMP / name}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated database of each kind, shared by the tests of one run."""
    if request.param == "sqlite":
        url = sqlite_url("suite.db")
    else:
        url = request.getfixturevalue("postgres_url")
    migrate(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """The engine of the database under test."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose commits are savepoints inside one transaction rolled back at the end."""
    connection = engine.connect()
    transaction = connection.begin()
    db_session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield db_session
    finally:
        db_session.close()
        transaction.rollback()
        connection.close()


@pytest.fixture(scope="session")
def app_settings(database_url: str) -> Settings:
    """Settings for the application under test on one database."""
    return Settings(
        environment="test",
        database_url=database_url,
        secret_key="test-secret-key-" + "x" * 32,
        var_dir=_TMP / "var",
        login_max_failures=3,
        mail_worker_in_process=False,
    )


@pytest.fixture
def settings(app_settings: Settings) -> Settings:
    """The settings of the application under test (copy them to change any)."""
    return app_settings


@pytest.fixture(scope="session")
def test_app(app_settings: Settings) -> FastAPI:
    """One application per database: FastAPI analyses every route on its first request."""
    return create_app(app_settings)


@pytest.fixture
def client(test_app: FastAPI, session: Session) -> Iterator[TestClient]:
    """An HTTP client for the app, whose requests and jobs all use the test's session."""

    def _session(_: Request) -> Iterator[Session]:
        yield session

    def _in_place(work: Work) -> None:
        work(session)

    test_app.dependency_overrides[get_session] = _session
    test_app.dependency_overrides[get_read_session] = _session
    # Background jobs (bulk certificates, statement imports) run in the test's session too: a
    # thread of their own would write to the shared database after the test, under the next.
    test_app.dependency_overrides[run_launcher] = lambda: _in_place
    test_app.dependency_overrides[import_launcher] = lambda: _in_place
    test_app.dependency_overrides[link_launcher] = lambda: _in_place
    try:
        with TestClient(test_app, base_url="http://testserver") as test_client:
            yield test_client
    finally:
        test_app.dependency_overrides.clear()


@pytest.fixture
def admin_user(session: Session):  # type: ignore[no-untyped-def]
    """An administrator account."""
    return create_user(session, email="admin@example.org", password=ADMIN_PASSWORD, role="admin")


@pytest.fixture
def tutor_user(session: Session):  # type: ignore[no-untyped-def]
    """A tutor account."""
    return create_user(session, email="tutor@example.org", password=TUTOR_PASSWORD, role="tutor")


def bearer(client: TestClient, email: str, password: str) -> dict[str, str]:
    """Authorization headers for a staff member."""
    response = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def admin_headers(client: TestClient, admin_user: object) -> dict[str, str]:
    """Bearer headers of an administrator."""
    return bearer(client, "admin@example.org", ADMIN_PASSWORD)


@pytest.fixture
def tutor_headers(client: TestClient, tutor_user: object) -> dict[str, str]:
    """Bearer headers of a tutor."""
    return bearer(client, "tutor@example.org", TUTOR_PASSWORD)


@pytest.fixture(scope="session")
def en16931() -> Rules:
    """The official EN 16931 rules for UBL and CII, compiled once per test session."""
    return compile_rules()
