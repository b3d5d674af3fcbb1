"""The dashboard's figures drawn as charts: seats, funnel, money, attendance, origins."""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from app.platform.i18n import (
    DEFAULT_LANGUAGE,
    N_,
    amount,
    current_language,
    gettext,
    session_start,
    translate,
)
from app.services.office.charts import (
    HATCH,
    Bar,
    Chart,
    DataTable,
    FunnelStep,
    HeatCell,
    HeatRow,
    Segment,
    Series,
    ValueFormat,
    bar_chart,
    funnel_chart,
    heatmap,
    meter,
)
from app.services.office.dashboard import CategoryCount, Dashboard, SessionAttendance

PAID_FILL = "#0b5c8a"
PROMISED_FILL = "#9cc3de"
FREE_FILL = "#ffffff"
KIND_WORDS = {
    "knowledge": N_("Knowledge session"),
    "skills": N_("Skills session"),
    "site_visit": N_("Site visit"),
}


@dataclass(frozen=True)
class DashboardCharts:
    """Every chart of the dashboard."""

    seats: Chart
    funnel: Chart
    money: Chart
    attendance: Chart
    countries: Chart
    membership: Chart


def seats_chart(dash: Dashboard) -> Chart:
    """Seats paid, promised (admitted, unpaid) and free, against the capacity."""
    seats = dash.seats
    description = gettext(
        "%(paid)s of %(capacity)s seats are paid; %(promised)s more are promised to admitted "
        "participants who have not paid; %(free)s are free."
    ) % {
        "paid": seats.paid,
        "capacity": seats.capacity,
        "promised": seats.awaiting_payment,
        "free": seats.free,
    }
    if seats.over:
        description += " " + gettext("%(over)s places are promised beyond the seats.") % {
            "over": seats.over
        }
    return meter(
        chart_id="chart-seats",
        title=gettext("Seats"),
        description=description,
        segments=[
            Segment(gettext("Paid (confirmed)"), seats.paid, PAID_FILL),
            Segment(gettext("Admitted, not paid"), seats.awaiting_payment, PROMISED_FILL, HATCH),
            Segment(gettext("Free"), seats.free, FREE_FILL),
        ],
        total=seats.capacity,
    )


def _funnel(dash: Dashboard) -> Chart:
    f = dash.funnel
    steps = [
        FunnelStep(
            gettext("Applied"),
            f.applied,
            (
                (gettext("awaiting a decision"), f.count("submitted")),
                (gettext("on the waiting list"), f.count("waitlisted")),
                (gettext("rejected"), f.count(gettext("rejected"))),
                (gettext("withdrawn"), f.count(gettext("withdrawn"))),
            ),
        ),
        FunnelStep(
            gettext("Admitted"),
            f.admitted,
            (
                (gettext("awaiting payment"), f.count("admitted")),
                (gettext("cancelled before paying"), f.cancelled_before_paying),
            ),
        ),
        FunnelStep(
            gettext("Confirmed (paid or waived)"),
            f.confirmed,
            ((gettext("cancelled after paying"), f.cancelled_after_confirming),),
        ),
        FunnelStep(gettext("Completed (certificate issued)"), f.completed),
    ]
    description = gettext(
        "%(applied)s applied, %(admitted)s were admitted, %(confirmed)s confirmed their place "
        "and %(completed)s completed the course."
    ) % {
        "applied": f.applied,
        "admitted": f.admitted,
        "confirmed": f.confirmed,
        "completed": f.completed,
    }
    return funnel_chart(
        chart_id="chart-funnel",
        title=gettext("Applications funnel"),
        description=description,
        steps=steps,
    )


def _money(dash: Dashboard) -> Chart:
    m = dash.money
    currency = m.currency
    bars = [
        Bar(gettext("Invoiced (less credit notes)"), (m.invoiced,)),
        Bar(gettext("Received"), (m.received,)),
        Bar(gettext("Outstanding"), (m.outstanding,)),
        Bar(gettext("of which overdue"), (m.overdue_total,)),
        Bar(gettext("Refunded"), (m.refunded,)),
        Bar(gettext("Retained on cancellation"), (dash.retained,)),
        Bar(gettext("Refunds still owed"), (dash.refunds.owed_amount,)),
    ]
    description = gettext(
        "Invoiced %(invoiced)s %(currency)s, received %(received)s, outstanding %(outstanding)s "
        "of which %(overdue)s overdue, refunded %(refunded)s, retained %(retained)s, refunds "
        "owed %(owed)s."
    ) % {
        "invoiced": amount(m.invoiced),
        "currency": currency,
        "received": amount(m.received),
        "outstanding": amount(m.outstanding),
        "overdue": amount(m.overdue_total),
        "refunded": amount(m.refunded),
        "retained": amount(dash.retained),
        "owed": amount(dash.refunds.owed_amount),
    }
    return bar_chart(
        chart_id="chart-money",
        title=gettext("Money (%(currency)s)") % {"currency": currency},
        description=description,
        bars=bars,
        series=[Series(gettext("Amount"), PAID_FILL)],
        value_format=ValueFormat(currency),
        label_header=gettext("Money"),
    )


def _weekday_and_day(start: datetime) -> str:
    """`Mon 18` in English, `lun. 18` in French: a heat map cell has room for no more."""
    language = current_language()
    if language == DEFAULT_LANGUAGE:
        return f"{start:%a} {start.day}"
    return str(format_datetime(start, "EEE d", locale=language))


