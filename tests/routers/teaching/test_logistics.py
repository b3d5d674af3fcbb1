"""The logistics form on the portal, visa letters, and the office's list and CSV."""

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Application, Edition, OutboxMessage, StaffUser
from app.platform.storage import LocalStorage
from app.services.registrations import applications as applications_service
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD
from tests.factories import open_edition
from tests.routers.office.test_auth import csrf_from, login
from tests.services.teaching.test_logistics import SECRET, admitted, pdf_text


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def token_of(session: Session, application: Application) -> str:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return applications_service.portal_token(application, edition, secret_key=SECRET)


def form(**overrides: str) -> dict[str, str]:
    values = {
        "certificate_name": "Ama Chisomo Banda",
        "dietary": "Vegetarian, no nuts",
        "accessibility": "Step-free access",
        "arrival_date": "2099-11-15",
        "departure_date": "2099-11-21",
        "visa_letter_needed": "yes",
        "nationality": "MWI",
        "passport_number": "MA1234567",
        "date_of_birth": "1985-04-23",
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def post_logistics(client: TestClient, token: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    csrf = csrf_from(client.get(f"/portal/{token}").text)
    return client.post(
        f"/portal/{token}/logistics",
        data={**data, "csrf_token": csrf},
        follow_redirects=False,
    )


@pytest.fixture
def participant(session: Session, storage: LocalStorage, admin_user: StaffUser) -> Application:
    """An admitted applicant of the open test edition (16-20 November 2099)."""
    return admitted(session, storage, admin_user, open_edition(session))


def issue_as_admin(client: TestClient, application: Application) -> Any:
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    page = client.get("/admin/logistics?edition=diploma-open")
    return client.post(
        f"/admin/applications/{application.id}/visa-letter",
        data={"csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )


def test_the_portal_asks_an_admitted_participant_with_a_label_for_every_field(
    client: TestClient, session: Session, participant: Application
) -> None:
    html = client.get(f"/portal/{token_of(session, participant)}").text
    assert 'id="logistics-heading"' in html
    for name in (
        "certificate_name",
        "dietary",
        "accessibility",
        "arrival_date",
        "departure_date",
        "visa_letter_needed",
        "nationality",
        "passport_number",
        "date_of_birth",
    ):
        assert f'id="{name}"' in html
        assert f'for="{name}"' in html
    assert "Only if you need a visa" in html
    assert "<script>" not in html
    assert " style=" not in html


def test_saving_the_form_returns_to_the_portal_with_a_thank_you(
    client: TestClient, session: Session, participant: Application
) -> None:
    token = token_of(session, participant)
    response = post_logistics(client, token, form())
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"/portal/{token}")
    page = client.get(response.headers["location"])
    assert "your details for the week in Barcelona are saved" in page.text
    session.refresh(participant)
    assert participant.certificate_name == "Ama Chisomo Banda"
    assert participant.dietary == "Vegetarian, no nuts"
    assert participant.nationality == "MWI"
    assert participant.passport_number == "MA1234567"
    assert participant.logistics_updated_at is not None


def test_errors_sit_next_to_their_fields_with_422_and_nothing_typed_is_lost(
    client: TestClient, session: Session, participant: Application
) -> None:
    token = token_of(session, participant)
    response = post_logistics(
        client,
        token,
        form(certificate_name="A", passport_number="AB1", departure_date="2099-11-10"),
    )
    assert response.status_code == 422
    html = response.text
    assert re.search(r'id="certificate_name-error"[^>]*>Give your name exactly', html)
    assert re.search(r'id="passport_number-error"[^>]*>Enter your passport number', html)
    assert re.search(r'id="departure_date-error"[^>]*>Your departure cannot be before', html)
    assert ">Vegetarian, no nuts</textarea>" in html
    assert 'value="AB1"' in html
    assert 'value="2099-11-10"' in html
    assert re.search(r'<option value="MWI" selected>', html)
    assert 'id="quote-heading"' in html  # the whole portal page, not the form alone
    session.refresh(participant)
    assert participant.logistics_updated_at is None


def test_the_form_is_not_offered_or_accepted_before_admission(
    client: TestClient, session: Session, participant: Application
) -> None:
    participant.status = "submitted"
    session.add(participant)
    session.commit()
    token = token_of(session, participant)
    assert 'id="logistics-heading"' not in client.get(f"/portal/{token}").text
    response = post_logistics(client, token, form())
    assert response.status_code == 303
    assert "once you are admitted" in client.get(response.headers["location"]).text
    session.refresh(participant)
    assert participant.passport_number is None


def test_htmx_folds_the_visa_fields_when_the_box_is_unticked(
    client: TestClient, session: Session, participant: Application
) -> None:
    token = token_of(session, participant)
    folded = client.get(f"/portal/{token}/logistics/visa-fields", headers={"HX-Request": "true"})
    assert 'id="visa-details"' in folded.text
    assert 'id="nationality"' not in folded.text
    opened = client.get(
        f"/portal/{token}/logistics/visa-fields?visa_letter_needed=yes&nationality=ESP",
        headers={"HX-Request": "true"},
    )
    assert 'id="nationality"' in opened.text
    assert '<option value="ESP" selected>' in opened.text


def test_the_participant_sees_their_passport_number_masked(
    client: TestClient, session: Session, participant: Application
) -> None:
    token = token_of(session, participant)
    assert post_logistics(client, token, form()).status_code == 303
    html = client.get(f"/portal/{token}").text
    assert "••••••567" in html
    assert "MA1234567" not in html


def test_an_administrator_issues_a_letter_and_the_participant_downloads_it(
    client: TestClient, session: Session, participant: Application
) -> None:
    token = token_of(session, participant)
    assert post_logistics(client, token, form()).status_code == 303
    assert 'href="/portal/' + token + '/visa-letter.pdf"' not in client.get(f"/portal/{token}").text

    issued = issue_as_admin(client, participant)
    assert issued.status_code == 303
    assert issued.headers["location"].startswith("/admin/logistics?edition=diploma-open")
    listing = client.get(issued.headers["location"])
    assert "Visa letter issued for Ama Chisomo Banda" in listing.text
    mail = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "visa_letter_ready")
    ).one()
    assert f"/portal/{token}" in mail.body_text

    assert f'href="/portal/{token}/visa-letter.pdf"' in client.get(f"/portal/{token}").text
    download = client.get(f"/portal/{token}/visa-letter.pdf")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert "no-store" in download.headers["cache-control"]
    text = pdf_text(download.content)
    assert "MA1234567" in text
    assert "Ama Chisomo Banda" in text
    admin_copy = client.get(f"/admin/applications/{participant.id}/visa-letter.pdf")
    assert admin_copy.content == download.content


def test_another_applications_link_cannot_download_this_letter(
    client: TestClient,
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    participant: Application,
) -> None:
    edition = session.get(Edition, participant.edition_id)
    assert edition is not None
    other = admitted(session, storage, admin_user, edition, email="other@example.org")
    assert post_logistics(client, token_of(session, participant), form()).status_code == 303
    assert issue_as_admin(client, participant).status_code == 303
    assert client.get(f"/portal/{token_of(session, participant)}/visa-letter.pdf").is_success

    assert client.get(f"/portal/{token_of(session, other)}/visa-letter.pdf").status_code == 404
    forged = token_of(session, participant)[:-4] + "AAAA"
    assert client.get(f"/portal/{forged}/visa-letter.pdf").status_code == 404


def test_issuing_without_visa_details_says_why_and_stores_nothing(
    client: TestClient, session: Session, participant: Application
) -> None:
    token = token_of(session, participant)
    assert post_logistics(client, token, form(visa_letter_needed="")).status_code == 303
    response = issue_as_admin(client, participant)
    assert response.status_code == 303
    assert "did not ask for a visa letter" in client.get(response.headers["location"]).text
    session.refresh(participant)
    assert participant.visa_letter_key is None


def test_a_tutor_is_refused_every_logistics_page(
    client: TestClient, session: Session, participant: Application, tutor_user: StaffUser
) -> None:
    assert login(client, "tutor@example.org", TUTOR_PASSWORD).status_code == 303
    csrf = csrf_from(client.get("/admin").text)
    assert client.get("/admin/logistics").status_code == 403
    assert client.get("/admin/logistics.csv?edition=diploma-open").status_code == 403
    assert client.get(f"/admin/applications/{participant.id}/visa-letter.pdf").status_code == 403
    issued = client.post(
        f"/admin/applications/{participant.id}/visa-letter", data={"csrf_token": csrf}
    )
    assert issued.status_code == 403
    session.refresh(participant)
    assert participant.visa_letter_key is None


def test_the_logistics_pages_need_a_login(client: TestClient, participant: Application) -> None:
    response = client.get("/admin/logistics", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login")


def test_the_list_shows_needs_and_dates_to_the_administrator(
    client: TestClient, session: Session, participant: Application
) -> None:
    token = token_of(session, participant)
    assert post_logistics(client, token, form()).status_code == 303
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    html = client.get("/admin/logistics").text
    assert "Ama Chisomo Banda" in html
    assert "Vegetarian, no nuts" in html
    assert "Step-free access" in html
    assert 'datetime="2099-11-15"' in html
    assert "Issue letter" in html
    assert 'aria-current="page">Logistics' in html


def test_the_csv_has_no_passport_numbers_and_neutralises_formulas(
    client: TestClient, session: Session, participant: Application
) -> None:
    token = token_of(session, participant)
    assert (
        post_logistics(
            client,
            token,
            form(dietary='=HYPERLINK("http://evil.example","x")', accessibility="@SUM(1+1)"),
        ).status_code
        == 303
    )
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    response = client.get("/admin/logistics.csv?edition=diploma-open")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    body = response.content.decode("utf-8-sig")
    assert "Ama Chisomo Banda" in body
    assert "'=HYPERLINK" in body
    assert "'@SUM(1+1)" in body
    assert ",=" not in body and ",@" not in body
    for secret in ("MA1234567", "1985-04-23", "MWI"):
        assert secret not in body


def test_posting_without_the_csrf_token_is_refused(
    client: TestClient, session: Session, participant: Application
) -> None:
    token = token_of(session, participant)
    client.get(f"/portal/{token}")
    response = client.post(f"/portal/{token}/logistics", data=form(), follow_redirects=False)
    assert response.status_code == 403
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    issued = client.post(f"/admin/applications/{participant.id}/visa-letter", data={})
    assert issued.status_code == 403
    session.refresh(participant)
    assert participant.logistics_updated_at is None
    assert participant.visa_letter_key is None
