"""Hostile text in every free-text field comes back as text, wherever it is shown.

An applicant fills the public application form and the portal's logistics form with HTML
and script (`<script>…`, an `<img onerror>`, quotes that would close an attribute) and
with spreadsheet formulas (`=HYPERLINK(…)`, `+…`, `-…`, `@…`). Then:
- the office's pages, the portal and every e-mail show the text escaped, never markup;
- CSV and XLSX exports neutralise every cell a spreadsheet would run as a formula;
- PDFs print the text literally, and rendering them fetches nothing (an `<img>` that got
  through would make the fetcher try, and it records every try).
"""

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook  # type: ignore[import-untyped]
from pypdf import PdfReader
from sqlmodel import Session, select

from app.models import Application, Edition, OutboxMessage, StaffUser
from app.platform import pdf
from app.services.billing import invoices as invoicing
from app.services.billing.invoices import Seller
from app.services.billing.payments import participant_invoices
from app.services.registrations import applications as applications_service
from tests.conftest import ADMIN_PASSWORD
from tests.factories import FACTORY_SECRET, open_edition
from tests.routers.office.test_auth import login
from tests.security import csrf_for

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
PAYLOAD = f"{SCRIPT}\"'>{IMG}"
FORMULA = '=HYPERLINK("http://x")'
RAW = (SCRIPT, IMG, "onerror=alert(1)>")
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
FORMULA_STARTS = ("=", "+", "-", "@")
# The fields people type, each starting with something a spreadsheet would run.
APPLICATION_FIELDS = {
    "given_name": PAYLOAD,
    "family_name": FORMULA,
    "organisation_name": f"+{PAYLOAD}",
    "job_title": f"-{PAYLOAD}",
    "department": f"@{PAYLOAD}",
    "motivation": f"{FORMULA} {PAYLOAD} " + "I coordinate our city's partnerships abroad. " * 2,
}
LOGISTICS_FIELDS = {
    "certificate_name": f"Ama {PAYLOAD}",
    "dietary": f"{FORMULA} {PAYLOAD}",
    "accessibility": f"@{PAYLOAD}",
}


@dataclass
class Hostile:
    """The applicant who typed the payloads, admitted, with a visa letter issued."""

    edition: Edition
    application: Application
    token: str
    invoice_number: str


