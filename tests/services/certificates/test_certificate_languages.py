"""Certificates in the holder's language: the PDF, the e-mails, bulk runs with many languages."""

import io
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlmodel import Session, col, select

from app.config import Settings
from app.models import Application, Certificate, Edition, OutboxMessage
from app.platform.storage import LocalStorage
from app.services.certificates import document as certificate_pdf
from app.services.certificates import issuing as service
from tests.factories import make_edition, make_eligible_participant

# What a certificate says in each language, with the course texts entered for it.
WORDING = {
    "en": [
        "Certificate",
        "of completion",
        "This is to certify that",
        "has successfully completed the",
        "Executive Course on City Diplomacy",
        "2nd edition, held in Barcelona, 18 to 22 November 2024",
        "Certificate number",
        "Verify at",
    ],
    "fr": [
        "Certificat",
        "de réussite",
        "Nous certifions que",
        "a suivi avec succès le",
        "Cours de diplomatie des villes",
        "2nd edition, tenue à Barcelona, 18–22 novembre 2024",
        "Numéro de certificat",
        "Vérifiable sur",
        "Module un en français",
    ],
    "es": [
        "Certificado",
        "de finalización",
        "Se certifica que",
        "ha completado satisfactoriamente el",
        "Curso de diplomacia urbana",
        "2nd edition, celebrada en Barcelona, 18–22 de noviembre de 2024",
        "Número de certificado",
        "Verificable en",
    ],
}
ISSUED_ON = {"en": "Issued on", "fr": "Délivré le", "es": "Expedido el"}
SUBJECT = {
    "en": "Your certificate of the Executive Course on City Diplomacy",
    "fr": "Votre certificat du Cours de diplomatie des villes",
    "es": "Su certificado del Curso de diplomacia urbana",
}


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


@pytest.fixture
def options(settings: Settings) -> service.CertificateOptions:
    return service.CertificateOptions.from_settings(settings)


@pytest.fixture
def edition(session: Session) -> Edition:
    edition = make_edition(
        session,
        slug="diploma-langs",
        title="Executive Course on City Diplomacy",
        place="Barcelona",
        start_date="2024-11-18",
        end_date="2024-11-22",
        edition_label="2nd edition",
    )
    edition.translations = {
        "fr": {"title": "Cours de diplomatie des villes"},
        "es": {"title": "Curso de diplomacia urbana"},
    }
    session.add(edition)
    session.commit()
    return edition


def participant(session: Session, edition: Edition, language: str, name: str) -> Application:
    application = make_eligible_participant(session, edition, given_name=name, family_name="Banda")
    # As if the apply form had been read in `language`.
    application.language = language
    session.add(application)
    session.commit()
    if language == "fr" and edition.modules:
        # Only the first module is translated: the others fall back to English.
        first = edition.modules[0]
        first.translations = {"fr": {"title": "Module un en français"}}
        session.add(first)
        session.commit()
    return application


def flat(data: bytes) -> str:
    """The PDF's text with its line breaks and spacing made single spaces."""
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return " ".join(text.replace("\u202f", " ").replace("\xa0", " ").split())


@pytest.mark.parametrize("language", ["en", "fr", "es"])
def test_the_certificate_and_its_mail_are_in_the_holders_language(
    session: Session,
    edition: Edition,
    storage: LocalStorage,
    options: service.CertificateOptions,
    language: str,
) -> None:
    application = participant(session, edition, language, "Ama")
    certificate = service.issue_certificate(
        session,
        application_id=application.id or 0,
        actor="admin@example.org",
        storage=storage,
        options=options,
    ).certificate
    text = flat(storage.get(certificate.pdf_key or ""))
    for words in WORDING[language]:
        assert words in text, (language, words, text)
    assert ISSUED_ON[language] in text
    if language != "en":
        assert "This is to certify that" not in text
        assert "held in" not in text
    mail = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.application_id == application.id,
            OutboxMessage.kind == "certificate_issued",
        )
    ).one()
    assert mail.subject == SUBJECT[language]
    if language == "en":
        assert "Congratulations on completing the Executive Course" in mail.body_text
    else:
        assert "Congratulations" not in mail.body_text
        assert SUBJECT[language].split()[-1] in mail.body_text


