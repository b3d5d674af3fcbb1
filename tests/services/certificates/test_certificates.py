"""Issuing, re-issuing, revoking and verifying certificates; their badges and revocation list."""

import io
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from pypdf import PdfReader
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from app.clock import utcnow
from app.config import Settings
from app.db import writer_engine
from app.models import (
    Application,
    AttendanceMark,
    AuditEntry,
    Certificate,
    Edition,
    FinalWork,
    OutboxMessage,
)
from app.platform.rate_limit import Limit, RateLimited, hit
from app.platform.storage import LocalStorage
from app.services.certificates import credentials, open_badges
from app.services.certificates import document as certificate_pdf
from app.services.certificates import issuing as service
from app.services.certificates.numbers import InvalidNumber
from app.services.errors import Conflict, InvalidInput, NotFound
from tests.factories import OFFICE_ZONE, make_edition, make_eligible_participant


class CountingStorage(LocalStorage):
    """Local storage that counts reads and writes."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.puts = 0

    def put(self, key: str, data: bytes) -> None:
        self.puts += 1
        super().put(key, data)


@pytest.fixture
def storage(tmp_path: Path) -> CountingStorage:
    return CountingStorage(tmp_path / "files")


@pytest.fixture
def options(settings: Settings) -> service.CertificateOptions:
    return service.CertificateOptions.from_settings(settings)


@pytest.fixture
def edition(session: Session) -> Edition:
    return make_edition(
        session,
        slug="diploma-certs",
        start_date="2024-11-18",
        end_date="2024-11-22",
        edition_label="2nd edition",
    )


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def issue(
    session: Session, application: Application, storage: LocalStorage, options
) -> Certificate:  # type: ignore[no-untyped-def]
    return service.issue_certificate(
        session,
        application_id=application.id or 0,
        actor="admin@example.org",
        storage=storage,
        options=options,
    ).certificate


def test_an_eligible_participant_gets_a_stored_certificate_an_email_and_is_completed(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
) -> None:
    participant = make_eligible_participant(
        session, edition, given_name="Zoë", family_name="Ñúñez-Østergård"
    )
    result = service.issue_certificate(
        session,
        application_id=participant.id or 0,
        actor="admin@example.org",
        storage=storage,
        options=options,
    )
    certificate = result.certificate
    assert result.created
    assert certificate.holder_name == "Zoë Ñúñez-Østergård"
    assert certificate.version == 1
    assert certificate.pdf_key and storage.exists(certificate.pdf_key)
    text = pdf_text(storage.get(certificate.pdf_key))
    assert "Zoë Ñúñez-Østergård" in text
    assert certificate.number in text
    for module in edition.modules:
        assert module.title in " ".join(text.split())
    session.refresh(participant)
    assert participant.status == "completed"
    mail = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.application_id == participant.id,
            OutboxMessage.kind == "certificate_issued",
        )
    ).one()
    assert mail.attachments[0]["key"] == certificate.pdf_key
    assert f"/verify/{certificate.number}" in mail.body_text
    assert session.exec(
        select(AuditEntry).where(
            AuditEntry.action == "certificate.issued", AuditEntry.entity_id == str(participant.id)
        )
    ).one()


def test_issuing_twice_returns_the_existing_certificate(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
) -> None:
    participant = make_eligible_participant(session, edition)
    first = issue(session, participant, storage, options)
    puts = storage.puts
    again = service.issue_certificate(
        session,
        application_id=participant.id or 0,
        actor="admin@example.org",
        storage=storage,
        options=options,
    )
    assert not again.created
    assert again.certificate.number == first.number
    assert storage.puts == puts
    assert (
        len(
            session.exec(
                select(Certificate).where(Certificate.application_id == participant.id)
            ).all()
        )
        == 1
    )


def test_an_ineligible_participant_is_refused_with_the_eligibility_reasons(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
) -> None:
    participant = make_eligible_participant(session, edition)
    mark = session.exec(
        select(AttendanceMark).where(AttendanceMark.application_id == participant.id)
    ).first()
    assert mark is not None
    mark.status = "absent"
    session.add(mark)
    session.commit()
    with pytest.raises(service.NotEligible) as refused:
        issue(session, participant, storage, options)
    assert refused.value.reasons
    assert any("absent" in reason for reason in refused.value.reasons)
    assert storage.puts == 0
    assert service.certificate_of(session, participant.id or 0) is None


def test_the_certificate_uses_the_name_registered_for_it(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
) -> None:
    participant = make_eligible_participant(session, edition, given_name="Ama", family_name="Banda")
    participant.certificate_name = "Dr.  Ama  K. Banda"
    session.add(participant)
    session.commit()
    certificate = issue(session, participant, storage, options)
    assert certificate.holder_name == "Dr. Ama K. Banda"


def test_bulk_issues_every_eligible_participant_once_and_lists_who_was_skipped(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
) -> None:
    eligible = [
        make_eligible_participant(session, edition, given_name=name, family_name="Tester")
        for name in ("Ana", "Bo", "محمد")
    ]
    late = make_eligible_participant(session, edition, given_name="Lee", family_name="Late")
    for mark in session.exec(
        select(AttendanceMark).where(AttendanceMark.application_id == late.id)
    ).all():
        session.delete(mark)
    session.commit()
    steps: list[tuple[int, int, int]] = []
    result = service.issue_for_edition(
        session,
        edition=edition,
        actor="admin@example.org",
        storage=storage,
        options=options,
        progress=lambda done, total, issued: steps.append((done, total, issued)),
    )
    assert {c.application_id for c in result.issued} == {a.id for a in eligible}
    assert [s["application_id"] for s in result.skipped] == [late.id]
    assert result.skipped[0]["reasons"]
    assert steps[0] == (0, 3, 0) and steps[-1] == (3, 3, 3)
    for certificate in result.issued:
        text = pdf_text(storage.get(certificate.pdf_key or ""))
        # Extraction puts right-to-left words in visual order: compare word by word.
        assert set(certificate.holder_name.split()) <= set(text.split())
        assert certificate.number in text
    again = service.issue_for_edition(
        session, edition=edition, actor="admin@example.org", storage=storage, options=options
    )
    assert again.issued == []
    assert again.already_issued == 3


def test_revoking_needs_a_reason_and_happens_once(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
) -> None:
    certificate = issue(session, make_eligible_participant(session, edition), storage, options)
    with pytest.raises(InvalidInput) as short:
        service.revoke(
            session,
            number=certificate.number,
            reason="no",
            actor="admin@example.org",
            options=options,
        )
    assert "reason" in short.value.fields
    revoked = service.revoke(
        session,
        number=certificate.number.lower().replace("-", ""),
        reason="Attendance sheet was falsified.",
        actor="admin@example.org",
        options=options,
    )
    assert revoked.revoked_at is not None
    view = service.public_view(session, revoked)
    assert view["valid"] is False and view["revoked"] is True
    assert view["revoked_on"] == revoked.revoked_at.astimezone(OFFICE_ZONE).date().isoformat()
    with pytest.raises(Conflict, match="revoked already"):
        service.revoke(
            session,
            number=certificate.number,
            reason="Attendance sheet was falsified.",
            actor="admin@example.org",
            options=options,
        )
    assert session.exec(
        select(AuditEntry).where(AuditEntry.action == "certificate.revoked")
    ).first()


def test_a_name_correction_issues_a_new_version_under_the_same_number(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
) -> None:
    participant = make_eligible_participant(session, edition, given_name="Jon", family_name="Smtih")
    first = issue(session, participant, storage, options)
    first_key = first.pdf_key
    corrected = service.reissue(
        session,
        number=first.number,
        holder="Jon Smith",
        reason="The family name was misspelt at registration.",
        actor="admin@example.org",
        storage=storage,
        options=options,
    )
    assert corrected.number == first.number
    assert corrected.version == 2
    assert corrected.holder_name == "Jon Smith"
    assert corrected.pdf_key != first_key
    assert first_key and storage.exists(first_key)
    text = pdf_text(storage.get(corrected.pdf_key or ""))
    assert "Jon Smith" in text and "version 2" in text
    versions = service.versions_of(session, corrected)
    assert [(v.version, v.holder_name) for v in versions] == [(1, "Jon Smtih"), (2, "Jon Smith")]
    session.refresh(participant)
    assert participant.certificate_name == "Jon Smith"
    view = service.public_view(session, corrected)
    assert view["holder"] == "Jon Smith" and view["version"] == 2 and view["reissued_on"]
    with pytest.raises(InvalidInput):
        service.reissue(
            session,
            number=first.number,
            holder="Jon Smith",
            reason="Nothing changed in fact here.",
            actor="admin@example.org",
            storage=storage,
            options=options,
        )


def test_a_revoked_certificate_is_not_reissued(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
) -> None:
    certificate = issue(session, make_eligible_participant(session, edition), storage, options)
    service.revoke(
        session,
        number=certificate.number,
        reason="Issued by mistake to a non-participant.",
        actor="admin@example.org",
        options=options,
    )
    with pytest.raises(Conflict, match="revoked"):
        service.reissue(
            session,
            number=certificate.number,
            holder="Someone Else",
            reason="Trying to bring it back to life.",
            actor="admin@example.org",
            storage=storage,
            options=options,
        )


def test_a_stored_certificate_is_served_without_rendering_again(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    certificate = issue(session, make_eligible_participant(session, edition), storage, options)
    stored = storage.get(certificate.pdf_key or "")

    def no_rendering(*args: object, **kwargs: object) -> list[bytes]:
        raise AssertionError("rendered again")

    monkeypatch.setattr(service, "render_certificates", no_rendering)
    assert service.ensure_pdf(session, certificate, storage=storage, options=options) == stored


def test_a_lost_file_is_rendered_again_and_stored(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
) -> None:
    certificate = issue(session, make_eligible_participant(session, edition), storage, options)
    storage.delete(certificate.pdf_key or "")
    data = service.ensure_pdf(session, certificate, storage=storage, options=options)
    assert certificate.number in pdf_text(data)
    assert storage.exists(certificate.pdf_key or "")


def test_verification_shows_little_personal_data(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
) -> None:
    participant = make_eligible_participant(session, edition)
    certificate = issue(session, participant, storage, options)
    view = service.public_view(session, certificate)
    assert set(view) == {
        "number", "valid", "revoked", "revoked_on", "holder", "course", "edition", "place",
        "start_date", "end_date", "issued_on", "version", "reissued_on",
    }  # fmt: skip
    shown = repr(view)
    for private in (participant.email, participant.organisation_name, participant.job_title,
                    participant.reference, participant.country):  # fmt: skip
        assert private not in shown


def test_a_mistyped_number_is_explained_and_an_unknown_one_is_not_found(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
) -> None:
    certificate = issue(session, make_eligible_participant(session, edition), storage, options)
    compact = certificate.number.replace("-", "")
    swapped = compact[:6] + compact[7] + compact[6] + compact[8:]
    if swapped != compact:
        with pytest.raises(InvalidNumber, match="typing mistake"):
            service.get_by_number(session, swapped)
    assert service.get_by_number(session, certificate.number.lower()).id == certificate.id
    with pytest.raises(NotFound):
        service.get_by_number(session, "MD24-7KQ3-9XWF-2HBN-A")


def test_the_linkedin_link_names_the_certification_but_never_the_holder(
    session: Session, edition: Edition, storage: CountingStorage, settings: Settings
) -> None:
    options = service.CertificateOptions.from_settings(
        settings.model_copy(update={"linkedin_organization_id": "1234567"})
    )
    participant = make_eligible_participant(session, edition, given_name="Ama", family_name="Banda")
    certificate = issue(session, participant, storage, options)
    url = service.linkedin_url(options, certificate, edition)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "www.linkedin.com", "/profile/add")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "startTask": "CERTIFICATION_NAME",
        "name": edition.title,
        "organizationId": "1234567",
        "issueYear": str(certificate.issued_on.year),
        "issueMonth": str(certificate.issued_on.month),
        "certUrl": service.verification_url(options, certificate.number),
        "certId": certificate.number,
    }
    assert "Banda" not in url and "Ama" not in url
    by_name = service.CertificateOptions.from_settings(settings)
    assert parse_qs(urlsplit(service.linkedin_url(by_name, certificate, edition)).query)[
        "organizationName"
    ] == [settings.linkedin_organization_name]


def test_the_open_badge_verifies_with_the_public_key_alone(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
) -> None:
    participant = make_eligible_participant(session, edition)
    certificate = issue(session, participant, storage, options)
    token = service.badge(session, certificate, options)
    header = jwt.get_unverified_header(token)
    # The `kid` is an address that answers with one JWK (Open Badges 3.0, section 8.2).
    kid = header["kid"].removeprefix(options.issuer.url("/ob/keys/"))
    published = credentials.jwk(options.issuer, kid)
    assert published is not None and "d" not in published  # never the private part
    key = jwt.PyJWK(published).key
    assert header["alg"] == "RS256" == published["alg"]
    claims = jwt.decode(token, key, algorithms=["RS256"])
    assert claims["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert claims["iss"] == options.issuer.id == claims["issuer"]["id"]
    subject = claims["credentialSubject"]
    achievement = subject["achievement"]
    assert achievement["type"] == ["Achievement"] and achievement["criteria"]["narrative"]
    identity = subject["identifier"][0]
    assert identity["identityType"] == "emailAddress" and identity["hashed"] is True
    assert identity["identityHash"] == open_badges.identity_hash(
        participant.email, identity["salt"]
    )
    assert participant.email not in token and participant.family_name not in repr(claims)
    assert claims["credentialStatus"]["statusListIndex"] == str(certificate.id)
    # A badge whose payload was altered no longer verifies.
    header_b64, payload_b64, signature = token.split(".")
    forged = f"{header_b64}.{payload_b64[:-4]}AAAA.{signature}"
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(forged, key, algorithms=["RS256"])


def test_the_status_list_reflects_revocation(
    session: Session,
    edition: Edition,
    storage: CountingStorage,
    options: service.CertificateOptions,
) -> None:
    kept = issue(session, make_eligible_participant(session, edition), storage, options)
    revoked = issue(session, make_eligible_participant(session, edition), storage, options)
    service.revoke(
        session,
        number=revoked.number,
        reason="Issued to the wrong participant.",
        actor="admin@example.org",
        options=options,
    )
    credential = service.status_list(session, options)
    token = credentials.vc_jwt(options.issuer, credential, algorithm="EdDSA")
    key = jwt.PyJWK(credentials.jwks(options.issuer)["keys"][0]).key
    claims = jwt.decode(token, key, algorithms=["EdDSA"])
    subject = claims["credentialSubject"]
    assert subject["type"] == "BitstringStatusList" and subject["statusPurpose"] == "revocation"
    assert open_badges.is_set(subject["encodedList"], revoked.id or 0)
    assert not open_badges.is_set(subject["encodedList"], kept.id or 0)
    with pytest.raises(Conflict):
        service.badge(session, revoked, options)


def test_the_rate_limiter_counts_per_address_and_says_when_to_retry(session: Session) -> None:
    limit = Limit(requests=3, window_seconds=60)
    start = utcnow().replace(second=5, microsecond=0)
    for _ in range(3):
        hit(session, scope="test", subject="192.0.2.1", limit=limit, now=start)
    with pytest.raises(RateLimited) as limited:
        hit(session, scope="test", subject="192.0.2.1", limit=limit, now=start)
    assert limited.value.retry_after == 55
    assert hit(session, scope="test", subject="192.0.2.2", limit=limit, now=start) == 1
    assert (
        hit(
            session,
            scope="test",
            subject="192.0.2.1",
            limit=limit,
            now=start + timedelta(seconds=60),
        )
        == 1
    )


def test_certificates_of_a_batch_land_in_order_in_their_own_files() -> None:
    pages = [
        certificate_pdf.CertificatePage(
            number=f"MD24-AAAA-BBBB-CCC{i}-X",
            holder=name,
            issuer="Metropolis",
            course="Diploma",
            edition="2nd edition",
            place="Barcelona",
            dates="18 to 22 November 2024",
            modules=("One", "Two", "Three", "Four", "Five"),
            signatories=(),
            issued_on="22 November 2024",
            version=1,
            verification_url=f"https://example.org/verify/{i}",
        )
        for i, name in enumerate(["Ana Uno", "王小明", "Bea Dos", "محمد بن راشد"])
    ]
    # Two processes, two batches of two: the pool path, results in the order of the work.
    results = list(
        certificate_pdf.render_batches(certificate_pdf.batches(pages, size=2), processes=2)
    )
    files = [pdf for batch in results for pdf in batch]
    assert len(files) == 4
    for page, data in zip(pages, files, strict=True):
        reader = PdfReader(io.BytesIO(data))
        assert len(reader.pages) == 1
        assert page.number in reader.pages[0].extract_text()
    assert "Ana Uno" in pdf_text(files[0]) and "Bea Dos" in pdf_text(files[2])
    # The Chinese name's font stays out of the files that do not use it.
    assert b"CJK" in files[1] and b"CJK" not in files[0]


# Races

_APPLICATIONS = "SELECT id FROM application WHERE edition_id = :e"
_CLEANUP = (
    # These tests commit for real (several connections): remove what they made, audit too.
    "DELETE FROM audit_entry WHERE entity = 'application' AND entity_id IN "
    "(SELECT CAST(id AS VARCHAR(20)) FROM application WHERE edition_id = :e)",
    "DELETE FROM audit_entry WHERE entity = 'edition' AND entity_id IN "
    "(SELECT slug FROM edition WHERE id = :e UNION SELECT CAST(id AS VARCHAR(20)) FROM edition "
    "WHERE id = :e)",
    "DELETE FROM certificate_version WHERE certificate_id IN "
    "(SELECT id FROM certificate WHERE edition_id = :e)",
    "DELETE FROM certificate WHERE edition_id = :e",
    f"DELETE FROM outbox_message WHERE application_id IN ({_APPLICATIONS})",
    f"DELETE FROM final_work WHERE application_id IN ({_APPLICATIONS})",
    f"DELETE FROM attendance_mark WHERE application_id IN ({_APPLICATIONS})",
    "DELETE FROM application WHERE edition_id = :e",
    "DELETE FROM course_session WHERE module_id IN (SELECT id FROM module WHERE edition_id = :e)",
    "DELETE FROM module WHERE edition_id = :e",
    "DELETE FROM group_tier WHERE edition_id = :e",
    "DELETE FROM edition WHERE id = :e",
)


def _committed_participant(engine: Engine) -> tuple[int, int]:
    """An edition that has ended and one eligible participant, committed (edition, application)."""
    with Session(engine, expire_on_commit=False) as session:
        edition = make_edition(session, slug="certificate-race")
        now = utcnow()
        application = Application(
            edition_id=edition.id or 0,
            reference="MD24-RACE01",
            status="confirmed",
            given_name="Rhea",
            family_name="Race",
            email="rhea.race@example.org",
            organisation_name="Example City Council",
            country="ESP",
            job_title="Officer",
            motivation="Racing to be issued.",
            consent_at=now,
            quoted_total=Decimal("0.00"),
            confirmed_at=now,
        )
        session.add(application)
        session.flush()
        for module in edition.modules:
            for course_session in module.sessions:
                session.add(
                    AttendanceMark(
                        course_session_id=course_session.id or 0,
                        application_id=application.id or 0,
                        status="present",
                        marked_by="tutor@example.org",
                    )
                )
        session.add(
            FinalWork(
                application_id=application.id or 0,
                file_key="final/race.pdf",
                status="accepted",
                assessed_by="tutor@example.org",
                assessed_at=now,
            )
        )
        session.commit()
        return edition.id or 0, application.id or 0


def test_concurrent_issues_of_one_certificate_give_one_certificate(
    engine: Engine, tmp_path: Path, settings: Settings
) -> None:
    storage = LocalStorage(tmp_path / "files")
    options = service.CertificateOptions.from_settings(settings)
    edition_id, application_id = _committed_participant(engine)
    outcomes: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def attempt() -> None:
        barrier.wait()
        try:
            with Session(writer_engine(engine), expire_on_commit=False) as session:
                result = service.issue_certificate(
                    session,
                    application_id=application_id,
                    actor="admin@example.org",
                    storage=storage,
                    options=options,
                )
                outcomes.append((result.certificate.number, result.created))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert len({number for number, _ in outcomes}) == 1
        assert sorted(created for _, created in outcomes) == [False, False, True]
        with Session(engine) as session:
            rows = session.exec(
                select(Certificate).where(Certificate.application_id == application_id)
            ).all()
            mails = session.exec(
                select(OutboxMessage).where(
                    OutboxMessage.application_id == application_id,
                    OutboxMessage.kind == "certificate_issued",
                )
            ).all()
        assert len(rows) == 1 and len(mails) == 1
        # The losers' rendered files were removed: only the winner's is stored.
        assert [p.name for p in (tmp_path / "files" / "certificates").iterdir()] == [
            Path(rows[0].pdf_key or "").name
        ]
    finally:
        with engine.begin() as connection:
            for statement in _CLEANUP:
                connection.execute(text(statement), {"e": edition_id})
