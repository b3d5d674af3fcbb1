"""The dashboard's figures drawn as charts: seats, funnel, money, attendance, origins."""

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from app.services.charts import (
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
from app.services.dashboard import CategoryCount, Dashboard, SessionAttendance

PAID_FILL = "#0b5c8a"
PROMISED_FILL = "#9cc3de"
FREE_FILL = "#ffffff"
KIND_WORDS = {
    "knowledge": "Knowledge session",
    "skills": "Skills session",
    "site_visit": "Site visit",
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
    description = (
        f"{seats.paid} of {seats.capacity} seats are paid; {seats.awaiting_payment} more are "
        f"promised to admitted participants who have not paid; {seats.free} are free."
    )
    if seats.over:
        description += f" {seats.over} places are promised beyond the seats."
    return meter(
        chart_id="chart-seats",
        title="Seats",
        description=description,
        segments=[
            Segment("Paid (confirmed)", seats.paid, PAID_FILL),
            Segment("Admitted, not paid", seats.awaiting_payment, PROMISED_FILL, HATCH),
            Segment("Free", seats.free, FREE_FILL),
        ],
        total=seats.capacity,
    )


def _funnel(dash: Dashboard) -> Chart:
    f = dash.funnel
    steps = [
        FunnelStep(
            "Applied",
            f.applied,
            (
                ("awaiting a decision", f.count("submitted")),
                ("on the waiting list", f.count("waitlisted")),
                ("rejected", f.count("rejected")),
                ("withdrawn", f.count("withdrawn")),
            ),
        ),
        FunnelStep(
            "Admitted",
            f.admitted,
            (
                ("awaiting payment", f.count("admitted")),
                ("cancelled before paying", f.cancelled_before_paying),
            ),
        ),
        FunnelStep(
            "Confirmed (paid or waived)",
            f.confirmed,
            (("cancelled after paying", f.cancelled_after_confirming),),
        ),
        FunnelStep("Completed (certificate issued)", f.completed),
    ]
    description = (
        f"{f.applied} applied, {f.admitted} were admitted, {f.confirmed} confirmed their place "
        f"and {f.completed} completed the course."
    )
    return funnel_chart(
        chart_id="chart-funnel", title="Applications funnel", description=description, steps=steps
    )


def _money(dash: Dashboard) -> Chart:
    m = dash.money
    currency = m.currency
    bars = [
        Bar("Invoiced (less credit notes)", (m.invoiced,)),
        Bar("Received", (m.received,)),
        Bar("Outstanding", (m.outstanding,)),
        Bar("of which overdue", (m.overdue_total,)),
        Bar("Refunded", (m.refunded,)),
        Bar("Retained on cancellation", (dash.retained,)),
        Bar("Refunds still owed", (dash.refunds.owed_amount,)),
    ]
    description = (
        f"Invoiced {m.invoiced:,.2f} {currency}, received {m.received:,.2f}, outstanding "
        f"{m.outstanding:,.2f} of which {m.overdue_total:,.2f} overdue, refunded "
        f"{m.refunded:,.2f}, retained {dash.retained:,.2f}, refunds owed "
        f"{dash.refunds.owed_amount:,.2f}."
    )
    return bar_chart(
        chart_id="chart-money",
        title=f"Money ({currency})",
        description=description,
        bars=bars,
        series=[Series("Amount", PAID_FILL)],
        value_format=ValueFormat(currency),
        label_header="Money",
    )


def _cell(row: SessionAttendance, timezone: str) -> HeatCell:
    start = row.course_session.starts_at.astimezone(ZoneInfo(timezone))
    top = f"{start:%a} {start.day} · {start:%H:%M}"
    kind = KIND_WORDS.get(row.course_session.kind, row.course_session.kind)
    tooltip = (
        f"Lesson {row.module_position}, {kind.lower()}, {start:%a} {start.day} {start:%b %H:%M}: "
        f"{row.present} present, {row.absent} absent, {row.excused} excused, "
        f"{row.unmarked} not marked"
    )
    if row.state == "future":
        return HeatCell(top, "–", "to come", None, "future", tooltip)
    if row.state == "unmarked":
        return HeatCell(
            top, "not marked", f"{row.participants} expected", None, "unmarked", tooltip
        )
    share = row.share or 0.0
    bottom = f"{row.present} of {row.participants}"
    if row.unmarked:
        # Room for three short lines only: the full count is in the tooltip and the table.
        bottom = f"{row.present}/{row.participants}, {row.unmarked} unmarked"
    return HeatCell(top, f"{round(share * 100)} %", bottom, share, "measured", tooltip)


def attendance_chart(dash: Dashboard) -> Chart:
    """Share of participants present at each session, a row per lesson."""
    timezone = dash.edition.timezone
    rows: list[HeatRow] = []
    by_module: dict[int, list[SessionAttendance]] = {}
    for row in dash.attendance:
        by_module.setdefault(row.module_position, []).append(row)
    for position, sessions in by_module.items():
        rows.append(HeatRow(f"Lesson {position}", tuple(_cell(s, timezone) for s in sessions)))
    measured = [s for s in dash.attendance if s.state == "measured"]
    full = sum(1 for s in measured if s.present == s.participants)
    if measured:
        description = (
            f"{len(measured)} of {len(dash.attendance)} sessions have marks; everyone was "
            f"present at {full} of them. {dash.participants} participants are expected."
        )
    else:
        description = f"No attendance is marked yet; {dash.participants} participants expected."
    table_rows = []
    for s in dash.attendance:
        start = s.course_session.starts_at.astimezone(ZoneInfo(timezone))
        share = "–" if s.share is None else f"{round(s.share * 100)} %"
        table_rows.append(
            [
                f"Lesson {s.module_position}",
                f"{KIND_WORDS.get(s.course_session.kind, s.course_session.kind)}: "
                f"{s.course_session.title}",
                f"{start:%a} {start.day} {start:%b %H:%M}",
                str(s.present),
                str(s.absent),
                str(s.excused),
                str(s.unmarked) if s.ended or s.marked else "to come",
                share,
            ]
        )
    return heatmap(
        chart_id="chart-attendance",
        title="Attendance by lesson and session",
        description=description,
        rows=rows,
        table=DataTable(
            caption="Attendance by lesson and session",
            headers=[
                "Lesson",
                "Session",
                "When",
                "Present",
                "Absent",
                "Excused",
                "Not marked",
                "Present %",
            ],
            rows=table_rows,
        ),
        empty_text="The programme has no sessions yet.",
    )


def _bars(categories: list[CategoryCount]) -> list[Bar]:
    return [
        Bar(c.label, (c.with_place, c.without_place), note=f"{c.with_place} with a place")
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
    described = ", ".join(f"{c.label} {c.applications}" for c in categories if c.applications)
    return bar_chart(
        chart_id=chart_id,
        title=title,
        description=f"{total} applications, {placed} with a place. {described}.",
        bars=bars,
        series=[
            Series("With a place", PAID_FILL),
            Series("Other applications", PROMISED_FILL, HATCH),
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
            "Applications by country",
            "Country",
            dash.countries,
            "No applications yet.",
            every=dash.all_countries,
        ),
        membership=_categories(
            "chart-membership",
            "Applications by membership",
            "Organisation",
            dash.membership,
            "No applications yet.",
        ),
    )
