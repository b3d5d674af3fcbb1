"""Certificates over HTTP: the API, public verification, the portal and the office's pages."""

import io
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlmodel import Session, select

from app.models import Application, AttendanceMark, Certificate, CertificateRun, Edition
from app.routers.certificates import issuing as routes
from app.services.certificates import open_badges
from app.services.registrations import applications as applications_service
from tests.conftest import ADMIN_PASSWORD
from tests.factories import make_edition, make_eligible_participant
from tests.routers.office.test_auth import csrf_from, login

SECRET = "test-secret-key-" + "x" * 32


@pytest.fixture
def edition(session: Session) -> Edition:
    return make_edition(
        session,
        slug="diploma-web",
        edition_label="2nd edition",
        start_date="2099-11-16",
        end_date="2099-11-20",
    )


@pytest.fixture
def participant(session: Session, edition: Edition) -> Application:
    return make_eligible_participant(session, edition, given_name="Ama", family_name="Banda")


def token_of(session: Session, application: Application) -> str:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return applications_service.portal_token(application, edition, secret_key=SECRET)


def issue_by_api(client: TestClient, headers: dict[str, str], application: Application):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/applications/{application.id}/certificate", headers=headers)


def text_of(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)


# The API


def test_issuing_answers_201_and_issuing_again_the_same_certificate_with_200(
    client: TestClient, admin_headers: dict[str, str], participant: Application
) -> None:
    first = issue_by_api(client, admin_headers, participant)
    assert first.status_code == 201, first.text
    body = first.json()
    assert set(body) >= {"number", "verification_url", "pdf_url", "linkedin_url"}
    assert body["verification_url"].endswith(f"/verify/{body['number']}")
    again = issue_by_api(client, admin_headers, participant)
    assert again.status_code == 200
    assert again.json()["number"] == body["number"]
    pdf = client.get(urlsplit(body["pdf_url"]).path, headers=admin_headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert "Ama Banda" in text_of(pdf.content)


def test_an_ineligible_participant_gets_409_with_the_reasons(
    client: TestClient,
    admin_headers: dict[str, str],
    session: Session,
    participant: Application,
) -> None:
    for mark in session.exec(
        select(AttendanceMark).where(AttendanceMark.application_id == participant.id)
    ).all():
        mark.status = "excused"
        session.add(mark)
    session.commit()
    refused = issue_by_api(client, admin_headers, participant)
    assert refused.status_code == 409
    body = refused.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["reasons"] and any("excused" in r for r in body["reasons"])


def test_a_tutor_cannot_issue_or_revoke(
    client: TestClient,
    admin_headers: dict[str, str],
    tutor_headers: dict[str, str],
    participant: Application,
) -> None:
    assert issue_by_api(client, tutor_headers, participant).status_code == 403
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    revoked = client.post(
        f"/api/v1/certificates/{number}/revoke",
        json={"reason": "A tutor should not be able to do this."},
        headers=tutor_headers,
    )
    assert revoked.status_code == 403


def test_bulk_issue_through_the_api_lists_issued_and_skipped(
    client: TestClient, admin_headers: dict[str, str], session: Session, edition: Edition
) -> None:
    ready = [make_eligible_participant(session, edition) for _ in range(2)]
    late = make_eligible_participant(session, edition)
    for mark in session.exec(
        select(AttendanceMark).where(AttendanceMark.application_id == late.id)
    ).all():
        session.delete(mark)
    session.commit()
    answer = client.post(f"/api/v1/editions/{edition.slug}/certificates", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued"] == 2
    assert {c["application_id"] for c in body["certificates"]} == {a.id for a in ready}
    assert [s["application_id"] for s in body["skipped"]] == [late.id]
    again = client.post(f"/api/v1/editions/{edition.slug}/certificates", headers=admin_headers)
    assert again.json()["issued"] == 0 and again.json()["already_issued"] == 2


def test_anyone_verifies_a_certificate_and_sees_nothing_else_personal(
    client: TestClient, admin_headers: dict[str, str], participant: Application
) -> None:
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    answer = client.get(f"/api/v1/certificates/{number}")
    assert answer.status_code == 200
    body = answer.json()
    assert body["valid"] is True and body["revoked"] is False
    assert body["holder"] == "Ama Banda"
    assert body["course"] and body["edition"] == "2nd edition" and body["issued_on"]
    for private in (participant.email, participant.organisation_name, participant.reference):
        assert private not in answer.text


def test_revocation_through_the_api_shows_in_verification(
    client: TestClient, admin_headers: dict[str, str], participant: Application
) -> None:
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    short = client.post(
        f"/api/v1/certificates/{number}/revoke", json={"reason": "no"}, headers=admin_headers
    )
    assert short.status_code == 422
    assert short.json()["detail"][0]["loc"] == ["body", "reason"]
    revoked = client.post(
        f"/api/v1/certificates/{number}/revoke",
        json={"reason": "Final work was plagiarised."},
        headers=admin_headers,
    )
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    body = client.get(f"/api/v1/certificates/{number}").json()
    assert body["valid"] is False and body["revoked"] is True and body["revoked_on"]
    twice = client.post(
        f"/api/v1/certificates/{number}/revoke",
        json={"reason": "Final work was plagiarised."},
        headers=admin_headers,
    )
    assert twice.status_code == 409


def test_a_mistyped_number_is_explained_and_an_unknown_one_is_404(client: TestClient) -> None:
    typo = client.get("/api/v1/certificates/MD24-7KQ3-9XWF-2HBN-B")
    assert typo.status_code == 422
    assert "check character" in typo.json()["detail"][0]["msg"]
    assert typo.json()["detail"][0]["loc"] == ["path", "number"]
    assert client.get("/api/v1/certificates/MD24-7KQ3-9XWF-2HBN-A").status_code == 404
    page = client.get("/verify/MD24-7KQ3-9XWF-2HBN-B")
    assert page.status_code == 422
    assert "mistyped" in page.text and 'aria-invalid="true"' in page.text


def test_verification_is_rate_limited_per_address(
    client: TestClient, test_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(test_app.state.settings, "certificate_verify_limit", 3)
    answers = [client.get("/api/v1/certificates/MD24-7KQ3-9XWF-2HBN-A") for _ in range(3)]
    assert [a.status_code for a in answers] == [404, 404, 404]
    limited = client.get("/api/v1/certificates/MD24-7KQ3-9XWF-2HBN-A")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    page = client.get("/verify/MD24-7KQ3-9XWF-2HBN-A")
    assert page.status_code == 429 and "retry-after" in page.headers


# Public pages


def test_the_verification_page_says_valid_then_revoked(
    client: TestClient, admin_headers: dict[str, str], participant: Application
) -> None:
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    page = client.get(f"/verify/{number}")
    assert page.status_code == 200
    assert "Valid certificate" in page.text and "Ama Banda" in page.text
    assert participant.email not in page.text
    lower = client.get(f"/verify/{number.lower().replace('-', '')}", follow_redirects=False)
    assert lower.status_code == 308 and lower.headers["location"] == f"/verify/{number}"
    typed = client.get("/verify", params={"number": number.lower()}, follow_redirects=False)
    assert typed.status_code == 303 and typed.headers["location"] == f"/verify/{number}"
    client.post(
        f"/api/v1/certificates/{number}/revoke",
        json={"reason": "Issued to the wrong person."},
        headers=admin_headers,
    )
    revoked = client.get(f"/verify/{number}")
    assert "Revoked certificate" in revoked.text and "Valid certificate" not in revoked.text


def test_a_reissued_certificate_verifies_in_its_new_name_and_version(
    client: TestClient, admin_headers: dict[str, str], participant: Application
) -> None:
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    reissued = client.post(
        f"/api/v1/certificates/{number}/reissue",
        json={"holder_name": "Ama Chisomo Banda", "reason": "Middle name left out."},
        headers=admin_headers,
    )
    assert reissued.status_code == 200, reissued.text
    assert reissued.json()["number"] == number and reissued.json()["version"] == 2
    page = client.get(f"/verify/{number}")
    assert "Ama Chisomo Banda" in page.text and "version 2" in page.text.lower()
    assert "no longer counts" in page.text


def test_the_portal_offers_the_pdf_linkedin_and_the_badge(
    client: TestClient, admin_headers: dict[str, str], session: Session, participant: Application
) -> None:
    token = token_of(session, participant)
    assert "Your certificate" not in client.get(f"/portal/{token}").text
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    portal = client.get(f"/portal/{token}")
    assert "Your certificate" in portal.text and number in portal.text
    link = next(
        href.replace("&amp;", "&")
        for href in portal.text.split('href="')[1:]
        if href.startswith("https://www.linkedin.com/profile/add")
    ).split('"')[0]
    query = parse_qs(urlsplit(link).query)
    assert query["certId"] == [number] and query["startTask"] == ["CERTIFICATION_NAME"]
    assert "Banda" not in link
    pdf = client.get(f"/portal/{token}/certificate.pdf")
    assert pdf.status_code == 200 and pdf.headers["cache-control"] == "private, no-store"
    assert number in text_of(pdf.content)
    badge = client.get(f"/portal/{token}/open-badge.jwt")
    assert badge.status_code == 200 and badge.headers["content-type"].startswith("application/jwt")
    kid = jwt.get_unverified_header(badge.text)["kid"]
    key = client.get(kid.replace("http://127.0.0.1:8000", "")).json()
    claims = jwt.decode(badge.text, jwt.PyJWK(key).key, algorithms=["RS256"])
    assert claims["type"][-1] == "OpenBadgeCredential"
    profile = client.get("/ob/issuer").json()
    assert profile["type"] == ["Profile"] and profile["id"] == claims["iss"]


def test_another_portal_link_cannot_download_this_certificate(
    client: TestClient,
    admin_headers: dict[str, str],
    session: Session,
    edition: Edition,
    participant: Application,
) -> None:
    other = make_eligible_participant(session, edition)
    issue_by_api(client, admin_headers, participant)
    assert client.get(f"/portal/{token_of(session, other)}/certificate.pdf").status_code == 404
    assert client.get("/portal/not-a-token/certificate.pdf").status_code == 404


def test_the_status_list_endpoint_reflects_a_revocation(
    client: TestClient, admin_headers: dict[str, str], session: Session, participant: Application
) -> None:
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    certificate = session.exec(select(Certificate).where(Certificate.number == number)).one()
    before = client.get("/ob/status/revocation", headers={"Accept": "application/vc+jwt"})
    kid = jwt.get_unverified_header(before.text)["kid"]
    key = client.get(kid.replace("http://127.0.0.1:8000", "")).json()
    claims = jwt.decode(before.text, jwt.PyJWK(key).key, algorithms=["RS256"])
    assert not open_badges.is_set(claims["credentialSubject"]["encodedList"], certificate.id or 0)
    client.post(
        f"/api/v1/certificates/{number}/revoke",
        json={"reason": "Issued to the wrong person."},
        headers=admin_headers,
    )
    after = client.get("/ob/status/revocation")
    assert after.headers["content-type"].startswith("application/ld+json")
    status_list = after.json()
    assert status_list["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert status_list["proof"]["cryptosuite"] == "eddsa-rdfc-2022"
    assert open_badges.is_set(status_list["credentialSubject"]["encodedList"], certificate.id or 0)


# The office's pages


def test_an_administrator_issues_revokes_and_corrects_from_the_application_page(
    client: TestClient, admin_user: object, session: Session, participant: Application
) -> None:
    login(client, "admin@example.org", ADMIN_PASSWORD)
    page = client.get(f"/admin/applications/{participant.id}")
    assert "Meets every condition" in page.text
    issued = client.post(
        f"/admin/applications/{participant.id}/certificate",
        data={"csrf_token": csrf_from(page.text)},
    )
    assert "issued to Ama Banda" in issued.text
    certificate = session.exec(
        select(Certificate).where(Certificate.application_id == participant.id)
    ).one()
    csrf = csrf_from(issued.text)
    corrected = client.post(
        f"/admin/certificates/{certificate.number}/reissue",
        data={"csrf_token": csrf, "holder_name": "Ama K. Banda", "reissue_reason": "short"},
    )
    assert 'id="cert-reissue_reason-error"' in corrected.text
    corrected = client.post(
        f"/admin/certificates/{certificate.number}/reissue",
        data={
            "csrf_token": csrf,
            "holder_name": "Ama K. Banda",
            "reissue_reason": "Initial left out at registration.",
        },
    )
    assert "version 2" in corrected.text
    revoked = client.post(
        f"/admin/certificates/{certificate.number}/revoke",
        data={"csrf_token": csrf, "reason": "Issued by mistake, sorry."},
    )
    assert "is revoked" in revoked.text and "tag-error" in revoked.text
    pdf = client.get(f"/admin/applications/{participant.id}/certificate.pdf")
    assert "Ama K. Banda" in text_of(pdf.content)


def test_the_edition_page_runs_a_bulk_issue_and_shows_its_progress(
    client: TestClient,
    test_app: FastAPI,
    admin_user: object,
    session: Session,
    edition: Edition,
) -> None:
    people = [make_eligible_participant(session, edition) for _ in range(2)]
    launched: list[object] = []

    def in_place(work):  # type: ignore[no-untyped-def]
        launched.append(work)

    test_app.dependency_overrides[routes.run_launcher] = lambda: in_place
    login(client, "admin@example.org", ADMIN_PASSWORD)
    page = client.get(f"/admin/editions/{edition.slug}/certificates")
    assert "Issue 2 certificates" in page.text
    started = client.post(
        f"/admin/editions/{edition.slug}/certificates/run",
        headers={"HX-Request": "true", "X-CSRF-Token": csrf_from(page.text)},
    )
    assert started.status_code == 200
    run = session.exec(select(CertificateRun).where(CertificateRun.edition_id == edition.id)).one()
    # While running, the fragment asks for itself again every second.
    assert 'hx-trigger="every 1s"' in started.text
    assert f"/certificates/runs/{run.id}" in started.text
    second = client.post(
        f"/admin/editions/{edition.slug}/certificates/run",
        headers={"HX-Request": "true", "X-CSRF-Token": csrf_from(page.text)},
    )
    assert second.status_code == 409 and "being issued already" in second.text
    # The background work runs (here, in this test's session) and the poll sees the end.
    launched[0](session)  # type: ignore[operator]
    polled = client.get(f"/admin/editions/{edition.slug}/certificates/runs/{run.id}")
    assert "Finished: 2 certificates issued" in polled.text
    assert "hx-trigger" not in polled.text
    listing = client.get(f"/admin/editions/{edition.slug}/certificates")
    for person in people:
        session.refresh(person)
        assert person.status == "completed"
    assert listing.text.count("tag-ok") >= 2