def _cell(row: SessionAttendance, timezone: str) -> HeatCell:
    start = row.course_session.starts_at.astimezone(ZoneInfo(timezone))
    top = f"{_weekday_and_day(start)} · {start:%H:%M}"
    kind = gettext(KIND_WORDS.get(row.course_session.kind, row.course_session.kind))
    tooltip = gettext(
        "Lesson %(lesson)s, %(kind)s, %(when)s: %(present)s present, %(absent)s absent, "
        "%(excused)s excused, %(unmarked)s not marked"
    ) % {
        "lesson": row.module_position,
        "kind": kind.lower(),
        "when": session_start(start).replace(",", ""),
        "present": row.present,
        "absent": row.absent,
        "excused": row.excused,
        "unmarked": row.unmarked,
    }
    if row.state == "future":
        return HeatCell(top, "–", gettext("to come"), None, "future", tooltip)
    if row.state == "unmarked":
        return HeatCell(
            top,
            gettext("not marked"),
            gettext("%(count)s expected") % {"count": row.participants},
            None,
            "unmarked",
            tooltip,
        )
    share = row.share or 0.0
    bottom = gettext("%(present)s of %(count)s") % {
        "present": row.present,
        "count": row.participants,
    }
    if row.unmarked:
        # Room for three short lines only: the full count is in the tooltip and the table.
        bottom = gettext("%(present)s/%(count)s, %(unmarked)s unmarked") % {
            "present": row.present,
            "count": row.participants,
            "unmarked": row.unmarked,
        }
    return HeatCell(top, f"{round(share * 100)} %", bottom, share, "measured", tooltip)


def attendance_chart(dash: Dashboard) -> Chart:
    """Share of participants present at each session, a row per lesson."""
    timezone = dash.edition.timezone
    rows: list[HeatRow] = []
    by_module: dict[int, list[SessionAttendance]] = {}
    for row in dash.attendance:
        by_module.setdefault(row.module_position, []).append(row)
    for position, sessions in by_module.items():
        rows.append(
            HeatRow(
                gettext("Lesson %(lesson)s") % {"lesson": position},
                tuple(_cell(s, timezone) for s in sessions),
            )
        )
    measured = [s for s in dash.attendance if s.state == "measured"]
    full = sum(1 for s in measured if s.present == s.participants)
    if measured:
        description = gettext(
            "%(measured)s of %(sessions)s sessions have marks; everyone was present at %(full)s "
            "of them. %(participants)s participants are expected."
        ) % {
            "measured": len(measured),
            "sessions": len(dash.attendance),
            "full": full,
            "participants": dash.participants,
        }
    else:
        description = gettext(
            "No attendance is marked yet; %(participants)s participants expected."
        ) % {"participants": dash.participants}
    table_rows = []
    for s in dash.attendance:
        start = s.course_session.starts_at.astimezone(ZoneInfo(timezone))
        share = "–" if s.share is None else f"{round(s.share * 100)} %"
        table_rows.append(
            [
                gettext("Lesson %(lesson)s") % {"lesson": s.module_position},
                f"{gettext(KIND_WORDS.get(s.course_session.kind, s.course_session.kind))}: "
                f"{s.course_session.title}",
                session_start(start).replace(",", ""),
                str(s.present),
                str(s.absent),
                str(s.excused),
                str(s.unmarked) if s.ended or s.marked else gettext("to come"),
                share,
            ]
        )
    return heatmap(
        chart_id="chart-attendance",
        title=gettext("Attendance by lesson and session"),
        description=description,
        rows=rows,
        table=DataTable(
            caption=gettext("Attendance by lesson and session"),
            headers=[
                gettext("Lesson"),
                gettext("Session"),
                gettext("When"),
                gettext("Present"),
                gettext("Absent"),
                gettext("Excused"),
                gettext("Not marked"),
                gettext("Present %"),
            ],
            rows=table_rows,
        ),
        empty_text=gettext("The programme has no sessions yet."),
    )


def _bars(categories: list[CategoryCount]) -> list[Bar]:
    return [
        Bar(
            translate(c.label),
            (c.with_place, c.without_place),
            note=gettext("%(count)s with a place") % {"count": c.with_place},
        )
        for c in categories
        if c.applications
    ]


def _categories(
    chart_id: str,
    title: str,
    header: str,
    categories: list[CategoryCount],
    empty: str,
    every: list[CategoryCount] | None = None,
) -> Chart:
    bars = _bars(categories)
    total = sum(c.applications for c in categories)
    placed = sum(c.with_place for c in categories)
    described = ", ".join(
        f"{translate(c.label)} {c.applications}" for c in categories if c.applications
    )
    return bar_chart(
        chart_id=chart_id,
        title=title,
        description=gettext("%(total)s applications, %(placed)s with a place. %(each)s.")
        % {"total": total, "placed": placed, "each": described},
        bars=bars,
        series=[
            Series(gettext("With a place"), PAID_FILL),
            Series(gettext("Other applications"), PROMISED_FILL, HATCH),
        ],
        label_header=header,
        empty_text=empty,
        table_bars=_bars(every) if every is not None else None,
    )


def dashboard_charts(dash: Dashboard) -> DashboardCharts:
    """The charts of one dashboard."""
    return DashboardCharts(
        seats=seats_chart(dash),
        funnel=_funnel(dash),
        money=_money(dash),
        attendance=attendance_chart(dash),
        countries=_categories(
            "chart-countries",
            gettext("Applications by country"),
            gettext("Country"),
            dash.countries,
            gettext("No applications yet."),
            every=dash.all_countries,
        ),
        membership=_categories(
            "chart-membership",
            gettext("Applications by membership"),
            gettext("Organisation"),
            dash.membership,
            gettext("No applications yet."),
        ),
    )
