"""Charts drawn on the server as SVG: horizontal bars, a funnel, a heatmap and a meter.

Every chart is an `<svg role="img">` named by its `<title>` and `<desc>`, scales to its
container through its viewBox (drawn for a 400-unit width, so text stays legible on a
360 px phone), carries its numbers as text beside the shapes (colour is never the only
cue; the lighter series are hatched too), and comes with a data table of the same figures
for anyone who cannot see the picture. Colours are presentation attributes, not `style`,
because the pages' Content-Security-Policy allows no inline styles.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from markupsafe import Markup, escape

from app.platform.i18n import N_, gettext

WIDTH = 360
INK = "#1d2433"
MUTED = "#5b6477"
LINE = "#dde2ea"
TRACK = "#eef1f5"
FONT = "Inter, 'Segoe UI', system-ui, sans-serif"
# A series is drawn solid or hatched; both have a text label in the legend and the table.
SOLID = "solid"
HATCH = "hatch"
DOTS = "dots"

Number = int | Decimal


@dataclass(frozen=True)
class DataTable:
    """The figures behind a chart, as text: the first cell of each row names it."""

    caption: str
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class LegendItem:
    """One swatch of a legend: what a fill (and its pattern) stands for."""

    label: str
    fill: str
    pattern: str = SOLID


@dataclass(frozen=True)
class Chart:
    """A drawn chart with its accessible name, its legend and its data table."""

    chart_id: str
    title: str
    description: str
    svg: Markup
    table: DataTable
    legend: list[LegendItem] = field(default_factory=list)

    def swatch(self, item: LegendItem) -> Markup:
        """A small square of the item's fill and pattern, for a legend in HTML."""
        fill = _fill(self.chart_id, item.fill, item.pattern)
        # Built from our own colours and ids only; nothing a user typed.
        return Markup(  # noqa: S704
            '<svg class="swatch" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true" '
            'focusable="false"><rect x="0.5" y="0.5" width="13" height="13" rx="2" '
            f'fill="{fill}" stroke="{MUTED}" stroke-width="1"/></svg>'
        )


def safe_id(text: str) -> str:
    """An id usable in XML and in `url(#...)`: letters, digits and hyphens."""
    cleaned = re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")
    return cleaned if cleaned[:1].isalpha() else f"c-{cleaned}"


