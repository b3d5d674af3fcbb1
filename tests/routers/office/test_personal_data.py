"""The administrators' personal-data pages: export, erasure with its form, retention."""

import json
from datetime import date, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.config import Settings
from app.models import Application, AuditEntry, Edition, Refund, StaffUser
from app.platform.storage import LocalStorage
from app.services.registrations import applications as applications_service
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD
from tests.factories import FACTORY_SECRET, make_edition, make_eligible_participant
from tests.routers.office.test_auth import csrf_from, login
from tests.services.office.test_personal_data import IBAN, PASSPORT, Person, held_data, issue
from tests.services.teaching.test_logistics import pdf_text


@pytest.fixture
def storage(test_app: FastAPI) -> LocalStorage:
    kept: LocalStorage = test_app.state.storage
    return kept


@pytest.fixture
def ended(session: Session) -> Edition:
    """An edition that ended last month: its private links still work."""
    today = date.today()
    return make_edition(
        session,
        slug="diploma-recent",
        start_date=(today - timedelta(days=34)).isoformat(),
        end_date=(today - timedelta(days=30)).isoformat(),
    )


@pytest.fixture
def ama(session: Session, storage: LocalStorage, ended: Edition) -> Person:
    application = make_eligible_participant(
        session, ended, given_name="Ama", family_name="Banda", email="ama.banda@example.org"
    )
    return held_data(session, storage, application)


@pytest.fixture
def vera(session: Session, ended: Edition) -> Application:
    return make_eligible_participant(
        session, ended, given_name="Vera", family_name="Victimova", email="vera@example.org"
    )


@pytest.fixture
def admin(client: TestClient, admin_user: StaffUser) -> TestClient:
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    return client


def page_csrf(client: TestClient, application: Application) -> str:
    return csrf_from(client.get(f"/admin/applications/{application.id}").text)


def test_the_application_page_offers_export_and_erasure(admin: TestClient, ama: Person) -> None:
    html = admin.get(f"/admin/applications/{ama.application.id}").text
    assert f'action="/admin/applications/{ama.application.id}/personal-data/export.json"' in html
    assert f'action="/admin/applications/{ama.application.id}/personal-data/export.pdf"' in html
    assert f'href="/admin/applications/{ama.application.id}/erase"' in html


