"""The member registry and the income classification through the API."""

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.services.registry.organisations import income_group_of
from tests.factories import make_organisation


def test_admin_adds_an_organisation_with_an_alpha2_country(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/organisations",
        json={"name": "Ciudad X", "country": "mx", "is_member": True, "dues_paid_through": 2023},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["country"] == "MEX"
    assert body["country_name"] == "Mexico"
    assert body["dues_paid_through"] == 2023
    assert isinstance(body["id"], int)


def test_organisation_with_bad_fields_names_each(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/organisations",
        json={"name": "", "country": "Narnia", "is_member": "maybe", "dues_paid_through": 1066},
        headers=admin_headers,
    )
    assert response.status_code == 422
    fields = {e["loc"][-1] for e in response.json()["detail"]}
    assert fields == {"name", "country", "is_member", "dues_paid_through"}


def test_the_same_organisation_twice_is_409(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    body = {"name": "Ciudad X", "country": "MEX"}
    assert client.post("/api/v1/organisations", json=body, headers=admin_headers).is_success
    again = client.post(
        "/api/v1/organisations", json={"name": "ciudad x", "country": "MX"}, headers=admin_headers
    )
    assert again.status_code == 409


def test_a_tutor_cannot_edit_the_registry(
    client: TestClient, tutor_headers: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/organisations", json={"name": "X", "country": "ES"}, headers=tutor_headers
    )
    assert response.status_code == 403


def test_search_is_public_and_hides_dues(client: TestClient, session: Session) -> None:
    make_organisation(session, name="Lilongwe City Council", country="MWI")
    make_organisation(session, name="Barcelona City Council", country="ESP", dues_paid_through=2024)
    by_name = client.get("/api/v1/organisations", params={"q": "lilong"}).json()
    assert [o["name"] for o in by_name] == ["Lilongwe City Council"]
    assert "dues_paid_through" not in by_name[0]
    by_country = client.get("/api/v1/organisations", params={"q": "Spain"}).json()
    assert [o["country"] for o in by_country] == ["ESP"]


def test_search_with_a_huge_limit_is_422(client: TestClient) -> None:
    assert client.get("/api/v1/organisations", params={"limit": 10_000}).status_code == 422


def test_income_groups_year_is_replaced_from_csv(
    client: TestClient, admin_headers: dict[str, str], session: Session
) -> None:
    csv_body = "iso3,income_group\nMWI,LM\nESP,H\n"
    response = client.put(
        "/api/v1/income-groups/FY2030",
        content=csv_body,
        headers={**admin_headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"fiscal_year": 2030, "rows": 2}
    assert income_group_of(session, iso3="MWI", fiscal_year=2030) == "LM"
    assert income_group_of(session, iso3="MWI", fiscal_year=2023) == "L"


def test_bad_income_group_rows_are_listed_and_nothing_changes(
    client: TestClient, admin_headers: dict[str, str], session: Session
) -> None:
    csv_body = "iso3,income_group\nMWI,H\nZZZ,L\nESP,RICH\nESP,H\nFRA\n"
    response = client.put(
        "/api/v1/income-groups/2023",
        content=csv_body,
        headers={**admin_headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 422
    faults = {e["loc"][-1]: e["msg"] for e in response.json()["detail"]}
    assert set(faults) == {"row 3", "row 4", "row 6"}
    assert "ZZZ" in faults["row 3"]
    assert "RICH" in faults["row 4"]
    assert "2 columns" in faults["row 6"]
    # Nothing half-written: Malawi is still low income in FY2023.
    assert income_group_of(session, iso3="MWI", fiscal_year=2023) == "L"


def test_a_repeated_country_is_a_row_error(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    response = client.put(
        "/api/v1/income-groups/2030",
        content="MWI,L\nMWI,LM\n",
        headers={**admin_headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 422
    assert "first on row 1" in response.json()["detail"][0]["msg"]


def test_income_groups_need_an_admin(client: TestClient, tutor_headers: dict[str, str]) -> None:
    response = client.put("/api/v1/income-groups/2030", content="MWI,L\n")
    assert response.status_code == 401
    response = client.put("/api/v1/income-groups/2030", content="MWI,L\n", headers=tutor_headers)
    assert response.status_code == 403


def test_a_bad_fiscal_year_or_empty_body_is_422(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    assert (
        client.put("/api/v1/income-groups/next", content="MWI,L", headers=admin_headers).status_code
        == 422
    )
    empty = client.put("/api/v1/income-groups/2030", content="", headers=admin_headers)
    assert empty.status_code == 422
    binary = client.put(
        "/api/v1/income-groups/2030", content=b"\xff\xfe\x00", headers=admin_headers
    )
    assert binary.status_code == 422
