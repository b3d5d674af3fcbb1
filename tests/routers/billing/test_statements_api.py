"""Statements through the API: previewed, confirmed once, unmatched lines assigned by hand."""

from decimal import Decimal

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import AuditEntry, Invoice
from app.services.billing import invoices as invoicing
from tests.routers.billing.test_money_back import participant, storage  # noqa: F401 - fixtures
from tests.services.billing.test_bank_files import camt053, norma43


def test_a_camt053_statement_is_previewed_confirmed_once_and_a_stray_line_assigned(
    client: TestClient,
    admin_headers: dict[str, str],
    session: Session,
    participant: tuple[object, Invoice],  # noqa: F811
) -> None:
    _, invoice = participant
    sent = client.post(
        "/api/v1/statements",
        files={"file": ("statement.xml", camt053(invoice.number).encode(), "application/xml")},
        headers=admin_headers,
    )
    assert sent.status_code == 201, sent.text
    preview = sent.json()
    assert preview["format"] == "camt053"
    assert [(line["status"], line["matched_invoice"]) for line in preview["lines"]] == [
        ("matched", invoice.number),
        ("ignored", None),
        ("unmatched", None),
    ]
    assert (preview["matched"], preview["unmatched"], preview["duplicates"]) == (1, 1, 0)
    assert invoicing.amount_paid(session, invoice) == Decimal("0.00")  # a preview records nothing
    path = f"/api/v1/statements/{preview['id']}"
    first = client.post(f"{path}/confirm", headers=admin_headers)
    assert first.json()["recorded"] == 1
    again = client.post(f"{path}/confirm", headers=admin_headers)
    assert again.json()["recorded"] == 0
    assert invoicing.amount_paid(session, invoice) == Decimal("1500.00")
    assigned = client.post(
        f"{path}/lines/3/assign", json={"invoice_number": invoice.number}, headers=admin_headers
    )
    assert assigned.status_code == 201, assigned.text
    assert assigned.json()["flagged"]  # 80 beyond a paid invoice is owed back
    twice = client.post(
        f"{path}/lines/3/assign", json={"invoice_number": invoice.number}, headers=admin_headers
    )
    assert twice.status_code == 409
    assert invoicing.amount_paid(session, invoice) == Decimal("1580.00")
    audit = session.exec(
        select(AuditEntry).where(AuditEntry.action == "statement.line_assigned")
    ).all()
    assert len(audit) == 1
    # The same file uploaded again shows its lines as recorded before.
    repeat = client.post(
        "/api/v1/statements",
        files={"file": ("statement.xml", camt053(invoice.number).encode(), "application/xml")},
        headers=admin_headers,
    ).json()
    assert repeat["duplicates"] == 2


def test_a_norma43_statement_is_detected_by_its_content(
    client: TestClient,
    admin_headers: dict[str, str],
    participant: tuple[object, Invoice],  # noqa: F811
) -> None:
    _, invoice = participant
    sent = client.post(
        "/api/v1/statements",
        files={"file": ("extracto.dat", norma43(invoice.number).encode("latin-1"), "text/plain")},
        headers=admin_headers,
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["format"] == "norma43"
    assert sent.json()["matched"] == 1


def test_a_broken_statement_is_a_422_naming_the_file(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    sent = client.post(
        "/api/v1/statements",
        files={"file": ("s.xml", b"<?xml version='1.0'?><Document camt.053", "application/xml")},
        headers=admin_headers,
    )
    assert sent.status_code == 422
