"""The programme: editing a module's sessions and exporting it as an iCalendar file."""

from datetime import date, datetime, timedelta
from typing import Any, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.models import (
    AttendanceChange,
    AttendanceMark,
    CheckInAttempt,
    CheckInCode,
    CourseSession,
    Edition,
    Module,
    SessionKind,
)
from app.platform.audit import record_change
from app.services.errors import Conflict, InvalidInput
from app.services.teaching.attendance import KIND_LABELS, get_course_session, module_of

# A session may sit a day either side of the course dates (a welcome evening, a closing
# visit); further away it is almost always a typing mistake in the date.
SCHEDULE_MARGIN = timedelta(days=1)
LONGEST_SESSION = timedelta(hours=12)
FIELD_MESSAGES = {
    "kind": "Choose a knowledge session, a skills session or a site visit.",
    "title": "Give the session a title of at most 200 characters.",
    "starts_at": "Enter the start as a date and time.",
    "ends_at": "Enter the end as a date and time.",
    "place": "The place has at most 200 characters.",
    "module_id": "Choose the module.",
}


class ScheduleSessionIn(BaseModel):
    """A session as an administrator enters it; times without an offset are the edition's."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    module_id: int
    kind: SessionKind
    title: str = Field(min_length=1, max_length=200)
    starts_at: datetime
    ends_at: datetime
    place: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _same_kind_of_time(self) -> Self:
        if (self.starts_at.tzinfo is None) != (self.ends_at.tzinfo is None):
            raise ValueError("give both times with an offset, or neither")
        return self


def parse_session_form(values: dict[str, Any]) -> ScheduleSessionIn:
    """The session fields of a form; InvalidInput names each field at fault."""
    try:
        return ScheduleSessionIn.model_validate(values)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error.get("loc") else "starts_at"
            errors.setdefault(name, FIELD_MESSAGES.get(name, str(error.get("msg", ""))))
        raise InvalidInput("Please correct the session.", fields=errors) from None


def _aware(value: datetime, zone: ZoneInfo) -> datetime:
    return value.replace(tzinfo=zone) if value.tzinfo is None else value


def _day_words(value: date) -> str:
    return f"{value.day} {value:%B} {value.year}"


def _check(
    session: Session, edition: Edition, data: ScheduleSessionIn
) -> tuple[datetime, datetime]:
    """The session's instants, or InvalidInput naming every field at fault."""
    zone = ZoneInfo(edition.timezone)
    starts, ends = _aware(data.starts_at, zone), _aware(data.ends_at, zone)
    errors: dict[str, str] = {}
    module = session.get(Module, data.module_id)
    if module is None or module.edition_id != edition.id:
        errors["module_id"] = "Choose one of this edition's modules."
    first = edition.start_date - SCHEDULE_MARGIN
    last = edition.end_date + SCHEDULE_MARGIN
    if not first <= starts.astimezone(zone).date() <= last:
        errors["starts_at"] = (
            f"The session must start between {_day_words(first)} and {_day_words(last)}: the "
            "course dates give or take a day."
        )
    if ends <= starts:
        errors["ends_at"] = "The session must end after it starts."
    elif ends - starts > LONGEST_SESSION:
        errors["ends_at"] = "A session lasts at most 12 hours; check the end date."
    if errors:
        raise InvalidInput("Please correct the session.", fields=errors)
    return starts.astimezone(ZoneInfo("UTC")), ends.astimezone(ZoneInfo("UTC"))


def session_snapshot(course_session: CourseSession) -> dict[str, Any]:
    """A session's fields as plain JSON values, for the audit log."""
    return {
        "module_id": course_session.module_id,
        "kind": course_session.kind,
        "title": course_session.title,
        "starts_at": course_session.starts_at.isoformat(),
        "ends_at": course_session.ends_at.isoformat(),
        "place": course_session.place,
    }


def _touch(edition: Edition) -> None:
    # The edition's updated_at guards concurrent edits of the edition as a whole.
    edition.updated_at = utcnow()


def create_session(
    session: Session, *, edition: Edition, data: ScheduleSessionIn, actor: str
) -> CourseSession:
    """Add a session to one of the edition's modules."""
    starts, ends = _check(session, edition, data)
    course_session = CourseSession(
        module_id=data.module_id,
        kind=data.kind.value,
        title=data.title,
        starts_at=starts,
        ends_at=ends,
        place=data.place,
    )
    session.add(course_session)
    _touch(edition)
    session.add(edition)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="course_session.created",
        entity="course_session",
        entity_id=course_session.id or 0,
        after=session_snapshot(course_session),
    )
    session.commit()
    session.refresh(course_session)
    return course_session


