"""Attendance pages: the sheet (htmx and plain forms), check-in codes, the programme editor,
progress, exports, the portal's programme and check-in, and the JSON API."""

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.clock import utcnow
from app.models import (
    Application,
    AttendanceMark,
    CheckInAttempt,
    CourseSession,
    Edition,
    StaffUser,
)
from app.services.registrations import applications as applications_service
from app.services.teaching import attendance
from app.services.teaching import check_in as check_in_service
from tests.attendance_data import SECRET, edition_with, participant, participants
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD
from tests.factories import open_edition
from tests.routers.office.test_auth import csrf_from, login

HX = {"HX-Request": "true"}


@pytest.fixture
def edition(session: Session) -> Edition:
    return edition_with(session, 2, 1)


@pytest.fixture
def first(session: Session, edition: Edition) -> CourseSession:
    return attendance.edition_sessions(session, edition)[0]


@pytest.fixture
def people(session: Session, edition: Edition) -> list[Application]:
    return participants(session, edition, 3)


@pytest.fixture
def as_tutor(client: TestClient, tutor_user: StaffUser) -> str:
    """Logs the client in as a tutor; returns the CSRF token."""
    assert login(client, "tutor@example.org", TUTOR_PASSWORD).status_code == 303
    return csrf_from(client.get("/admin/attendance").text)


@pytest.fixture
def as_admin(client: TestClient, admin_user: StaffUser) -> str:
    """Logs the client in as an administrator; returns the CSRF token."""
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    return csrf_from(client.get("/admin/attendance").text)


def stored_mark(session: Session, course_session: CourseSession, application: Application):  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.exec(
        select(AttendanceMark).where(
            AttendanceMark.course_session_id == course_session.id,
            AttendanceMark.application_id == application.id,
        )
    ).first()


def post_mark(
    client: TestClient,
    csrf: str,
    course_session: CourseSession,
    application: Application,
    status: str,
    headers: dict[str, str] | None = None,
) -> Any:
    return client.post(
        f"/admin/sessions/{course_session.id}/marks/{application.id}",
        data={"status": status, "csrf_token": csrf},
        headers=headers or {},
        follow_redirects=False,
    )


def pressed(html: str, application: Application) -> list[str]:
    """The statuses whose button is pressed in a participant's row."""
    return re.findall(rf'id="mark-{application.id}-(\w+)"[^>]*aria-pressed="true"', html)


def portal_token(session: Session, application: Application) -> str:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return applications_service.portal_token(application, edition, secret_key=SECRET)


# Who may use the sheet


def test_the_staff_navigation_leads_tutors_to_attendance(
    client: TestClient, as_tutor: str, edition: Edition, first: CourseSession
) -> None:
    home = client.get("/admin").text
    assert '<a href="/admin/attendance"' in home
    page = client.get(f"/admin/attendance?edition={edition.slug}").text
    assert f'href="/admin/sessions/{first.id}"' in page
    assert "Edit the programme" not in page


