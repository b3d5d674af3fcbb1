"""Applications, groups and decisions through the JSON API."""

from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlmodel import Session, select

from app.models import Application, OutboxMessage
from app.services.billing.quotes import quote_as_json, quote_for_edition
from tests.factories import application_payload, make_organisation, open_edition

URL = "/api/v1/editions/diploma-open/applications"


def test_apply_returns_201_with_reference_and_status(client: TestClient, session: Session) -> None:
    open_edition(session)
    response = client.post(URL, json=application_payload())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "submitted"
    assert body["reference"].startswith("MD99-")
    assert session.exec(select(OutboxMessage)).one().kind == "application_received"


def test_the_same_email_twice_is_409(client: TestClient, session: Session) -> None:
    open_edition(session)
    assert client.post(URL, json=application_payload()).status_code == 201
    again = client.post(URL, json=application_payload(email="AMA.BANDA@lilongwe.example"))
    assert again.status_code == 409


def test_bad_application_lists_every_field_at_fault(client: TestClient, session: Session) -> None:
    open_edition(session)
    body = application_payload(
        given_name="",
        email="not-an-email",
        motivation="short",
        consent=False,
        years_in_international_affairs=-1,
    )
    response = client.post(URL, json=body)
    assert response.status_code == 422
    fields = {e["loc"][1] for e in response.json()["detail"]}
    assert {
        "given_name",
        "email",
        "motivation",
        "consent",
        "years_in_international_affairs",
    } <= fields


def test_closed_edition_refuses_applications_with_409(client: TestClient, session: Session) -> None:
    open_edition(session, applications_close="2021-01-01T00:00:00+00:00")
    response = client.post(URL, json=application_payload())
    assert response.status_code == 409
    assert "not taking applications" in response.json()["detail"]


def test_group_is_created_and_joined(client: TestClient, session: Session) -> None:
    open_edition(session)
    org = make_organisation(session, name="Ciudad X", country="MEX")
    created = client.post(
        "/api/v1/editions/diploma-open/groups",
        json={"organisation_id": org.id, "contact_email": "lead@ciudad.example"},
    )
    assert created.status_code == 201
    code = created.json()["code"]
    response = client.post(
        URL, json=application_payload(group_code=code, organisation_name=None, country=None)
    )
    assert response.status_code == 201, response.text


def test_group_for_unknown_organisation_is_422(client: TestClient, session: Session) -> None:
    open_edition(session)
    response = client.post(
        "/api/v1/editions/diploma-open/groups",
        json={"organisation_id": 4242, "contact_email": "lead@x.example"},
    )
    assert response.status_code == 422


def test_admin_lists_filters_and_reads_applications(
    client: TestClient, session: Session, admin_headers: dict[str, str]
) -> None:
    open_edition(session)
    client.post(URL, json=application_payload(email="one@x.org"))
    client.post(URL, json=application_payload(email="two@x.org"))
    listed = client.get(
        "/api/v1/applications",
        params={"edition": "diploma-open", "status": "submitted"},
        headers=admin_headers,
    ).json()
    assert listed["total"] == 2
    first = listed["items"][0]
    detail = client.get(f"/api/v1/applications/{first['id']}", headers=admin_headers).json()
    assert detail["status"] == "submitted"
    assert detail["quote"]["total"] == "1500.00"
    assert detail["amount_due"] == "0.00"
    assert detail["invoices"] == []


def test_application_endpoints_need_an_admin(
    client: TestClient, session: Session, tutor_headers: dict[str, str]
) -> None:
    assert client.get("/api/v1/applications").status_code == 401
    assert client.get("/api/v1/applications", headers=tutor_headers).status_code == 403
    decision = client.post(
        "/api/v1/applications/1/decision", json={"decision": "admit"}, headers=tutor_headers
    )
    assert decision.status_code == 403


def test_bad_status_filter_is_422(client: TestClient, admin_headers: dict[str, str]) -> None:
    response = client.get("/api/v1/applications", params={"status": "maybe"}, headers=admin_headers)
    assert response.status_code == 422


def test_decisions_admit_waived_and_conflict_on_a_stale_version(
    client: TestClient, session: Session, admin_headers: dict[str, str]
) -> None:
    open_edition(session)
    org = make_organisation(session)
    created = client.post(URL, json=application_payload(organisation_id=org.id)).json()
    url = f"/api/v1/applications/{created['id']}/decision"
    admitted = client.post(url, json={"decision": "admit", "version": 1}, headers=admin_headers)
    assert admitted.status_code == 200, admitted.text
    assert admitted.json()["status"] == "confirmed"
    assert admitted.json()["fee_waiver_number"].startswith("W")
    stale = client.post(url, json={"decision": "reject", "version": 1}, headers=admin_headers)
    assert stale.status_code == 409
    unknown = client.post(
        "/api/v1/applications/999999/decision", json={"decision": "admit"}, headers=admin_headers
    )
    assert unknown.status_code == 404
    nonsense = client.post(url, json={"decision": "promote"}, headers=admin_headers)
    assert nonsense.status_code == 422


def test_an_application_by_country_reads_once_and_writes_once_on_postgresql(
    client: TestClient, session: Session
) -> None:
    edition = open_edition(session)
    statements: list[str] = []

    def count(*args: object) -> None:
        statement = str(args[2])
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "WITH", "UPDATE")):
            statements.append(statement)

    bind = session.connection()
    event.listen(bind, "before_cursor_execute", count)
    try:
        response = client.post(URL, json=application_payload(country="MWI"))
    finally:
        event.remove(bind, "before_cursor_execute", count)
    assert response.status_code == 201, response.text
    # The edition, the country's income group and (PostgreSQL) the new id in one query; the
    # application, its receipt and its audit entry in one statement (SQLite: one each).
    postgresql = session.get_bind().dialect.name == "postgresql"
    assert len(statements) == (2 if postgresql else 4), statements
    assert "income_group" in statements[0] and "FROM edition" in statements[0]
    application = session.get(Application, response.json()["id"])
    assert application is not None
    # What was read with the edition prices it exactly as a quote asked on its own does.
    alone = quote_as_json(quote_for_edition(session, edition=edition, country="MWI"))
    assert application.quote == alone
    assert "low income" in alone["lines"][0]["reason"]


def test_the_api_answers_quote_and_invoice_lines_in_english_without_their_kept_messages(
    client: TestClient, session: Session, admin_headers: dict[str, str]
) -> None:
    open_edition(session)
    created = client.post(
        URL, json=application_payload(country="FRA"), headers={"Accept-Language": "fr"}
    ).json()
    admitted = client.post(
        f"/api/v1/applications/{created['id']}/decision",
        json={"decision": "admit", "version": 1},
        headers=admin_headers,
    )
    assert admitted.status_code == 200, admitted.text
    detail = client.get(f"/api/v1/applications/{created['id']}", headers=admin_headers).json()
    (line,) = detail["quote"]["lines"]
    assert line == {
        "code": "standard_rate",
        "label": "Standard rate",
        "amount": "1500.00",
        "reason": "Standard rate: the organisation is not in the Metropolis member registry.",
    }
    number = detail["invoices"][0]["number"]
    invoice = client.get(f"/api/v1/invoices/{number}", headers=admin_headers).json()
    (details,) = invoice["lines"][0]["details"]
    assert details == line
