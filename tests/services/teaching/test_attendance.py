"""Attendance marks: last write wins, history, undo, mark-all, missed-session mail, progress."""

import itertools
import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.db import writer_engine
from app.models import (
    Application,
    AttendanceChange,
    AttendanceMark,
    CourseSession,
    Edition,
    OutboxMessage,
)
from app.services.errors import InvalidInput, NotFound
from app.services.teaching import attendance as service
from tests.attendance_data import (
    BASE,
    SECRET,
    cleanup,
    edition_with,
    participant,
    participants,
)

TUTOR_A = "ana.tutor@example.org"
TUTOR_B = "ben.tutor@example.org"


def sessions_of(session: Session, edition: Edition) -> list[CourseSession]:
    return service.edition_sessions(session, edition)


def mark(
    session: Session,
    course_session: CourseSession,
    application: Application,
    status: str,
    actor: str = TUTOR_A,
) -> service.MarkOutcome:
    return service.mark_attendance(
        session,
        course_session_id=course_session.id or 0,
        application_id=application.id or 0,
        status=status,
        actor=actor,
        secret_key=SECRET,
        base_url=BASE,
    )


def changes(session: Session, course_session: CourseSession, application: Application):  # type: ignore[no-untyped-def]
    return session.exec(
        select(AttendanceChange)
        .where(
            AttendanceChange.course_session_id == course_session.id,
            AttendanceChange.application_id == application.id,
        )
        .order_by(col(AttendanceChange.id))
    ).all()


def missed_mails(session: Session, application: Application) -> list[OutboxMessage]:
    return list(
        session.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.application_id == application.id,
                OutboxMessage.kind == service.MISSED_MAIL_KIND,
            )
            .order_by(col(OutboxMessage.id))
        ).all()
    )


def test_a_mark_records_who_marked_what_when_with_a_history_row(session: Session) -> None:
    edition = edition_with(session, 1)
    first = sessions_of(session, edition)[0]
    ama = participant(session, edition)
    before = utcnow()
    outcome = mark(session, first, ama, "present")
    assert (outcome.mark.status, outcome.mark.marked_by) == ("present", TUTOR_A)
    assert outcome.mark.marked_at >= before
    history = changes(session, first, ama)
    assert [(c.status, c.previous_status, c.marked_by) for c in history] == [
        ("present", None, TUTOR_A)
    ]


def test_the_last_write_wins_and_every_write_stays_in_the_history(session: Session) -> None:
    edition = edition_with(session, 1)
    first = sessions_of(session, edition)[0]
    ama = participant(session, edition)
    mark(session, first, ama, "present", TUTOR_A)
    outcome = mark(session, first, ama, "absent", TUTOR_B)
    assert outcome.previous_status == "present"
    stored = session.exec(
        select(AttendanceMark).where(AttendanceMark.application_id == ama.id)
    ).one()
    assert (stored.status, stored.marked_by) == ("absent", TUTOR_B)
    assert [(c.status, c.previous_status, c.marked_by) for c in changes(session, first, ama)] == [
        ("present", None, TUTOR_A),
        ("absent", "present", TUTOR_B),
    ]


def test_marking_the_same_status_again_changes_nothing(session: Session) -> None:
    edition = edition_with(session, 1)
    first = sessions_of(session, edition)[0]
    ama = participant(session, edition)
    mark(session, first, ama, "present", TUTOR_A)
    again = mark(session, first, ama, "present", TUTOR_B)
    assert again.change is None
    assert again.mark.marked_by == TUTOR_A
    assert len(changes(session, first, ama)) == 1


@pytest.mark.parametrize("status", ["late", "", "PRESENT!", "1"])
def test_an_unknown_status_is_refused_naming_the_field(session: Session, status: str) -> None:
    edition = edition_with(session, 1)
    ama = participant(session, edition)
    with pytest.raises(InvalidInput) as raised:
        mark(session, sessions_of(session, edition)[0], ama, status)
    assert "status" in raised.value.fields


def test_a_status_is_read_regardless_of_case_and_spaces(session: Session) -> None:
    edition = edition_with(session, 1)
    ama = participant(session, edition)
    assert (
        mark(session, sessions_of(session, edition)[0], ama, " Excused ").mark.status == "excused"
    )


def test_an_unknown_session_is_not_found(session: Session) -> None:
    edition = edition_with(session, 1)
    ama = participant(session, edition)
    with pytest.raises(NotFound):
        service.mark_attendance(
            session,
            course_session_id=999_999,
            application_id=ama.id or 0,
            status="present",
            actor=TUTOR_A,
            secret_key=SECRET,
            base_url=BASE,
        )