def test_anonymous_visitors_are_sent_to_log_in_and_cannot_mark(
    client: TestClient,
    session: Session,
    first: CourseSession,
    people: list[Application],
) -> None:
    page = client.get(f"/admin/sessions/{first.id}", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/admin/login")
    csrf = csrf_from(client.get("/admin/login").text)
    response = post_mark(client, csrf, first, people[0], "present")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login")
    assert stored_mark(session, first, people[0]) is None


def test_a_mark_without_the_csrf_token_is_refused(
    client: TestClient,
    session: Session,
    as_tutor: str,
    first: CourseSession,
    people: list[Application],
) -> None:
    response = post_mark(client, "not-the-token", first, people[0], "present")
    assert response.status_code == 403
    assert stored_mark(session, first, people[0]) is None


# The sheet


def test_the_sheet_lists_confirmed_participants_with_three_buttons_each(
    client: TestClient,
    session: Session,
    as_tutor: str,
    edition: Edition,
    first: CourseSession,
    people: list[Application],
) -> None:
    participant(session, edition, status="admitted", email="not-yet@example.org")
    html = client.get(f"/admin/sessions/{first.id}").text
    assert html.count('class="sheet-row ') == 3
    assert "not-yet@example.org" not in html
    for application in people:
        for status in ("present", "absent", "excused"):
            assert f'id="mark-{application.id}-{status}"' in html
        assert pressed(html, application) == []
    assert "Mark everyone not yet marked present (3)" in html
    assert 'role="group"' in html


def test_one_tap_saves_at_once_and_htmx_gets_only_the_row_and_the_counts(
    client: TestClient,
    session: Session,
    as_tutor: str,
    first: CourseSession,
    people: list[Application],
) -> None:
    response = post_mark(client, as_tutor, first, people[1], "absent", headers=HX)
    assert response.status_code == 200
    html = response.text
    assert html.lstrip().startswith(f'<li class="sheet-row is-absent" id="row-{people[1].id}"')
    assert pressed(html, people[1]) == ["absent"]
    assert "marked by tutor@example.org at" in html
    assert 'id="sheet-summary" class="sheet-summary" hx-swap-oob="true"' in html
    assert "1 absent" in html and "2 not marked" in html
    assert f'id="undo-{people[1].id}"' in html
    mark = stored_mark(session, first, people[1])
    assert (mark.status, mark.marked_by) == ("absent", "tutor@example.org")


def test_without_javascript_a_tap_posts_the_form_and_returns_to_the_row(
    client: TestClient,
    session: Session,
    as_tutor: str,
    first: CourseSession,
    people: list[Application],
) -> None:
    response = post_mark(client, as_tutor, first, people[0], "excused")
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/sessions/{first.id}#row-{people[0].id}"
    html = client.get(response.headers["location"]).text
    assert pressed(html, people[0]) == ["excused"]


@pytest.mark.parametrize("status", ["late", "", "present; drop table"])
def test_a_bad_status_is_refused_with_422(
    client: TestClient,
    session: Session,
    as_tutor: str,
    first: CourseSession,
    people: list[Application],
    status: str,
) -> None:
    response = post_mark(client, as_tutor, first, people[0], status)
    assert response.status_code == 422
    assert "present, absent or excused" in response.text
    assert stored_mark(session, first, people[0]) is None


def test_an_unknown_session_is_404(
    client: TestClient, as_tutor: str, people: list[Application]
) -> None:
    response = client.post(
        f"/admin/sessions/999999/marks/{people[0].id}",
        data={"status": "present", "csrf_token": as_tutor},
    )
    assert response.status_code == 404


def test_a_participant_of_another_edition_is_404_and_an_unconfirmed_one_409(
    client: TestClient,
    session: Session,
    as_tutor: str,
    edition: Edition,
    first: CourseSession,
) -> None:
    other = edition_with(session, 1, slug="diploma-other")
    stranger = participant(session, other, email="stranger@example.org")
    assert post_mark(client, as_tutor, first, stranger, "present").status_code == 404
    waiting = participant(session, edition, status="admitted", email="waiting@example.org")
    response = post_mark(client, as_tutor, first, waiting, "present")
    assert response.status_code == 409
    assert "only confirmed participants" in response.text
    assert stored_mark(session, first, waiting) is None


def test_mark_everyone_present_then_the_exceptions(
    client: TestClient,
    session: Session,
    as_tutor: str,
    first: CourseSession,
    people: list[Application],
) -> None:
    response = client.post(
        f"/admin/sessions/{first.id}/mark-everyone-present",
        data={"csrf_token": as_tutor},
        headers=HX,
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="sheet" class="sheet">')
    assert "3 participants marked present." in response.text
    assert 'id="mark-all"' not in response.text
    assert "0 not marked" in response.text
    post_mark(client, as_tutor, first, people[2], "absent", headers=HX)
    statuses = [stored_mark(session, first, a).status for a in people]
    assert statuses == ["present", "present", "absent"]
    plain = client.post(
        f"/admin/sessions/{first.id}/mark-everyone-present",
        data={"csrf_token": as_tutor},
        follow_redirects=False,
    )
    assert plain.status_code == 303
    assert "Everyone was already marked." in client.get(plain.headers["location"]).text


def test_undo_takes_back_the_last_change_of_a_row(
    client: TestClient,
    session: Session,
    as_tutor: str,
    first: CourseSession,
    people: list[Application],
) -> None:
    post_mark(client, as_tutor, first, people[0], "present", headers=HX)
    html = post_mark(client, as_tutor, first, people[0], "absent", headers=HX).text
    change_id = re.search(r'name="change_id" value="(\d+)"', html)
    assert change_id
    response = client.post(
        f"/admin/sessions/{first.id}/marks/{people[0].id}/undo",
        data={"csrf_token": as_tutor, "change_id": change_id.group(1)},
        headers=HX,
    )
    assert response.status_code == 200
    assert pressed(response.text, people[0]) == ["present"]
    assert "undone by tutor@example.org" in response.text
    assert f'id="undo-{people[0].id}"' not in response.text
    assert stored_mark(session, first, people[0]).status == "present"


def test_undo_after_another_tutors_change_says_so_and_keeps_their_mark(
    client: TestClient,
    session: Session,
    as_tutor: str,
    first: CourseSession,
    people: list[Application],
) -> None:
    html = post_mark(client, as_tutor, first, people[0], "absent", headers=HX).text
    mine = re.search(r'name="change_id" value="(\d+)"', html)
    assert mine
    attendance.mark_attendance(
        session,
        course_session_id=first.id or 0,
        application_id=people[0].id or 0,
        status="excused",
        actor="other.tutor@example.org",
        secret_key=SECRET,
        base_url="http://testserver",
    )
    response = client.post(
        f"/admin/sessions/{first.id}/marks/{people[0].id}/undo",
        data={"csrf_token": as_tutor, "change_id": mine.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    page = client.get(response.headers["location"]).text
    assert "other.tutor@example.org changed" in page
    assert pressed(page, people[0]) == ["excused"]


def test_the_sheet_shows_who_marked_what_when(
    client: TestClient,
    session: Session,
    as_tutor: str,
    first: CourseSession,
    people: list[Application],
) -> None:
    post_mark(client, as_tutor, first, people[0], "present")
    post_mark(client, as_tutor, first, people[0], "absent")
    html = client.get(f"/admin/sessions/{first.id}").text
    assert "Who marked what when (2 changes)" in html
    assert re.search(r"present → <strong>absent</strong>", html)
    assert re.search(r"not marked → <strong>present</strong>", html)


# Check-in codes


def test_a_tutor_makes_shows_and_replaces_the_check_in_code(
    client: TestClient, session: Session, as_tutor: str, first: CourseSession
) -> None:
    page = client.get(f"/admin/sessions/{first.id}/check-in").text
    assert "Show the check-in code" in page
    made = client.post(
        f"/admin/sessions/{first.id}/check-in",
        data={"csrf_token": as_tutor},
        follow_redirects=False,
    )
    assert made.status_code == 303
    code = check_in_service.code_for_session(session, first.id or 0)
    assert code is not None
    old_code = code.code
    shown = client.get(f"/admin/sessions/{first.id}/check-in").text
    assert f"{code.code[:3]}&#8201;{code.code[3:]}" in shown
    assert re.search(r'<svg role="img" viewBox="[\d ]+" class="qr-code"><title>', shown)
    assert "<script" not in shown.split("<main", 1)[1]
    client.post(
        f"/admin/sessions/{first.id}/check-in",
        data={"csrf_token": as_tutor, "renew": "1"},
    )
    session.expire_all()
    renewed = check_in_service.code_for_session(session, first.id or 0)
    assert renewed is not None and renewed.code != old_code


# The programme editor


def test_tutors_cannot_edit_the_programme(
    client: TestClient, as_tutor: str, edition: Edition
) -> None:
    assert client.get(f"/admin/editions/{edition.slug}/schedule").status_code == 403
    response = client.post(
        f"/admin/editions/{edition.slug}/schedule",
        data={"csrf_token": as_tutor, "title": "x"},
    )
    assert response.status_code == 403


def session_form(edition: Edition, **overrides: str) -> dict[str, str]:
    values = {
        "module_id": str(edition.modules[1].id),
        "kind": "site_visit",
        "title": "Visit to the port",
        "starts_at": "2099-11-17T15:00",
        "ends_at": "2099-11-17T17:00",
        "place": "Port of Barcelona",
    }
    values.update(overrides)
    return values


def test_an_administrator_adds_changes_and_removes_a_session(
    client: TestClient, session: Session, as_admin: str, edition: Edition
) -> None:
    added = client.post(
        f"/admin/editions/{edition.slug}/schedule",
        data={**session_form(edition), "csrf_token": as_admin},
        follow_redirects=False,
    )
    assert added.status_code == 303
    page = client.get(added.headers["location"]).text
    assert "“Visit to the port” was added to the programme." in page
    created = session.exec(
        select(CourseSession).where(CourseSession.title == "Visit to the port")
    ).one()
    edit = client.get(f"/admin/sessions/{created.id}/edit").text
    assert 'value="2099-11-17T15:00"' in edit
    saved = client.post(
        f"/admin/sessions/{created.id}/edit",
        data={**session_form(edition, title="Visit to the harbour"), "csrf_token": as_admin},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    removed = client.post(
        f"/admin/sessions/{created.id}/delete",
        data={"csrf_token": as_admin},
        follow_redirects=False,
    )
    assert removed.status_code == 303
    session.expire_all()
    assert session.get(CourseSession, created.id) is None


def test_a_session_form_with_errors_comes_back_with_each_message_by_its_field(
    client: TestClient, session: Session, as_admin: str, edition: Edition
) -> None:
    response = client.post(
        f"/admin/editions/{edition.slug}/schedule",
        data={
            **session_form(edition, ends_at="2099-11-17T14:00", title="Kept as typed"),
            "csrf_token": as_admin,
        },
    )
    assert response.status_code == 422
    assert 'id="ends_at-error"' in response.text
    assert "The session must end after it starts." in response.text
    assert 'value="Kept as typed"' in response.text
    assert (
        session.exec(select(CourseSession).where(CourseSession.title == "Kept as typed")).first()
        is None
    )


def test_a_session_with_marks_cannot_be_removed_from_the_page(
    client: TestClient,
    session: Session,
    as_admin: str,
    first: CourseSession,
    people: list[Application],
) -> None:
    post_mark(client, as_admin, first, people[0], "present")
    response = client.post(
        f"/admin/sessions/{first.id}/delete",
        data={"csrf_token": as_admin},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "cannot be removed" in client.get(response.headers["location"]).text
    session.expire_all()
    assert session.get(CourseSession, first.id) is not None


# Progress, at-risk list and exports


def test_the_matrix_shows_each_modules_state_in_words_and_opens_into_sessions(
    client: TestClient,
    session: Session,
    as_tutor: str,
    edition: Edition,
    first: CourseSession,
    people: list[Application],
) -> None:
    second = attendance.edition_sessions(session, edition)[1]
    post_mark(client, as_tutor, first, people[0], "present")
    post_mark(client, as_tutor, second, people[0], "present")
    post_mark(client, as_tutor, first, people[1], "present")
    post_mark(client, as_tutor, second, people[1], "absent")
    post_mark(client, as_tutor, first, people[2], "excused")
    post_mark(client, as_tutor, second, people[2], "absent")
    html = client.get(f"/admin/editions/{edition.slug}/progress").text
    cells = re.findall(
        r'<td class="cell-state state-(\w+)">.*?(\d/\d)<span class="state-word"> ([\w ]+)</span>',
        html,
    )
    assert cells[::2] == [
        ("complete", "2/2", "complete"),
        ("partial", "1/2", "partial"),
        ("missing", "0/2", "missing"),
    ]
    assert "At-risk list (2)" in html
    module = edition.modules[0]
    opened = client.get(f"/admin/editions/{edition.slug}/progress?module={module.id}").text
    assert f'href="/admin/sessions/{first.id}"' in opened
    assert "excused</td>" in opened
    assert client.get(f"/admin/editions/{edition.slug}/progress?module=999999").status_code == 404
    detail = client.get(f"/admin/editions/{edition.slug}/progress/{people[1].id}").text
    assert "1 of 3 sessions attended" in detail
    assert "Who marked what when" in detail


def test_the_at_risk_list_names_the_sessions_missed(
    client: TestClient,
    as_tutor: str,
    edition: Edition,
    first: CourseSession,
    people: list[Application],
) -> None:
    assert (
        "Nobody has missed a session" in client.get(f"/admin/editions/{edition.slug}/at-risk").text
    )
    post_mark(client, as_tutor, first, people[1], "absent")
    html = client.get(f"/admin/editions/{edition.slug}/at-risk").text
    assert people[1].email in html
    assert people[0].email not in html
    assert f"{first.title}</a>" in html and "<strong>absent</strong>" in html


def test_tutors_download_the_matrix_as_csv_and_xlsx(
    client: TestClient, as_tutor: str, edition: Edition, people: list[Application]
) -> None:
    csv_file = client.get(f"/admin/editions/{edition.slug}/attendance.csv")
    assert csv_file.status_code == 200
    assert csv_file.headers["content-type"].startswith("text/csv")
    assert csv_file.text.count("\r\n") == 4
    xlsx = client.get(f"/admin/editions/{edition.slug}/attendance.xlsx")
    assert xlsx.status_code == 200
    assert xlsx.content.startswith(b"PK")


# The portal and the public pages


def test_the_public_page_and_the_portal_offer_the_programme_as_a_calendar(
    client: TestClient, session: Session, edition: Edition, people: list[Application]
) -> None:
    page = client.get(f"/editions/{edition.slug}").text
    assert f'href="/editions/{edition.slug}/programme.ics"' in page
    public = client.get(f"/editions/{edition.slug}/programme.ics")
    assert public.headers["content-type"].startswith("text/calendar")
    assert public.text.count("BEGIN:VEVENT") == 3
    token = portal_token(session, people[0])
    portal = client.get(f"/portal/{token}").text
    assert f'href="/portal/{token}/programme.ics"' in portal
    assert "L1 session 1" in portal
    assert "0 of 3" in portal
    own = client.get(f"/portal/{token}/programme.ics")
    assert own.status_code == 200
    assert "TZID:Europe/Madrid" in own.text
    assert client.get("/portal/not-a-token/programme.ics").status_code == 404


def test_an_admitted_applicant_sees_the_programme_but_no_attendance(
    client: TestClient, session: Session, edition: Edition
) -> None:
    applicant = participant(session, edition, status="admitted")
    html = client.get(f"/portal/{portal_token(session, applicant)}").text
    assert 'id="programme-heading">Programme<' in html
    assert 'id="check-in-heading"' not in html


@pytest.fixture
def live(session: Session) -> tuple[Edition, list[CourseSession], Application]:
    """An edition running today: one session under way now, one that ended, one to come."""
    now = utcnow()
    today = now.date()
    spans = ((-30, 60), (-300, -200), (600, 700))
    edition = open_edition(
        session,
        slug="diploma-today",
        start_date=(today - timedelta(days=1)).isoformat(),
        end_date=(today + timedelta(days=2)).isoformat(),
        applications_close="2100-01-01T00:00:00+00:00",
        modules=[
            {
                "title": "Lesson 1",
                "sessions": [
                    {
                        "kind": "site_visit",
                        "title": f"Visit {n}",
                        "starts_at": (now + timedelta(minutes=a)).isoformat(),
                        "ends_at": (now + timedelta(minutes=b)).isoformat(),
                    }
                    for n, (a, b) in enumerate(spans)
                ],
            }
        ],
    )
    sessions = attendance.edition_sessions(session, edition)
    by_title = {s.title: s for s in sessions}
    return edition, [by_title["Visit 0"], by_title["Visit 1"]], participant(session, edition)


def check_in_post(client: TestClient, token: str, course_session: CourseSession, code: str) -> Any:
    csrf = csrf_from(client.get(f"/portal/{token}").text)
    return client.post(
        f"/portal/{token}/check-in",
        data={"csrf_token": csrf, "session_id": str(course_session.id), "code": code},
        follow_redirects=False,
    )


def test_a_participant_checks_in_from_the_portal_with_the_code(
    client: TestClient, session: Session, live: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, (now_on, _), ama = live
    token = portal_token(session, ama)
    page = client.get(f"/portal/{token}").text
    assert f'name="session_id" value="{now_on.id}"' in page
    assert '<label for="check-in-code">' in page
    code = check_in_service.show_code(session, course_session_id=now_on.id or 0, actor="t@x.org")
    response = check_in_post(client, token, now_on, code.code.lower())
    assert response.status_code == 303
    assert "you are marked present at “Visit 0”" in client.get(response.headers["location"]).text
    assert stored_mark(session, now_on, ama).source == "check_in"


def test_a_code_outside_its_window_or_of_another_session_is_refused_in_the_portal(
    client: TestClient, session: Session, live: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, (now_on, ended), ama = live
    token = portal_token(session, ama)
    ended_code = check_in_service.show_code(
        session, course_session_id=ended.id or 0, actor="t@x.org"
    )
    check_in_service.show_code(session, course_session_id=now_on.id or 0, actor="t@x.org")
    late = check_in_post(client, token, ended, ended_code.code)
    assert late.status_code == 422
    assert "closed when it ended" in late.text
    other = check_in_post(client, token, now_on, ended_code.code)
    assert other.status_code == 422
    assert "That is the code of another session (“Visit 1”" in other.text
    assert 'aria-invalid="true"' in other.text
    assert stored_mark(session, now_on, ama) is None
    assert stored_mark(session, ended, ama) is None


def test_repeated_wrong_codes_in_the_portal_are_throttled_with_429(
    client: TestClient, session: Session, live: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, (now_on, _), ama = live
    token = portal_token(session, ama)
    code = check_in_service.show_code(session, course_session_id=now_on.id or 0, actor="t@x.org")
    for _ in range(5):
        assert check_in_post(client, token, now_on, "WRONG9").status_code == 422
    throttled = check_in_post(client, token, now_on, code.code)
    assert throttled.status_code == 429
    assert "Too many wrong codes. Try again at" in throttled.text
    assert stored_mark(session, now_on, ama) is None
    count = len(
        session.exec(select(CheckInAttempt).where(CheckInAttempt.application_id == ama.id)).all()
    )
    assert count == 6


def test_a_scanned_code_leads_back_to_the_portal_this_browser_opened(
    client: TestClient, session: Session, live: tuple[Edition, list[CourseSession], Application]
) -> None:
    _, _, ama = live
    stranger = client.get("/check-in?code=ab3-xyz")
    assert stranger.status_code == 200
    assert "AB3&#8201;XYZ" in stranger.text
    token = portal_token(session, ama)
    client.get(f"/portal/{token}")
    scanned = client.get("/check-in?code=ab3-xyz", follow_redirects=False)
    assert scanned.status_code == 303
    assert scanned.headers["location"] == f"/portal/{token}?checkin=AB3XYZ#check-in-heading"
    assert 'value="AB3XYZ"' in client.get(scanned.headers["location"]).text


# The JSON API


def test_the_api_marks_for_tutors_and_refuses_others(
    client: TestClient,
    session: Session,
    tutor_headers: dict[str, str],
    edition: Edition,
    first: CourseSession,
    people: list[Application],
) -> None:
    url = f"/api/v1/sessions/{first.id}/attendance/{people[0].id}"
    assert client.put(url, json={"status": "present"}).status_code == 401
    response = client.put(url, json={"status": "absent"}, headers=tutor_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "absent"
    assert body["previous_status"] is None
    assert body["changed"] is True
    assert body["marked_by"] == "tutor@example.org"
    assert body["source"] == "api"
    assert body["marked_at"].endswith("+01:00")
    again = client.put(url, json={"status": "absent"}, headers=tutor_headers).json()
    assert again["changed"] is False


def test_the_api_answers_bad_input_with_4xx(
    client: TestClient,
    session: Session,
    tutor_headers: dict[str, str],
    edition: Edition,
    first: CourseSession,
    people: list[Application],
) -> None:
    url = f"/api/v1/sessions/{first.id}/attendance/{people[0].id}"
    bad = client.put(url, json={"status": "late"}, headers=tutor_headers)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "status"]
    assert client.put(url, json={}, headers=tutor_headers).status_code == 422
    assert (
        client.put(url, json={"status": "present", "extra": 1}, headers=tutor_headers).status_code
        == 422
    )
    unknown = client.put(
        f"/api/v1/sessions/999999/attendance/{people[0].id}",
        json={"status": "present"},
        headers=tutor_headers,
    )
    assert unknown.status_code == 404
    other = edition_with(session, 1, slug="diploma-other")
    stranger = participant(session, other, email="stranger@example.org")
    wrong = client.put(
        f"/api/v1/sessions/{first.id}/attendance/{stranger.id}",
        json={"status": "present"},
        headers=tutor_headers,
    )
    assert wrong.status_code == 404
    waiting = participant(session, edition, status="admitted", email="waiting@example.org")
    unconfirmed = client.put(
        f"/api/v1/sessions/{first.id}/attendance/{waiting.id}",
        json={"status": "present"},
        headers=tutor_headers,
    )
    assert unconfirmed.status_code == 409


def test_the_api_matrix_has_every_session_and_module_per_participant(
    client: TestClient,
    session: Session,
    admin_headers: dict[str, str],
    tutor_headers: dict[str, str],
    edition: Edition,
    first: CourseSession,
    people: list[Application],
) -> None:
    client.put(
        f"/api/v1/sessions/{first.id}/attendance/{people[0].id}",
        json={"status": "present"},
        headers=tutor_headers,
    )
    assert client.get(f"/api/v1/editions/{edition.slug}/attendance").status_code == 401
    for headers in (admin_headers, tutor_headers):
        response = client.get(f"/api/v1/editions/{edition.slug}/attendance", headers=headers)
        assert response.status_code == 200
    body = response.json()
    assert body["attendance_min_percent"] == 100
    assert [len(m["sessions"]) for m in body["modules"]] == [2, 1]
    row = next(p for p in body["participants"] if p["application_id"] == people[0].id)
    assert [s["status"] for s in row["sessions"]] == ["present", None, None]
    assert [m["state"] for m in row["modules"]] == ["pending", "pending"]
    assert (row["attended"], row["total"], row["at_risk"]) == (1, 3, False)
    assert client.get("/api/v1/editions/nope/attendance", headers=tutor_headers).status_code == 404


def test_an_applications_detail_carries_its_attendance(
    client: TestClient,
    session: Session,
    admin_headers: dict[str, str],
    edition: Edition,
    first: CourseSession,
    people: list[Application],
) -> None:
    client.put(
        f"/api/v1/sessions/{first.id}/attendance/{people[0].id}",
        json={"status": "excused"},
        headers=admin_headers,
    )
    detail = client.get(f"/api/v1/applications/{people[0].id}", headers=admin_headers).json()
    found = detail["attendance"]
    assert (found["attended"], found["total"], found["at_risk"]) == (0, 3, True)
    assert found["sessions"] == [
        {
            "session_id": first.id,
            "status": "excused",
            "marked_by": "admin@example.org",
            "marked_at": found["sessions"][0]["marked_at"],
        }
    ]
    waiting = participant(session, edition, status="submitted", email="later@example.org")
    later = client.get(f"/api/v1/applications/{waiting.id}", headers=admin_headers).json()
    assert later["attendance"] is None