def update_session(
    session: Session, *, course_session_id: int, data: ScheduleSessionIn, actor: str
) -> CourseSession:
    """Change a session; its marks stay with it."""
    course_session = get_course_session(session, course_session_id)
    edition = session.get(Edition, module_of(session, course_session).edition_id)
    assert edition is not None
    starts, ends = _check(session, edition, data)
    before = session_snapshot(course_session)
    course_session.module_id = data.module_id
    course_session.kind = data.kind.value
    course_session.title = data.title
    course_session.starts_at = starts
    course_session.ends_at = ends
    course_session.place = data.place
    session.add(course_session)
    _touch(edition)
    session.add(edition)
    after = session_snapshot(course_session)
    changed = {k for k in after if after[k] != before[k]}
    if changed:
        record_change(
            session,
            actor=actor,
            action="course_session.updated",
            entity="course_session",
            entity_id=course_session_id,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    session.commit()
    session.refresh(course_session)
    return course_session


def delete_session(session: Session, *, course_session_id: int, actor: str) -> None:
    """Remove a session nobody has been marked at yet."""
    course_session = get_course_session(session, course_session_id)
    edition = session.get(Edition, module_of(session, course_session).edition_id)
    assert edition is not None
    marks: int = session.exec(
        select(func.count())
        .select_from(AttendanceChange)
        .where(AttendanceChange.course_session_id == course_session_id)
    ).one()
    if marks:
        raise Conflict(
            f"“{course_session.title}” has attendance marks ({marks} changes); a session with "
            "marks cannot be removed. Change its time or title instead."
        )
    before = session_snapshot(course_session)
    for table in (CheckInAttempt, CheckInCode, AttendanceMark):
        session.execute(delete(table).where(col(table.course_session_id) == course_session_id))
    session.delete(course_session)
    _touch(edition)
    session.add(edition)
    record_change(
        session,
        actor=actor,
        action="course_session.deleted",
        entity="course_session",
        entity_id=course_session_id,
        before=before,
    )
    session.commit()


def programme(session: Session, edition: Edition) -> list[tuple[Module, list[CourseSession]]]:
    """Each module with its sessions in time order."""
    modules = list(
        session.exec(
            select(Module).where(Module.edition_id == edition.id).order_by(col(Module.position))
        ).all()
    )
    by_module: dict[int, list[CourseSession]] = {m.id or 0: [] for m in modules}
    for course_session in session.exec(
        select(CourseSession)
        .where(col(CourseSession.module_id).in_(list(by_module)))
        .order_by(col(CourseSession.starts_at), col(CourseSession.id))
    ).all():
        by_module[course_session.module_id or 0].append(course_session)
    return [(m, by_module[m.id or 0]) for m in modules]


def session_uid(course_session: CourseSession, edition: Edition, base_url: str) -> str:
    """A UID that stays the same for a session however often the file is downloaded."""
    host = urlsplit(base_url).hostname or "diplomat.local"
    return f"session-{course_session.id}.{edition.slug}@{host}"


def programme_ics(
    edition: Edition,
    modules: list[tuple[Module, list[CourseSession]]],
    *,
    base_url: str,
    now: datetime | None = None,
) -> bytes:
    """The programme as an iCalendar file, in the edition's time zone (with its VTIMEZONE)."""
    zone = ZoneInfo(edition.timezone)
    stamp = now or utcnow()
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Metropolis//diplomat course office//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    name = f"{edition.title}{' · ' + edition.edition_label if edition.edition_label else ''}"
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-timezone", edition.timezone)
    edition_url = f"{base_url.rstrip('/')}/editions/{edition.slug}"
    for module, sessions in modules:
        for course_session in sessions:
            event = icalendar.Event()
            event.add("uid", session_uid(course_session, edition, base_url))
            event.add("dtstamp", stamp)
            event.add("dtstart", course_session.starts_at.astimezone(zone))
            event.add("dtend", course_session.ends_at.astimezone(zone))
            kind = KIND_LABELS.get(course_session.kind, course_session.kind)
            event.add("summary", f"{course_session.title} ({kind})")
            place = ", ".join(p for p in (course_session.place, edition.place) if p)
            if place:
                event.add("location", place)
            event.add(
                "description",
                f"Lesson {module.position}: {module.title}\n{kind}\n{name}\n{edition_url}",
            )
            event.add("categories", [kind])
            event.add("url", edition_url)
            calendar.add_component(event)
    # Only the transitions around the course: a whole-history VTIMEZONE is kilobytes of noise.
    calendar.add_missing_timezones(
        first_date=date(edition.start_date.year - 1, 1, 1),
        last_date=date(edition.end_date.year + 1, 12, 31),
    )
    data: bytes = calendar.to_ical()
    return data