def test_a_participant_of_another_edition_is_not_on_the_sheet(session: Session) -> None:
    edition = edition_with(session, 1)
    other = edition_with(session, 1, slug="diploma-other")
    stranger = participant(session, other)
    with pytest.raises(service.NotAParticipant):
        mark(session, sessions_of(session, edition)[0], stranger, "present")


@pytest.mark.parametrize("status", ["submitted", "admitted", "cancelled", "waitlisted"])
def test_only_confirmed_participants_can_be_marked(session: Session, status: str) -> None:
    edition = edition_with(session, 1)
    applicant = participant(session, edition, status=status)
    with pytest.raises(service.NotConfirmed) as raised:
        mark(session, sessions_of(session, edition)[0], applicant, "present")
    assert status in raised.value.message


def test_a_completed_participant_can_still_be_corrected(session: Session) -> None:
    edition = edition_with(session, 1)
    done = participant(session, edition, status="completed")
    assert mark(session, sessions_of(session, edition)[0], done, "present").mark.status == "present"


def test_undo_puts_the_mark_back_to_before_its_last_change(session: Session) -> None:
    edition = edition_with(session, 1)
    first = sessions_of(session, edition)[0]
    ama = participant(session, edition)
    mark(session, first, ama, "present", TUTOR_A)
    changed = mark(session, first, ama, "absent", TUTOR_B)
    undone = service.undo_last_change(
        session,
        course_session_id=first.id or 0,
        application_id=ama.id or 0,
        actor=TUTOR_B,
        change_id=changed.change.id if changed.change else None,
    )
    assert undone.mark is not None
    assert (undone.mark.status, undone.mark.source) == ("present", "undo")
    assert (undone.change.status, undone.change.previous_status) == ("present", "absent")


def test_undoing_the_first_mark_leaves_the_participant_unmarked(session: Session) -> None:
    edition = edition_with(session, 1)
    first = sessions_of(session, edition)[0]
    ama = participant(session, edition)
    mark(session, first, ama, "absent")
    undone = service.undo_last_change(
        session, course_session_id=first.id or 0, application_id=ama.id or 0, actor=TUTOR_A
    )
    assert undone.mark is None
    assert (
        session.exec(select(AttendanceMark).where(AttendanceMark.application_id == ama.id)).first()
        is None
    )
    row = service.sheet_row(session, first, ama.id or 0)
    assert row.status is None
    assert not row.can_undo


def test_undo_refuses_when_someone_changed_the_mark_since(session: Session) -> None:
    edition = edition_with(session, 1)
    first = sessions_of(session, edition)[0]
    ama = participant(session, edition)
    mine = mark(session, first, ama, "absent", TUTOR_A)
    mark(session, first, ama, "excused", TUTOR_B)
    with pytest.raises(service.MarkChangedSince) as raised:
        service.undo_last_change(
            session,
            course_session_id=first.id or 0,
            application_id=ama.id or 0,
            actor=TUTOR_A,
            change_id=mine.change.id if mine.change else None,
        )
    assert TUTOR_B in raised.value.message
    assert "nothing was undone" in raised.value.message
    session.rollback()
    stored = session.exec(
        select(AttendanceMark).where(AttendanceMark.application_id == ama.id)
    ).one()
    assert stored.status == "excused"


def test_an_undo_is_not_undone_again_and_nothing_to_undo_is_said(session: Session) -> None:
    edition = edition_with(session, 1)
    first = sessions_of(session, edition)[0]
    ama = participant(session, edition)
    ids = {"course_session_id": first.id or 0, "application_id": ama.id or 0, "actor": TUTOR_A}
    with pytest.raises(service.NothingToUndo):
        service.undo_last_change(session, **ids)  # type: ignore[arg-type]
    mark(session, first, ama, "present")
    service.undo_last_change(session, **ids)  # type: ignore[arg-type]
    with pytest.raises(service.NothingToUndo):
        service.undo_last_change(session, **ids)  # type: ignore[arg-type]


def test_mark_everyone_present_marks_only_those_not_marked(session: Session) -> None:
    edition = edition_with(session, 1)
    first = sessions_of(session, edition)[0]
    people = participants(session, edition, 5)
    participant(session, edition, status="admitted", email="admitted@example.org")
    mark(session, first, people[1], "absent")
    mark(session, first, people[3], "excused")
    assert (
        service.mark_everyone_present(session, course_session_id=first.id or 0, actor=TUTOR_A) == 3
    )
    rows = service.attendance_sheet(session, first)
    assert [r.status for r in rows] == ["present", "absent", "present", "excused", "present"]
    assert service.sheet_counts(rows) == service.SheetCounts(
        present=3, absent=1, excused=1, unmarked=0
    )
    assert (
        service.mark_everyone_present(session, course_session_id=first.id or 0, actor=TUTOR_A) == 0
    )


