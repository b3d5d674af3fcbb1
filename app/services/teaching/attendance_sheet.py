"""The attendance matrix as CSV and XLSX files, safe to open in a spreadsheet."""

import csv
import io
from zoneinfo import ZoneInfo

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # type: ignore[import-untyped]
from openpyxl.styles import Font  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

from app.services.registrations.application_export import safe_cell
from app.services.teaching.attendance import STATE_LABELS, AttendanceMatrix

Cell = str | int


def _text(value: str) -> str:
    # Control characters go first, so that none can hide a formula from `safe_cell`.
    return safe_cell(ILLEGAL_CHARACTERS_RE.sub("", value))


def headers(matrix: AttendanceMatrix) -> list[str]:
    """Participant columns, one per session (`L1 Mon 18 Nov 09:30 title`), one per module."""
    zone = ZoneInfo(matrix.edition.timezone)
    titles = ["reference", "given name", "family name", "organisation"]
    for module in matrix.modules:
        for course_session in matrix.sessions_by_module.get(module.id or 0, []):
            start = course_session.starts_at.astimezone(zone)
            titles.append(
                f"L{module.position} {start:%a} {start.day} {start:%b %H:%M} {course_session.title}"
            )
    titles += [f"lesson {module.position}" for module in matrix.modules]
    titles += ["sessions attended", "sessions in total", "sessions missed", "all modules complete"]
    return [_text(title) for title in titles]


def rows(matrix: AttendanceMatrix) -> list[list[Cell]]:
    """One row per participant; an unmarked session is an empty cell."""
    sessions = matrix.sessions
    found: list[list[Cell]] = []
    for row in matrix.rows:
        application = row.application
        cells: list[Cell] = [
            _text(application.reference),
            _text(application.given_name),
            _text(application.family_name),
            _text(application.organisation_name),
        ]
        for course_session in sessions:
            mark = row.marks.get(course_session.id or 0)
            cells.append(mark.status if mark else "")
        for module in row.modules:
            cells.append(f"{STATE_LABELS[module.state]} ({module.present}/{module.total})")
        cells += [
            row.attended,
            row.total,
            len(row.missed_sessions),
            "yes" if row.complete else "no",
        ]
        found.append(cells)
    return found


def attendance_csv(matrix: AttendanceMatrix) -> bytes:
    """UTF-8 CSV with a byte-order mark, so spreadsheet programs read accents right."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers(matrix))
    for cells in rows(matrix):
        writer.writerow([str(cell) for cell in cells])
    return buffer.getvalue().encode("utf-8-sig")


def attendance_xlsx(matrix: AttendanceMatrix) -> bytes:
    """An XLSX workbook with a bold, frozen header row and the participant columns frozen."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Attendance")
    sheet.freeze_panes = "E2"
    titles = headers(matrix)
    for index, title in enumerate(titles, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = min(max(len(title), 10), 40)
    bold = Font(bold=True)
    header = []
    for title in titles:
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    for cells in rows(matrix):
        sheet.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
