"""GET /api/v1/invoices/{number}/verifactu: a chain anyone with the API can check on their own."""

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from lxml import etree
from sqlmodel import Session

from app.models import StaffUser
from app.platform.storage import LocalStorage
from app.services.billing import verifactu
from app.services.billing.voiding import void_invoice
from app.web.dependencies import app_seller
from tests.conftest import ADMIN_PASSWORD
from tests.factories import open_edition, pay
from tests.routers.office.test_auth import login
from tests.services.billing.verifactu_helpers import (
    SPANISH_SELLER,
    TAX_RECORDS,
    admitted,
    cancel,
)


@pytest.fixture
def spanish_office(test_app: FastAPI, client: TestClient) -> Iterator[TestClient]:
    test_app.dependency_overrides[app_seller] = lambda: SPANISH_SELLER
    yield client


def _fingerprint(record: dict[str, Any]) -> str:
    """The AEAT's fingerprint, recomputed from the fields the API returns (DOMAIN.md)."""
    previous = record["previous"]["hash"] if record["previous"] else ""
    if record["record_type"] == "anulacion":
        fields = [
            ("IDEmisorFacturaAnulada", record["issuer_tax_id"]),
            ("NumSerieFacturaAnulada", record["number"]),
            ("FechaExpedicionFacturaAnulada", record["issue_date"]),
        ]
    else:
        fields = [
            ("IDEmisorFactura", record["issuer_tax_id"]),
            ("NumSerieFactura", record["number"]),
            ("FechaExpedicionFactura", record["issue_date"]),
            ("TipoFactura", record["invoice_type"]),
            ("CuotaTotal", record["tax_total"]),
            ("ImporteTotal", record["total"]),
        ]
    fields += [("Huella", previous), ("FechaHoraHusoGenRegistro", record["generated_at"])]
    text = "&".join(f"{name}={value}" for name, value in fields)
    return hashlib.sha256(text.encode()).hexdigest().upper()


def test_a_chain_of_invoices_credit_notes_and_a_voided_invoice_verifies_from_the_api_alone(
    spanish_office: TestClient,
    session: Session,
    admin_headers: dict[str, str],
    tmp_path: Path,
    admin_user: StaffUser,
) -> None:
    storage = LocalStorage(tmp_path)
    edition = open_edition(session)
    cancelled, first = admitted(session, storage, admin_user, edition, email="a@example.org")
    _, second = admitted(session, storage, admin_user, edition, email="b@example.org")
    _, third = admitted(session, storage, admin_user, edition, email="c@example.org")
    pay(session, first.number, str(first.total))
    outcome = cancel(session, storage, cancelled)
    assert outcome.credit_note is not None and outcome.fee_invoice is not None
    void_invoice(
        session, invoice=second, reason="Issued twice", actor="admin", tax_records=TAX_RECORDS
    )
    session.commit()

    # The verifier knows one number: the voided invoice's, whose latest record is the last.
    response = spanish_office.get(
        f"/api/v1/invoices/{second.number}/verifactu", headers=admin_headers
    )
    assert response.status_code == 200, response.text
    head = response.json()
    assert head["record_type"] == "anulacion"
    walked: list[dict[str, Any]] = []
    record: dict[str, Any] | None = head
    while record is not None:
        assert _fingerprint(record) == record["hash"]
        walked.append(record)
        previous = record["previous"]
        if previous is None:
            break
        answer = spanish_office.get(
            f"/api/v1/invoices/{previous['number']}/verifactu", headers=admin_headers
        ).json()
        [record] = [r for r in answer["records"] if r["hash"] == previous["hash"]]
        assert record["issue_date"] == previous["issue_date"]
    kinds = [(r["number"], r["record_type"], r["invoice_type"]) for r in reversed(walked)]
    assert kinds == [
        (first.number, "alta", "F1"),
        (second.number, "alta", "F1"),
        (third.number, "alta", "F1"),
        (outcome.credit_note.number, "alta", "R1"),
        (outcome.fee_invoice.number, "alta", "F1"),
        (second.number, "anulacion", None),
    ]
    alta = walked[-1]
    assert alta["qr_url"] == (
        f"https://prewww2.aeat.es/wlpl/TIKE-CONT/ValidarQR?nif={alta['issuer_tax_id']}"
        f"&numserie={alta['number']}&fecha={alta['issue_date']}&importe={alta['total']}"
    )
    assert alta["submission"] == {"status": "pending", "answer": None}
    for record in walked:
        xml = spanish_office.get(record["xml_url"], headers=admin_headers)
        assert xml.status_code == 200
        document = etree.fromstring(xml.content)
        assert verifactu.schema().validate(document), verifactu.schema().error_log
        assert document.findall(".//{*}Huella")[-1].text == record["hash"]


def test_an_invoice_without_a_record_is_a_404_naming_it(
    client: TestClient, session: Session, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    missing = client.get("/api/v1/invoices/2099-99999/verifactu", headers=admin_headers)
    assert missing.status_code == 404 and "2099-99999" in missing.text


def test_the_records_are_for_the_office_only(client: TestClient) -> None:
    assert client.get("/api/v1/invoices/2026-00001/verifactu").status_code == 401


def test_the_invoice_page_shows_the_fingerprint_the_state_and_the_qr_code(
    spanish_office: TestClient, session: Session, admin_user: StaffUser, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    _, invoice = admitted(session, storage, admin_user, open_edition(session))
    [record] = verifactu.records_of(session, invoice)
    assert login(spanish_office, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    page = spanish_office.get(f"/admin/invoices/{invoice.number}")
    assert page.status_code == 200
    assert record.hash in page.text
    assert "Waiting to be sent" in page.text
    assert 'class="tax-qr"' in page.text and "<svg" in page.text


def test_the_office_sees_the_records_the_aeat_rejected_and_why(
    spanish_office: TestClient, session: Session, admin_user: StaffUser, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    edition = open_edition(session)
    _, accepted = admitted(session, storage, admin_user, edition, email="a@example.org")
    _, rejected = admitted(session, storage, admin_user, edition, email="b@example.org")
    for invoice, status, code, text in (
        (accepted, "accepted", "", ""),
        (rejected, "rejected", "1104", "Valor del campo NIF del bloque Destinatarios incorrecto."),
    ):
        [record] = verifactu.records_of(session, invoice)
        submission = verifactu.submission_of(session, record)
        assert submission is not None
        submission.status, submission.error_code, submission.error_text = status, code, text
        session.add(submission)
    session.commit()
    assert login(spanish_office, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    page = spanish_office.get("/admin/tax-records")
    assert page.status_code == 200
    assert rejected.number in page.text and accepted.number not in page.text
    assert "1104" in page.text and "Destinatarios incorrecto" in page.text


def test_the_tax_records_page_says_the_chain_is_intact(
    test_app: FastAPI,
    spanish_office: TestClient,
    session: Session,
    admin_user: StaffUser,
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path)
    admitted(session, storage, admin_user, open_edition(session))
    spanish = test_app.state.settings.model_copy(
        update={"verifactu_enabled": True, "organisation_tax_id": "ESG08012346"}
    )
    original = test_app.state.settings
    test_app.state.settings = spanish
    try:
        assert login(spanish_office, "admin@example.org", ADMIN_PASSWORD).status_code == 303
        page = spanish_office.get("/admin/tax-records")
    finally:
        test_app.state.settings = original
    assert "Chain checked: 1 record, every fingerprint and link intact." in page.text
