"""Charts drawn as SVG: well-formed, named, readable without colour, with their figures."""

import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from app.services.office.charts import (
    ATTENDANCE_BANDS,
    HATCH,
    Bar,
    DataTable,
    FunnelStep,
    HeatCell,
    HeatRow,
    Segment,
    Series,
    ValueFormat,
    band_for,
    bar_chart,
    funnel_chart,
    heatmap,
    meter,
    safe_id,
)

# The fast tier: pure rules, no database.
pytestmark = pytest.mark.rules

SVG = "{http://www.w3.org/2000/svg}"


def parsed(markup: str) -> ET.Element:
    """The SVG as XML (raises if it is not well-formed)."""
    return ET.fromstring(str(markup))  # noqa: S314 (our own output, not untrusted input)


def texts(root: ET.Element) -> list[str]:
    """Every text drawn on the chart."""
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def assert_accessible(root: ET.Element, title: str) -> None:
    assert root.get("role") == "img"
    title_id, desc_id = (root.get("aria-labelledby") or "").split()
    assert root.find(f"{SVG}title").get("id") == title_id  # type: ignore[union-attr]
    assert root.find(f"{SVG}title").text == title  # type: ignore[union-attr]
    assert root.find(f"{SVG}desc").get("id") == desc_id  # type: ignore[union-attr]
    assert root.get("viewBox", "").startswith("0 0 360 ")


def test_a_bar_chart_is_named_and_says_each_value_in_words() -> None:
    chart = bar_chart(
        chart_id="chart-countries",
        title="Applications by country",
        description="Three countries.",
        bars=[
            Bar("Spain", (3, 2), note="3 with a place"),
            Bar("Côte d'Ivoire <&>", (0, 1)),
        ],
        series=[Series("With a place", "#0b5c8a"), Series("Other", "#9cc3de", HATCH)],
        label_header="Country",
    )
    root = parsed(chart.svg)
    assert_accessible(root, "Applications by country")
    assert "Côte d'Ivoire <&>" in texts(root)
    assert "5 · 3 with a place" in texts(root)
    # The hatched series is drawn with its pattern, so it differs without colour too.
    assert root.find(f".//{SVG}pattern") is not None
    assert any("url(#" in (r.get("fill") or "") for r in root.iter(f"{SVG}rect"))
    assert chart.table.headers == ["Country", "With a place", "Other", "Total"]
    assert chart.table.rows == [["Spain", "3", "2", "5"], ["Côte d'Ivoire <&>", "0", "1", "1"]]
    assert [item.label for item in chart.legend] == ["With a place", "Other"]


def test_a_money_bar_chart_formats_amounts_with_the_currency() -> None:
    chart = bar_chart(
        chart_id="money",
        title="Money",
        description="Money.",
        bars=[Bar("Invoiced", (Decimal("4500.00"),)), Bar("Received", (Decimal("0.00"),))],
        series=[Series("Amount", "#0b5c8a")],
        value_format=ValueFormat("EUR"),
    )
    root = parsed(chart.svg)
    assert "4,500.00 EUR" in texts(root)
    assert "0.00 EUR" in texts(root)
    assert chart.table.rows == [["Invoiced", "4,500.00 EUR"], ["Received", "0.00 EUR"]]
    assert chart.legend == []


def test_an_empty_bar_chart_says_so() -> None:
    chart = bar_chart(
        chart_id="empty",
        title="Nothing",
        description="None.",
        bars=[],
        series=[Series("Count", "#0b5c8a")],
        empty_text="No applications yet.",
    )
    assert "No applications yet." in texts(parsed(chart.svg))
    assert chart.table.rows == []