def _num(value: float) -> str:
    """A coordinate with at most one decimal, without a trailing `.0`."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _text(
    x: float,
    y: float,
    content: str,
    *,
    size: float = 13,
    weight: int = 400,
    fill: str = INK,
    anchor: str = "start",
) -> str:
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" font-size="{_num(size)}" font-weight="{weight}" '
        f'fill="{fill}" text-anchor="{anchor}">{escape(content)}</text>'
    )


# Approximate advance widths, in ems, of a sans-serif face: enough to keep labels inside.
_NARROW = set("fijlrtI.,:;'!|() ")
_WIDE = set("mwMW@%")


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    """About how wide a text is drawn at this size (in the chart's units)."""
    ems = 0.0
    for char in text:
        if char in _NARROW:
            ems += 0.3
        elif char in _WIDE:
            ems += 0.85
        elif char.isupper() or char.isdigit():
            ems += 0.62
        else:
            ems += 0.53
    return ems * size * (1.06 if bold else 1.0)


def _fit(text: str, size: float, room: float, *, bold: bool = False) -> float:
    """The size, made smaller (to at most two thirds) if the text would not fit the room."""
    wide = text_width(text, size, bold=bold)
    if wide <= room:
        return size
    return round(max(size * room / wide, size * 2 / 3), 1)


def _patterns(chart_id: str, fills: Sequence[tuple[str, str]]) -> str:
    """`<defs>` with one pattern per (fill, pattern) pair that is not solid."""
    defs = []
    for fill, pattern in fills:
        if pattern == SOLID:
            continue
        pattern_id = _pattern_id(chart_id, fill, pattern)
        if pattern == HATCH:
            mark = f'<line x1="0" y1="0" x2="0" y2="6" stroke="{INK}" stroke-width="1.4"/>'
            transform = ' patternTransform="rotate(45)"'
        else:
            mark = f'<circle cx="3" cy="3" r="1.2" fill="{INK}"/>'
            transform = ""
        defs.append(
            f'<pattern id="{pattern_id}" width="6" height="6" patternUnits="userSpaceOnUse"'
            f'{transform}><rect width="6" height="6" fill="{fill}"/>{mark}</pattern>'
        )
    return f"<defs>{''.join(defs)}</defs>" if defs else ""


def _pattern_id(chart_id: str, fill: str, pattern: str) -> str:
    return f"{chart_id}-{pattern}-{fill.lstrip('#')}"


def _fill(chart_id: str, fill: str, pattern: str) -> str:
    if pattern == SOLID:
        return fill
    return f"url(#{_pattern_id(chart_id, fill, pattern)})"


def _svg(chart_id: str, height: float, body: str, title: str, description: str) -> Markup:
    # Every text in `body`, the title and the description went through `escape`; the rest
    # is numbers and colours of ours.
    return Markup(  # noqa: S704
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{chart_id}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" viewBox="0 0 {WIDTH} '
        f'{_num(height)}" preserveAspectRatio="xMinYMin meet" font-family="{FONT}">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>'
        f"{body}</svg>"
    )


# Horizontal bars


@dataclass(frozen=True)
class Series:
    """One part of each bar (the bars stack their series left to right)."""

    name: str
    fill: str
    pattern: str = SOLID


@dataclass(frozen=True)
class Bar:
    """One labelled bar: a value per series."""

    label: str
    values: tuple[Number, ...]
    # Shown after the total at the bar's end, e.g. "12 with a place".
    note: str = ""


class ValueFormat:
    """Formats a value for a chart label: `1,500.00 EUR`, `12`."""

    def __init__(self, currency: str | None = None) -> None:
        self.currency = currency

    def __call__(self, value: Number) -> str:
        """The value as text."""
        if self.currency is None:
            return f"{value:,}"
        return f"{Decimal(value):,.2f} {self.currency}"


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    bars: Sequence[Bar],
    series: Sequence[Series],
    value_format: ValueFormat | None = None,
    label_header: str = "",
    empty_text: str = N_("Nothing to show yet."),
    table_bars: Sequence[Bar] | None = None,
) -> Chart:
    """Horizontal bars, the label above each bar and its total (and note) at its end.

    `table_bars` are the data table's rows when it holds more detail than the drawing (every
    country, where the chart sums the smallest in one bar).
    """
    chart_id = safe_id(chart_id)
    fmt = value_format or ValueFormat()
    row_height = 40.0
    value_size = 12.5
    labels = [
        fmt(sum(bar.values, Decimal(0)) if len(bar.values) > 1 else bar.values[0])
        + (f" · {bar.note}" if bar.note else "")
        for bar in bars
    ]
    # The longest bar and its words after it must fit the width: scale to the tightest.
    scale = min(
        (
            (WIDTH - 8 - text_width(label, value_size, bold=True)) / float(total)
            for bar, label in zip(bars, labels, strict=True)
            if (total := sum(bar.values, Decimal(0))) > 0
        ),
        default=0.0,
    )
    scale = max(scale, 0.0)
    parts: list[str] = [_patterns(chart_id, [(s.fill, s.pattern) for s in series])]
    y = 0.0
    if not bars:
        parts.append(_text(0, 20, gettext(empty_text), fill=MUTED))
        y = 30.0
    for bar, label in zip(bars, labels, strict=True):
        parts.append(_text(0, y + 14, bar.label, size=14, weight=600))
        x = 0.0
        bar_top = y + 20
        for value, serie in zip(bar.values, series, strict=True):
            width = float(value) * scale
            if width <= 0:
                continue
            # A non-zero value never disappears: at least a sliver shows.
            width = max(width, 2.0)
            parts.append(
                f'<rect x="{_num(x)}" y="{_num(bar_top)}" width="{_num(width)}" height="14" '
                f'fill="{_fill(chart_id, serie.fill, serie.pattern)}" stroke="{INK}" '
                f'stroke-width="0.6"><title>{escape(bar.label)}: {escape(serie.name)} '
                f"{escape(fmt(value))}</title></rect>"
            )
            x += width
        parts.append(_text(x + 6, bar_top + 11, label, size=value_size, weight=700))
        y += row_height
    headers = [label_header or gettext("Item")]
    if len(series) > 1:
        headers += [s.name for s in series] + [gettext("Total")]
    else:
        headers.append(series[0].name if series else gettext("Value"))
    rows = []
    for bar in bars if table_bars is None else table_bars:
        cells = [bar.label] + [fmt(value) for value in bar.values]
        if len(series) > 1:
            cells.append(fmt(sum(bar.values, Decimal(0))))
        rows.append(cells)
    return Chart(
        chart_id=chart_id,
        title=title,
        description=description,
        svg=_svg(chart_id, y + 2, "".join(parts), title, description),
        table=DataTable(caption=title, headers=headers, rows=rows),
        legend=[LegendItem(s.name, s.fill, s.pattern) for s in series] if len(series) > 1 else [],
    )


# The funnel


@dataclass(frozen=True)
class FunnelStep:
    """A stage of the funnel: how many reached it, and where the others are."""

    label: str
    count: int
    # Words under the bar: who left here or waits here, e.g. [("rejected", 4)].
    notes: tuple[tuple[str, int], ...] = ()


