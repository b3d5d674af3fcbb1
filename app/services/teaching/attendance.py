"""Attendance: marks per session with their history, undo, progress per module, at-risk list.

A mark is one row per participant and session (the current status) plus one history row per
change. Two tutors may mark the same sheet at once: each write locks the participant's mark
first, so the writes queue, every one of them leaves its history row, and the current mark is
the one written last.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.models import (
    Application,
    ApplicationStatus,
    AttendanceChange,
    AttendanceMark,
    AttendanceStatus,
    CourseSession,
    Edition,
    MarkSource,
    Module,
    StaffUser,
)
from app.platform.i18n import N_
from app.platform.mail import queue_email
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registrations.applications import portal_url

# Who is on an attendance sheet: participants whose place is confirmed (or who already
# completed the course and may still be corrected).
SHEET_STATUSES = (ApplicationStatus.confirmed.value, ApplicationStatus.completed.value)
MISSED = (AttendanceStatus.absent.value, AttendanceStatus.excused.value)
STATUS_LABELS = {
    AttendanceStatus.present.value: N_("Present"),
    AttendanceStatus.absent.value: N_("Absent"),
    AttendanceStatus.excused.value: N_("Excused"),
}
KIND_LABELS = {
    "knowledge": N_("Knowledge session"),
    "skills": N_("Skills session"),
    "site_visit": N_("Site visit"),
}
MISSED_MAIL_KIND = "attendance_missed"
# Whole sentences per status, so each language can word the mark its own way.
MISSED_SUBJECTS = {
    AttendanceStatus.absent.value: N_("You were recorded absent at %(session)s"),
    AttendanceStatus.excused.value: N_("You were recorded excused at %(session)s"),
}


class NotAParticipant(NotFound):
    """The application does not belong to the edition of the session."""


class NotConfirmed(Conflict):
    """Only confirmed participants are on attendance sheets."""


class NothingToUndo(Conflict):
    """The mark has no change that could be undone."""


class MarkChangedSince(Conflict):
    """Someone changed the mark after the change that was to be undone."""


@dataclass(frozen=True)
class MarkOutcome:
    """What a mark did: the current mark, the history row written (None if unchanged)."""

    mark: AttendanceMark
    change: AttendanceChange | None
    previous_status: str | None


@dataclass(frozen=True)
class UndoOutcome:
    """What an undo did: the mark now (None when back to "not marked") and its history row."""

    mark: AttendanceMark | None
    change: AttendanceChange


def parse_status(value: object) -> str:
    """`present`, `absent` or `excused`; anything else is refused with the field at fault."""
    if isinstance(value, str) and value.strip().lower() in STATUS_LABELS:
        return value.strip().lower()
    raise InvalidInput(
        f"{value!r} is not an attendance status: choose present, absent or excused.",
        fields={"status": "Choose present, absent or excused."},
    )


def get_course_session(session: Session, course_session_id: int) -> CourseSession:
    """The session with this id, or NotFound."""
    course_session = session.get(CourseSession, course_session_id)
    if course_session is None:
        raise NotFound(f"There is no session {course_session_id}.")
    return course_session


def module_of(session: Session, course_session: CourseSession) -> Module:
    """The module a session belongs to."""
    module = session.get(Module, course_session.module_id)
    assert module is not None  # the foreign key guarantees it
    return module


def edition_of(session: Session, course_session: CourseSession) -> Edition:
    """The edition a session belongs to."""
    edition = session.get(Edition, module_of(session, course_session).edition_id)
    assert edition is not None
    return edition


def edition_sessions(session: Session, edition: Edition) -> list[CourseSession]:
    """The edition's sessions, module by module, each module's in time order."""
    return list(
        session.exec(
            select(CourseSession)
            .join(Module, col(Module.id) == col(CourseSession.module_id))
            .where(Module.edition_id == edition.id)
            .order_by(col(Module.position), col(CourseSession.starts_at), col(CourseSession.id))
        ).all()
    )


def participants(session: Session, edition: Edition) -> list[Application]:
    """The edition's confirmed participants, by family name."""
    return list(
        session.exec(
            select(Application)
            .where(
                Application.edition_id == edition.id,
                col(Application.status).in_(SHEET_STATUSES),
            )
            .order_by(
                col(Application.family_name), col(Application.given_name), col(Application.id)
            )
        ).all()
    )


