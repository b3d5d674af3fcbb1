"""Exports for the office and its accountant: invoices and credit notes, payments, refunds,
attendance; CSV and XLSX, with the filters chosen, safe to open, for administrators only."""

import csv
import io
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlmodel import Session, select

from app.models import Application, Invoice, StaffUser
from app.platform.storage import LocalStorage
from tests.attendance_data import programme
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD
from tests.dashboard_data import Office
from tests.factories import office_today
from tests.routers.office.test_auth import login

MADRID = ZoneInfo("Europe/Madrid")
BEFORE_DEADLINE = datetime(2099, 10, 1, 10, 0, tzinfo=MADRID)
EXPORTS = ("invoices", "payments", "refunds", "attendance")


@pytest.fixture
def admin(client: TestClient, admin_user: StaffUser) -> TestClient:
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    return client


@pytest.fixture
def office(session: Session, tmp_path: Path, admin_user: StaffUser) -> Office:
    from tests.factories import open_edition

    edition = open_edition(session, modules=programme(2, 1, 1, 1, 1), capacity=12)
    return Office(session, edition, LocalStorage(tmp_path / "files"), admin_user)


def now() -> datetime:
    return datetime.now(MADRID)


def fill(office: Office) -> dict[str, Application]:
    """A formula-like buyer who paid by card, a bank payer who cancelled, one who owes half."""
    formula = office.apply(
        "=HYPERLINK(1)",
        "Banda",
        at=now(),
        organisation_name="+Zomba City",
        country="MWI",
        email="formula@example.org",
    )
    cancelled = office.apply("Kofi", "Mensah", at=now(), organisation_name="Accra", country="GHA")
    half = office.apply("Rania", "Haddad", at=now(), organisation_name="Amman", country="JOR")
    for application in (formula, cancelled, half):
        office.decide(application, "admit", at=now())
    office.pay(formula, at=now(), method="card")
    office.pay(cancelled, at=now())
    office.pay(half, at=now(), amount=Decimal("700.00"))
    office.cancel(cancelled, at=BEFORE_DEADLINE)
    sessions = office.sessions()
    office.mark(formula, sessions[0], "present")
    office.mark(formula, sessions[1], "absent")
    office.session.commit()
    return {"formula": formula, "cancelled": cancelled, "half": half}


def rows(response) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text[:500]
    assert response.content.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def url(office: Office, export: str, fmt: str = "csv", **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in {"edition": office.edition.slug, **query}.items())
    return f"/admin/exports/{export}.{fmt}?{params}"


def test_the_invoice_export_is_the_accounting_register(admin: TestClient, office: Office) -> None:
    people = fill(office)
    response = admin.get(url(office, "invoices"))
    assert response.headers["content-type"].startswith("text/csv")
    assert f"invoices-{office.edition.slug}-" in response.headers["content-disposition"]
    found = rows(response)
    assert list(found[0]) == [
        "number",
        "kind",
        "issue date",
        "due date",
        "buyer",
        "buyer tax id",
        "PO number",
        "currency",
        "net",
        "tax",
        "gross",
        "status",
        "refers to",
        "received",
        "refunded",
        "paid",
        "outstanding",
    ]
    by_buyer = {
        row["buyer"]: row
        for row in found
        if row["kind"] == "invoice" and row["number"].startswith(str(office_today().year))
    }
    # A name a spreadsheet would run as a formula is written as text.
    formula = by_buyer["'=HYPERLINK(1) Banda"]
    assert (formula["gross"], formula["paid"], formula["outstanding"]) == (
        "1500.00",
        "1500.00",
        "0.00",
    )
    assert formula["status"] == "paid"
    assert by_buyer["Rania Haddad"]["outstanding"] == "800.00"
    assert by_buyer["Rania Haddad"]["status"] == "part paid"
    credit_notes = [row for row in found if row["kind"] == "credit note"]
    original = by_buyer["Kofi Mensah"]
    assert len(credit_notes) == 1
    assert credit_notes[0]["refers to"] == original["number"]
    assert credit_notes[0]["gross"] == "-1500.00"
    assert original["status"] == "cancelled, refund owed"
    fee = [row for row in found if row["number"].startswith("2099-")]
    assert [(row["kind"], row["gross"], row["paid"]) for row in fee] == [
        ("invoice", "375.00", "375.00")
    ]
    issued = office_today().isoformat()
    assert formula["issue date"] == issued and formula["currency"] == "EUR"
    # Invoices first, in number order, then credit notes.
    kinds = [row["kind"] for row in found]
    assert kinds == sorted(kinds, key=lambda k: k != "invoice")
    assert people["half"].id


