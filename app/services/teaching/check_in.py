"""Self check-in: a short code a tutor shows during a session, entered by participants.

A code opens 15 minutes before its session starts and closes when the session ends (the
window is half-open: the end instant itself is refused, like the application window). It is
good for its own session only. Every attempt is recorded; five wrong codes within 15
minutes lock one participant out for 15 minutes from the fifth.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.models import (
    Application,
    AttendanceStatus,
    CheckInAttempt,
    CheckInCode,
    CourseSession,
    Edition,
    MarkSource,
    Module,
)
from app.platform.audit import record_change
from app.platform.i18n import N_, Clock, DayAndClock, Message
from app.services.errors import DomainError, InvalidInput
from app.services.teaching.attendance import (
    SHEET_STATUSES,
    edition_of,
    edition_sessions,
    get_course_session,
    mark_attendance,
)

# No 0/O, 1/I/L: a code read off a screen across a room is typed right the first time.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
OPENS_BEFORE_START = timedelta(minutes=15)
THROTTLE_FAILURES = 5
THROTTLE_WINDOW = timedelta(minutes=15)
THROTTLE_LOCKOUT = timedelta(minutes=15)
MAX_TYPED = 40

REASON_OK = "checked in"
REASON_ALREADY = "already present"
REASON_WRONG = "wrong code"
REASON_OTHER_SESSION = "code of another session"
REASON_EARLY = "before the window"
REASON_LATE = "after the window"
REASON_THROTTLED = "throttled"
REASON_NOT_PARTICIPANT = "not a confirmed participant"
# Refusals that look like guessing count towards the lockout; a refusal for the time of day
# does not (the code was not even compared).
GUESSES = (REASON_WRONG, REASON_OTHER_SESSION)


class CheckInRefused(InvalidInput):
    """A code was refused: wrong, of another session, or outside its session's window."""


class CheckInThrottled(DomainError):
    """Too many wrong codes: try again at `retry_at`."""

    def __init__(self, message: str, *, retry_at: datetime) -> None:
        super().__init__(message, fields={"code": message})
        self.retry_at = retry_at


@dataclass(frozen=True)
class CheckInWindow:
    """When a session's code is accepted: opens <= now < closes."""

    opens: datetime
    closes: datetime

    def contains(self, now: datetime) -> bool:
        """Whether the code is accepted at `now`."""
        return self.opens <= now < self.closes


@dataclass(frozen=True)
class CheckInResult:
    """A successful check-in."""

    course_session: CourseSession
    already_present: bool


def new_code() -> str:
    """Six characters from an alphabet without look-alikes."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(typed: str) -> str:
    """What a person typed, as a code: capitals, without spaces or dashes."""
    return "".join(ch for ch in typed.upper() if not ch.isspace() and ch != "-")[:MAX_TYPED]


def check_in_window(course_session: CourseSession) -> CheckInWindow:
    """From 15 minutes before the session starts until it ends."""
    return CheckInWindow(
        opens=course_session.starts_at - OPENS_BEFORE_START, closes=course_session.ends_at
    )


def _code_taken_in_edition(session: Session, edition: Edition, code: str) -> bool:
    found = session.exec(
        select(CheckInCode.id)
        .join(CourseSession, col(CourseSession.id) == col(CheckInCode.course_session_id))
        .join(Module, col(Module.id) == col(CourseSession.module_id))
        .where(Module.edition_id == edition.id, CheckInCode.code == code)
    ).first()
    return found is not None


def _fresh_code(session: Session, edition: Edition) -> str:
    # Codes identify their session inside an edition, so two sessions never share one.
    while True:
        code = new_code()
        if not _code_taken_in_edition(session, edition, code):
            return code


def code_for_session(session: Session, course_session_id: int) -> CheckInCode | None:
    """The session's code, if one was made."""
    return session.exec(
        select(CheckInCode).where(CheckInCode.course_session_id == course_session_id)
    ).first()