def test_the_json_export_holds_the_applicants_data_and_no_one_elses(
    admin: TestClient, session: Session, ama: Person, vera: Application
) -> None:
    response = admin.post(
        f"/admin/applications/{ama.application.id}/personal-data/export.json",
        data={"csrf_token": page_csrf(admin, ama.application)},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "attachment" in response.headers["content-disposition"]
    assert response.headers["cache-control"] == "no-store"
    data = json.loads(response.content)
    text = response.text
    assert data["subject"]["email"] == "ama.banda@example.org"
    assert PASSPORT in text and IBAN in text and "ama-banda-cv.pdf" in text
    for other in ("vera@example.org", "Victimova", vera.reference):
        assert other not in text
    entry = session.exec(
        select(AuditEntry).where(AuditEntry.action == "application.personal_data_exported")
    ).one()
    assert entry.actor == "admin@example.org" and entry.after == {
        "format": "json",
        "reference": [ama.application.reference],
    }


def test_the_pdf_export_is_a_readable_document(
    admin: TestClient, ama: Person, vera: Application
) -> None:
    response = admin.post(
        f"/admin/applications/{ama.application.id}/personal-data/export.pdf",
        data={"csrf_token": page_csrf(admin, ama.application)},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    text = pdf_text(response.content)
    assert "Personal data held about Ama Banda" in text
    assert PASSPORT in text and ama.invoice.number in text and "Vegetarian, no nuts" in text
    assert "Victimova" not in text and "vera@example.org" not in text


def test_exports_need_the_forms_security_token(admin: TestClient, ama: Person) -> None:
    for kind in ("json", "pdf"):
        response = admin.post(
            f"/admin/applications/{ama.application.id}/personal-data/export.{kind}"
        )
        assert response.status_code == 403
        assert "did not come from this site" in response.text


def test_a_tutor_may_neither_export_nor_erase_nor_set_the_period(
    client: TestClient, session: Session, tutor_user: StaffUser, ama: Person, ended: Edition
) -> None:
    assert login(client, "tutor@example.org", TUTOR_PASSWORD).status_code == 303
    csrf = csrf_from(client.get("/admin/attendance").text)
    base = f"/admin/applications/{ama.application.id}"
    for url in (f"{base}/personal-data/export.json", f"{base}/personal-data/export.pdf"):
        assert client.post(url, data={"csrf_token": csrf}).status_code == 403
    assert client.get(f"{base}/erase").status_code == 403
    refused = client.post(
        f"{base}/erase",
        data={"csrf_token": csrf, "reason": "Asked by e-mail on 1 March", "confirm": "yes"},
    )
    assert refused.status_code == 403
    assert client.get(f"/admin/editions/{ended.slug}/personal-data").status_code == 403
    assert (
        client.post(
            f"/admin/editions/{ended.slug}/personal-data",
            data={"csrf_token": csrf, "retention_days": "30"},
        ).status_code
        == 403
    )
    session.refresh(ama.application)
    session.refresh(ended)
    assert ama.application.erased_at is None and ended.retention_days == 365
    assert not session.exec(
        select(AuditEntry).where(AuditEntry.action == "application.personal_data_exported")
    ).all()


def erase_form(client: TestClient, application: Application, **values: str):  # type: ignore[no-untyped-def]
    page = client.get(f"/admin/applications/{application.id}/erase")
    assert page.status_code == 200
    return client.post(
        f"/admin/applications/{application.id}/erase",
        data={"csrf_token": csrf_from(page.text), **values},
        follow_redirects=False,
    )


def test_erasure_asks_for_a_reason_and_a_confirmation(
    admin: TestClient, session: Session, ama: Person
) -> None:
    page = admin.get(f"/admin/applications/{ama.application.id}/erase").text
    assert '<label for="reason">' in page and '<label for="confirm">' in page
    assert "Kept" in page and "Invoices and credit notes as issued" in page
    response = erase_form(admin, ama.application, reason="")
    assert response.status_code == 422
    assert 'id="reason-error"' in response.text and 'id="confirm-error"' in response.text
    without_token = admin.post(
        f"/admin/applications/{ama.application.id}/erase",
        data={"reason": "E-mail request of 1 March", "confirm": "yes"},
    )
    assert without_token.status_code == 403
    session.refresh(ama.application)
    assert ama.application.erased_at is None


def test_erasure_ends_the_portal_keeps_verification_and_refuses_a_second_time(
    admin: TestClient,
    session: Session,
    storage: LocalStorage,
    settings: Settings,
    ama: Person,
    ended: Edition,
) -> None:
    certificate = issue(session, storage, settings, ama.application)
    token = applications_service.portal_token(ama.application, ended, secret_key=FACTORY_SECRET)
    assert admin.get(f"/portal/{token}").status_code == 200

    response = erase_form(admin, ama.application, reason="E-mail request of 1 March", confirm="yes")

    assert response.status_code == 303
    detail = admin.get(response.headers["location"]).text
    assert "was erased" in detail and "Erased applicant" in detail
    assert "ama.banda@example.org" not in detail and PASSPORT not in detail
    assert admin.get(f"/portal/{token}").status_code == 404
    for key in ama.keys.values():
        assert not storage.exists(key)
    verify = admin.get(f"/verify/{certificate.number}")
    assert verify.status_code == 200 and "Ama Banda" in verify.text
    assert session.get(Refund, ama.refund.id).iban == ""  # type: ignore[union-attr]
    again = admin.post(
        f"/admin/applications/{ama.application.id}/erase",
        data={
            "csrf_token": page_csrf(admin, ama.application),
            "reason": "E-mail request of 1 March",
            "confirm": "yes",
        },
    )
    assert again.status_code == 409
    assert "already erased" in again.text
    entries = session.exec(
        select(AuditEntry).where(AuditEntry.action == "application.erased")
    ).all()
    assert [(e.actor, (e.after or {}).get("reason")) for e in entries] == [
        ("admin@example.org", "E-mail request of 1 March")
    ]


def test_erasure_with_a_refund_still_owed_is_refused_with_the_reason(
    admin: TestClient, session: Session, storage: LocalStorage, ama: Person
) -> None:
    ama.refund.status = "owed"
    session.add(ama.refund)
    session.commit()
    response = erase_form(admin, ama.application, reason="E-mail request of 1 March", confirm="yes")
    assert response.status_code == 409
    assert "cannot be erased yet" in response.text
    assert "IBAN" in response.text and "complete the refund first" in response.text
    session.refresh(ama.application)
    assert ama.application.erased_at is None
    assert storage.exists(ama.keys["cv"])


def test_the_retention_period_is_set_per_edition(
    admin: TestClient, session: Session, ended: Edition
) -> None:
    page = admin.get(f"/admin/editions/{ended.slug}/personal-data")
    assert page.status_code == 200
    assert "365 days" in page.text and '<label for="retention_days">' in page.text
    wrong = admin.post(
        f"/admin/editions/{ended.slug}/personal-data",
        data={"csrf_token": csrf_from(page.text), "retention_days": "ten"},
    )
    assert wrong.status_code == 422 and 'id="retention_days-error"' in wrong.text
    saved = admin.post(
        f"/admin/editions/{ended.slug}/personal-data",
        data={"csrf_token": csrf_from(page.text), "retention_days": "400"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    session.refresh(ended)
    assert ended.retention_days == 400
    assert "kept 400 days" in admin.get(saved.headers["location"]).text


def test_the_api_reads_and_changes_the_retention_period(
    client: TestClient, session: Session, admin_headers: dict[str, str], ended: Edition
) -> None:
    assert client.get(f"/api/v1/editions/{ended.slug}").json()["retention_days"] == 365
    changed = client.patch(
        f"/api/v1/editions/{ended.slug}", json={"retention_days": 730}, headers=admin_headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["retention_days"] == 730
    refused = client.patch(
        f"/api/v1/editions/{ended.slug}", json={"retention_days": 5}, headers=admin_headers
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"][-1] == "retention_days"
