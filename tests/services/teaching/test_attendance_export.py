"""The attendance matrix as CSV and XLSX: one column per session and per module, safe cells."""

import csv
import io

from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlmodel import Session

from app.services.teaching import attendance
from app.services.teaching import attendance_sheet as export
from tests.attendance_data import BASE, SECRET, edition_with, participant


def test_the_csv_has_a_column_per_session_and_module_and_makes_formulas_text(
    session: Session,
) -> None:
    edition = edition_with(session, 2, 1)
    ama = participant(session, edition, organisation_name='=HYPERLINK("http://x")')
    first = attendance.edition_sessions(session, edition)[0]
    attendance.mark_attendance(
        session,
        course_session_id=first.id or 0,
        application_id=ama.id or 0,
        status="absent",
        actor="tutor@example.org",
        secret_key=SECRET,
        base_url=BASE,
    )
    data = export.attendance_csv(attendance.attendance_matrix(session, edition))
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    header, row = rows
    assert header[:4] == ["reference", "given name", "family name", "organisation"]
    assert header[4] == "L1 Mon 16 Nov 09:00 L1 session 1"
    assert header[7:9] == ["lesson 1", "lesson 2"]
    assert row[3].startswith("'=HYPERLINK")
    assert row[4:7] == ["absent", "", ""]
    assert row[7:9] == ["missing (0/2)", "to come (0/1)"]
    assert row[9:] == ["0", "3", "1", "no"]


def test_the_workbook_holds_the_same_rows(session: Session) -> None:
    edition = edition_with(session, 1)
    participant(session, edition, given_name="@SUM(A1)")
    matrix = attendance.attendance_matrix(session, edition)
    workbook = load_workbook(io.BytesIO(export.attendance_xlsx(matrix)))
    sheet = workbook["Attendance"]
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0][:2] == ["reference", "given name"]
    assert values[1][1] == "'@SUM(A1)"
    assert values[1][-4:] == [0, 1, 0, "no"]