def show_code(
    session: Session, *, course_session_id: int, actor: str, renew: bool = False
) -> CheckInCode:
    """The session's check-in code, made on first use; `renew` replaces a code seen by others."""
    course_session = get_course_session(session, course_session_id)
    edition = edition_of(session, course_session)
    existing = code_for_session(session, course_session_id)
    if existing is not None and not renew:
        return existing
    code = _fresh_code(session, edition)
    if existing is None:
        table: Table = CheckInCode.__table__  # type: ignore[attr-defined]
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # Two tutors opening the code page at once: one code is made, both see it.
        session.execute(
            insert(table)
            .values(
                course_session_id=course_session_id,
                code=code,
                created_by=actor,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=[table.c.course_session_id])
        )
        action = "check_in_code.created"
    else:
        existing.code = code
        existing.created_by = actor
        existing.created_at = utcnow()
        session.add(existing)
        action = "check_in_code.renewed"
    record_change(
        session,
        actor=actor,
        action=action,
        entity="course_session",
        entity_id=course_session_id,
    )
    session.commit()
    stored = session.exec(
        select(CheckInCode)
        .where(CheckInCode.course_session_id == course_session_id)
        .execution_options(populate_existing=True)
    ).first()
    assert stored is not None
    return stored


def refused_attempts(session: Session, course_session_id: int) -> int:
    """How many codes entered for a session were refused."""
    count: int = session.exec(
        select(func.count())
        .select_from(CheckInAttempt)
        .where(
            CheckInAttempt.course_session_id == course_session_id,
            col(CheckInAttempt.succeeded).is_(False),
        )
    ).one()
    return count


def lockout_until(session: Session, application_id: int, *, now: datetime) -> datetime | None:
    """When a participant locked out for wrong codes may try again; None when not locked."""
    recent = list(
        session.exec(
            select(CheckInAttempt.attempted_at)
            .where(
                CheckInAttempt.application_id == application_id,
                col(CheckInAttempt.reason).in_(GUESSES),
                CheckInAttempt.attempted_at > now - THROTTLE_WINDOW - THROTTLE_LOCKOUT,
            )
            .order_by(col(CheckInAttempt.attempted_at).desc())
        ).all()
    )
    # A lockout starts at a wrong code that is the fifth within 15 minutes; the latest such
    # start decides when it ends.
    for index in range(len(recent) - THROTTLE_FAILURES + 1):
        fifth, first = recent[index], recent[index + THROTTLE_FAILURES - 1]
        if fifth - first <= THROTTLE_WINDOW:
            until = fifth + THROTTLE_LOCKOUT
            return until if until > now else None
    return None


def _record(
    session: Session,
    *,
    application_id: int,
    course_session_id: int | None,
    typed: str,
    succeeded: bool,
    reason: str,
    now: datetime,
) -> None:
    session.add(
        CheckInAttempt(
            application_id=application_id,
            course_session_id=course_session_id,
            code_tried=typed[:MAX_TYPED],
            succeeded=succeeded,
            reason=reason,
            attempted_at=now,
        )
    )


def _clock(value: datetime, zone: ZoneInfo) -> Clock:
    return Clock(value.astimezone(zone))


def _day_and_clock(value: datetime, zone: ZoneInfo) -> DayAndClock:
    return DayAndClock(value.astimezone(zone))


