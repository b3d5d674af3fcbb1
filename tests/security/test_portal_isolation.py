"""A portal link opens its own application and nothing else.

Every route with `{token}` in its path is walked from the application, so a new portal
page or file is covered the day it is added: the attacker's valid link is combined with
the victim's invoice number (and any other id the path takes), and forms are sent with the
victim's numbers in every field. Nothing of the victim's may come back, in a page or a
file, and nothing of the victim's may change.
"""

import io
import json
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from itsdangerous.encoding import base64_decode, base64_encode
from pypdf import PdfReader
from sqlmodel import Session, SQLModel

from app.models import Edition
from app.platform.signed_links import GROUP_SALT, PORTAL_SALT, link_expiry, make_token
from app.services.billing import card_payments
from app.services.errors import NotFound
from tests.factories import FACTORY_SECRET
from tests.security import (
    Participant,
    all_routes,
    csrf_for,
    database_state,
    fill,
    path_names,
    two_participants,
)


def _text(response: Any) -> str:
    """What a person would read in the answer: a page, or the text of a PDF."""
    if response.headers.get("content-type", "").startswith("application/pdf"):
        reader = PdfReader(io.BytesIO(response.content))
        return "\n".join(page.extract_text() for page in reader.pages)
    return str(response.text)


def _without_echo(text: str, path: str) -> str:
    """The answer less the address the attacker asked for (pages link to themselves, e.g. in
    the language menu): what the attacker typed is not a leak."""
    return text.replace(path, "").replace(unquote(path), "")


def _victim_rows(state: dict[str, list[tuple[Any, ...]]], victim: Participant) -> dict[str, Any]:
    """The victim's own rows: their application, their invoice, and what points at either."""
    mine: dict[str, Any] = {}
    for table in SQLModel.metadata.sorted_tables:
        names = [column.name for column in table.columns]

        def belongs(row: tuple[Any, ...], names: list[str] = names, table: Any = table) -> bool:
            values = dict(zip(names, row, strict=True))
            return (
                (table.name == "application" and values["id"] == victim.application.id)
                or (table.name == "invoice" and values["id"] == victim.invoice.id)
                or values.get("application_id") == victim.application.id
                or values.get("invoice_id") == victim.invoice.id
            )

        mine[table.name] = [row for row in state[table.name] if belongs(row)]
    assert mine["application"] and mine["invoice"] and mine["payment"]
    return mine


@pytest.fixture
def people(session: Session) -> tuple[Edition, Participant, Participant]:
    """An edition with an attacker and a victim, both paid, each with a final work."""
    return two_participants(session)