def test_the_invoice_export_applies_its_filters(admin: TestClient, office: Office) -> None:
    fill(office)
    open_rows = rows(admin.get(url(office, "invoices", status="open")))
    assert [row["buyer"] for row in open_rows] == ["Rania Haddad"]
    credit = rows(admin.get(url(office, "invoices", kind="credit_note")))
    assert {row["kind"] for row in credit} == {"credit note"}
    cancelled = rows(admin.get(url(office, "invoices", status="cancelled")))
    assert [row["buyer"] for row in cancelled] == ["Kofi Mensah"]
    # The cancellation (received 1 October 2099) wrote its credit note and fee invoice then.
    later = rows(admin.get(url(office, "invoices", **{"from": "2099-09-30"})))
    assert len(later) == 2
    assert rows(admin.get(url(office, "invoices", **{"from": "2099-10-02"}))) == []
    today = office_today().isoformat()
    assert len(rows(admin.get(url(office, "invoices", **{"from": today, "to": today})))) == 3


def test_a_bad_date_filter_answers_the_exports_page_with_the_field_marked(
    admin: TestClient, office: Office
) -> None:
    response = admin.get(url(office, "invoices", **{"from": "2024-02-30", "to": "yesterday"}))
    assert response.status_code == 422
    assert 'id="invoices_from" name="from" type="date" value="2024-02-30" aria-invalid="true"' in (
        response.text
    )
    assert "Enter a date as YYYY-MM-DD" in response.text
    backwards = admin.get(url(office, "payments", **{"from": "2099-02-01", "to": "2099-01-01"}))
    assert backwards.status_code == 422
    assert "The end date is before the start date." in backwards.text
    assert admin.get(url(office, "invoices", status="bogus")).status_code == 422
    assert admin.get(url(office, "invoices", fmt="pdf")).status_code == 422


