"""Final work: PDFs checked by content, replacement until acceptance, assessments that never
silently overwrite each other."""

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from app.db import writer_engine
from app.models import Application, Edition, FinalWork, OutboxMessage
from app.platform.storage import LocalStorage
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.teaching import final_work as service
from tests.factories import FACTORY_BASE_URL, FACTORY_SECRET, open_edition, pdf_bytes, submit


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def assess(
    session: Session, application_id: int, status: str, note: str = "", **extra: Any
) -> FinalWork:
    return service.assess_final_work(
        session,
        application_id=application_id,
        status=status,
        note=note,
        actor=extra.pop("actor", "tutor@example.org"),
        secret_key=FACTORY_SECRET,
        base_url=FACTORY_BASE_URL,
        **extra,
    )


def confirmed(session: Session, storage: LocalStorage, edition: Edition, email: str) -> Application:
    """A participant whose place is confirmed (how is not what these tests are about)."""
    application = submit(session, storage, edition, email=email)
    application.status = "confirmed"
    session.add(application)
    session.commit()
    return application


def test_a_pdf_is_judged_by_content_not_by_name() -> None:
    service.check_final_work(pdf_bytes(), "anything.bin")
    for data in (b"GIF89a not a pdf", b"%PDF-1.4\ngarbage without a document\n%%EOF"):
        with pytest.raises(InvalidInput) as refused:
            service.check_final_work(data, "work.pdf")
        assert "is not a PDF document" in refused.value.fields["final_work"]
    with pytest.raises(InvalidInput) as empty:
        service.check_final_work(b"", "work.pdf")
    assert "final_work" in empty.value.fields


def test_only_admitted_or_confirmed_participants_hand_in_final_work(
    session: Session, storage: LocalStorage
) -> None:
    edition = open_edition(session)
    applicant = submit(session, storage, edition, email="applicant@x.org")
    with pytest.raises(Conflict) as refused:
        service.upload_final_work(
            session, application=applicant, data=pdf_bytes(), filename="w.pdf", storage=storage
        )
    assert "this application is submitted" in refused.value.message


def test_a_new_file_after_a_rejection_waits_for_a_new_assessment(
    session: Session, storage: LocalStorage
) -> None:
    application = confirmed(session, storage, open_edition(session), "p@x.org")
    first = service.upload_final_work(
        session, application=application, data=pdf_bytes(), filename="w.pdf", storage=storage
    )
    assess(session, application.id or 0, "rejected", "Add the indicators.")
    mail = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "final_work_rejected")
    ).one()
    assert mail.subject.endswith("was not accepted")
    again = service.upload_final_work(
        session,
        application=application,
        data=pdf_bytes(pages=3),
        filename="C:\\Users\\ama\\w2.pdf",
        storage=storage,
    )
    assert again.id == first.id
    assert (again.status, again.filename, again.version) == ("submitted", "w2.pdf", 3)


def test_an_assessment_needs_an_uploaded_file_and_a_known_status(
    session: Session, storage: LocalStorage
) -> None:
    application = confirmed(session, storage, open_edition(session), "p@x.org")
    with pytest.raises(NotFound):
        assess(session, application.id or 0, "accepted")
    service.upload_final_work(
        session, application=application, data=pdf_bytes(), filename="w.pdf", storage=storage
    )
    with pytest.raises(InvalidInput) as unknown:
        assess(session, application.id or 0, "excellent")
    assert "status" in unknown.value.fields


def test_an_assessment_on_a_stale_version_is_refused_with_the_current_state(
    session: Session, storage: LocalStorage
) -> None:
    application = confirmed(session, storage, open_edition(session), "p@x.org")
    work = service.upload_final_work(
        session, application=application, data=pdf_bytes(), filename="w.pdf", storage=storage
    )
    seen = work.version
    assess(session, application.id or 0, "accepted", expected_version=seen, actor="first@x.org")
    with pytest.raises(service.StaleFinalWork) as stale:
        assess(session, application.id or 0, "rejected", "No.", expected_version=seen)
    assert stale.value.current.status == "accepted"
    assert stale.value.current.assessed_by == "first@x.org"
    assert "first@x.org" in stale.value.message
    accepted = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "final_work_accepted")
    ).all()
    assert len(accepted) == 1


# Two tutors at once, on real connections


_CLEANUP = (
    "DELETE FROM final_work WHERE application_id IN "
    "(SELECT id FROM application WHERE edition_id = :e)",
    "DELETE FROM outbox_message WHERE application_id IN "
    "(SELECT id FROM application WHERE edition_id = :e)",
    "DELETE FROM audit_entry WHERE entity = 'application' AND entity_id IN "
    "(SELECT CAST(id AS VARCHAR) FROM application WHERE edition_id = :e)",
    "DELETE FROM application WHERE edition_id = :e",
    "DELETE FROM course_session WHERE module_id IN (SELECT id FROM module WHERE edition_id = :e)",
    "DELETE FROM module WHERE edition_id = :e",
    "DELETE FROM group_tier WHERE edition_id = :e",
    "DELETE FROM audit_entry WHERE entity = 'edition' AND entity_id = :slug",
    "DELETE FROM edition WHERE id = :e",
)


def test_two_tutors_assessing_at_once_one_wins_and_the_other_is_told(
    engine: Engine, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    slug = "final-work-race"
    with Session(engine, expire_on_commit=False) as session:
        edition = open_edition(session, slug=slug)
        application = confirmed(session, storage, edition, "race@x.org")
        work = service.upload_final_work(
            session, application=application, data=pdf_bytes(), filename="w.pdf", storage=storage
        )
        edition_id, application_id, version = edition.id, application.id or 0, work.version
    outcomes: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def tutor(name: str, status: str) -> None:
        barrier.wait()
        with Session(writer_engine(engine), expire_on_commit=False) as session:
            try:
                assess(
                    session,
                    application_id,
                    status,
                    f"Decided by {name}.",
                    expected_version=version,
                    actor=name,
                )
                outcomes[name] = "saved"
            except service.StaleFinalWork as exc:
                outcomes[name] = f"stale:{exc.current.assessed_by}"

    threads = [
        threading.Thread(target=tutor, args=("a@x.org", "accepted")),
        threading.Thread(target=tutor, args=("b@x.org", "rejected")),
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(result.split(":")[0] for result in outcomes.values()) == ["saved", "stale"]
        winner = next(name for name, result in outcomes.items() if result == "saved")
        loser = next(name for name in outcomes if name != winner)
        assert outcomes[loser] == f"stale:{winner}"
        with Session(engine) as session:
            stored = session.exec(
                select(FinalWork).where(FinalWork.application_id == application_id)
            ).one()
            assert (stored.assessed_by, stored.version) == (winner, version + 1)
            assert stored.note == f"Decided by {winner}."
    finally:
        with engine.begin() as connection:
            for statement in _CLEANUP:
                connection.execute(text(statement), {"e": edition_id, "slug": slug})