def test_a_reissued_and_a_revoked_certificate_are_announced_in_the_holders_language(
    session: Session, edition: Edition, storage: LocalStorage, options: service.CertificateOptions
) -> None:
    application = participant(session, edition, "es", "Ama")
    certificate = service.issue_certificate(
        session,
        application_id=application.id or 0,
        actor="admin@example.org",
        storage=storage,
        options=options,
    ).certificate
    corrected = service.reissue(
        session,
        number=certificate.number,
        holder="Ama Kofi Banda",
        reason="The participant asked for the middle name.",
        actor="admin@example.org",
        storage=storage,
        options=options,
    )
    text = flat(storage.get(corrected.pdf_key or ""))
    assert "Expedido el" in text and "versión 2" in text
    service.revoke(
        session,
        number=certificate.number,
        reason="Issued by mistake to the wrong person.",
        actor="admin@example.org",
        options=options,
    )
    subjects = session.exec(
        select(OutboxMessage.subject)
        .where(
            OutboxMessage.application_id == application.id,
            col(OutboxMessage.kind).in_(["certificate_reissued", "certificate_revoked"]),
        )
        .order_by(col(OutboxMessage.id))
    ).all()
    assert subjects == [
        "Su certificado corregido del Curso de diplomacia urbana",
        f"Su certificado {certificate.number} ha sido revocado",
    ]


def test_a_bulk_run_in_three_languages_renders_one_document_per_language_batch(
    session: Session,
    edition: Edition,
    storage: LocalStorage,
    options: service.CertificateOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    people = {
        name: participant(session, edition, language, name)
        for name, language in (("Ana", "en"), ("Bea", "fr"), ("Cai", "es"), ("Dan", "fr"))
    }
    documents: list[str | None] = []
    real = certificate_pdf.render_pdf

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        documents.append(kwargs.get("language"))
        return real(*args, **kwargs)

    monkeypatch.setattr(certificate_pdf, "render_pdf", counting)
    result = service.issue_for_edition(
        session, edition=edition, actor="admin@example.org", storage=storage, options=options
    )
    assert len(result.issued) == 4
    # Names sort Ana, Bea, Cai, Dan: one document per language, never one per certificate.
    assert sorted(documents, key=str) == ["en", "es", "fr"]
    by_application = {c.application_id: c for c in session.exec(select(Certificate)).all()}
    for name, application in people.items():
        certificate = by_application[application.id or 0]
        text = flat(storage.get(certificate.pdf_key or ""))
        assert f"{name} Banda" in text
        assert certificate.number in text
        assert WORDING[application.language][2] in text, (name, text)


def test_a_mixed_batch_keeps_each_certificate_in_its_place() -> None:
    def page(number: str, language: str) -> certificate_pdf.CertificatePage:
        return certificate_pdf.CertificatePage(
            number=number,
            holder=f"Holder {number}",
            issuer="Metropolis",
            course="Course",
            edition="",
            place="Barcelona",
            dates="18 November 2024",
            modules=(),
            signatories=(),
            issued_on="22 November 2024",
            version=1,
            verification_url=f"https://example.org/verify/{number}",
            language=language,
        )

    pages = [page("A1", "fr"), page("B2", "en"), page("C3", "fr"), page("D4", "es")]
    pdfs = certificate_pdf.render_certificates(pages)
    expected = [
        "Nous certifions que",
        "This is to certify that",
        "Nous certifions que",
        "Se certifica que",
    ]
    for pdf, one, words in zip(pdfs, pages, expected, strict=True):
        text = flat(pdf)
        assert f"Holder {one.number}" in text and words in text
