"""The audit log page: newest first, filters, pages, changes told compactly, exports."""

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlmodel import Session

from app.models import AuditEntry, StaffUser
from app.services.office import audit_search as audit_log
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD
from tests.factories import open_edition
from tests.routers.office.test_auth import login

MADRID = ZoneInfo("Europe/Madrid")


@pytest.fixture
def admin(client: TestClient, admin_user: StaffUser) -> TestClient:
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    return client


def entry(session: Session, at: datetime, **values: Any) -> AuditEntry:
    defaults: dict[str, Any] = {
        "actor": "office@example.org",
        "action": "application.admit",
        "entity": "application",
        "entity_id": "7",
    }
    found = AuditEntry(at=at.astimezone(UTC), **{**defaults, **values})
    session.add(found)
    session.commit()
    return found


@pytest.fixture
def log(session: Session) -> dict[str, AuditEntry]:
    """A few days of the office's work (the editions' clock is Madrid's)."""
    open_edition(session)
    day = datetime(2099, 3, 10, 9, 0, tzinfo=MADRID)
    return {
        "admit": entry(
            session,
            day,
            before={"status": "submitted"},
            after={"status": "admitted", "note": "Welcome"},
        ),
        "invoice": entry(
            session,
            day + timedelta(hours=1),
            action="invoice.issued",
            entity="invoice",
            entity_id="2099-00001",
            after={"total": "1500.00", "buyer": "Bogotá District"},
        ),
        "payment": entry(
            session,
            day + timedelta(days=1, hours=14, minutes=30),  # 23:30 in Madrid, 22:30 UTC
            actor="clerk@example.org",
            action="payment.recorded",
            entity="invoice",
            entity_id="2099-00001",
            after={"amount": "1500.00", "method": "bank_transfer"},
        ),
        "refund": entry(
            session,
            day + timedelta(days=3),
            actor="=cmd|' /C calc'!A0",
            action="refund.completed",
            entity="refund",
            entity_id="3",
            before={"status": "owed"},
            after={"status": "completed", "reference": "TRF-3"},
        ),
    }


def page_text(client: TestClient, query: str = "") -> str:
    response = client.get(f"/admin/audit{query}")
    assert response.status_code == 200, response.text[:300]
    return response.text


def listed(html: str) -> list[str]:
    """The actions listed on the page, in order."""
    body = html[html.index("<tbody>") : html.index("</tbody>")] if "<tbody>" in html else ""
    return [part.split("</code>")[0] for part in body.split("<code>")[1:]]


def test_the_log_lists_entries_newest_first_with_their_changes(
    admin: TestClient, log: dict[str, AuditEntry]
) -> None:
    html = page_text(admin, "?since=2099-03-01")
    assert listed(html) == [
        "refund.completed",
        "payment.recorded",
        "invoice.issued",
        "application.admit",
    ]
    assert '<del><span class="visually-hidden">was </span>submitted</del>' in html
    assert '<ins><span class="visually-hidden">now </span>admitted</ins>' in html
    assert "Bogotá District" in html
    assert 'href="/admin/applications/7"' in html
    assert 'href="/admin/invoices/2099-00001"' in html
    # 22:30 UTC on the 11th is 23:30 in Madrid.
    assert "11 Mar 2099 <br>23:30:00" in html
    assert "Europe/Madrid" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("actor=CLERK", ["payment.recorded"]),
        ("action=payment.", ["payment.recorded"]),
        ("action=refund.", ["refund.completed"]),
        ("entity=invoice", ["payment.recorded", "invoice.issued"]),
        ("entity=invoice&entity_id=2099-00001&actor=office", ["invoice.issued"]),
        ("since=2099-03-11&until=2099-03-11", ["payment.recorded"]),
        ("since=2099-03-12", ["refund.completed"]),
        ("until=2099-03-10", ["invoice.issued", "application.admit"]),
        ("q=welcome", ["application.admit"]),
        ("q=bogot%C3%A1", ["invoice.issued"]),
        ("q=TRF-3", ["refund.completed"]),
        ("q=100%25", []),
    ],
)
def test_the_log_filters(
    admin: TestClient, log: dict[str, AuditEntry], query: str, expected: list[str]
) -> None:
    html = page_text(admin, f"?since=2099-03-01&{query}")
    assert listed(html) == expected


