"""Public pages and error pages for people."""

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.services.office.demo import load_demo


def test_home_lists_open_and_past_editions(client: TestClient, session: Session) -> None:
    load_demo(session)
    html = client.get("/").text
    open_part, _, past_part = html.partition("Past editions")
    assert "3rd edition (example)" in open_part
    assert "2nd edition" in past_part


def test_edition_page_shows_programme_fees_and_deadline_in_words(
    client: TestClient, session: Session
) -> None:
    load_demo(session)
    response = client.get("/editions/diploma-2024")
    assert response.status_code == 200
    html = response.text
    assert "18 to 22 November 2024" in html
    assert "dates to be confirmed" in html
    for title in (
        "Cities in a changing international context",
        "Strategies for internationalization",
        "City diplomacy and economic development",
        "Measuring results and impact",
        "Communicating the value of international engagement",
    ):
        assert title in html
    assert "Saturday 19 October 2024" in html
    assert "1,500.00 EUR" in html
    assert "examples" in html
    assert "A 10-trip public transport card" in html
    assert "Flights" in html
    assert "Site visit" in html


def test_unknown_page_is_a_page_for_people(client: TestClient) -> None:
    response = client.get("/editions/no-such-edition")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Back to the editions" in response.text


def test_unknown_api_path_is_json(client: TestClient) -> None:
    response = client.get("/api/v1/nothing")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_edition_text_is_escaped(client: TestClient, session: Session) -> None:
    from tests.factories import make_edition

    make_edition(session, slug="xss", place="<script>alert(1)</script>")
    html = client.get("/editions/xss").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_readyz_reports_the_database_migrations_and_storage(client: TestClient) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json()["database"] == "up"
    assert answer.json()["migrations"] == "at head"
    assert answer.json()["storage"] == "writable"


def test_static_files_are_served(client: TestClient) -> None:
    assert client.get("/static/vendor/htmx/htmx-2.0.11.min.js").status_code == 200
    assert client.get("/static/css/site.css").status_code == 200


def test_openapi_is_published(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/editions/{slug}" in paths
    assert "/admin/login" not in paths