def test_the_missed_session_mail_goes_once_per_participant_and_session(session: Session) -> None:
    edition = edition_with(session, 2)
    first, second = sessions_of(session, edition)
    ama = participant(session, edition)
    mark(session, first, ama, "present")
    assert missed_mails(session, ama) == []
    mark(session, first, ama, "absent")
    mails = missed_mails(session, ama)
    assert len(mails) == 1
    assert "absent" in mails[0].subject
    assert first.title in mails[0].body_text
    assert "every session of every module" in mails[0].body_text
    assert f"{BASE}/portal/" in mails[0].body_text
    # Re-marks of the same session, an undo, and the same status again send nothing more.
    mark(session, first, ama, "excused")
    mark(session, first, ama, "present")
    mark(session, first, ama, "absent")
    service.undo_last_change(
        session, course_session_id=first.id or 0, application_id=ama.id or 0, actor=TUTOR_A
    )
    assert len(missed_mails(session, ama)) == 1
    # Another session is another mail; an excused absence says it is not attendance.
    mark(session, second, ama, "excused")
    mails = missed_mails(session, ama)
    assert len(mails) == 2
    assert "not counted as attendance" in mails[-1].body_text


def test_module_states_complete_partial_missing_and_to_come(session: Session) -> None:
    edition = edition_with(session, 2, 2, 2, 1, 1)
    s = sessions_of(session, edition)
    ama = participant(session, edition)
    for course_session, status in zip(
        s[:6], ["present", "present", "present", "absent", "absent", "excused"], strict=True
    ):
        mark(session, course_session, ama, status)
    mark(session, s[7], ama, "present")
    matrix = service.attendance_matrix(session, edition)
    (row,) = matrix.rows
    assert [m.state for m in row.modules] == [
        "complete",
        "partial",
        "missing",
        "pending",
        "complete",
    ]
    assert [(m.present, m.missed, m.unmarked) for m in row.modules] == [
        (2, 0, 0),
        (1, 1, 0),
        (0, 2, 0),
        (0, 0, 1),
        (1, 0, 0),
    ]
    assert (row.attended, row.total, row.complete, row.at_risk) == (4, 8, False, True)


def test_a_lower_attendance_rule_needs_that_share_rounded_up(session: Session) -> None:
    assert service.required_sessions(3, 100) == 3
    assert service.required_sessions(3, 50) == 2
    assert service.required_sessions(4, 50) == 2
    assert service.required_sessions(2, 0) == 0
    edition = edition_with(session, 3)
    edition.attendance_min_percent = 60
    session.add(edition)
    session.commit()
    s = sessions_of(session, edition)
    ama = participant(session, edition)
    mark(session, s[0], ama, "present")
    mark(session, s[1], ama, "absent")
    assert service.attendance_matrix(session, edition).rows[0].modules[0].state == "partial"
    mark(session, s[2], ama, "present")
    assert service.attendance_matrix(session, edition).rows[0].modules[0].state == "complete"


def test_the_at_risk_list_has_everyone_who_missed_a_session_most_missed_first(
    session: Session,
) -> None:
    edition = edition_with(session, 2)
    first, second = sessions_of(session, edition)
    people = participants(session, edition, 4)
    mark(session, first, people[0], "absent")
    mark(session, first, people[2], "excused")
    mark(session, second, people[2], "absent")
    mark(session, first, people[3], "present")
    found = service.attendance_matrix(session, edition).at_risk()
    assert [r.application.id for r in found] == [people[2].id, people[0].id]
    assert [len(r.missed_sessions) for r in found] == [2, 1]


def test_the_matrix_lists_only_confirmed_and_completed_participants(session: Session) -> None:
    edition = edition_with(session, 1)
    confirmed = participant(session, edition, email="c@example.org", family_name="Alpha")
    completed = participant(
        session, edition, status="completed", email="d@example.org", family_name="Beta"
    )
    participant(session, edition, status="cancelled", email="e@example.org")
    participant(session, edition, status="admitted", email="f@example.org")
    rows = service.attendance_matrix(session, edition).rows
    assert [r.application.id for r in rows] == [confirmed.id, completed.id]


