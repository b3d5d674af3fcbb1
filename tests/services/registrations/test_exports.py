"""The application list as CSV and XLSX: safe cells, Excel-friendly encoding, typed columns."""

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]

from app.models import ApplicantGroup, Application, Edition, Organisation
from app.services.registrations.application_export import (
    COLUMNS,
    applications_csv,
    applications_xlsx,
    safe_cell,
)
from app.services.registrations.review import ApplicationRow

# The fast tier: pure rules, no database.
pytestmark = pytest.mark.rules


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        (
            '=HYPERLINK("http://evil.example","click")',
            '\'=HYPERLINK("http://evil.example","click")',
        ),
        ("+34 600 000 000", "'+34 600 000 000"),
        ("-cmd|' /C calc'!A0", "'-cmd|' /C calc'!A0"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
    ],
)
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_quote(value: str, expected: str) -> None:
    assert safe_cell(value) == expected


@pytest.mark.parametrize("value", ["", "Ana", "1500.00", "São Paulo", "a=b", " =1", "'quoted"])
def test_ordinary_text_is_left_alone(value: str) -> None:
    assert safe_cell(value) == value


def row(**overrides: Any) -> ApplicationRow:
    """An application as the list loads it, built in memory (no database needed)."""
    edition = Edition(
        id=1,
        course_id=1,
        slug="diploma-x",
        title="Diploma",
        place="Barcelona",
        start_date=date(2099, 11, 16),
        end_date=date(2099, 11, 20),
        timezone="Europe/Madrid",
        capacity=30,
        currency="EUR",
        applications_open=datetime(2099, 1, 1, tzinfo=UTC),
        applications_close=datetime(2099, 11, 1, tzinfo=UTC),
        fee_standard=Decimal("1500.00"),
        fee_member=Decimal("1000.00"),
        dues_year=2098,
        income_fy=2098,
    )
    organisation = Organisation(
        id=7, name="Ciudad X", country="MEX", is_member=True, dues_paid_through=2098
    )
    values: dict[str, Any] = {
        "id": 3,
        "edition_id": 1,
        "reference": "MD99-ABCDEF",
        "status": "admitted",
        "given_name": "Ana",
        "family_name": "Núñez",
        "email": "ana@x.org",
        "organisation_id": 7,
        "organisation_name": "Ciudad X",
        "country": "MEX",
        "job_title": "Officer",
        "department": "",
        "years_in_international_affairs": 4,
        "motivation": "m" * 60,
        "consent_at": datetime(2099, 3, 1, 9, 0, tzinfo=UTC),
        "quote": {"currency": "EUR", "lines": [], "total": "1000.00"},
        "quoted_total": Decimal("1000.00"),
        "submitted_at": datetime(2099, 3, 1, 9, 0, tzinfo=UTC),
        "decided_at": datetime(2099, 7, 1, 22, 30, tzinfo=UTC),
        "decided_by": "admin@example.org",
        "group_id": 5,
    }
    values.update(overrides)
    group = ApplicantGroup(
        id=5, edition_id=1, organisation_id=7, code="G-AB12-CD34", contact_email="l@x.org"
    )
    return ApplicationRow(Application(**values), edition, organisation, group)


def read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_csv_starts_with_a_bom_and_has_one_line_per_application() -> None:
    data = applications_csv([row(), row(reference="MD99-ZZZZZZ")])
    assert data.startswith(b"\xef\xbb\xbf")
    lines = read_csv(data)
    assert lines[0] == [header for header, _ in COLUMNS]
    assert [line[0] for line in lines[1:]] == ["MD99-ABCDEF", "MD99-ZZZZZZ"]


def test_csv_gives_every_column_in_words_and_edition_time() -> None:
    line = read_csv(applications_csv([row()]))[1]
    assert line == [
        "MD99-ABCDEF",
        "admitted",
        "Ana",
        "Núñez",
        "ana@x.org",
        "Ciudad X",
        "MEX",
        "Mexico",
        "Member, dues paid",
        "G-AB12-CD34",
        "Officer",
        "",
        "4",
        "1000.00",
        "EUR",
        "2099-03-01T10:00:00+01:00",
        "2099-07-02T00:30:00+02:00",
        "admin@example.org",
    ]


def test_csv_neutralises_formulas_in_every_text_column() -> None:
    line = read_csv(
        applications_csv(
            [
                row(
                    given_name='=HYPERLINK("http://evil.example","x")',
                    family_name="+1",
                    organisation_name="@SUM(A1)",
                    job_title="-2",
                    department="\t=1",
                    decided_by="=cmd",
                )
            ]
        )
    )[1]
    assert line[2] == '\'=HYPERLINK("http://evil.example","x")'
    assert line[3] == "'+1"
    assert line[5] == "'@SUM(A1)"
    assert line[10] == "'-2"
    assert line[11] == "'\t=1"
    assert line[17] == "'=cmd"


def test_a_control_character_cannot_hide_a_formula() -> None:
    line = read_csv(applications_csv([row(given_name="\x01=1+1")]))[1]
    assert line[2] == "'=1+1"


def test_xlsx_has_a_bold_frozen_header_widths_and_typed_numbers() -> None:
    data = applications_xlsx([row(), row(reference="MD99-ZZZZZZ", given_name="=1+1\x02")])
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet.freeze_panes == "A2"
    assert all(cell.font.bold for cell in sheet[1])
    assert [cell.value for cell in sheet[1]] == [header for header, _ in COLUMNS]
    assert sheet.column_dimensions["E"].width == 30
    first = [cell.value for cell in sheet[2]]
    assert first[12] == 4
    assert first[13] == 1000
    assert first[15] == "2099-03-01T10:00:00+01:00"
    second = sheet[3]
    assert second[2].value == "'=1+1"
    assert second[2].data_type == "s"  # text, not a formula
    assert sheet.max_row == 3


def test_an_empty_export_is_just_the_header() -> None:
    assert read_csv(applications_csv([])) == [[header for header, _ in COLUMNS]]
    sheet = load_workbook(io.BytesIO(applications_xlsx([]))).active
    assert sheet.max_row == 1