def _raw_free(text: str, where: str) -> None:
    for raw in RAW:
        assert raw not in text, f"{where}: {raw!r} came back as markup"


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every URL any PDF rendering asks for (allowed or refused)."""
    asked: list[str] = []
    original = pdf.StaticOnlyFetcher.fetch

    def recording(self: pdf.StaticOnlyFetcher, url: str, headers: Any = None) -> Any:
        asked.append(url)
        return original(self, url, headers)

    monkeypatch.setattr(pdf.StaticOnlyFetcher, "fetch", recording)
    yield asked


@pytest.fixture
def hostile(
    client: TestClient, session: Session, admin_user: StaffUser, fetched: list[str]
) -> Hostile:
    """Apply, get admitted and give logistics with hostile text in every free-text field."""
    edition = open_edition(session)
    page = f"/editions/{edition.slug}/apply"
    form = {
        **APPLICATION_FIELDS,
        "email": "hostile@example.org",
        "country": "MWI",
        "years_in_international_affairs": "3",
        "language": "en",
        "consent": "on",
        "csrf_token": csrf_for(client, page),
    }
    applied = client.post(page, data=form, follow_redirects=False)
    assert applied.status_code == 303, applied.text
    application = session.exec(
        select(Application).where(Application.email == "hostile@example.org")
    ).one()
    for name, value in APPLICATION_FIELDS.items():
        stored = getattr(application, name)
        assert stored == value.strip(), (name, stored)
    settings = client.app.state.settings  # type: ignore[attr-defined]
    applications_service.decide(
        session,
        application_id=application.id or 0,
        decision="admit",
        actor=admin_user,
        storage=client.app.state.storage,  # type: ignore[attr-defined]
        secret_key=settings.secret_key,
        base_url=settings.base_url,
        seller=Seller(
            name="Metropolis",
            address="Avinyó, 15",
            tax_id="ESG00000000",
            bank_name="Example Bank",
            iban="ES91 2100 0418 4502 0005 1332",
            bic="CAIXESBBXXX",
            due_days=14,
        ),
    )
    token = applications_service.portal_token(application, edition, secret_key=FACTORY_SECRET)
    logistics = client.post(
        f"/portal/{token}/logistics",
        data={
            **LOGISTICS_FIELDS,
            "arrival_date": edition.start_date.isoformat(),
            "departure_date": edition.end_date.isoformat(),
            "visa_letter_needed": "yes",
            "nationality": "MWI",
            "passport_number": "MA1234567",
            "date_of_birth": "1985-04-23",
            "csrf_token": csrf_for(client, f"/portal/{token}"),
        },
        follow_redirects=False,
    )
    assert logistics.status_code == 303, logistics.text
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    letter = client.post(
        f"/admin/applications/{application.id}/visa-letter",
        data={"csrf_token": csrf_for(client, "/admin")},
        follow_redirects=False,
    )
    assert letter.status_code == 303, letter.text
    session.refresh(application)
    number = participant_invoices(session, application.id or 0)[0].number
    return Hostile(edition, application, token, number)


def test_the_office_pages_and_the_portal_show_the_text_escaped(
    client: TestClient, session: Session, hostile: Hostile
) -> None:
    slug = hostile.edition.slug
    pages = [
        f"/admin/applications?edition={slug}",
        f"/admin/applications/{hostile.application.id}",
        f"/admin/applications/{hostile.application.id}/cancellation",
        f"/admin/logistics?edition={slug}",
        "/admin/invoices",
        f"/admin/invoices/{hostile.invoice_number}",
        f"/admin/outbox?q={hostile.application.reference}",
        f"/portal/{hostile.token}",
        f"/portal/{hostile.token}/cancel",
    ]
    messages = session.exec(
        select(OutboxMessage).where(OutboxMessage.application_id == hostile.application.id)
    ).all()
    assert messages
    pages += [f"/admin/outbox/{message.id}" for message in messages]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        _raw_free(response.text, page)
    # Shown, not dropped: the person's own words are on their pages, as text.
    for page in (f"/admin/applications/{hostile.application.id}", f"/portal/{hostile.token}"):
        assert ESCAPED in client.get(page).text, page


def test_every_email_shows_the_text_escaped_and_keeps_headers_on_one_line(
    client: TestClient, session: Session, hostile: Hostile
) -> None:
    messages = session.exec(
        select(OutboxMessage).where(OutboxMessage.application_id == hostile.application.id)
    ).all()
    kinds = {message.kind for message in messages}
    assert len(kinds) >= 2, kinds
    for message in messages:
        _raw_free(message.body_html, f"{message.kind} (HTML part)")
        assert "\n" not in message.subject and "\r" not in message.subject
        assert "\n" not in message.to_address
    assert any(ESCAPED in message.body_html for message in messages)
    # The HTML part downloaded by the office is a file served as text, never a page.
    download = client.get(f"/admin/outbox/{messages[0].id}/body.html")
    assert download.headers["content-type"].startswith("text/plain")
    assert download.headers["content-disposition"].startswith("attachment")


def _neutralised(cells: list[str], where: str) -> int:
    """Check each cell holding typed text; how many there were."""
    typed = [c for c in cells if "HYPERLINK" in c or "alert(1)" in c]
    for cell in typed:
        assert not cell.startswith(FORMULA_STARTS), f"{where}: {cell[:40]!r} would run"
    return len(typed)


def test_csv_exports_neutralise_every_formula(client: TestClient, hostile: Hostile) -> None:
    slug = hostile.edition.slug
    for path in (
        f"/admin/applications/export.csv?edition={slug}",
        f"/admin/logistics.csv?edition={slug}",
        "/admin/invoices.csv",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        cells = [cell for row in rows for cell in row]
        assert _neutralised(cells, path) >= 1, path
        if "invoices" not in path:
            # These list a field typed to start with a formula; it comes back quoted.
            assert any(cell.startswith(("'=", "'+", "'-", "'@")) for cell in cells), path


def test_the_xlsx_export_holds_text_never_formulas(client: TestClient, hostile: Hostile) -> None:
    response = client.get(f"/admin/applications/export.xlsx?edition={hostile.edition.slug}")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    cells = [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert all(cell.data_type != "f" for cell in cells)
    texts = [str(cell.value) for cell in cells if isinstance(cell.value, str)]
    assert _neutralised(texts, "applications.xlsx") >= 5


def _pdf_text(data: bytes) -> str:
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_pdfs_print_the_text_literally_and_fetch_nothing(
    client: TestClient, session: Session, hostile: Hostile, fetched: list[str]
) -> None:
    for path in (
        f"/portal/{hostile.token}/invoices/{hostile.invoice_number}.pdf",
        f"/portal/{hostile.token}/visa-letter.pdf",
        f"/admin/invoices/{hostile.invoice_number}.pdf",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/pdf"
        text = re.sub(r"\s+", "", _pdf_text(response.content))
        assert "<script>alert(1)</script>" in text, path
    # Invoices and visa letters use no images or fonts of their own but the invoice's
    # scan-to-pay code, a data: URL we make: had any of the typed markup become a tag, its
    # `src` would have been asked for here.
    invoice = invoicing.get_invoice(session, hostile.invoice_number)
    scan_to_pay = invoicing.invoice_document(session, invoice)["epc_qr"]
    assert scan_to_pay
    assert [url for url in fetched if url != scan_to_pay] == []