FUNNEL_FILLS = ("#9cc3de", "#5b9cc9", "#0b5c8a", "#083f5f")


def funnel_chart(
    *, chart_id: str, title: str, description: str, steps: Sequence[FunnelStep]
) -> Chart:
    """Centred bars narrowing stage by stage, each with its count and what left there."""
    chart_id = safe_id(chart_id)
    top = max((step.count for step in steps), default=0)
    row_height = 60.0
    parts: list[str] = []
    y = 0.0
    for index, step in enumerate(steps):
        share = step.count / top if top else 0.0
        width = max(WIDTH * share, 2.0 if step.count else 0.0)
        fill = FUNNEL_FILLS[min(index, len(FUNNEL_FILLS) - 1)]
        percent = f" ({round(share * 100)} %)" if index and top else ""
        parts.append(_text(0, y + 14, step.label, size=14, weight=600))
        count = f"{step.count:,}{percent}"
        parts.append(_text(WIDTH, y + 14, count, size=14, weight=700, anchor="end"))
        parts.append(f'<rect x="0" y="{_num(y + 20)}" width="{WIDTH}" height="16" fill="{TRACK}"/>')
        if width:
            parts.append(
                f'<rect x="{_num((WIDTH - width) / 2)}" y="{_num(y + 20)}" width="{_num(width)}" '
                f'height="16" fill="{fill}"/>'
            )
        notes = " · ".join(f"{count:,} {words}" for words, count in step.notes if count)
        if notes:
            parts.append(_text(0, y + 51, notes, size=_fit(notes, 12.5, WIDTH), fill=MUTED))
        y += row_height
    return Chart(
        chart_id=chart_id,
        title=title,
        description=description,
        svg=_svg(chart_id, y - 4, "".join(parts), title, description),
        table=DataTable(
            caption=title,
            headers=[gettext("Stage"), gettext("Reached"), gettext("Of whom")],
            rows=[
                [
                    step.label,
                    f"{step.count:,}",
                    ", ".join(f"{count:,} {words}" for words, count in step.notes if count) or "–",
                ]
                for step in steps
            ],
        ),
    )


# The meter


@dataclass(frozen=True)
class Segment:
    """A part of a meter, e.g. seats paid."""

    label: str
    value: int
    fill: str
    pattern: str = SOLID


def meter(
    *, chart_id: str, title: str, description: str, segments: Sequence[Segment], total: int
) -> Chart:
    """One bar split into parts of a whole (e.g. seats), with a tick at the whole."""
    chart_id = safe_id(chart_id)
    scale_to = max(total, sum(s.value for s in segments), 1)
    parts: list[str] = [_patterns(chart_id, [(s.fill, s.pattern) for s in segments])]
    parts.append(
        f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="27" rx="3" fill="#ffffff" '
        f'stroke="{MUTED}" stroke-width="1"/>'
    )
    x = 0.0
    for segment in segments:
        width = WIDTH * segment.value / scale_to
        if width <= 0:
            continue
        parts.append(
            f'<rect x="{_num(x + 0.5)}" y="0.5" width="{_num(max(width - 1, 1))}" height="27" '
            f'fill="{_fill(chart_id, segment.fill, segment.pattern)}" stroke="{INK}" '
            f'stroke-width="0.6"><title>{escape(segment.label)}: {segment.value}</title></rect>'
        )
        if width >= 28:
            text_fill = "#ffffff" if segment.pattern == SOLID and _dark(segment.fill) else INK
            weight = 700
            parts.append(
                _text(
                    x + width / 2,
                    19,
                    str(segment.value),
                    weight=weight,
                    fill=text_fill,
                    anchor="middle",
                )
            )
        x += width
    if total < scale_to:
        tick = WIDTH * total / scale_to
        parts.append(
            f'<line x1="{_num(tick)}" y1="0" x2="{_num(tick)}" y2="28" stroke="{INK}" '
            'stroke-width="2.5"/>'
        )
    return Chart(
        chart_id=chart_id,
        title=title,
        description=description,
        svg=_svg(chart_id, 28, "".join(parts), title, description),
        table=DataTable(
            caption=title,
            headers=["Part", "Count"],
            rows=[[s.label, f"{s.value:,}"] for s in segments] + [[gettext("Total"), f"{total:,}"]],
        ),
        legend=[LegendItem(s.label, s.fill, s.pattern) for s in segments],
    )


def _dark(fill: str) -> bool:
    """Whether white text reads better than ink on this colour (relative luminance)."""
    red, green, blue = (int(fill.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4))

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * channel(red) + 0.7152 * channel(green) + 0.0722 * channel(blue)
    return luminance < 0.18


# The heatmap


