"""Fixtures of the billing tests: a database of their own for tests that commit for real."""

import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from app.db import make_engine
from tests.conftest import fresh_postgres_database, migrate, sqlite_url


@pytest.fixture
def fresh_engine(engine: Engine) -> Iterator[Engine]:
    """A new database of the kind under test: tax records written there can never be deleted,
    so tests that commit them do it where nobody else looks."""
    if engine.dialect.name == "postgresql":
        with fresh_postgres_database() as url:
            migrate(url)
            own = make_engine(url)
            yield own
            own.dispose()
    else:
        url = sqlite_url(f"billing-{secrets.token_hex(4)}.db")
        migrate(url)
        own = make_engine(url)
        yield own
        own.dispose()
