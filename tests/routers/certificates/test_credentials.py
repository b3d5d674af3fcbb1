"""The certificate as a verifiable credential: what a wallet downloads and a verifier resolves."""

import json
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Application, Edition
from app.services.certificates import credentials, open_badges
from tests.factories import make_edition, make_eligible_participant
from tests.routers.certificates.test_certificates import issue_by_api, token_of

BASE = "http://127.0.0.1:8000"
DID = "did:web:127.0.0.1%3A8000"


@pytest.fixture
def edition(session: Session) -> Edition:
    return make_edition(
        session,
        slug="diploma-wallet",
        edition_label="3rd edition",
        start_date="2099-11-16",
        end_date="2099-11-20",
    )


@pytest.fixture
def participant(session: Session, edition: Edition) -> Application:
    return make_eligible_participant(session, edition, given_name="Ama", family_name="Banda")


def local(url: str) -> str:
    assert url.startswith(BASE), url
    return url.removeprefix(BASE)


def issuer_of(client: TestClient) -> open_badges.Issuer:
    options = client.app.state.certificate_options  # type: ignore[attr-defined]
    return options.issuer  # type: ignore[no-any-return]


def test_the_credential_carries_a_data_integrity_proof_by_a_key_of_the_did_document(
    client: TestClient, admin_headers: dict[str, str], participant: Application
) -> None:
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    answer = client.get(f"/api/v1/certificates/{number}/credential")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/ld+json")
    credential = answer.json()
    proof = credential["proof"]
    assert proof["type"] == "DataIntegrityProof" and proof["cryptosuite"] == "eddsa-rdfc-2022"
    assert proof["proofPurpose"] == "assertionMethod" and proof["proofValue"].startswith("z")
    assert credential["issuer"]["id"] == DID
    did_document = client.get("/.well-known/did.json").json()
    assert did_document["id"] == DID
    assert proof["verificationMethod"] in did_document["assertionMethod"]
    assert credentials.verify(issuer_of(client), credential).verified
    assert "Banda" not in answer.text and participant.email not in answer.text


def test_one_changed_character_makes_the_credential_fail(
    client: TestClient, admin_headers: dict[str, str], participant: Application
) -> None:
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    credential = client.get(f"/api/v1/certificates/{number}/credential").json()
    achievement = credential["credentialSubject"]["achievement"]
    achievement["name"] = achievement["name"].replace("3rd", "4th")
    result = credentials.verify(issuer_of(client), credential)
    assert not result.verified and "does not match" in result.reason


def test_the_credential_links_resolve_to_the_issuer_achievement_image_and_status(
    client: TestClient, admin_headers: dict[str, str], participant: Application
) -> None:
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    credential = client.get(f"/api/v1/certificates/{number}/credential").json()
    achievement = credential["credentialSubject"]["achievement"]
    fetched = client.get(local(achievement["id"]))
    assert fetched.status_code == 200 and fetched.json()["criteria"] == achievement["criteria"]
    image = client.get(local(achievement["image"]["id"]))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert client.get(local(achievement["criteria"]["id"])).status_code == 200
    status_list = client.get(local(credential["credentialStatus"]["statusListCredential"]))
    assert status_list.json()["issuer"] == credential["issuer"]["id"]
    assert credentials.verify(issuer_of(client), status_list.json()).verified
    profile = client.get("/ob/issuer").json()
    did_document = client.get("/.well-known/did.json").json()
    assert profile["id"] == DID and did_document["alsoKnownAs"] == [f"{BASE}/ob/issuer"]


def test_the_criteria_follow_the_editions_modules_and_attendance_rule(
    client: TestClient, admin_headers: dict[str, str], session: Session, edition: Edition
) -> None:
    participant = make_eligible_participant(session, edition)
    narrative = client.get("/ob/achievements/diploma-wallet").json()["criteria"]["narrative"]
    assert "Present at every session of every module" in narrative
    assert "five" not in narrative
    edition.attendance_min_percent = 80
    session.add(edition)
    session.commit()
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    credential = client.get(f"/api/v1/certificates/{number}/credential").json()
    narrative = credential["credentialSubject"]["achievement"]["criteria"]["narrative"]
    assert "no fewer than 80 % of each module's sessions" in narrative
    modules = sorted(edition.modules, key=lambda m: m.position)
    assert f"{len(modules)} modules" in narrative
    assert all(f"Lesson {m.position}, {m.title}" in narrative for m in modules)