@dataclass(frozen=True)
class HeatCell:
    """A cell: three lines of text, and a share from 0 to 1 (None: nothing to measure yet)."""

    top: str
    main: str
    bottom: str
    share: float | None
    # `measured`, `unmarked` (took place, nobody marked) or `future`.
    state: str = "measured"
    tooltip: str = ""


@dataclass(frozen=True)
class HeatRow:
    """A row of the heatmap: its label and its cells (left to right)."""

    label: str
    cells: tuple[HeatCell, ...]


@dataclass(frozen=True)
class Band:
    """A range of shares drawn in one colour."""

    label: str
    minimum: float
    fill: str


# Full attendance in the brand's blue; every shortfall in a warmer colour, darker the worse:
# blue against orange stays distinct for the common colour-vision deficiencies.
ATTENDANCE_BANDS: tuple[Band, ...] = (
    Band("100 %", 1.0, "#0b5c8a"),
    Band("90–99 %", 0.9, "#8dbad9"),
    Band("75–89 %", 0.75, "#fbd9a5"),
    Band("50–74 %", 0.5, "#f2a25c"),
    Band("under 50 %", 0.0, "#d9652b"),
)
UNMARKED_FILL = "#ffffff"
FUTURE_FILL = "#f6f7f9"


def band_for(share: float, bands: Sequence[Band] = ATTENDANCE_BANDS) -> Band:
    """The band a share falls in (bands are ordered from the highest minimum down)."""
    for band in bands:
        if share >= band.minimum - 1e-9:
            return band
    return bands[-1]


def heatmap(
    *,
    chart_id: str,
    title: str,
    description: str,
    rows: Sequence[HeatRow],
    table: DataTable,
    bands: Sequence[Band] = ATTENDANCE_BANDS,
    empty_text: str = N_("No sessions yet."),
) -> Chart:
    """A grid of cells coloured by share, each cell also saying its figures in words."""
    chart_id = safe_id(chart_id)
    label_width = 62.0
    gap = 4.0
    columns = max((len(row.cells) for row in rows), default=0)
    cell_width = (WIDTH - label_width - gap * max(columns - 1, 0)) / max(columns, 1)
    cell_height = 58.0
    parts: list[str] = [_patterns(chart_id, [(UNMARKED_FILL, HATCH)])]
    y = 0.0
    if not rows:
        parts.append(_text(0, 20, gettext(empty_text), fill=MUTED))
        y = 30.0 + gap
    for row in rows:
        parts.append(_text(0, y + cell_height / 2 + 5, row.label, weight=700))
        for index, cell in enumerate(row.cells):
            x = label_width + index * (cell_width + gap)
            if cell.state == "future":
                fill, stroke, dash, text_fill = FUTURE_FILL, MUTED, ' stroke-dasharray="4 3"', MUTED
            elif cell.state == "unmarked" or cell.share is None:
                fill = _fill(chart_id, UNMARKED_FILL, HATCH)
                stroke, dash, text_fill = INK, "", INK
            else:
                band = band_for(cell.share, bands)
                fill, stroke, dash = band.fill, INK, ""
                text_fill = "#ffffff" if _dark(band.fill) else INK
            tooltip = f"<title>{escape(cell.tooltip)}</title>" if cell.tooltip else ""
            parts.append(
                f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(cell_width)}" '
                f'height="{_num(cell_height)}" rx="4" fill="{fill}" stroke="{stroke}" '
                f'stroke-width="0.8"{dash}>{tooltip}</rect>'
            )
            middle = x + cell_width / 2
            if cell.state == "unmarked":
                # The hatching sits behind the words: give them a plate to stand on.
                parts.append(
                    f'<rect x="{_num(x + 6)}" y="{_num(y + 22)}" width="{_num(cell_width - 12)}" '
                    f'height="20" fill="#ffffff"/>'
                )
            room = cell_width - 8
            lines = (
                (15, cell.top, 11.5, 400),
                (36, cell.main, 17, 700),
                (52, cell.bottom, 11, 400),
            )
            for offset, words, size, weight in lines:
                fitted = _fit(words, size, room, bold=weight > 400)
                parts.append(
                    _text(
                        middle,
                        y + offset,
                        words,
                        size=fitted,
                        weight=weight,
                        fill=text_fill,
                        anchor="middle",
                    )
                )
        y += cell_height + gap
    legend = [LegendItem(band.label, band.fill) for band in bands]
    legend.append(LegendItem("took place, not marked", UNMARKED_FILL, HATCH))
    legend.append(LegendItem("to come", FUTURE_FILL))
    return Chart(
        chart_id=chart_id,
        title=title,
        description=description,
        svg=_svg(chart_id, y - gap + 1, "".join(parts), title, description),
        table=table,
        legend=legend,
    )
