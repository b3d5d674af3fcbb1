""" "Resend my link" tells nobody who applied: the address is looked up after the answer."""

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import OutboxMessage
from app.platform.jobs import Work
from app.routers.registrations.public import link_launcher
from tests.security import csrf_for, two_participants


@pytest.fixture
def held(test_app: FastAPI, client: TestClient) -> Iterator[list[Work]]:
    """The work each request left for after its answer, not done yet."""
    works: list[Work] = []
    test_app.dependency_overrides[link_launcher] = lambda: works.append
    yield works


def ask_for_link(client: TestClient, page: str, email: str) -> tuple[int, str]:
    response = client.post(page, data={"email": email, "csrf_token": csrf_for(client, page)})
    return response.status_code, response.text.replace(email, "ADDRESS")


def test_the_answer_is_given_before_the_address_is_looked_up(
    client: TestClient, session: Session, held: list[Work]
) -> None:
    edition, applicant, _ = two_participants(session)
    page = f"/editions/{edition.slug}/portal-link"
    applied = ask_for_link(client, page, applicant.application.email)
    stranger = ask_for_link(client, page, "nobody-applied@example.org")
    # The same page, and no mail yet: nothing the answer's content or time depends on.
    assert applied == stranger
    assert applied[0] == 200
    assert (
        session.exec(select(OutboxMessage).where(OutboxMessage.kind == "portal_link")).all() == []
    )
    assert len(held) == 2
    for work in held:
        work(session)
    sent = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "portal_link")).all()
    assert [m.to_address for m in sent] == [applicant.application.email]