def test_a_bad_date_is_shown_next_to_its_field(
    admin: TestClient, log: dict[str, AuditEntry]
) -> None:
    response = admin.get("/admin/audit?since=2099-13-01")
    assert response.status_code == 422
    assert 'id="audit-since" name="since" type="date" value="2099-13-01" aria-invalid="true"' in (
        response.text
    )
    backwards = admin.get("/admin/audit?since=2099-03-12&until=2099-03-10")
    assert backwards.status_code == 422
    assert "The end date is before the start date." in backwards.text
    assert admin.get("/admin/audit/export.csv?until=soon").status_code == 422


def test_the_log_pages_fifty_at_a_time_by_entry(admin: TestClient, session: Session) -> None:
    start = datetime(2099, 5, 1, 9, 0, tzinfo=MADRID)
    for n in range(55):
        entry(session, start + timedelta(minutes=n), action=f"application.step{n:02d}")
    first = page_text(admin, "?action=application.step")
    assert listed(first)[0] == "application.step54" and len(listed(first)) == 50
    assert "55 entries" in first
    older = first.split('href="')[-1].split('">Older entries')[0] if "Older" in first else ""
    assert "before=" in older
    second = page_text(admin, "?" + older.split("?", 1)[1].replace("&amp;", "&"))
    assert listed(second) == [f"application.step{n:02d}" for n in range(4, -1, -1)]
    assert "Newest entries" in second and "Older entries" not in second
    # A page does not shift when new entries arrive meanwhile.
    entry(session, start + timedelta(hours=5), action="application.step99")
    again = page_text(admin, "?" + older.split("?", 1)[1].replace("&amp;", "&"))
    assert listed(again) == listed(second)


def test_the_export_holds_the_filtered_log_safely(
    admin: TestClient, log: dict[str, AuditEntry]
) -> None:
    response = admin.get("/admin/audit/export.csv?since=2099-03-01&action=refund.")
    assert response.status_code == 200
    assert "audit-log-" in response.headers["content-disposition"]
    found = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [row["action"] for row in found] == ["refund.completed"]
    row = found[0]
    assert row["actor"] == "'=cmd|' /C calc'!A0"
    assert row["before"] == '{"status": "owed"}'
    assert row["after"] == '{"reference": "TRF-3", "status": "completed"}'
    assert row["at"] == "2099-03-13T09:00:00+01:00"
    every = admin.get("/admin/audit/export.xlsx?since=2099-03-01")
    sheet = load_workbook(io.BytesIO(every.content)).active
    table = list(sheet.iter_rows(values_only=True))
    assert table[0] == ("at", "actor", "action", "entity", "entity id", "before", "after")
    assert [r[2] for r in table[1:]] == [
        "refund.completed",
        "payment.recorded",
        "invoice.issued",
        "application.admit",
    ]
    assert table[1][1] == "'=cmd|' /C calc'!A0"


def test_changes_are_told_field_by_field() -> None:
    change = AuditEntry(
        actor="a",
        action="x",
        entity="application",
        entity_id="1",
        before={"status": "submitted", "same": 1, "gone": "old", "was_empty": ""},
        after={
            "status": "admitted",
            "same": 1,
            "new": {"a": [1, 2]},
            "long": "y" * 300,
            "flag": "",
        },
    )
    found = audit_log.changes(change)
    assert [(c.key, c.before, c.after) for c in found[:3]] == [
        ("status", "submitted", "admitted"),
        ("gone", "old", None),
        ("new", None, '{"a": [1, 2]}'),
    ]
    assert found[3].after is not None and len(found[3].after) == audit_log.VALUE_LIMIT
    assert len(found) == 4  # nothing to say about a field that was and stays empty


def test_the_log_is_for_administrators_only(client: TestClient, tutor_user: StaffUser) -> None:
    anonymous = client.get("/admin/audit", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/admin/login?next=")
    assert client.get("/admin/audit/export.csv", follow_redirects=False).status_code == 303
    assert login(client, "tutor@example.org", TUTOR_PASSWORD).status_code == 303
    assert client.get("/admin/audit").status_code == 403
    assert client.get("/admin/audit/export.csv").status_code == 403
    assert client.get("/admin/audit/export.xlsx").status_code == 403
