"""Attacks on the running application: who may see what, forms, cookies, input, files, PDFs.

Shared here: two paying participants of one edition (the attacker and the victim), the
routes of the application walked from its routers, and path parameters filled with ids
that exist, so a refusal can only come from the check under test, never from a 404.
"""

import re
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlmodel import Session, SQLModel, select

from app.models import Application, Edition, Invoice
from app.services.billing.payments import participant_invoices
from app.services.registrations import applications as applications_service
from tests.factories import FACTORY_SECRET, make_eligible_participant, open_edition


@dataclass
class Participant:
    """A confirmed, paying participant and the private link to their portal."""

    application: Application
    token: str
    invoice: Invoice

    @property
    def secrets(self) -> list[str]:
        """What of this person must never show up on somebody else's page or file."""
        a = self.application
        return [a.email, a.reference, a.family_name, self.invoice.number, self.token]


def participant(session: Session, edition: Edition, given: str, family: str) -> Participant:
    """A participant paid in full, present at every session, final work accepted."""
    application = make_eligible_participant(
        session,
        edition,
        given_name=given,
        family_name=family,
        email=f"{given.lower()}.{family.lower()}@example.org",
    )
    token = applications_service.portal_token(application, edition, secret_key=FACTORY_SECRET)
    invoice = participant_invoices(session, application.id or 0)[0]
    return Participant(application=application, token=token, invoice=invoice)


def two_participants(session: Session) -> tuple[Edition, Participant, Participant]:
    """An open edition with an attacker (Ama Attacker) and a victim (Vera Victimova)."""
    edition = open_edition(session)
    attacker = participant(session, edition, "Ama", "Attacker")
    victim = participant(session, edition, "Vera", "Victimova")
    return edition, attacker, victim


def all_routes(app: FastAPI) -> list[APIRoute]:
    """Every route of the application, including those of included routers."""
    found: list[APIRoute] = []
    pending = list(app.routes)
    while pending:
        route = pending.pop()
        if isinstance(route, APIRoute):
            found.append(route)
        elif (original := getattr(route, "original_router", None)) is not None:
            pending.extend(original.routes)
    assert len(found) > 50, "the walk must see the routers' routes"
    return sorted(found, key=lambda r: (r.path, sorted(r.methods or ())))


def path_names(path: str) -> list[str]:
    """The parameters of a path template, `{token}` included."""
    return re.findall(r"{([^}:]+)(?::[^}]*)?}", path)


def fill(path: str, values: dict[str, Any]) -> str:
    """The path with each `{name}` replaced by its value (unknown names get 1)."""
    return re.sub(r"{([^}:]+)(?::[^}]*)?}", lambda m: str(values.get(m.group(1), 1)), path)


def csrf_for(client: TestClient, page: str) -> str:
    """The CSRF token the session's pages carry (forms send it back)."""
    html = client.get(page).text
    found = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'"X-CSRF-Token": "([^"]+)"', html
    )
    assert found, f"no CSRF token on {page}"
    return found.group(1)


def database_state(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (what a refused request must leave exactly as it was)."""
    session.expire_all()
    state: dict[str, list[tuple[Any, ...]]] = {}
    for table in SQLModel.metadata.sorted_tables:
        rows = session.execute(select(table)).all()  # type: ignore[call-overload]
        state[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return state
