"""The quote API answers DOMAIN.md's fee rules with reasons."""

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.services.office.demo import load_demo
from app.services.registry.organisations import replace_income_groups
from tests.factories import make_edition, make_organisation


def quote(client: TestClient, **body: object) -> dict:  # type: ignore[type-arg]
    response = client.post("/api/v1/editions/diploma-test/quote", json=body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def codes(answer: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(line["code"], line["amount"]) for line in answer["lines"]]


def test_member_in_good_standing_pays_the_member_rate(client: TestClient, session: Session) -> None:
    make_edition(session)
    org = make_organisation(session, name="Ciudad X", country="MEX", dues_paid_through=2023)
    answer = quote(client, organisation_id=org.id)
    assert codes(answer) == [("member_rate", "1000.00")]
    assert answer["total"] == "1000.00"
    assert answer["currency"] == "EUR"
    assert "dues paid through 2023" in answer["lines"][0]["reason"]


def test_member_behind_on_dues_pays_the_standard_rate(client: TestClient, session: Session) -> None:
    make_edition(session)
    org = make_organisation(session, name="Ciudad Y", country="COL", dues_paid_through=2022)
    answer = quote(client, organisation_id=org.id)
    assert codes(answer) == [("standard_rate", "1500.00")]
    assert "2022" in answer["lines"][0]["reason"]


def test_low_income_member_is_waived_with_the_reason(client: TestClient, session: Session) -> None:
    make_edition(session)
    org = make_organisation(session)  # Lilongwe, Malawi, dues 2023
    answer = quote(client, organisation_id=org.id)
    assert codes(answer) == [("member_rate", "1000.00"), ("low_income_waiver", "-1000.00")]
    assert answer["total"] == "0.00"
    assert answer["waived"] is True
    assert "Malawi is low income" in answer["lines"][1]["reason"]
    assert "FY2023" in answer["lines"][1]["reason"]


def test_low_income_member_behind_on_dues_gets_no_waiver(
    client: TestClient, session: Session
) -> None:
    make_edition(session)
    org = make_organisation(session, dues_paid_through=2021)
    assert quote(client, organisation_id=org.id)["total"] == "1500.00"


def test_a_country_alone_is_a_non_member_even_if_low_income(
    client: TestClient, session: Session
) -> None:
    make_edition(session)
    answer = quote(client, country="MW")
    assert codes(answer) == [("standard_rate", "1500.00")]


def test_group_discount_applies_from_the_tier(client: TestClient, session: Session) -> None:
    make_edition(session)
    org = make_organisation(session, name="Ciudad X", country="MEX")
    assert quote(client, organisation_id=org.id, group_size=1)["total"] == "1000.00"
    answer = quote(client, organisation_id=org.id, group_size=2)
    assert codes(answer) == [("member_rate", "1000.00"), ("group_discount", "-100.00")]
    assert answer["total"] == "900.00"


def test_the_edition_fiscal_year_decides_the_waiver(
    client: TestClient, session: Session, admin_user: object
) -> None:
    # Zambia is low income in FY2023 and lower-middle income in FY2024.
    make_edition(session)
    make_edition(session, slug="fy2024", income_fy=2024)
    org = make_organisation(session, name="Lusaka City Council", country="ZMB")
    assert quote(client, organisation_id=org.id)["total"] == "0.00"
    later = client.post("/api/v1/editions/fy2024/quote", json={"organisation_id": org.id}).json()
    assert later["total"] == "1000.00"


def test_replacing_a_classification_year_changes_later_quotes(
    client: TestClient, session: Session
) -> None:
    make_edition(session)
    org = make_organisation(session)
    replace_income_groups(session, fiscal_year=2023, csv_text="MWI,LM\n", actor="test")
    assert quote(client, organisation_id=org.id)["total"] == "1000.00"


def test_demo_edition_quotes_the_demo_registry(client: TestClient, session: Session) -> None:
    load_demo(session)
    found = client.get("/api/v1/organisations", params={"q": "Addis"}).json()
    answer = client.post(
        "/api/v1/editions/diploma-2024/quote", json={"organisation_id": found[0]["id"]}
    ).json()
    assert answer["total"] == "0.00"


def test_unknown_organisation_or_country_is_422_with_the_field(
    client: TestClient, session: Session
) -> None:
    make_edition(session)
    url = "/api/v1/editions/diploma-test/quote"
    unknown_org = client.post(url, json={"organisation_id": 999999})
    assert unknown_org.status_code == 422
    assert unknown_org.json()["detail"][0]["loc"] == ["body", "organisation_id"]
    unknown_country = client.post(url, json={"country": "Narnia"})
    assert unknown_country.status_code == 422
    assert unknown_country.json()["detail"][0]["loc"] == ["body", "country"]
    neither = client.post(url, json={})
    assert {tuple(e["loc"]) for e in neither.json()["detail"]} == {
        ("body", "organisation_id"),
        ("body", "country"),
    }


def test_group_size_out_of_range_is_422(client: TestClient, session: Session) -> None:
    make_edition(session)
    response = client.post(
        "/api/v1/editions/diploma-test/quote", json={"country": "ES", "group_size": 0}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "group_size"]


def test_quote_for_unknown_edition_is_404(client: TestClient) -> None:
    response = client.post("/api/v1/editions/none/quote", json={"country": "ES"})
    assert response.status_code == 404