def check_in(
    session: Session,
    *,
    application: Application,
    course_session_id: int,
    typed_code: str,
    secret_key: str,
    base_url: str,
    now: datetime | None = None,
) -> CheckInResult:
    """Mark a participant present with the code shown at their session.

    A refused attempt is recorded and committed before the refusal is raised, so it counts
    even though nothing else changed.
    """
    now = now or utcnow()
    application_id = application.id or 0
    # Serialise one participant's attempts so that parallel guesses cannot slip past the count.
    session.exec(
        select(Application.id).where(Application.id == application_id).with_for_update()
    ).first()
    course_session = get_course_session(session, course_session_id)
    edition = edition_of(session, course_session)
    zone = ZoneInfo(edition.timezone)
    code = normalise_code(typed_code)

    def refuse(reason: str, message: str) -> CheckInRefused:
        _record(
            session,
            application_id=application_id,
            course_session_id=course_session_id,
            typed=code,
            succeeded=False,
            reason=reason,
            now=now,
        )
        session.commit()
        return CheckInRefused(message, fields={"code": message})

    if application.edition_id != edition.id or application.status not in SHEET_STATUSES:
        raise refuse(
            REASON_NOT_PARTICIPANT,
            N_("Only confirmed participants of this edition can check in to its sessions."),
        )
    until = lockout_until(session, application_id, now=now)
    if until is not None:
        _record(
            session,
            application_id=application_id,
            course_session_id=course_session_id,
            typed=code,
            succeeded=False,
            reason=REASON_THROTTLED,
            now=now,
        )
        session.commit()
        raise CheckInThrottled(
            Message(
                N_(
                    "Too many wrong codes. Try again at %(time)s, or ask your tutor to mark you "
                    "present."
                ),
                {"time": _clock(until, zone)},
            ),
            retry_at=until,
        )
    window = check_in_window(course_session)
    if now < window.opens:
        raise refuse(
            REASON_EARLY,
            Message(
                N_("Check-in for “%(session)s” opens at %(when)s, 15 minutes before it starts."),
                {"session": course_session.title, "when": _day_and_clock(window.opens, zone)},
            ),
        )
    if now >= window.closes:
        raise refuse(
            REASON_LATE,
            Message(
                N_(
                    "Check-in for “%(session)s” closed when it ended, at %(when)s. Ask your "
                    "tutor to correct your mark."
                ),
                {"session": course_session.title, "when": _day_and_clock(window.closes, zone)},
            ),
        )
    stored = code_for_session(session, course_session_id)
    if stored is None or not secrets.compare_digest(stored.code, code):
        other = _session_with_code(session, edition, code, course_session_id)
        if other is not None:
            raise refuse(
                REASON_OTHER_SESSION,
                Message(
                    N_(
                        "That is the code of another session (“%(other)s”, %(when)s). Enter the "
                        "code shown at “%(session)s”."
                    ),
                    {
                        "other": other.title,
                        "when": _day_and_clock(other.starts_at, zone),
                        "session": course_session.title,
                    },
                ),
            )
        raise refuse(
            REASON_WRONG,
            N_(
                "That code is not right. Check the code your tutor shows and enter its six "
                "characters."
            ),
        )
    outcome = mark_attendance(
        session,
        course_session_id=course_session_id,
        application_id=application_id,
        status=AttendanceStatus.present.value,
        actor=application.email,
        source=MarkSource.check_in,
        secret_key=secret_key,
        base_url=base_url,
        now=now,
    )
    already = outcome.change is None
    _record(
        session,
        application_id=application_id,
        course_session_id=course_session_id,
        typed=code,
        succeeded=True,
        reason=REASON_ALREADY if already else REASON_OK,
        now=now,
    )
    session.commit()
    return CheckInResult(course_session=course_session, already_present=already)


def _session_with_code(
    session: Session, edition: Edition, code: str, except_id: int
) -> CourseSession | None:
    if not code:
        return None
    return session.exec(
        select(CourseSession)
        .join(CheckInCode, col(CheckInCode.course_session_id) == col(CourseSession.id))
        .join(Module, col(Module.id) == col(CourseSession.module_id))
        .where(
            Module.edition_id == edition.id,
            CheckInCode.code == code,
            CourseSession.id != except_id,
        )
    ).first()


def open_sessions(session: Session, edition: Edition, *, now: datetime) -> list[CourseSession]:
    """The edition's sessions whose check-in window is open now."""
    return [s for s in edition_sessions(session, edition) if check_in_window(s).contains(now)]
