"""Self check-in: codes, the window of each session, other sessions' codes, throttling."""

from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from app.models import Application, AttendanceMark, CheckInAttempt, CourseSession, Edition
from app.services.teaching import attendance
from app.services.teaching import check_in as service
from tests.attendance_data import BASE, SECRET, at, edition_with, participant

# The first session of the test edition: Monday 16 November 2099, 09:00-10:30 in Madrid.
OPENS = at("2099-11-16T08:45:00+01:00")
STARTS = at("2099-11-16T09:00:00+01:00")
ENDS = at("2099-11-16T10:30:00+01:00")
SECOND = timedelta(seconds=1)


def sessions_of(session: Session, edition: Edition) -> list[CourseSession]:
    return attendance.edition_sessions(session, edition)


def code_of(session: Session, course_session: CourseSession) -> str:
    return service.show_code(
        session, course_session_id=course_session.id or 0, actor="tutor@example.org"
    ).code


def check_in(
    session: Session,
    application: Application,
    course_session: CourseSession,
    code: str,
    now: datetime,
) -> service.CheckInResult:
    return service.check_in(
        session,
        application=application,
        course_session_id=course_session.id or 0,
        typed_code=code,
        secret_key=SECRET,
        base_url=BASE,
        now=now,
    )


def attempts(session: Session, application: Application) -> list[CheckInAttempt]:
    return list(
        session.exec(
            select(CheckInAttempt)
            .where(CheckInAttempt.application_id == application.id)
            .order_by(col(CheckInAttempt.id))
        ).all()
    )


def current_mark(session: Session, course_session: CourseSession, application: Application):  # type: ignore[no-untyped-def]
    return session.exec(
        select(AttendanceMark).where(
            AttendanceMark.course_session_id == course_session.id,
            AttendanceMark.application_id == application.id,
        )
    ).first()


@pytest.fixture
def setting(session: Session) -> tuple[Edition, list[CourseSession], Application]:
    edition = edition_with(session, 2, 1)
    return edition, sessions_of(session, edition), participant(session, edition)


def test_a_code_has_six_characters_without_look_alikes() -> None:
    codes = {service.new_code() for _ in range(200)}
    assert len(codes) > 190
    for code in codes:
        assert len(code) == 6
        assert set(code) <= set(service.ALPHABET)
    assert not set("01ILO") & set(service.ALPHABET)


def test_a_typed_code_is_read_without_spaces_dashes_or_case() -> None:
    assert service.normalise_code(" k7p-3qx ") == "K7P3QX"
    assert service.normalise_code("k7p 3qx") == "K7P3QX"


