"""The office's statement import reads the bank's own files as well as CSV."""

from html import unescape

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Application, Invoice
from tests.routers.billing.test_admin_invoices import checkboxes, import_form, token
from tests.routers.billing.test_money_back import participant, storage  # noqa: F401 - fixtures
from tests.routers.office.test_auth import login
from tests.services.billing.test_bank_files import camt053, norma43


def test_a_camt053_file_goes_straight_to_the_preview_and_imports_once(
    client: TestClient,
    session: Session,
    participant: tuple[Application, Invoice],  # noqa: F811
) -> None:
    application, invoice = participant
    login(client, "admin@example.org", "admin-password-123")
    page = client.post(
        "/admin/statements/preview",
        data={"csrf_token": token(client, "/admin/statements/import")},
        files={"file": ("statement.xml", camt053(invoice.number).encode(), "application/xml")},
    )
    assert page.status_code == 200, page.text
    boxes = checkboxes(page.text)
    assert [checked for _, checked in boxes] == [True]
    done = import_form(client, page.text, [boxes[0][0]])
    assert "1 payment recorded" in unescape(done.text)
    session.refresh(application)
    assert application.status == "confirmed"
    again = client.post(
        "/admin/statements/preview",
        data={"csrf_token": token(client, "/admin/statements/import")},
        files={"file": ("statement.xml", camt053(invoice.number).encode(), "application/xml")},
    )
    assert checkboxes(again.text) == []
    assert "already recorded" in again.text


def test_a_norma43_file_is_previewed_without_a_column_mapping(
    client: TestClient,
    participant: tuple[Application, Invoice],  # noqa: F811
) -> None:
    _, invoice = participant
    login(client, "admin@example.org", "admin-password-123")
    page = client.post(
        "/admin/statements/preview",
        data={"csrf_token": token(client, "/admin/statements/import")},
        files={"file": ("extracto.n43", norma43(invoice.number).encode("latin-1"), "text/plain")},
    )
    assert page.status_code == 200, page.text
    assert [checked for _, checked in checkboxes(page.text)] == [True]
