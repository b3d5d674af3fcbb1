"""The final work's assessment mails are written in the participant's language."""

from pathlib import Path

import pytest
from sqlmodel import Session, select

from app.models import OutboxMessage
from app.platform.storage import LocalStorage
from app.services.teaching import final_work as service
from tests.factories import open_edition, pdf_bytes
from tests.services.teaching.test_final_work import assess, confirmed

EXPECTED = {
    "en": ("Your final work for the {course} was not accepted", "Your tutor wrote:"),
    "fr": ("Votre travail final pour le {course} n'a pas été accepté", "Votre tuteur a écrit :"),
    "es": ("Su trabajo final del {course} no ha sido aceptado", "Su tutor o tutora escribió:"),
}


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


@pytest.mark.parametrize("language", ["en", "fr", "es"])
def test_a_rejection_is_written_in_the_participants_language(
    session: Session, storage: LocalStorage, language: str
) -> None:
    edition = open_edition(session)
    edition.translations = {
        "fr": {"title": "Cours en français"},
        "es": {"title": "Curso en español"},
    }
    session.add(edition)
    session.commit()
    application = confirmed(session, storage, edition, f"final.{language}@example.org")
    application.language = language
    session.add(application)
    session.commit()
    service.upload_final_work(
        session, application=application, data=pdf_bytes(), filename="w.pdf", storage=storage
    )
    assess(session, application.id or 0, "rejected", note="Add the indicators, please.")
    mail = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.application_id == application.id,
            OutboxMessage.kind == "final_work_rejected",
        )
    ).one()
    course = {"en": edition.title, "fr": "Cours en français", "es": "Curso en español"}[language]
    subject, wrote = EXPECTED[language]
    assert mail.subject == subject.format(course=course)
    assert wrote in mail.body_text and "Add the indicators, please." in mail.body_text
    if language != "en":
        assert "assessed again" not in mail.body_text