def test_the_code_is_made_once_and_replaced_only_on_request(
    session: Session, setting: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, sessions, _ = setting
    first = code_of(session, sessions[0])
    assert code_of(session, sessions[0]) == first
    renewed = service.show_code(
        session, course_session_id=sessions[0].id or 0, actor="tutor@example.org", renew=True
    )
    assert renewed.code != first


def test_two_sessions_of_an_edition_never_share_a_code(
    session: Session,
    setting: tuple[Edition, list[CourseSession], Application],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, sessions, _ = setting
    drawn = iter(["AAAAAA", "AAAAAA", "BBBBBB"])
    monkeypatch.setattr(service, "new_code", lambda: next(drawn))
    assert code_of(session, sessions[0]) == "AAAAAA"
    assert code_of(session, sessions[1]) == "BBBBBB"


def test_the_right_code_in_the_window_marks_the_participant_present(
    session: Session, setting: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, sessions, ama = setting
    code = code_of(session, sessions[0])
    result = check_in(session, ama, sessions[0], code.lower(), STARTS + timedelta(minutes=5))
    assert not result.already_present
    mark = current_mark(session, sessions[0], ama)
    assert (mark.status, mark.source, mark.marked_by) == ("present", "check_in", ama.email)
    again = check_in(session, ama, sessions[0], code, STARTS + timedelta(minutes=6))
    assert again.already_present
    assert [a.reason for a in attempts(session, ama)] == [
        service.REASON_OK,
        service.REASON_ALREADY,
    ]


def test_check_in_overrides_an_earlier_absent_mark(
    session: Session, setting: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, sessions, ama = setting
    attendance.mark_attendance(
        session,
        course_session_id=sessions[0].id or 0,
        application_id=ama.id or 0,
        status="absent",
        actor="tutor@example.org",
        secret_key=SECRET,
        base_url=BASE,
    )
    check_in(session, ama, sessions[0], code_of(session, sessions[0]), STARTS)
    assert current_mark(session, sessions[0], ama).status == "present"


@pytest.mark.parametrize(
    ("now", "accepted", "reason"),
    [
        (OPENS - SECOND, False, service.REASON_EARLY),
        (OPENS, True, service.REASON_OK),
        (ENDS - SECOND, True, service.REASON_OK),
        # The window is half-open: at the end instant the session is over.
        (ENDS, False, service.REASON_LATE),
        (ENDS + timedelta(hours=2), False, service.REASON_LATE),
    ],
)
def test_a_code_works_from_15_minutes_before_the_start_until_the_end(
    session: Session,
    setting: tuple[Edition, list[CourseSession], Application],
    now: datetime,
    accepted: bool,
    reason: str,
) -> None:
    _, sessions, ama = setting
    code = code_of(session, sessions[0])
    if accepted:
        check_in(session, ama, sessions[0], code, now)
        assert current_mark(session, sessions[0], ama).status == "present"
    else:
        with pytest.raises(service.CheckInRefused) as raised:
            check_in(session, ama, sessions[0], code, now)
        assert "code" in raised.value.fields
        assert current_mark(session, sessions[0], ama) is None
    assert [(a.succeeded, a.reason) for a in attempts(session, ama)] == [(accepted, reason)]


def test_the_refusal_says_when_check_in_opens_or_closed(
    session: Session, setting: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, sessions, ama = setting
    code = code_of(session, sessions[0])
    with pytest.raises(service.CheckInRefused) as early:
        check_in(session, ama, sessions[0], code, OPENS - timedelta(hours=1))
    assert "opens at Monday 16 November, 08:45" in early.value.message
    with pytest.raises(service.CheckInRefused) as late:
        check_in(session, ama, sessions[0], code, ENDS)
    assert "closed when it ended, at Monday 16 November, 10:30" in late.value.message


def test_the_code_of_another_session_is_refused_and_named(
    session: Session, setting: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, sessions, ama = setting
    first_code = code_of(session, sessions[0])
    code_of(session, sessions[1])
    # During the second session (11:00-12:30), the first session's code is refused.
    during_second = at("2099-11-16T11:10:00+01:00")
    with pytest.raises(service.CheckInRefused) as raised:
        check_in(session, ama, sessions[1], first_code, during_second)
    assert "another session" in raised.value.message
    assert sessions[0].title in raised.value.message
    assert current_mark(session, sessions[1], ama) is None
    assert attempts(session, ama)[-1].reason == service.REASON_OTHER_SESSION


def test_a_code_of_another_edition_is_just_wrong(
    session: Session, setting: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, sessions, ama = setting
    other = edition_with(session, 1, slug="diploma-other")
    foreign = code_of(session, sessions_of(session, other)[0])
    code_of(session, sessions[0])
    with pytest.raises(service.CheckInRefused) as raised:
        check_in(session, ama, sessions[0], foreign, STARTS)
    assert "not right" in raised.value.message
    assert attempts(session, ama)[-1].reason == service.REASON_WRONG


def test_a_wrong_code_is_refused_recorded_and_counted(
    session: Session, setting: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, sessions, ama = setting
    code_of(session, sessions[0])
    with pytest.raises(service.CheckInRefused):
        check_in(session, ama, sessions[0], "ZZZZZZ", STARTS)
    assert [(a.code_tried, a.succeeded) for a in attempts(session, ama)] == [("ZZZZZZ", False)]
    assert service.refused_attempts(session, sessions[0].id or 0) == 1


def test_a_session_without_a_code_yet_refuses_every_code(
    session: Session, setting: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, sessions, ama = setting
    with pytest.raises(service.CheckInRefused):
        check_in(session, ama, sessions[0], "", STARTS)


def test_five_wrong_codes_in_15_minutes_lock_out_for_15_minutes_from_the_fifth(
    session: Session, setting: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, sessions, ama = setting
    code = code_of(session, sessions[0])
    times = [OPENS + timedelta(minutes=m) for m in (0, 2, 4, 6, 8)]
    for when in times:
        with pytest.raises(service.CheckInRefused):
            check_in(session, ama, sessions[0], "WRONG1", when)
    # Even the right code is refused during the lockout, and the message says when to retry.
    with pytest.raises(service.CheckInThrottled) as raised:
        check_in(session, ama, sessions[0], code, times[-1] + timedelta(minutes=1))
    assert raised.value.retry_at == times[-1] + timedelta(minutes=15)
    assert "Try again at 09:08" in raised.value.message
    with pytest.raises(service.CheckInThrottled):
        check_in(session, ama, sessions[0], code, times[-1] + timedelta(minutes=15) - SECOND)
    assert attempts(session, ama)[-1].reason == service.REASON_THROTTLED
    check_in(session, ama, sessions[0], code, times[-1] + timedelta(minutes=15))
    assert current_mark(session, sessions[0], ama).status == "present"


def test_wrong_codes_spread_over_more_than_15_minutes_do_not_lock_out(
    session: Session, setting: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, sessions, ama = setting
    code = code_of(session, sessions[0])
    for minutes in (0, 4, 8, 12, 16):
        with pytest.raises(service.CheckInRefused):
            check_in(session, ama, sessions[0], "WRONG1", OPENS + timedelta(minutes=minutes))
    check_in(session, ama, sessions[0], code, OPENS + timedelta(minutes=17))
    assert current_mark(session, sessions[0], ama).status == "present"


def test_tries_outside_the_window_do_not_count_towards_the_lockout(
    session: Session, setting: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, sessions, ama = setting
    code = code_of(session, sessions[0])
    for minutes in range(6):
        with pytest.raises(service.CheckInRefused):
            check_in(session, ama, sessions[0], code, OPENS - timedelta(minutes=10 - minutes))
    check_in(session, ama, sessions[0], code, OPENS)
    assert current_mark(session, sessions[0], ama).status == "present"


def test_the_lockout_is_per_participant(
    session: Session, setting: tuple[Edition, list[CourseSession], Application]
) -> None:
    edition, sessions, ama = setting
    ben = participant(session, edition, email="ben@example.org")
    code = code_of(session, sessions[0])
    for minutes in range(5):
        with pytest.raises(service.CheckInRefused):
            check_in(session, ama, sessions[0], "WRONG1", OPENS + timedelta(minutes=minutes))
    check_in(session, ben, sessions[0], code, OPENS + timedelta(minutes=6))
    assert current_mark(session, sessions[0], ben).status == "present"


@pytest.mark.parametrize("status", ["admitted", "cancelled", "submitted"])
def test_only_confirmed_participants_can_check_in(
    session: Session, setting: tuple[Edition, list[CourseSession], Application], status: str
) -> None:
    edition, sessions, _ = setting
    applicant = participant(session, edition, status=status, email=f"{status}@example.org")
    code = code_of(session, sessions[0])
    with pytest.raises(service.CheckInRefused):
        check_in(session, applicant, sessions[0], code, STARTS)
    assert current_mark(session, sessions[0], applicant) is None


def test_open_sessions_are_those_whose_window_holds_now(
    session: Session, setting: tuple[Edition, list[CourseSession], Application]
) -> None:
    edition, sessions, _ = setting
    assert service.open_sessions(session, edition, now=OPENS - SECOND) == []
    assert service.open_sessions(session, edition, now=OPENS) == [sessions[0]]
    # From 10:45 the second session (11:00) is open too, while the first runs until 10:30.
    assert service.open_sessions(session, edition, now=at("2099-11-16T10:50:00+01:00")) == [
        sessions[1]
    ]