def test_the_jwt_form_is_rs256_and_its_kid_answers_with_one_jwk(
    client: TestClient, admin_headers: dict[str, str], participant: Application
) -> None:
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    answer = client.get(
        f"/api/v1/certificates/{number}/credential", headers={"Accept": "application/vc+jwt"}
    )
    assert answer.headers["content-type"].startswith("application/vc+jwt")
    header = jwt.get_unverified_header(answer.text)
    assert header["alg"] == "RS256"
    key = client.get(local(header["kid"]))
    assert key.headers["content-type"].startswith("application/jwk+json")
    assert key.json()["kty"] == "RSA" and "d" not in key.json()
    claims = jwt.decode(answer.text, jwt.PyJWK(key.json()).key, algorithms=["RS256"])
    assert claims["iss"] == DID and claims["type"][-1] == "OpenBadgeCredential"
    assert client.get("/ob/keys/not-a-key").status_code == 404


def test_a_revoked_certificate_has_no_credential_and_a_bad_number_is_422(
    client: TestClient, admin_headers: dict[str, str], participant: Application
) -> None:
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    client.post(
        f"/api/v1/certificates/{number}/revoke",
        json={"reason": "Issued to the wrong person."},
        headers=admin_headers,
    )
    assert client.get(f"/api/v1/certificates/{number}/credential").status_code == 409
    assert client.get("/api/v1/certificates/nonsense/credential").status_code == 422


def test_the_portal_downloads_the_credential_and_offers_it_to_a_wallet(
    client: TestClient, admin_headers: dict[str, str], session: Session, participant: Application
) -> None:
    number = issue_by_api(client, admin_headers, participant).json()["number"]
    token = token_of(session, participant)
    download = client.get(f"/portal/{token}/credential.json")
    assert download.status_code == 200
    assert f"credential-{number}.json" in download.headers["content-disposition"]
    assert credentials.verify(issuer_of(client), download.json()).verified
    portal = client.get(f"/portal/{token}").text
    assert f"/portal/{token}/credential.json" in portal
    assert f"{BASE}/api/v1/certificates/{number}/credential" in portal
    assert "<svg" in portal  # the QR code a wallet scans
    verification = client.get(f"/verify/{number}").text
    assert "/static/img/course-badge.svg" in verification
    assert client.get("/static/img/course-badge.svg").status_code == 200


def _pem_public(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def test_credentials_signed_before_a_key_rotation_keep_verifying() -> None:
    old = Ed25519PrivateKey.generate()
    new = Ed25519PrivateKey.generate()
    pem = old.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    before = open_badges.Issuer(name="Office", base_url=BASE, private_key_pem=pem)
    document = {
        "@context": [open_badges.VC_CONTEXT],
        "type": ["VerifiableCredential"],
        "issuer": DID,
        "validFrom": "2026-01-01T00:00:00Z",
        "credentialSubject": {"id": "urn:example:subject"},
    }
    signed = credentials.secure(before, document, now=datetime(2026, 1, 1, tzinfo=UTC))
    after = open_badges.Issuer(
        name="Office",
        base_url=BASE,
        private_key_pem=new.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        ).decode(),
        past_public_keys=(_pem_public(old),),
    )
    assert credentials.verify(after, signed).verified
    methods = credentials.did_document(after)["assertionMethod"]
    assert len(methods) == 2 and signed["proof"]["verificationMethod"] in methods
    forgotten = open_badges.Issuer(
        name="Office", base_url=BASE, private_key_pem=after.private_key_pem
    )
    assert not credentials.verify(forgotten, json.loads(json.dumps(signed))).verified


def test_did_web_identifiers_encode_the_port_and_the_path() -> None:
    def did_of(base_url: str) -> tuple[str, str]:
        issuer = open_badges.Issuer(name="Office", base_url=base_url, private_key_pem="")
        return issuer.did, issuer.did_document_url

    assert did_of("https://courses.example.org") == (
        "did:web:courses.example.org",
        "https://courses.example.org/.well-known/did.json",
    )
    assert did_of("https://example.org:8443/office/diploma") == (
        "did:web:example.org%3A8443:office:diploma",
        "https://example.org:8443/office/diploma/did.json",
    )
