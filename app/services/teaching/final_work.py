"""A participant's final work: the PDF they upload, and the tutor's assessment of it."""

import io
import logging
from datetime import datetime
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PdfReadError
from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.models import Application, ApplicationStatus, Edition, FinalWork, FinalWorkStatus
from app.platform.audit import record_change
from app.platform.i18n import N_, Message, Term, Value, localized
from app.platform.mail import queue_email
from app.platform.storage import Storage, new_key
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registrations.applications import get_application, is_pdf, portal_url

log = logging.getLogger("diplomat.final_work")

FINAL_WORK_MAX_BYTES = 20 * 1024 * 1024
NOTE_MAX = 4000
# Only participants hand in final work: an applicant still under review, or one who left,
# has nothing to assess.
UPLOAD_STATUSES = (ApplicationStatus.admitted.value, ApplicationStatus.confirmed.value)
ASSESSMENTS = (
    FinalWorkStatus.submitted.value,
    FinalWorkStatus.presented.value,
    FinalWorkStatus.accepted.value,
    FinalWorkStatus.rejected.value,
)
# Marked for the catalogs: the portal shows them in the participant's language.
STATUS_WORDS = {
    FinalWorkStatus.submitted.value: N_("submitted, not yet assessed"),
    FinalWorkStatus.presented.value: N_("presented, not yet decided"),
    FinalWorkStatus.accepted.value: N_("accepted"),
    FinalWorkStatus.rejected.value: N_("rejected"),
}


class FinalWorkLocked(Conflict):
    """The final work was accepted; its file can no longer be replaced."""


class StaleFinalWork(Conflict):
    """Someone changed the final work since the form was loaded; `current` is how it is now."""

    def __init__(self, message: str, *, current: FinalWork) -> None:
        super().__init__(message)
        self.current = current


def check_final_work(data: bytes, filename: str) -> None:
    """A final work is a PDF of at most 20 MB, judged by its content, not its name."""
    field = "final_work"
    if not data:
        raise InvalidInput(N_("Choose a file to upload."), fields={field: N_("Choose a PDF file.")})
    if len(data) > FINAL_WORK_MAX_BYTES:
        raise InvalidInput(
            N_("The file is too large."),
            fields={
                field: N_("The final work must be a PDF of at most 20 MB; this file is larger.")
            },
        )
    not_pdf = InvalidInput(
        N_("The file is not a PDF."),
        fields={
            field: Message(
                N_("%(name)s is not a PDF document (whatever its name says)."), {"name": filename}
            )
            if filename
            else N_("This file is not a PDF document (whatever its name says).")
        },
    )
    if not is_pdf(data):
        raise not_pdf
    # A PDF header and end marker are cheap to fake: the file must also open as a document
    # with at least one page, or a tutor would download something nobody can read.
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise InvalidInput(
                N_("The PDF is protected by a password."),
                fields={field: N_("Upload a PDF without a password, so tutors can open it.")},
            )
        pages = len(reader.pages)
    except InvalidInput:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        log.info("final work refused as unreadable: %s", exc)
        raise not_pdf from exc
    if pages < 1:
        raise not_pdf


def final_work_of(session: Session, application_id: int) -> FinalWork | None:
    """The participant's final work, if any was handed in."""
    return session.exec(select(FinalWork).where(FinalWork.application_id == application_id)).first()


def final_works_by_application(
    session: Session, application_ids: list[int]
) -> dict[int, FinalWork]:
    """Final works of many participants in one query."""
    if not application_ids:
        return {}
    rows = session.exec(
        select(FinalWork).where(col(FinalWork.application_id).in_(application_ids))
    ).all()
    return {row.application_id: row for row in rows}


def _lock_application(session: Session, application_id: int) -> None:
    """Serialise changes to one participant's final work (SQLite already holds the write lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa_select(col(Application.id))
            .where(col(Application.id) == application_id)
            .with_for_update()
        )


def _safe_filename(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip() or "final-work.pdf"
    if not name.lower().endswith(".pdf"):
        name += ".pdf"
    return name[-200:]


def upload_final_work(
    session: Session,
    *,
    application: Application,
    data: bytes,
    filename: str,
    storage: Storage,
    now: datetime | None = None,
) -> FinalWork:
    """Store the participant's PDF; a new upload replaces the file until the work is accepted."""
    now = now or utcnow()
    if application.status not in UPLOAD_STATUSES:
        raise Conflict(
            Message(
                N_("Final work is handed in by participants; this application is %(status)s."),
                {"status": Term(application.status)},
            )
        )
    check_final_work(data, filename)
    application_id = application.id or 0
    _lock_application(session, application_id)
    work = final_work_of(session, application_id)
    if work is not None:
        session.refresh(work)
    if work is not None and work.status == FinalWorkStatus.accepted.value:
        raise FinalWorkLocked(
            N_(
                "Your final work was accepted; it can no longer be replaced. "
                "Write to the course office if something is wrong."
            )
        )
    key = new_key("final-works", ".pdf")
    storage.put(key, data)
    old_key = work.file_key if work is not None else None
    before: dict[str, Any] | None = None
    if work is None:
        work = FinalWork(application_id=application_id)
    else:
        before = {"status": work.status, "filename": work.filename, "size": work.size_bytes}
        work.version += 1
        # A new file after a rejection is a new attempt: it waits for an assessment again.
        # A presented work stays presented: the presentation happened, the file is its support.
        if work.status == FinalWorkStatus.rejected.value:
            work.status = FinalWorkStatus.submitted.value
    work.file_key = key
    work.filename = _safe_filename(filename)
    work.size_bytes = len(data)
    work.uploaded_at = now
    session.add(work)
    record_change(
        session,
        actor=application.email,
        action="final_work.uploaded" if before is None else "final_work.replaced",
        entity="application",
        entity_id=application_id,
        before=before,
        after={"status": work.status, "filename": work.filename, "size": len(data)},
    )
    try:
        session.commit()
    except Exception:
        storage.delete(key)
        raise
    # The old file goes only once the new one is committed: a failed commit keeps it.
    if old_key and old_key != key:
        storage.delete(old_key)
    return work


