"""The price calculator on the edition page, with htmx and without JavaScript."""

from fastapi.testclient import TestClient
from sqlmodel import Session

from tests.factories import make_edition, make_organisation

HTMX = {"HX-Request": "true"}


def test_typing_part_of_a_name_lists_matching_organisations(
    client: TestClient, session: Session
) -> None:
    make_edition(session)
    make_organisation(session)
    response = client.get(
        "/editions/diploma-test/organisations", params={"org_q": "lilong"}, headers=HTMX
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    assert "Lilongwe City Council" in response.text
    assert "My organisation is not listed" in response.text


def test_the_price_fragment_explains_a_waiver(client: TestClient, session: Session) -> None:
    make_edition(session)
    org = make_organisation(session)
    response = client.get(
        "/editions/diploma-test/price",
        params={"organisation_id": org.id, "group_size": "1"},
        headers=HTMX,
    )
    assert "<html" not in response.text
    assert "Fee waived: Malawi is low income" in response.text
    assert "0.00 EUR" in response.text


def test_a_country_alone_prices_a_non_member(client: TestClient, session: Session) -> None:
    make_edition(session)
    response = client.get(
        "/editions/diploma-test/price", params={"country": "ESP", "group_size": "2"}, headers=HTMX
    )
    assert "Standard rate" in response.text
    assert "Group discount (10 %)" in response.text
    assert "1,350.00 EUR" in response.text


def test_without_javascript_a_single_match_is_priced_on_the_whole_page(
    client: TestClient, session: Session
) -> None:
    make_edition(session)
    make_organisation(session, name="Ciudad X", country="MEX")
    response = client.get("/editions/diploma-test/price", params={"org_q": "Ciudad X"})
    assert "<html" in response.text
    assert "Member rate: Ciudad X is a Metropolis member" in response.text
    assert "checked" in response.text


def test_bad_group_size_is_explained(client: TestClient, session: Session) -> None:
    make_edition(session)
    response = client.get(
        "/editions/diploma-test/price", params={"country": "ESP", "group_size": "-2"}, headers=HTMX
    )
    assert "whole number" in response.text


def test_unknown_country_is_explained(client: TestClient, session: Session) -> None:
    make_edition(session)
    response = client.get("/editions/diploma-test/price", params={"country": "ZZZ"}, headers=HTMX)
    assert response.status_code == 200
    assert "not a known country" in response.text


def test_organisation_names_are_escaped_in_the_choices(
    client: TestClient, session: Session
) -> None:
    make_edition(session)
    make_organisation(session, name="<b>Evil</b> City", country="ESP")
    response = client.get(
        "/editions/diploma-test/organisations", params={"org_q": "evil"}, headers=HTMX
    )
    assert "<b>Evil</b>" not in response.text
    assert "&lt;b&gt;Evil&lt;/b&gt; City" in response.text
