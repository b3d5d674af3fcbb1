"""An edition's dashboard: funnel, seats, money, refunds, origins, attendance, who is at risk."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from app.clock import utcnow
from app.models import Application, Cancellation, Edition, StaffUser
from app.platform.storage import LocalStorage
from app.services.billing.money_overview import edition_money
from app.services.office.dashboard import edition_dashboard
from app.services.office.dashboard_charts import dashboard_charts
from tests.attendance_data import programme
from tests.dashboard_data import Office
from tests.factories import make_organisation, open_edition

MADRID = ZoneInfo("Europe/Madrid")
# The test edition runs 16-20 November 2099; its cancellation deadline is 17 October 00:00.
BEFORE_DEADLINE = datetime(2099, 10, 1, 10, 0, tzinfo=MADRID)
AFTER_THE_WEEK = datetime(2099, 11, 23, 12, 0, tzinfo=MADRID)


@pytest.fixture
def office(session: Session, tmp_path: Path, admin_user: StaffUser) -> Office:
    """An open edition of five lessons (2, 2, 1, 1, 1 sessions) in November 2099."""
    edition = open_edition(session, modules=programme(2, 2, 1, 1, 1), capacity=10)
    return Office(session, edition, LocalStorage(tmp_path / "files"), admin_user)


def _now() -> datetime:
    return utcnow()


def people(office: Office, count: int, prefix: str, **extra: object) -> list[Application]:
    """`count` applications from a non-member city in Malawi."""
    return [
        office.apply(
            f"{prefix}{i}",
            "Tester",
            at=_now(),
            organisation_name="Zomba City Council",
            country="MWI",
            **extra,  # type: ignore[arg-type]
        )
        for i in range(count)
    ]


def confirmed(office: Office, count: int, prefix: str) -> list[Application]:
    """Admitted and paid in full."""
    found = people(office, count, prefix)
    for application in found:
        office.decide(application, "admit", at=_now())
        office.pay(application, at=_now())
        office.session.refresh(application)
        assert application.status == "confirmed"
    return found


def test_the_funnel_counts_how_far_each_application_got_and_where_the_others_left(
    office: Office,
) -> None:
    session = office.session
    people(office, 2, "Pending")
    office.decide(people(office, 1, "Waiting")[0], "waitlist", at=_now())
    office.decide(people(office, 1, "Refused")[0], "reject", at=_now())
    office.withdraw(people(office, 1, "Gone")[0], at=_now())
    for application in people(office, 2, "Unpaid"):
        office.decide(application, "admit", at=_now())
    paid = confirmed(office, 4, "Paid")
    early = people(office, 1, "Early")[0]
    office.decide(early, "admit", at=_now())
    office.cancel(early, at=BEFORE_DEADLINE)
    office.cancel(paid[0], at=BEFORE_DEADLINE)
    paid[1].status = "completed"
    session.add(paid[1])
    session.commit()

    dash = edition_dashboard(session, office.edition, now=BEFORE_DEADLINE)

    funnel = dash.funnel
    assert funnel.applied == 12
    assert funnel.admitted == 2 + 4 + 1  # unpaid, paid (incl. cancelled and completed), early
    assert funnel.confirmed == 4
    assert funnel.completed == 1
    assert funnel.count("submitted") == 2
    assert (funnel.count("waitlisted"), funnel.count("rejected"), funnel.count("withdrawn")) == (
        1,
        1,
        1,
    )
    assert (funnel.cancelled_before_paying, funnel.cancelled_after_confirming) == (1, 1)
    assert (dash.seats.capacity, dash.seats.paid, dash.seats.awaiting_payment) == (10, 3, 2)
    assert dash.seats.free == 5
    assert dash.participants == 3


def test_money_is_the_money_overview_plus_what_cancellations_retained(office: Office) -> None:
    session = office.session
    paid = confirmed(office, 3, "Paid")
    half = people(office, 1, "Half")[0]
    office.decide(half, "admit", at=_now())
    office.pay(half, at=_now(), amount=Decimal("400.00"))
    office.cancel(paid[0], at=BEFORE_DEADLINE)

    dash = edition_dashboard(session, office.edition, now=BEFORE_DEADLINE)
    overview = edition_money(session, office.edition, today=dash.today)

    assert dash.money == overview
    assert dash.money.outstanding == Decimal("1100.00")
    retained = session.exec(select(Cancellation.retained)).one()
    assert dash.retained == retained == Decimal("375.00")
    assert dash.refunds.owed_amount == Decimal("1125.00")


def test_refunds_owed_are_due_or_overdue_on_the_editions_calendar(office: Office) -> None:
    session = office.session
    first, second, third = confirmed(office, 3, "Paid")
    office.cancel(first, at=datetime(2099, 9, 1, 10, 0, tzinfo=MADRID))  # due 1 October
    office.cancel(second, at=datetime(2099, 9, 20, 10, 0, tzinfo=MADRID))  # due 20 October
    refund = office.cancel(third, at=datetime(2099, 9, 2, 10, 0, tzinfo=MADRID)).refund
    assert refund is not None
    office.complete_refund(refund.id or 0, on=date(2099, 9, 5), at=BEFORE_DEADLINE)

    dash = edition_dashboard(
        session, office.edition, now=datetime(2099, 10, 2, 9, 0, tzinfo=MADRID)
    )

    assert [r.application.id for r in dash.refunds.owed] == [first.id, second.id]
    assert [(r.application.id, r.days_left) for r in dash.refunds.overdue] == [(first.id, -1)]
    assert dash.refunds.overdue_amount == Decimal("1125.00")
    assert (dash.refunds.completed_count, dash.refunds.completed_amount) == (1, Decimal("1125.00"))
    assert dash.money.refunded == Decimal("1125.00")


def test_applications_by_country_and_membership(office: Office) -> None:
    session = office.session
    member = make_organisation(session, name="Lilongwe City", country="MWI", dues_paid_through=2023)
    behind = make_organisation(session, name="Kampala City", country="UGA", dues_paid_through=2021)
    outsider = make_organisation(
        session, name="Amman City", country="JOR", is_member=False, dues_paid_through=None
    )
    admitted = office.apply("Ama", "Banda", at=_now(), organisation=member)
    office.decide(admitted, "admit", at=_now())  # waived: a low-income member
    office.apply("Okello", "One", at=_now(), organisation=behind)
    office.apply("Okello", "Two", at=_now(), organisation=behind)
    office.apply("Rania", "Haddad", at=_now(), organisation=outsider)
    office.apply("Beatriz", "Souza", at=_now(), organisation_name="São Paulo", country="BR")

    dash = edition_dashboard(session, office.edition)

    by_country = {c.key: (c.applications, c.with_place) for c in dash.countries}
    assert by_country == {"UGA": (2, 0), "MWI": (1, 1), "JOR": (1, 0), "BRA": (1, 0)}
    assert dash.countries[0].label == "Uganda"
    membership = {c.key: (c.applications, c.with_place) for c in dash.membership}
    assert membership == {
        "member": (1, 1),
        "behind": (2, 0),
        "non_member": (1, 0),
        "unlisted": (1, 0),
    }


def test_beyond_twelve_countries_the_rest_are_summed_in_one_row(office: Office) -> None:
    countries = ["ESP", "MEX", "DEU", "CAN", "KOR", "COL", "ZAF", "MWI", "ETH", "ZMB", "UGA"]
    countries += ["GBR", "COD", "JOR", "BRA"]
    for index, country in enumerate(countries):
        for n in range(1 + (index == 0)):
            office.apply(
                f"P{index}x{n}", "Tester", at=_now(), organisation_name="City", country=country
            )

    dash = edition_dashboard(office.session, office.edition)

    assert len(dash.countries) == 13
    assert dash.countries[0].key == "ESP" and dash.countries[0].applications == 2
    assert dash.countries[-1].label == "3 other countries"
    assert dash.countries[-1].applications == 3
    assert dash.other_countries == 3
    assert len(dash.all_countries) == 15
    chart = dashboard_charts(dash).countries
    assert len(chart.table.rows) == 15  # the table names every country the chart sums


def test_attendance_counts_marks_per_session_against_the_paid_participants(
    office: Office,
) -> None:
    session = office.session
    first, second, third = confirmed(office, 3, "Paid")
    lesson_one = office.sessions()[0]
    for application, status in ((first, "present"), (second, "absent"), (third, "excused")):
        office.mark(application, lesson_one, status)
    office.mark(first, office.sessions()[1], "present")
    session.commit()

    during = datetime(2099, 11, 16, 12, 0, tzinfo=MADRID)  # lesson 1's first session is over
    dash = edition_dashboard(session, office.edition, now=during)

    cells = dash.attendance
    assert len(cells) == 7
    assert (cells[0].present, cells[0].absent, cells[0].excused, cells[0].unmarked) == (1, 1, 1, 0)
    assert cells[0].state == "measured" and cells[0].share == pytest.approx(1 / 3)
    assert cells[1].state == "measured" and cells[1].unmarked == 2
    assert cells[2].state == "future" and cells[2].share is None
    after = edition_dashboard(session, office.edition, now=AFTER_THE_WEEK)
    assert after.attendance[2].state == "unmarked"


def test_at_risk_are_those_with_a_missed_session_money_owed_or_no_accepted_final_work(
    office: Office,
) -> None:
    session = office.session
    good, absent, no_work, excused, fresh = confirmed(office, 5, "P")
    unpaid = people(office, 1, "Unpaid")[0]
    office.decide(unpaid, "admit", at=datetime(2099, 9, 1, 10, 0, tzinfo=MADRID))
    sessions = office.sessions()
    for application in (good, absent, no_work, excused):
        for course_session in sessions:
            status = "present"
            if application is absent and course_session is sessions[2]:
                status = "absent"
            if application is excused and course_session is sessions[0]:
                status = "excused"
            office.mark(application, course_session, status)
    # Marked at the first session only, as the sheet stands on the first afternoon.
    office.mark(fresh, sessions[0], "present")
    for application in (good, absent, excused, fresh):
        office.final_work(application, "accepted", at=AFTER_THE_WEEK)
    session.commit()

    # On the first afternoon: one session is over, the rest are to come, final work not due.
    during = datetime(2099, 11, 16, 12, 0, tzinfo=MADRID)
    early = edition_dashboard(session, office.edition, now=during)
    assert {r.application.id: r.concerns for r in early.at_risk} == {
        excused.id: ("attendance",),
        absent.id: ("attendance",),
        unpaid.id: ("payment",),
    }
    early_reasons = {r.application.id: r.reasons for r in early.at_risk}
    assert early_reasons[excused.id] == ["excused from Lesson 1, knowledge session on 16 Nov"]

    dash = edition_dashboard(session, office.edition, now=AFTER_THE_WEEK)
    risks = {r.application.id: r for r in dash.at_risk}
    assert set(risks) == {absent.id, no_work.id, excused.id, unpaid.id, fresh.id}
    assert risks[absent.id].reasons == ["absent from Lesson 2, knowledge session on 17 Nov"]
    assert risks[no_work.id].reasons == ["no final work uploaded"]
    assert risks[no_work.id].concerns == ("final work",)
    assert len(risks[fresh.id].reasons) == 6
    assert risks[fresh.id].reasons[0].startswith("no attendance recorded for Lesson 1")
    assert risks[unpaid.id].reasons[0].endswith("the place is not guaranteed")
    assert "days overdue" in risks[unpaid.id].reasons[0]
    assert dash.at_risk[0].application.id == fresh.id  # the most reasons first


def test_key_dates_count_days_on_the_editions_calendar(office: Office) -> None:
    # 23:30 on 15 October in Madrid is already the 16th in no other sense.
    dash = edition_dashboard(
        office.session, office.edition, now=datetime(2099, 10, 15, 23, 30, tzinfo=MADRID)
    )
    assert dash.today == date(2099, 10, 15)
    assert dash.dates.days_to_deadline == 2
    assert dash.dates.last_cancellation_day == date(2099, 10, 16)
    assert dash.dates.days_to_start == 32
    assert not dash.dates.running and not dash.dates.ended


@contextmanager
def counting(session: Session) -> Iterator[list[str]]:
    """Every statement the session sends while inside the block."""
    statements: list[str] = []
    connection = session.connection()

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(connection, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", count)


def _grow(office: Office, count: int, prefix: str) -> None:
    """More participants of every kind: paid and marked, unpaid, refused, cancelled."""
    for application in confirmed(office, count, prefix):
        for course_session in office.sessions()[:3]:
            office.mark(application, course_session, "absent")
        office.final_work(application, "accepted", at=AFTER_THE_WEEK)
    for application in people(office, count, prefix + "U"):
        office.decide(application, "admit", at=datetime(2099, 9, 1, 10, 0, tzinfo=MADRID))
    for application in people(office, count, prefix + "R"):
        office.decide(application, "reject", at=_now())
    office.session.commit()


def test_the_dashboard_reads_the_same_number_of_queries_for_3_or_12_participants(
    office: Office,
) -> None:
    session = office.session
    office.edition.capacity = 50
    session.add(office.edition)
    session.commit()
    _grow(office, 1, "A")
    office.cancel(confirmed(office, 1, "C")[0], at=BEFORE_DEADLINE)
    session.expire_all()
    edition = session.get(Edition, office.edition.id)
    assert edition is not None
    with counting(session) as small:
        few = edition_dashboard(session, edition, now=AFTER_THE_WEEK)
    _grow(office, 4, "B")
    session.expire_all()
    edition = session.get(Edition, office.edition.id)
    assert edition is not None
    with counting(session) as large:
        many = edition_dashboard(session, edition, now=AFTER_THE_WEEK)
    assert (few.participants, many.participants) == (1, 5)
    assert len(many.at_risk) == 10
    assert len(small) == len(large), (small, large)
    assert len(large) <= 25, len(large)


def test_an_edition_without_applications_or_sessions_has_an_empty_dashboard(
    session: Session,
) -> None:
    edition = open_edition(session, slug="diploma-empty", modules=[])
    dash = edition_dashboard(session, edition)
    assert dash.funnel.applied == 0
    assert dash.countries == [] and dash.at_risk == []
    assert all(c.applications == 0 for c in dash.membership)
    assert dash.money.outstanding == Decimal("0.00")
    assert dash.seats.free == edition.capacity
    assert dash.refunds.owed == [] and dash.refunds.completed_count == 0
