"""Test data for attendance: editions with a programme, confirmed participants, cleanup."""

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session

from app.models import Application, Edition
from app.platform.storage import LocalStorage
from app.services.registrations import applications as applications_service
from tests.factories import application_payload, open_edition

SECRET = "test-secret-key-" + "x" * 32
BASE = "http://testserver"


def programme(*sizes: int) -> list[dict[str, Any]]:
    """Modules for POST /api/v1/editions-like bodies: module i gets sizes[i] sessions.

    The test edition runs 16-20 November 2099 in Europe/Madrid; module i is on day i, its
    sessions at 09:00, 11:00, 14:00 ... each 90 minutes long.
    """
    starts = ("09:00", "11:00", "14:00", "16:00")
    ends = ("10:30", "12:30", "15:30", "17:30")
    kinds = ("knowledge", "skills", "site_visit", "knowledge")
    modules = []
    for index, size in enumerate(sizes):
        day = f"2099-11-{16 + index}"
        modules.append(
            {
                "title": f"Lesson {index + 1}",
                "sessions": [
                    {
                        "kind": kinds[n],
                        "title": f"L{index + 1} session {n + 1}",
                        "starts_at": f"{day}T{starts[n]}:00+01:00",
                        "ends_at": f"{day}T{ends[n]}:00+01:00",
                        "place": "Metropolis secretariat",
                    }
                    for n in range(size)
                ],
            }
        )
    return modules


def edition_with(session: Session, *sizes: int, **overrides: Any) -> Edition:
    """The open test edition with modules of the given numbers of sessions."""
    return open_edition(session, modules=programme(*sizes), **overrides)


def participant(
    session: Session,
    edition: Edition,
    *,
    status: str = "confirmed",
    **overrides: Any,
) -> Application:
    """An application submitted through the service, then brought to `status`.

    How a place gets confirmed (payment, waiver) is not what attendance tests are about.
    """
    storage = LocalStorage(Path(tempfile.mkdtemp(prefix="diplomat-attendance-")))
    application = applications_service.submit_application(
        session,
        edition_slug=edition.slug,
        data=applications_service.ApplicationIn.model_validate(application_payload(**overrides)),
        cv=None,
        cv_filename=None,
        storage=storage,
        secret_key=SECRET,
        base_url=BASE,
    ).application
    application.status = status
    session.add(application)
    session.commit()
    return application


def participants(session: Session, edition: Edition, count: int) -> list[Application]:
    """`count` confirmed participants with distinct names."""
    return [
        participant(
            session,
            edition,
            given_name=f"Person{n:02d}",
            family_name=f"Family{n:02d}",
            email=f"p{n}.{edition.slug}@example.org",
        )
        for n in range(count)
    ]


def at(value: str) -> datetime:
    """An instant from ISO text with an offset."""
    return datetime.fromisoformat(value)


_APPLICATIONS = "SELECT id FROM application WHERE edition_id = :e"
_SESSIONS = (
    "SELECT id FROM course_session WHERE module_id IN (SELECT id FROM module WHERE edition_id = :e)"
)
_AS_TEXT = "SELECT CAST(id AS VARCHAR(20)) FROM"
_CLEANUP = (
    f"DELETE FROM audit_entry WHERE entity = 'application' AND entity_id IN ({_AS_TEXT} "
    "application WHERE edition_id = :e)",
    f"DELETE FROM audit_entry WHERE entity = 'course_session' AND entity_id IN ({_AS_TEXT} "
    "course_session WHERE module_id IN (SELECT id FROM module WHERE edition_id = :e))",
    "DELETE FROM audit_entry WHERE entity = 'edition' AND entity_id IN "
    "(SELECT slug FROM edition WHERE id = :e)",
    f"DELETE FROM attendance_change WHERE course_session_id IN ({_SESSIONS})",
    f"DELETE FROM attendance_mark WHERE course_session_id IN ({_SESSIONS})",
    f"DELETE FROM check_in_attempt WHERE application_id IN ({_APPLICATIONS})",
    f"DELETE FROM check_in_code WHERE course_session_id IN ({_SESSIONS})",
    f"DELETE FROM outbox_message WHERE application_id IN ({_APPLICATIONS})",
    "DELETE FROM application WHERE edition_id = :e",
    f"DELETE FROM course_session WHERE id IN ({_SESSIONS})",
    "DELETE FROM module WHERE edition_id = :e",
    "DELETE FROM group_tier WHERE edition_id = :e",
    "DELETE FROM edition WHERE id = :e",
)


def cleanup(engine: Engine, edition_id: int) -> None:
    """Tests that commit for real (several connections) remove what they made."""
    with engine.begin() as connection:
        for statement in _CLEANUP:
            connection.execute(text(statement), {"e": edition_id})
