"""The programme: editing sessions within the rules, and the iCalendar export."""

from datetime import UTC, datetime
from typing import Any

import icalendar
import pytest
from sqlmodel import Session, select

from app.models import AuditEntry, CourseSession, Edition
from app.services.errors import Conflict, InvalidInput
from app.services.teaching import attendance
from app.services.teaching import programme as service
from tests.attendance_data import BASE, SECRET, edition_with, participant


def form(edition: Edition, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "module_id": edition.modules[0].id,
        "kind": "site_visit",
        "title": "Visit to the port authority",
        "starts_at": "2099-11-17T15:00",
        "ends_at": "2099-11-17T17:30",
        "place": "Moll de Barcelona",
    }
    values.update(overrides)
    return values


def add(session: Session, edition: Edition, **overrides: Any) -> CourseSession:
    return service.create_session(
        session,
        edition=edition,
        data=service.parse_session_form(form(edition, **overrides)),
        actor="admin@example.org",
    )


def test_a_session_is_stored_in_utc_from_the_editions_wall_clock(session: Session) -> None:
    edition = edition_with(session, 1)
    created = add(session, edition)
    assert created.starts_at == datetime(2099, 11, 17, 14, 0, tzinfo=UTC)
    assert created.ends_at == datetime(2099, 11, 17, 16, 30, tzinfo=UTC)
    assert (created.kind, created.place) == ("site_visit", "Moll de Barcelona")
    entry = session.exec(
        select(AuditEntry).where(
            AuditEntry.action == "course_session.created",
            AuditEntry.entity_id == str(created.id),
        )
    ).one()
    assert entry.after is not None and entry.after["title"] == "Visit to the port authority"


def test_a_time_with_an_offset_is_taken_as_given(session: Session) -> None:
    edition = edition_with(session, 1)
    created = add(
        session, edition, starts_at="2099-11-17T15:00:00+00:00", ends_at="2099-11-17T16:00:00+00:00"
    )
    assert created.starts_at == datetime(2099, 11, 17, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"ends_at": "2099-11-17T15:00"}, "ends_at"),
        ({"ends_at": "2099-11-17T14:00"}, "ends_at"),
        ({"ends_at": "2099-11-18T15:00"}, "ends_at"),
        ({"starts_at": "2099-11-14T09:00", "ends_at": "2099-11-14T10:00"}, "starts_at"),
        ({"starts_at": "2099-11-22T09:00", "ends_at": "2099-11-22T10:00"}, "starts_at"),
        ({"kind": "party"}, "kind"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"starts_at": "next monday"}, "starts_at"),
        ({"module_id": None}, "module_id"),
    ],
)
def test_a_session_that_breaks_a_rule_is_refused_naming_the_field(
    session: Session, overrides: dict[str, Any], field: str
) -> None:
    edition = edition_with(session, 1)
    with pytest.raises(InvalidInput) as raised:
        add(session, edition, **overrides)
    assert field in raised.value.fields


def test_a_day_either_side_of_the_course_is_allowed(session: Session) -> None:
    edition = edition_with(session, 1)
    add(session, edition, starts_at="2099-11-15T19:00", ends_at="2099-11-15T21:00")
    add(session, edition, starts_at="2099-11-21T10:00", ends_at="2099-11-21T12:00")


def test_a_module_of_another_edition_is_refused(session: Session) -> None:
    edition = edition_with(session, 1)
    other = edition_with(session, 1, slug="diploma-other")
    with pytest.raises(InvalidInput) as raised:
        add(session, edition, module_id=other.modules[0].id)
    assert "module_id" in raised.value.fields


def test_changing_a_session_keeps_its_marks(session: Session) -> None:
    edition = edition_with(session, 1)
    course_session = attendance.edition_sessions(session, edition)[0]
    ama = participant(session, edition)
    attendance.mark_attendance(
        session,
        course_session_id=course_session.id or 0,
        application_id=ama.id or 0,
        status="present",
        actor="tutor@example.org",
        secret_key=SECRET,
        base_url=BASE,
    )
    service.update_session(
        session,
        course_session_id=course_session.id or 0,
        data=service.parse_session_form(form(edition, title="Renamed", kind="knowledge")),
        actor="admin@example.org",
    )
    progress = attendance.participant_progress(session, ama)
    assert progress.marks[course_session.id or 0].status == "present"
    assert attendance.get_course_session(session, course_session.id or 0).title == "Renamed"


def test_a_session_with_marks_cannot_be_removed_and_one_without_can(session: Session) -> None:
    edition = edition_with(session, 2)
    marked, unmarked = attendance.edition_sessions(session, edition)
    ama = participant(session, edition)
    attendance.mark_attendance(
        session,
        course_session_id=marked.id or 0,
        application_id=ama.id or 0,
        status="absent",
        actor="tutor@example.org",
        secret_key=SECRET,
        base_url=BASE,
    )
    with pytest.raises(Conflict):
        service.delete_session(session, course_session_id=marked.id or 0, actor="admin@x.org")
    service.delete_session(session, course_session_id=unmarked.id or 0, actor="admin@x.org")
    assert [s.id for s in attendance.edition_sessions(session, edition)] == [marked.id]


def parsed(data: bytes) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(data)


def test_the_calendar_has_one_event_per_session_in_the_editions_time_zone(
    session: Session,
) -> None:
    edition = edition_with(session, 2, 1)
    data = service.programme_ics(
        edition, service.programme(session, edition), base_url="https://office.example.org"
    )
    text = data.decode()
    assert "BEGIN:VTIMEZONE" in text
    assert "TZID:Europe/Madrid" in text
    assert "DTSTART;TZID=Europe/Madrid:20991116T090000" in text
    events = parsed(data).walk("VEVENT")
    assert len(events) == 3
    first = events[0]
    assert str(first["SUMMARY"]) == "L1 session 1 (Knowledge session)"
    assert str(first["LOCATION"]) == "Metropolis secretariat, Barcelona"
    assert first["DTSTART"].dt.utcoffset().total_seconds() == 3600
    assert str(first["UID"]).endswith("@office.example.org")
    assert "Lesson 1: Lesson 1" in str(first["DESCRIPTION"])


def test_a_sessions_uid_stays_the_same_across_downloads_and_edits(session: Session) -> None:
    edition = edition_with(session, 1)

    def uids() -> list[str]:
        data = service.programme_ics(edition, service.programme(session, edition), base_url=BASE)
        return [str(e["UID"]) for e in parsed(data).walk("VEVENT")]

    before = uids()
    course_session = attendance.edition_sessions(session, edition)[0]
    service.update_session(
        session,
        course_session_id=course_session.id or 0,
        data=service.parse_session_form(form(edition, title="Moved")),
        actor="admin@example.org",
    )
    assert uids() == before
    assert len(set(before)) == 1
