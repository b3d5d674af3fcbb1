"""The application list as CSV and XLSX files, safe to open in a spreadsheet."""

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # type: ignore[import-untyped]
from openpyxl.styles import Font  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

from app.services.registrations.review import MEMBER_LABELS, ApplicationRow
from app.services.registry.countries import country_name

# (header, column width in characters)
COLUMNS: tuple[tuple[str, int], ...] = (
    ("reference", 13),
    ("status", 11),
    ("given name", 18),
    ("family name", 18),
    ("e-mail", 30),
    ("organisation", 32),
    ("country", 8),
    ("country name", 20),
    ("member status", 22),
    ("group code", 13),
    ("job title", 28),
    ("department", 22),
    ("years", 6),
    ("quoted total", 12),
    ("currency", 9),
    ("submitted at", 26),
    ("decided at", 26),
    ("decided by", 26),
)
# A spreadsheet runs a cell that starts with one of these as a formula (or DDE command).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | Decimal


def safe_cell(value: str) -> str:
    """The text with a leading quote if a spreadsheet would read it as a formula."""
    if value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _text(value: str) -> str:
    # Control characters make a workbook unreadable to Excel and carry no meaning here;
    # they go first, so that none can hide a formula from `safe_cell`.
    return safe_cell(ILLEGAL_CHARACTERS_RE.sub("", value))


def _instant(value: datetime | None, timezone: str) -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(timezone)).isoformat(timespec="seconds")


def export_cells(row: ApplicationRow) -> list[Cell]:
    """One application's cells in column order; every text cell is already made safe."""
    application, edition = row.application, row.edition
    texts_before = [
        application.reference,
        application.status,
        application.given_name,
        application.family_name,
        application.email,
        application.organisation_name,
        application.country,
        country_name(application.country),
        MEMBER_LABELS[row.member_status],
        row.group.code if row.group else "",
        application.job_title,
        application.department,
    ]
    years = application.years_in_international_affairs
    texts_after = [
        str(application.quote.get("currency") or edition.currency),
        _instant(application.submitted_at, edition.timezone),
        _instant(application.decided_at, edition.timezone),
        application.decided_by or "",
    ]
    return [
        *(_text(text) for text in texts_before),
        years if years is not None else "",
        application.quoted_total,
        *(_text(text) for text in texts_after),
    ]


def applications_csv(rows: Iterable[ApplicationRow]) -> bytes:
    """UTF-8 CSV with a byte-order mark, so Excel reads accents right."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([header for header, _ in COLUMNS])
    for row in rows:
        writer.writerow([str(cell) for cell in export_cells(row)])
    return buffer.getvalue().encode("utf-8-sig")


def applications_xlsx(rows: Iterable[ApplicationRow]) -> bytes:
    """An XLSX workbook: bold frozen header row, set column widths, instants as ISO text."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Applications")
    sheet.freeze_panes = "A2"
    for index, (_, width) in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    bold = Font(bold=True)
    header = []
    for title, _ in COLUMNS:
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    for row in rows:
        sheet.append(export_cells(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