def test_the_invoice_export_as_xlsx_keeps_numbers_and_dates(
    admin: TestClient, office: Office
) -> None:
    fill(office)
    response = admin.get(url(office, "invoices", fmt="xlsx"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    sheet = load_workbook(io.BytesIO(response.content)).active
    table = list(sheet.iter_rows(values_only=True))
    header = table[0]
    assert header[0] == "number" and header[-1] == "outstanding"
    buyers = {row[header.index("buyer")]: row for row in table[1:]}
    formula = buyers["'=HYPERLINK(1) Banda"]
    assert formula[header.index("gross")] == pytest.approx(1500.0)
    assert isinstance(formula[header.index("issue date")], datetime)
    # No cell of the workbook holds a formula.
    assert not any(isinstance(cell, str) and cell.startswith("=") for row in table for cell in row)


def test_the_payments_export_lines_up_with_the_bank(admin: TestClient, office: Office) -> None:
    fill(office)
    found = rows(admin.get(url(office, "payments")))
    assert list(found[0])[:8] == [
        "invoice",
        "buyer",
        "value date",
        "amount",
        "currency",
        "kind",
        "method",
        "reference",
    ]
    kinds = sorted((row["kind"], row["amount"]) for row in found)
    assert ("received", "700.00") in kinds
    assert [k for k in kinds if k[0] == "transfer"] == [
        ("transfer", "-375.00"),
        ("transfer", "375.00"),
    ]
    card = [row for row in found if row["method"] == "card"]
    assert len(card) == 1 and card[0]["buyer"] == "'=HYPERLINK(1) Banda"
    received = rows(admin.get(url(office, "payments", kind="received")))
    assert {row["kind"] for row in received} == {"received"} and len(received) == 3
    by_card = rows(admin.get(url(office, "payments", method="card")))
    assert [row["method"] for row in by_card] == ["card"]
    assert rows(admin.get(url(office, "payments", flagged="1"))) == []
    bad = admin.get(url(office, "payments", method="cheque"))
    assert bad.status_code == 422 and "Choose a method from the list." in bad.text


def test_the_refunds_export_lists_refunds_with_their_state(
    admin: TestClient, office: Office, session: Session
) -> None:
    people = fill(office)
    found = rows(admin.get(url(office, "refunds")))
    assert len(found) == 1
    refund = found[0]
    assert refund["application"] == people["cancelled"].reference
    assert (refund["amount"], refund["status"], refund["method"]) == (
        "1125.00",
        "owed",
        "bank transfer",
    )
    assert refund["due by"] == "2099-10-31"
    assert rows(admin.get(url(office, "refunds", status="completed"))) == []
    assert len(rows(admin.get(url(office, "refunds", status="owed")))) == 1
    invoice = session.exec(select(Invoice).where(Invoice.number == refund["invoice"])).one()
    assert invoice.kind == "invoice"


def test_the_attendance_export_has_a_row_per_participant_and_session(
    admin: TestClient, office: Office
) -> None:
    people = fill(office)
    found = rows(admin.get(url(office, "attendance")))
    # One paid place (the others cancelled or paid half): a row for each of six sessions.
    assert len(found) == 6
    mine = [row for row in found if row["reference"] == people["formula"].reference]
    assert [row["status"] for row in mine] == ["present", "absent", "", "", "", ""]
    assert mine[0]["given name"] == "'=HYPERLINK(1)"
    assert mine[0]["lesson"] == "1" and mine[0]["kind"] == "knowledge session"
    assert mine[0]["starts at"].startswith("2099-11-16T09:00:00+01:00")
    absent = rows(admin.get(url(office, "attendance", status="absent")))
    assert [(row["reference"], row["lesson"]) for row in absent] == [
        (people["formula"].reference, "1")
    ]
    lesson_two = rows(admin.get(url(office, "attendance", lesson="2")))
    assert {row["lesson"] for row in lesson_two} == {"2"} and len(lesson_two) == 1
    sheet = load_workbook(io.BytesIO(admin.get(url(office, "attendance", fmt="xlsx")).content))
    assert sheet.active.max_row == 7


def test_the_exports_page_offers_every_export_with_its_filters(
    admin: TestClient, office: Office
) -> None:
    page = admin.get(f"/admin/exports?edition={office.edition.slug}")
    assert page.status_code == 200
    for export in EXPORTS:
        assert f'action="/admin/exports/{export}.csv"' in page.text
        assert f'formaction="/admin/exports/{export}.xlsx"' in page.text
    assert 'action="/admin/applications/export.csv"' in page.text
    assert 'href="/admin/audit"' in page.text
    register = admin.get(f"/admin/invoices?edition={office.edition.slug}&status=open")
    assert f"/admin/exports/invoices.csv?edition={office.edition.slug}&amp;status=open" in (
        register.text
    )


@pytest.mark.parametrize("export", EXPORTS)
def test_exports_are_for_administrators_only(
    client: TestClient, tutor_user: StaffUser, office: Office, export: str
) -> None:
    anonymous = client.get(url(office, export), follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/admin/login?next=")
    assert login(client, "tutor@example.org", TUTOR_PASSWORD).status_code == 303
    assert client.get(url(office, export)).status_code == 403
    assert client.get(url(office, export, fmt="xlsx")).status_code == 403
    assert client.get("/admin/exports").status_code == 403