def _participant(session: Session, edition: Edition, application_id: int) -> Application:
    application = session.get(Application, application_id)
    if application is None or application.edition_id != edition.id:
        raise NotAParticipant(
            f"Application {application_id} is not a participant of {edition.title}"
            f"{' (' + edition.edition_label + ')' if edition.edition_label else ''}.",
            fields={"application_id": "Not a participant of this session's edition."},
        )
    if application.status not in SHEET_STATUSES:
        raise NotConfirmed(
            f"{application.full_name} ({application.reference}) is {application.status}; only "
            "confirmed participants are on attendance sheets.",
            fields={"application_id": f"The application is {application.status}."},
        )
    return application


def _locked_mark(
    session: Session, course_session_id: int, application_id: int
) -> AttendanceMark | None:
    # FOR UPDATE makes a second writer of the same participant's mark wait until the first
    # commits (PostgreSQL); SQLite writers already queue on BEGIN IMMEDIATE.
    return session.exec(
        select(AttendanceMark)
        .where(
            AttendanceMark.course_session_id == course_session_id,
            AttendanceMark.application_id == application_id,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def _insert_if_unmarked(session: Session, values: dict[str, Any]) -> bool:
    """Insert a mark unless the participant has one; True when this call inserted it.

    A concurrent insert of the same mark makes this one wait for it and then do nothing,
    instead of failing on the unique key.
    """
    table: Table = AttendanceMark.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    # RETURNING says whether a row went in (rowcount is not reliable through the ORM session).
    inserted = session.execute(
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[table.c.course_session_id, table.c.application_id])
        .returning(table.c.id)
    ).first()
    return inserted is not None


def _missed_before(session: Session, course_session_id: int, application_id: int) -> bool:
    found = session.exec(
        select(AttendanceChange.id).where(
            AttendanceChange.course_session_id == course_session_id,
            AttendanceChange.application_id == application_id,
            col(AttendanceChange.status).in_(MISSED),
        )
    ).first()
    return found is not None


def attendance_rule(edition: Edition) -> str:
    """The edition's attendance rule in words."""
    if edition.attendance_min_percent >= 100:
        return "attending every session of every module"
    return f"attending at least {edition.attendance_min_percent} % of each module's sessions"


def _queue_missed_mail(
    session: Session,
    *,
    application: Application,
    edition: Edition,
    course_session: CourseSession,
    status: str,
    secret_key: str,
    base_url: str,
) -> None:
    module = module_of(session, course_session)
    zone = ZoneInfo(edition.timezone)
    queue_email(
        session,
        kind=MISSED_MAIL_KIND,
        to=application.email,
        subject=MISSED_SUBJECTS.get(status, f"You were recorded {status} at %(session)s"),
        subject_values={"session": course_session.title},
        application_id=application.id,
        context={
            "application": application,
            "edition": edition,
            "module": module,
            "course_session": course_session,
            "kind_label": KIND_LABELS.get(course_session.kind, course_session.kind),
            "status": status,
            "starts_local": course_session.starts_at.astimezone(zone),
            "ends_local": course_session.ends_at.astimezone(zone),
            "rule": attendance_rule(edition),
            "portal_url": portal_url(
                application, edition, secret_key=secret_key, base_url=base_url
            ),
        },
    )


def mark_attendance(
    session: Session,
    *,
    course_session_id: int,
    application_id: int,
    status: str,
    actor: str,
    secret_key: str,
    base_url: str,
    source: MarkSource = MarkSource.sheet,
    now: datetime | None = None,
) -> MarkOutcome:
    """Set one participant's mark at one session; the last write wins and each is kept.

    The participant is e-mailed the first time they are recorded absent or excused at this
    session (a later re-mark or an undo does not send it again).
    """
    status = parse_status(status)
    course_session = get_course_session(session, course_session_id)
    edition = edition_of(session, course_session)
    application = _participant(session, edition, application_id)
    mark = _locked_mark(session, course_session_id, application_id)
    previous: str | None = None
    inserted = False
    if mark is None:
        inserted = _insert_if_unmarked(
            session,
            {
                "course_session_id": course_session_id,
                "application_id": application_id,
                "status": status,
                "source": source.value,
                "marked_by": actor,
                "marked_at": now or utcnow(),
            },
        )
        mark = _locked_mark(session, course_session_id, application_id)
        assert mark is not None  # inserted here or by a concurrent writer that committed
    if not inserted:
        previous = mark.status
        if previous == status:
            # Saying the same again changes nothing: the sheet keeps who said it first.
            session.commit()
            return MarkOutcome(mark=mark, change=None, previous_status=previous)
        # The time is taken once the lock is held, so the history's order is the write order.
        mark.status = status
        mark.source = source.value
        mark.marked_by = actor
        mark.marked_at = now or utcnow()
        session.add(mark)
    change = AttendanceChange(
        course_session_id=course_session_id,
        application_id=application_id,
        status=status,
        previous_status=previous,
        source=source.value,
        marked_by=actor,
        marked_at=mark.marked_at,
    )
    if status in MISSED and not _missed_before(session, course_session_id, application_id):
        _queue_missed_mail(
            session,
            application=application,
            edition=edition,
            course_session=course_session,
            status=status,
            secret_key=secret_key,
            base_url=base_url,
        )
    session.add(change)
    session.commit()
    return MarkOutcome(mark=mark, change=change, previous_status=previous)


def mark_everyone_present(
    session: Session, *, course_session_id: int, actor: str, now: datetime | None = None
) -> int:
    """Mark present every participant of the session not marked yet; returns how many.

    A participant someone marked meanwhile keeps that mark: this never overwrites one.
    """
    course_session = get_course_session(session, course_session_id)
    edition = edition_of(session, course_session)
    marked = set(
        session.exec(
            select(AttendanceMark.application_id).where(
                AttendanceMark.course_session_id == course_session_id
            )
        ).all()
    )
    when = now or utcnow()
    count = 0
    for application in participants(session, edition):
        application_id = application.id or 0
        if application_id in marked:
            continue
        values = {
            "course_session_id": course_session_id,
            "application_id": application_id,
            "status": AttendanceStatus.present.value,
            "source": MarkSource.sheet.value,
            "marked_by": actor,
            "marked_at": when,
        }
        if _insert_if_unmarked(session, values):
            session.add(
                AttendanceChange(
                    course_session_id=course_session_id,
                    application_id=application_id,
                    status=AttendanceStatus.present.value,
                    previous_status=None,
                    source=MarkSource.sheet.value,
                    marked_by=actor,
                    marked_at=when,
                )
            )
            count += 1
    session.commit()
    return count


def last_change(
    session: Session, course_session_id: int, application_id: int
) -> AttendanceChange | None:
    """The latest change of one participant's mark at one session."""
    return session.exec(
        select(AttendanceChange)
        .where(
            AttendanceChange.course_session_id == course_session_id,
            AttendanceChange.application_id == application_id,
        )
        .order_by(col(AttendanceChange.id).desc())
        .limit(1)
    ).first()


def undo_last_change(
    session: Session,
    *,
    course_session_id: int,
    application_id: int,
    actor: str,
    change_id: int | None = None,
    now: datetime | None = None,
) -> UndoOutcome:
    """Put a mark back to what it was before its last change (possibly "not marked").

    With `change_id`, only that change is undone: if someone changed the mark since, nothing
    is undone and the Conflict says who did what.
    """
    course_session = get_course_session(session, course_session_id)
    edition = edition_of(session, course_session)
    application = _participant(session, edition, application_id)
    mark = _locked_mark(session, course_session_id, application_id)
    latest = last_change(session, course_session_id, application_id)
    if latest is None:
        raise NothingToUndo(f"{application.full_name} has no mark to undo at this session.")
    if change_id is not None and latest.id != change_id:
        clock = latest.marked_at.astimezone(ZoneInfo(edition.timezone)).strftime("%H:%M")
        what = STATUS_LABELS.get(latest.status or "", "not marked").lower()
        raise MarkChangedSince(
            f"{latest.marked_by} changed {application.full_name}'s mark to {what} at {clock}, "
            "after the change you wanted to undo; nothing was undone."
        )
    if latest.source == MarkSource.undo.value:
        raise NothingToUndo(f"The last change of {application.full_name}'s mark is already undone.")
    target = latest.previous_status
    current = mark.status if mark is not None else None
    when = now or utcnow()
    if target is None:
        session.execute(
            delete(AttendanceMark).where(
                col(AttendanceMark.course_session_id) == course_session_id,
                col(AttendanceMark.application_id) == application_id,
            )
        )
        mark = None
    else:
        if mark is None:
            mark = AttendanceMark(
                course_session_id=course_session_id,
                application_id=application_id,
                status=target,
                marked_by=actor,
            )
        mark.status = target
        mark.source = MarkSource.undo.value
        mark.marked_by = actor
        mark.marked_at = when
        session.add(mark)
    change = AttendanceChange(
        course_session_id=course_session_id,
        application_id=application_id,
        status=target,
        previous_status=current,
        source=MarkSource.undo.value,
        marked_by=actor,
        marked_at=when,
    )
    session.add(change)
    session.commit()
    return UndoOutcome(mark=mark, change=change)


# The sheet


@dataclass(frozen=True)
class SheetRow:
    """One participant on a session's sheet: the current mark and its latest change."""

    application: Application
    mark: AttendanceMark | None
    last_change: AttendanceChange | None

    @property
    def status(self) -> str | None:
        """The current status, or None when not marked."""
        return self.mark.status if self.mark else None

    @property
    def can_undo(self) -> bool:
        """Whether the latest change can be undone (an undo itself cannot)."""
        return self.last_change is not None and self.last_change.source != MarkSource.undo.value


@dataclass(frozen=True)
class SheetCounts:
    """How many participants have each status on a sheet."""

    present: int
    absent: int
    excused: int
    unmarked: int

    @property
    def total(self) -> int:
        """Participants on the sheet."""
        return self.present + self.absent + self.excused + self.unmarked


def _latest_changes(session: Session, course_session_id: int) -> dict[int, AttendanceChange]:
    latest: dict[int, AttendanceChange] = {}
    for change in session.exec(
        select(AttendanceChange)
        .where(AttendanceChange.course_session_id == course_session_id)
        .order_by(col(AttendanceChange.id))
    ).all():
        latest[change.application_id] = change
    return latest


def attendance_sheet(session: Session, course_session: CourseSession) -> list[SheetRow]:
    """Every participant of the session's edition with their mark, by family name."""
    edition = edition_of(session, course_session)
    marks = {
        m.application_id: m
        for m in session.exec(
            select(AttendanceMark).where(AttendanceMark.course_session_id == course_session.id)
        ).all()
    }
    latest = _latest_changes(session, course_session.id or 0)
    return [
        SheetRow(application=a, mark=marks.get(a.id or 0), last_change=latest.get(a.id or 0))
        for a in participants(session, edition)
    ]


def sheet_row(session: Session, course_session: CourseSession, application_id: int) -> SheetRow:
    """One participant's row of a session's sheet."""
    edition = edition_of(session, course_session)
    application = _participant(session, edition, application_id)
    mark = session.exec(
        select(AttendanceMark)
        .where(
            AttendanceMark.course_session_id == course_session.id,
            AttendanceMark.application_id == application_id,
        )
        .execution_options(populate_existing=True)
    ).first()
    return SheetRow(
        application=application,
        mark=mark,
        last_change=last_change(session, course_session.id or 0, application_id),
    )


def sheet_counts(rows: Iterable[SheetRow]) -> SheetCounts:
    """How many are present, absent, excused and not marked yet."""
    statuses = [row.status for row in rows]
    return SheetCounts(
        present=statuses.count(AttendanceStatus.present.value),
        absent=statuses.count(AttendanceStatus.absent.value),
        excused=statuses.count(AttendanceStatus.excused.value),
        unmarked=statuses.count(None),
    )


def session_history(
    session: Session, course_session_id: int, *, limit: int = 200
) -> list[tuple[AttendanceChange, Application]]:
    """Who marked what when at a session, the latest first."""
    rows = session.exec(
        select(AttendanceChange, Application)
        .join(Application, col(Application.id) == col(AttendanceChange.application_id))
        .where(AttendanceChange.course_session_id == course_session_id)
        .order_by(col(AttendanceChange.id).desc())
        .limit(limit)
    ).all()
    return [(change, application) for change, application in rows]


def staff_names(session: Session, emails: Iterable[str]) -> dict[str, str]:
    """A display name for each staff e-mail (their full name when they gave one)."""
    wanted = set(emails)
    if not wanted:
        return {}
    names = {email: email for email in wanted}
    for user in session.exec(select(StaffUser).where(col(StaffUser.email).in_(wanted))).all():
        if user.full_name:
            names[user.email] = user.full_name
    return names


# Progress


@dataclass(frozen=True)
class ModuleProgress:
    """One participant's attendance in one module.

    `state` is `complete` (the edition's rule is met), `partial` (some attended, some
    missed), `missing` (missed, none attended), `pending` (nothing missed, sessions still to
    come or to be marked) or `empty` (the module has no sessions).
    """

    module_id: int
    position: int
    title: str
    total: int
    present: int
    missed: int
    required: int

    @property
    def unmarked(self) -> int:
        """Sessions not marked yet."""
        return self.total - self.present - self.missed

    @property
    def state(self) -> str:
        """complete, partial, missing, pending or empty."""
        if self.total == 0:
            return "empty"
        if self.present >= self.required:
            return "complete"
        if self.missed == 0:
            return "pending"
        return "partial" if self.present else "missing"


STATE_LABELS = {
    "complete": N_("complete"),
    "partial": N_("partial"),
    "missing": N_("missing"),
    "pending": N_("to come"),
    "empty": N_("no sessions"),
}


@dataclass
class ParticipantProgress:
    """One participant's marks across the edition and their progress per module."""

    application: Application
    marks: dict[int, AttendanceMark]
    modules: list[ModuleProgress]
    missed_sessions: list[tuple[CourseSession, AttendanceMark]] = field(default_factory=list)

    @property
    def attended(self) -> int:
        """Sessions attended."""
        return sum(m.present for m in self.modules)

    @property
    def total(self) -> int:
        """Sessions in the edition."""
        return sum(m.total for m in self.modules)

    @property
    def complete(self) -> bool:
        """Whether every module meets the edition's rule."""
        return all(m.state in ("complete", "empty") for m in self.modules)

    @property
    def at_risk(self) -> bool:
        """Whether the participant has missed a session."""
        return bool(self.missed_sessions)


@dataclass
class AttendanceMatrix:
    """Participants x sessions, with each participant's progress per module."""

    edition: Edition
    modules: list[Module]
    sessions_by_module: dict[int, list[CourseSession]]
    rows: list[ParticipantProgress]

    @property
    def sessions(self) -> list[CourseSession]:
        """Every session, module by module."""
        return [s for m in self.modules for s in self.sessions_by_module.get(m.id or 0, [])]

    def at_risk(self) -> list[ParticipantProgress]:
        """Participants who missed a session, the most sessions missed first."""
        found = [row for row in self.rows if row.at_risk]
        return sorted(found, key=lambda r: (-len(r.missed_sessions), r.application.family_name))


def required_sessions(total: int, min_percent: int) -> int:
    """Sessions of a module to attend under the edition's rule (rounded up)."""
    return (total * max(min(min_percent, 100), 0) + 99) // 100


def _progress(
    application: Application,
    marks: dict[int, AttendanceMark],
    modules: Sequence[Module],
    sessions_by_module: dict[int, list[CourseSession]],
    min_percent: int,
) -> ParticipantProgress:
    progress = ParticipantProgress(application=application, marks=marks, modules=[])
    for module in modules:
        sessions = sessions_by_module.get(module.id or 0, [])
        present = missed = 0
        for course_session in sessions:
            mark = marks.get(course_session.id or 0)
            if mark is None:
                continue
            if mark.status == AttendanceStatus.present.value:
                present += 1
            else:
                missed += 1
                progress.missed_sessions.append((course_session, mark))
        progress.modules.append(
            ModuleProgress(
                module_id=module.id or 0,
                position=module.position,
                title=module.title,
                total=len(sessions),
                present=present,
                missed=missed,
                required=required_sessions(len(sessions), min_percent),
            )
        )
    return progress


def _modules_and_sessions(
    session: Session, edition: Edition
) -> tuple[list[Module], dict[int, list[CourseSession]]]:
    modules = list(
        session.exec(
            select(Module).where(Module.edition_id == edition.id).order_by(col(Module.position))
        ).all()
    )
    by_module: dict[int, list[CourseSession]] = {m.id or 0: [] for m in modules}
    for course_session in edition_sessions(session, edition):
        by_module.setdefault(course_session.module_id or 0, []).append(course_session)
    return modules, by_module


def attendance_matrix(session: Session, edition: Edition) -> AttendanceMatrix:
    """Every confirmed participant's marks and module progress for an edition."""
    modules, by_module = _modules_and_sessions(session, edition)
    session_ids = [s.id for ss in by_module.values() for s in ss]
    marks: dict[int, dict[int, AttendanceMark]] = {}
    if session_ids:
        for mark in session.exec(
            select(AttendanceMark).where(col(AttendanceMark.course_session_id).in_(session_ids))
        ).all():
            marks.setdefault(mark.application_id, {})[mark.course_session_id] = mark
    rows = [
        _progress(
            application,
            marks.get(application.id or 0, {}),
            modules,
            by_module,
            edition.attendance_min_percent,
        )
        for application in participants(session, edition)
    ]
    return AttendanceMatrix(
        edition=edition, modules=modules, sessions_by_module=by_module, rows=rows
    )


def participant_progress(session: Session, application: Application) -> ParticipantProgress:
    """One participant's marks and module progress (for their own page)."""
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    modules, by_module = _modules_and_sessions(session, edition)
    marks = {
        m.course_session_id: m
        for m in session.exec(
            select(AttendanceMark).where(AttendanceMark.application_id == application.id)
        ).all()
    }
    return _progress(application, marks, modules, by_module, edition.attendance_min_percent)


def participant_history(session: Session, application_id: int) -> list[AttendanceChange]:
    """Every change of one participant's marks, the latest first."""
    return list(
        session.exec(
            select(AttendanceChange)
            .where(AttendanceChange.application_id == application_id)
            .order_by(col(AttendanceChange.id).desc())
        ).all()
    )
