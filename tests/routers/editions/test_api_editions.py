"""The editions API: public reads, admin writes, every bad field named."""

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import AuditEntry
from app.services.office.demo import load_demo
from tests.factories import edition_payload


def test_demo_edition_has_five_modules_fees_and_the_cancellation_deadline(
    client: TestClient, session: Session
) -> None:
    load_demo(session)
    response = client.get("/api/v1/editions/diploma-2024")
    assert response.status_code == 200
    body = response.json()
    assert body["cancellation_deadline"] == "2024-10-19T00:00:00+02:00"
    assert [m["position"] for m in body["modules"]] == [1, 2, 3, 4, 5]
    assert body["modules"][0]["title"] == "Cities in a changing international context"
    assert all(m["sessions"] for m in body["modules"])
    kinds = {s["kind"] for m in body["modules"] for s in m["sessions"]}
    assert kinds == {"knowledge", "skills", "site_visit"}
    assert body["fees"]["standard"] == "1500.00"
    assert body["fees"]["group_tiers"][0] == {"min_size": 2, "percent": "10.00"}
    assert body["dates_to_be_confirmed"] is True
    assert body["modules"][0]["sessions"][0]["starts_at"] == "2024-11-18T09:30:00+01:00"


def test_editions_list_is_public(client: TestClient, session: Session) -> None:
    load_demo(session)
    slugs = [e["slug"] for e in client.get("/api/v1/editions").json()]
    assert "diploma-2024" in slugs


def test_unknown_edition_is_404_json(client: TestClient) -> None:
    response = client.get("/api/v1/editions/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_admin_creates_an_edition_with_the_five_lessons_by_default(
    client: TestClient, admin_headers: dict[str, str], session: Session
) -> None:
    response = client.post("/api/v1/editions", json=edition_payload(), headers=admin_headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert len(body["modules"]) == 5
    assert all(len(m["sessions"]) == 1 for m in body["modules"])
    assert body["applications_close"] == "2024-11-18T00:00:00+01:00"
    assert body["cancellation_deadline"] == "2024-10-19T00:00:00+02:00"
    audit = session.exec(select(AuditEntry).where(AuditEntry.action == "edition.created")).all()
    assert [a.entity_id for a in audit] == ["diploma-test"]


def test_creating_an_edition_needs_a_token(client: TestClient) -> None:
    response = client.post("/api/v1/editions", json=edition_payload())
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_tutor_cannot_create_an_edition(
    client: TestClient, tutor_headers: dict[str, str]
) -> None:
    response = client.post("/api/v1/editions", json=edition_payload(), headers=tutor_headers)
    assert response.status_code == 403


def test_a_forged_token_is_refused(client: TestClient) -> None:
    response = client.post(
        "/api/v1/editions", json=edition_payload(), headers={"Authorization": "Bearer abc.def"}
    )
    assert response.status_code == 401


def test_bad_edition_lists_every_field_at_fault(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    body = edition_payload(
        slug="Not A Slug",
        timezone="Mars/Olympus",
        capacity=0,
        currency="XXXX",
        fees={"standard": "-1", "member": "abc", "group_tiers": [{"min_size": 2, "percent": 120}]},
    )
    response = client.post("/api/v1/editions", json=body, headers=admin_headers)
    assert response.status_code == 422
    fields = {tuple(e["loc"][1:]) for e in response.json()["detail"]}
    assert {
        ("slug",),
        ("timezone",),
        ("capacity",),
        ("currency",),
        ("fees", "standard"),
        ("fees", "member"),
        ("fees", "group_tiers", 0, "percent"),
    } <= fields


def test_end_before_start_is_refused_with_the_field(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    body = edition_payload(start_date="2024-11-22", end_date="2024-11-18")
    response = client.post("/api/v1/editions", json=body, headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "end_date"]


def test_tiers_must_grow(client: TestClient, admin_headers: dict[str, str]) -> None:
    fees = {
        "standard": "100",
        "member": "50",
        "group_tiers": [{"min_size": 5, "percent": "10"}, {"min_size": 3, "percent": "20"}],
    }
    response = client.post(
        "/api/v1/editions", json=edition_payload(fees=fees), headers=admin_headers
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][1:] == ["fees", "group_tiers"]


def test_a_taken_slug_is_409(client: TestClient, admin_headers: dict[str, str]) -> None:
    assert client.post("/api/v1/editions", json=edition_payload(), headers=admin_headers).is_success
    response = client.post("/api/v1/editions", json=edition_payload(), headers=admin_headers)
    assert response.status_code == 409


def test_malformed_json_is_422_not_500(client: TestClient, admin_headers: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/editions",
        content=b"{not json",
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422


def test_moving_the_start_date_moves_the_cancellation_deadline(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    client.post("/api/v1/editions", json=edition_payload(), headers=admin_headers)
    response = client.patch(
        "/api/v1/editions/diploma-test",
        json={"start_date": "2024-12-02", "end_date": "2024-12-06"},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    # 30 days before 2 December is 2 November, after the change back to CET.
    assert response.json()["cancellation_deadline"] == "2024-11-02T00:00:00+01:00"


def test_patching_fees_keeps_other_fields_and_is_audited(
    client: TestClient, admin_headers: dict[str, str], session: Session
) -> None:
    client.post("/api/v1/editions", json=edition_payload(), headers=admin_headers)
    response = client.patch(
        "/api/v1/editions/diploma-test",
        json={"fees": {"member": "900.50"}, "income_fy": "FY2024"},
        headers=admin_headers,
    )
    body = response.json()
    assert body["fees"]["member"] == "900.50"
    assert body["fees"]["standard"] == "1500.00"
    assert body["income_fy"] == 2024
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "edition.updated")).one()
    assert entry.before == {"fee_member": "1000.00", "income_fy": 2023}
    assert entry.after == {"fee_member": "900.50", "income_fy": 2024}


def test_patch_that_breaks_the_dates_changes_nothing(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    client.post("/api/v1/editions", json=edition_payload(), headers=admin_headers)
    response = client.patch(
        "/api/v1/editions/diploma-test", json={"end_date": "2024-01-01"}, headers=admin_headers
    )
    assert response.status_code == 422
    assert client.get("/api/v1/editions/diploma-test").json()["end_date"] == "2024-11-22"


def test_patch_unknown_field_is_422(client: TestClient, admin_headers: dict[str, str]) -> None:
    client.post("/api/v1/editions", json=edition_payload(), headers=admin_headers)
    response = client.patch(
        "/api/v1/editions/diploma-test", json={"colour": "blue"}, headers=admin_headers
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "colour"]