def test_a_participant_sees_their_own_progress(session: Session) -> None:
    edition = edition_with(session, 1, 1)
    first, second = sessions_of(session, edition)
    ama = participant(session, edition)
    mark(session, first, ama, "present")
    progress = service.participant_progress(session, ama)
    assert [m.state for m in progress.modules] == ["complete", "pending"]
    assert progress.marks[first.id or 0].status == "present"
    assert second.id not in progress.marks


# Races: real sessions on the engine, two tutors at once


def _race(engine: Engine, *writers) -> list[BaseException]:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(writers))

    def run(writer) -> None:  # type: ignore[no-untyped-def]
        try:
            barrier.wait()
            with Session(writer_engine(engine), expire_on_commit=False) as session:
                writer(session)
        except BaseException as exc:  # collected and asserted by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_two_tutors_marking_one_participant_at_once_both_survive_and_the_last_wins(
    engine: Engine,
) -> None:
    with Session(engine, expire_on_commit=False) as session:
        edition = edition_with(session, 1, slug="attendance-race")
        edition_id = edition.id or 0
        session_id = sessions_of(session, edition)[0].id or 0
        application_id = participant(session, edition).id or 0
    try:
        for round_number in range(3):

            def writer(status: str, actor: str):  # type: ignore[no-untyped-def]
                def write(session: Session) -> None:
                    service.mark_attendance(
                        session,
                        course_session_id=session_id,
                        application_id=application_id,
                        status=status,
                        actor=actor,
                        secret_key=SECRET,
                        base_url=BASE,
                    )

                return write

            # The first round races for the insert of a new mark, the later ones for updates;
            # each writer says something different from the mark and from the other.
            with Session(engine) as session:
                now_marked = session.exec(
                    select(AttendanceMark.status).where(
                        AttendanceMark.course_session_id == session_id,
                        AttendanceMark.application_id == application_id,
                    )
                ).first()
            assert (now_marked is None) == (round_number == 0)
            statuses = [s for s in ("absent", "excused", "present") if s != now_marked][:2]
            errors = _race(engine, writer(statuses[0], TUTOR_A), writer(statuses[1], TUTOR_B))
            assert errors == []
            with Session(engine) as session:
                history = session.exec(
                    select(AttendanceChange)
                    .where(
                        AttendanceChange.course_session_id == session_id,
                        AttendanceChange.application_id == application_id,
                    )
                    .order_by(col(AttendanceChange.id))
                ).all()
                current = session.exec(
                    select(AttendanceMark).where(
                        AttendanceMark.course_session_id == session_id,
                        AttendanceMark.application_id == application_id,
                    )
                ).one()
            last_two = history[-2:]
            # Both writes are in the history, one after the other, and the mark is the last.
            assert {c.marked_by for c in last_two} == {TUTOR_A, TUTOR_B}
            assert last_two[1].previous_status == last_two[0].status
            assert (current.status, current.marked_by) == (
                last_two[1].status,
                last_two[1].marked_by,
            )
            assert last_two[0].marked_at <= last_two[1].marked_at
            # Each change follows on from the one before: nothing was lost in between.
            for before, after in itertools.pairwise(history):
                assert after.previous_status == before.status
    finally:
        cleanup(engine, edition_id)


def test_mark_everyone_present_at_once_with_an_absence_keeps_the_absence(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as session:
        edition = edition_with(session, 1, slug="attendance-race-all")
        edition_id = edition.id or 0
        session_id = sessions_of(session, edition)[0].id or 0
        people = [a.id or 0 for a in participants(session, edition, 6)]
    absent = people[2]
    try:

        def everyone(session: Session) -> None:
            service.mark_everyone_present(session, course_session_id=session_id, actor=TUTOR_A)

        def one_absent(session: Session) -> None:
            service.mark_attendance(
                session,
                course_session_id=session_id,
                application_id=absent,
                status="absent",
                actor=TUTOR_B,
                secret_key=SECRET,
                base_url=BASE,
            )

        assert _race(engine, everyone, one_absent) == []
        with Session(engine) as session:
            marks = {
                m.application_id: m.status
                for m in session.exec(
                    select(AttendanceMark).where(AttendanceMark.course_session_id == session_id)
                ).all()
            }
        assert marks == {a: ("absent" if a == absent else "present") for a in people}
    finally:
        cleanup(engine, edition_id)


def test_history_times_follow_the_order_of_writes(session: Session) -> None:
    edition = edition_with(session, 1)
    first = sessions_of(session, edition)[0]
    ama = participant(session, edition)
    start = utcnow()
    for status in ("present", "absent", "present"):
        mark(session, first, ama, status)
    times = [c.marked_at for c in changes(session, first, ama)]
    assert times == sorted(times)
    assert times[0] >= start - timedelta(seconds=1)