def portal_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route a portal link opens."""
    return [
        (method, route.path)
        for route in all_routes(app)
        if "token" in path_names(route.path) and route.path.startswith("/portal/")
        for method in sorted(route.methods or ())
    ]


def test_the_portal_routes_are_found(test_app: FastAPI) -> None:
    paths = {path for _, path in portal_routes(test_app)}
    assert "/portal/{token}" in paths
    assert "/portal/{token}/invoices/{number}.pdf" in paths
    assert len(paths) >= 10


def test_the_attackers_link_with_the_victims_ids_finds_nothing_of_the_victims(
    client: TestClient,
    session: Session,
    test_app: FastAPI,
    people: tuple[Edition, Participant, Participant],
) -> None:
    _, attacker, victim = people
    victim_values: dict[str, Any] = {
        "token": attacker.token,
        "number": victim.invoice.number,
        "application_id": victim.application.id,
        "id": victim.application.id,
    }
    csrf = csrf_for(client, f"/portal/{attacker.token}")
    before = _victim_rows(database_state(session), victim)
    tried = 0
    for method, path in portal_routes(test_app):
        url = fill(path, victim_values)
        if method == "GET":
            response = client.get(url, follow_redirects=False)
        else:
            form = {
                "csrf_token": csrf,
                "invoice": victim.invoice.number,
                "number": victim.invoice.number,
                "application_id": str(victim.application.id),
                "reference": victim.application.reference,
                "email": victim.application.email,
            }
            response = client.post(url, data=form, follow_redirects=False)
        tried += 1
        assert response.status_code < 500, (method, path)
        if set(path_names(path)) - {"token"}:
            # The only other ids a portal path takes name the victim's records here.
            assert response.status_code == 404, (method, path, response.status_code)
        text = _without_echo(_text(response), url)
        for secret in victim.secrets:
            assert secret not in text, (method, path, secret)
    assert tried >= 15
    assert _victim_rows(database_state(session), victim) == before


def test_the_attackers_own_invoice_opens_and_the_victims_does_not(
    client: TestClient, people: tuple[Edition, Participant, Participant]
) -> None:
    _, attacker, victim = people
    own = client.get(f"/portal/{attacker.token}/invoices/{attacker.invoice.number}.pdf")
    assert own.status_code == 200
    assert attacker.application.family_name in _text(own)
    other = client.get(f"/portal/{attacker.token}/invoices/{victim.invoice.number}.pdf")
    assert other.status_code == 404


def test_a_card_payment_cannot_be_started_for_somebody_elses_invoice(
    session: Session, people: tuple[Edition, Participant, Participant]
) -> None:
    _, attacker, victim = people
    assert (
        card_payments.invoice_for_application(
            session, attacker.application, attacker.invoice.number
        ).number
        == attacker.invoice.number
    )
    with pytest.raises(NotFound):
        card_payments.invoice_for_application(session, attacker.application, victim.invoice.number)


def _swapped_payload(token: str, victim_id: int) -> str:
    """The attacker's signature on a payload that names the victim instead."""
    payload, signature = token.split(".", 1)
    data = json.loads(base64_decode(payload))
    assert data["i"] != victim_id
    data["i"] = victim_id
    forged = base64_encode(json.dumps(data, separators=(",", ":")).encode()).decode()
    return f"{forged}.{signature}"


def _forged_links(edition: Edition, attacker: Participant, victim: Participant) -> dict[str, str]:
    expires = link_expiry(edition.end_date)
    victim_id = victim.application.id or 0
    version = victim.application.portal_token_version
    return {
        "signed with another key": make_token(
            secret_key="not-the-secret-" + "y" * 32,
            salt=PORTAL_SALT,
            subject_id=victim_id,
            version=version,
            expires=expires,
        ),
        "a group coordinator's link": make_token(
            secret_key=FACTORY_SECRET,
            salt=GROUP_SALT,
            subject_id=victim_id,
            version=version,
            expires=expires,
        ),
        "an old link version": make_token(
            secret_key=FACTORY_SECRET,
            salt=PORTAL_SALT,
            subject_id=victim_id,
            version=version + 1,
            expires=expires,
        ),
        "the victim's id with the attacker's signature": _swapped_payload(
            attacker.token, victim_id
        ),
        "an empty link": "",
        "a guessed id": str(victim_id),
        "path traversal": "..%2F..%2Fadmin",
    }


def test_forged_revoked_or_foreign_links_open_nothing(
    client: TestClient, people: tuple[Edition, Participant, Participant]
) -> None:
    edition, attacker, victim = people
    for what, token in _forged_links(edition, attacker, victim).items():
        for page in (f"/portal/{token}", f"/portal/{token}/invoices/{victim.invoice.number}.pdf"):
            response = client.get(page, follow_redirects=False)
            assert response.status_code == 404, (what, response.status_code)
            text = _without_echo(response.text, page)
            for secret in victim.secrets:
                assert secret not in text, (what, secret)


def test_a_portal_link_is_not_an_api_credential(
    client: TestClient, people: tuple[Edition, Participant, Participant]
) -> None:
    _, attacker, _ = people
    headers = {"Authorization": f"Bearer {attacker.token}"}
    for path in (
        f"/api/v1/applications/{attacker.application.id}",
        f"/api/v1/invoices/{attacker.invoice.number}",
        f"/api/v1/invoices/{attacker.invoice.number}/pdf",
    ):
        assert client.get(path, headers=headers).status_code == 401, path


def test_a_portal_link_does_not_open_a_group_page(
    client: TestClient, people: tuple[Edition, Participant, Participant]
) -> None:
    _, attacker, _ = people
    assert client.get(f"/groups/{attacker.token}").status_code == 404