def _note(status: str, note: str) -> str:
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise InvalidInput(
            N_("The note is too long."),
            fields={"note": Message(N_("At most %(count)s characters."), {"count": NOTE_MAX})},
        )
    if status == FinalWorkStatus.rejected.value and not note:
        raise InvalidInput(
            N_("Say why the final work is rejected."),
            fields={"note": N_("A rejection needs a note: the participant reads it.")},
        )
    return note


def assess_final_work(
    session: Session,
    *,
    application_id: int,
    status: str,
    note: str,
    actor: str,
    secret_key: str,
    base_url: str,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> FinalWork:
    """Record presented, accepted or rejected with a note; a stale version is refused."""
    now = now or utcnow()
    if status not in ASSESSMENTS:
        raise InvalidInput(
            N_("Unknown assessment."),
            fields={"status": N_("Choose submitted, presented, accepted or rejected.")},
        )
    note = _note(status, note)
    application = get_application(session, application_id)
    work = final_work_of(session, application_id)
    if work is None or work.file_key is None:
        raise NotFound(
            Message(
                N_("%(name)s has not uploaded a final work yet."), {"name": application.full_name}
            )
        )
    if application.status == ApplicationStatus.completed.value:
        raise Conflict(
            N_("The certificate has been issued on this assessment; revoke it before changing it.")
        )
    version = work.version if expected_version is None else expected_version
    before = {"status": work.status, "note": work.note, "version": work.version}
    result = session.execute(
        update(FinalWork)
        .where(col(FinalWork.id) == work.id, col(FinalWork.version) == version)
        .values(status=status, note=note, assessed_by=actor, assessed_at=now, version=version + 1)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        session.refresh(work)
        now_status: Value = Term(STATUS_WORDS.get(work.status, work.status))
        if work.assessed_by:
            # The status and who set it: the pair itself is no catalog message.
            now_status = Message(
                "%(status)s (%(by)s)", {"status": now_status, "by": work.assessed_by}
            )
        raise StaleFinalWork(
            Message(
                N_(
                    "Someone else changed this final work meanwhile: it is now %(status)s. "
                    "Nothing was changed; look at it again and decide."
                ),
                {"status": now_status},
            ),
            current=work,
        )
    session.refresh(work)
    record_change(
        session,
        actor=actor,
        action="final_work.assessed",
        entity="application",
        entity_id=application_id,
        before=before,
        after={"status": status, "note": note, "version": work.version},
    )
    if status != before["status"] and status in (
        FinalWorkStatus.accepted.value,
        FinalWorkStatus.rejected.value,
    ):
        edition = session.get(Edition, application.edition_id)
        assert edition is not None
        queue_email(
            session,
            kind=f"final_work_{status}",
            to=application.email,
            subject=(
                N_("Your final work for the %(course)s was accepted")
                if status == FinalWorkStatus.accepted.value
                else N_("Your final work for the %(course)s was not accepted")
            ),
            subject_values={"course": localized(edition, "title", application.language)},
            context={
                "application": application,
                "edition": edition,
                "work": work,
                "note": note,
                "portal_url": portal_url(
                    application, edition, secret_key=secret_key, base_url=base_url
                ),
            },
            application_id=application_id,
        )
    session.commit()
    return work


def final_work_file(
    session: Session, *, application_id: int, storage: Storage
) -> tuple[str, bytes]:
    """The stored PDF and its file name, for a download."""
    work = final_work_of(session, application_id)
    if work is None or work.file_key is None:
        raise NotFound(N_("No final work was uploaded."))
    return work.filename or "final-work.pdf", storage.get(work.file_key)


def edition_final_works(
    session: Session, edition: Edition
) -> list[tuple[Application, FinalWork | None]]:
    """Participants of an edition with their final work, in name order."""
    participants = list(
        session.exec(
            select(Application)
            .where(
                Application.edition_id == edition.id,
                col(Application.status).in_(
                    (
                        ApplicationStatus.admitted.value,
                        ApplicationStatus.confirmed.value,
                        ApplicationStatus.completed.value,
                    )
                ),
            )
            .order_by(
                col(Application.family_name), col(Application.given_name), col(Application.id)
            )
        ).all()
    )
    works = final_works_by_application(session, [a.id or 0 for a in participants])
    return [(a, works.get(a.id or 0)) for a in participants]