def test_the_funnel_shows_counts_shares_and_where_people_left() -> None:
    chart = funnel_chart(
        chart_id="funnel",
        title="Applications funnel",
        description="From applied to completed.",
        steps=[
            FunnelStep("Applied", 40, (("rejected", 5), ("withdrawn", 0))),
            FunnelStep("Admitted", 20, (("awaiting payment", 4),)),
            FunnelStep("Completed", 0),
        ],
    )
    root = parsed(chart.svg)
    assert_accessible(root, "Applications funnel")
    words = texts(root)
    assert "40" in words and "20 (50 %)" in words and "0 (0 %)" in words
    assert "5 rejected" in words  # nobody withdrew: not mentioned
    assert chart.table.rows == [
        ["Applied", "40", "5 rejected"],
        ["Admitted", "20", "4 awaiting payment"],
        ["Completed", "0", "–"],
    ]


def test_the_meter_marks_the_capacity_and_labels_each_part() -> None:
    chart = meter(
        chart_id="seats",
        title="Seats",
        description="18 of 30 paid.",
        segments=[
            Segment("Paid", 18, "#0b5c8a"),
            Segment("Admitted, not paid", 5, "#9cc3de", HATCH),
            Segment("Free", 7, "#ffffff"),
        ],
        total=30,
    )
    root = parsed(chart.svg)
    assert_accessible(root, "Seats")
    assert {"18", "5", "7"} <= set(texts(root))
    # White figures on the dark fill, ink on the light and hatched ones.
    fills = {t.text: t.get("fill") for t in root.iter(f"{SVG}text")}
    assert fills["18"] == "#ffffff" and fills["5"] == "#1d2433"
    assert chart.table.rows[-1] == ["Total", "30"]


def test_a_meter_past_capacity_draws_the_capacity_line() -> None:
    chart = meter(
        chart_id="seats",
        title="Seats",
        description="Over.",
        segments=[Segment("Paid", 30, "#0b5c8a"), Segment("Admitted", 5, "#9cc3de")],
        total=30,
    )
    assert parsed(chart.svg).find(f"{SVG}line") is not None


def test_the_heatmap_colours_by_band_and_writes_every_figure() -> None:
    table = DataTable("Attendance", ["Lesson", "Present"], [["Lesson 1", "23"]])
    chart = heatmap(
        chart_id="attendance",
        title="Attendance",
        description="Two lessons.",
        rows=[
            HeatRow(
                "Lesson 1",
                (
                    HeatCell("Mon 18 · 09:30", "100 %", "25 of 25", 1.0),
                    HeatCell("Mon 18 · 11:30", "92 %", "23 of 25", 0.92),
                ),
            ),
            HeatRow(
                "Lesson 2",
                (
                    HeatCell("Tue 19 · 09:30", "not marked", "25 expected", None, "unmarked"),
                    HeatCell("Tue 19 · 11:30", "–", "to come", None, "future"),
                ),
            ),
        ],
        table=table,
    )
    root = parsed(chart.svg)
    assert_accessible(root, "Attendance")
    words = texts(root)
    for expected in ("Lesson 1", "100 %", "25 of 25", "92 %", "not marked", "to come"):
        assert expected in words
    fills = [r.get("fill") for r in root.iter(f"{SVG}rect")]
    assert "#0b5c8a" in fills and "#8dbad9" in fills
    assert chart.table is table
    assert [item.label for item in chart.legend][-2:] == ["took place, not marked", "to come"]


def test_bands_cover_every_share() -> None:
    assert band_for(1.0).label == "100 %"
    assert band_for(0.999).label == "90–99 %"
    assert band_for(0.9).label == "90–99 %"
    assert band_for(0.5).label == "50–74 %"
    assert band_for(0.0).label == "under 50 %"
    assert [b.minimum for b in ATTENDANCE_BANDS] == sorted(
        (b.minimum for b in ATTENDANCE_BANDS), reverse=True
    )


def test_ids_are_safe_in_xml_and_in_url_references() -> None:
    assert safe_id("chart countries/2024") == "chart-countries-2024"
    assert safe_id("2024") == "c-2024"
    chart = meter(
        chart_id="<bad id>",
        title="T",
        description="D",
        segments=[Segment("A", 1, "#9cc3de", HATCH)],
        total=2,
    )
    root = parsed(chart.svg)
    assert root.get("id") == "bad-id"
    assert "bad-id" in str(chart.swatch(chart.legend[0]))
