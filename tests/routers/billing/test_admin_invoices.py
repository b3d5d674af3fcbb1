"""The administrators' money pages: register, invoice, payments, statements, overview, groups."""

import csv
import io
import re
from datetime import date, timedelta
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import (
    Application,
    BackgroundJob,
    Edition,
    Invoice,
    OutboxMessage,
    Payment,
    StaffUser,
)
from app.platform import jobs
from app.platform.storage import Storage
from app.services.billing import invoices as invoicing
from app.services.billing import payments, statements
from app.services.registrations import applications as service
from app.worker import job_context
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD
from tests.factories import (
    admit,
    make_organisation,
    office_today,
    open_edition,
    pay,
    submit,
)
from tests.routers.office.test_auth import csrf_from, login

SECRET = "test-secret-key-" + "x" * 32
BASE = "http://testserver"
SELLER = invoicing.Seller(
    name="Metropolis",
    address="Avinyó, 15\n08002 Barcelona",
    tax_id="ESG00000000",
    bank_name="Example Bank",
    iban="ES91 2100 0418 4502 0005 1332",
    bic="CAIXESBBXXX",
)
YESTERDAY = date.today() - timedelta(days=1)


@pytest.fixture
def admin(client: TestClient, admin_user: StaffUser) -> TestClient:
    """The client, logged in as an administrator."""
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    return client


@pytest.fixture
def storage(client: TestClient) -> Storage:
    """The storage of the application under test, so its pages find the stored PDFs."""
    found: Storage = client.app.state.storage  # type: ignore[attr-defined]
    return found


def admitted(
    session: Session, storage: Storage, admin: StaffUser, edition: Edition, **overrides: Any
) -> tuple[Application, Invoice]:
    """An admitted participant with the invoice admission issued."""
    application = submit(session, storage, edition, **overrides)
    admit(session, storage, admin, application)
    return application, payments.participant_invoices(session, application.id or 0)[0]


def token(client: TestClient, path: str = "/admin/invoices") -> str:
    return csrf_from(client.get(path).text)


def flash(html: str) -> str:
    match = re.search(r'<p class="flash" role="status">([^<]*)</p>', html)
    assert match, "no flash message on the page"
    return unescape(match.group(1))


def field_error(html: str, name: str) -> str:
    match = re.search(rf'<p class="field-error" id="{name}-error">([^<]*)</p>', html)
    assert match, f"no error next to {name}"
    return unescape(match.group(1))


def register_numbers(html: str) -> list[str]:
    return re.findall(r'<th scope="row"><a class="code-link" href="/admin/invoices/([^"]+)">', html)


def record(client: TestClient, invoice: Invoice, **form: str) -> Any:
    path = f"/admin/invoices/{invoice.number}"
    data = {"csrf_token": token(client, path), "received_on": YESTERDAY.isoformat(), **form}
    return client.post(f"{path}/payments", data=data, follow_redirects=False)


def paid_on(session: Session, invoice: Invoice) -> Decimal:
    session.expire_all()
    return invoicing.amount_paid(session, invoice)


# Access


@pytest.fixture
def one_invoice(session: Session, storage: Storage, admin_user: StaffUser) -> Invoice:
    edition = open_edition(session)
    return admitted(session, storage, admin_user, edition)[1]


def _pages(number: str) -> list[str]:
    return [
        "/admin/invoices",
        "/admin/invoices?status=all",
        "/admin/invoices.csv",
        f"/admin/invoices/{number}",
        f"/admin/invoices/{number}.pdf",
        "/admin/money",
        "/admin/statements/import",
    ]


def _posts(number: str) -> list[str]:
    return [
        f"/admin/invoices/{number}/payments",
        "/admin/statements/preview",
        "/admin/statements/import",
        "/admin/groups/ABC123/invoice?edition=diploma-open",
    ]


def test_a_tutor_is_refused_every_money_page_and_action(
    client: TestClient, tutor_user: StaffUser, one_invoice: Invoice, session: Session
) -> None:
    assert login(client, "tutor@example.org", TUTOR_PASSWORD).status_code == 303
    for path in _pages(one_invoice.number):
        assert client.get(path).status_code == 403, path
    csrf = token(client, "/admin")
    for path in _posts(one_invoice.number):
        response = client.post(
            path,
            data={"csrf_token": csrf, "amount": "1500.00", "received_on": YESTERDAY.isoformat()},
        )
        assert response.status_code == 403, path
        assert "Your role does not allow" in response.text
    assert paid_on(session, one_invoice) == Decimal("0.00")


def test_an_anonymous_visitor_is_sent_to_the_login_page(
    client: TestClient, one_invoice: Invoice
) -> None:
    for path in _pages(one_invoice.number):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next=")


def test_a_payment_form_without_its_csrf_token_is_refused_and_records_nothing(
    admin: TestClient, one_invoice: Invoice, session: Session
) -> None:
    response = admin.post(
        f"/admin/invoices/{one_invoice.number}/payments",
        data={"amount": "1500.00", "received_on": YESTERDAY.isoformat()},
    )
    assert response.status_code == 403
    assert paid_on(session, one_invoice) == Decimal("0.00")


def test_the_navigation_links_the_invoices_and_money_pages(admin: TestClient) -> None:
    html = admin.get("/admin/money").text
    assert '<a href="/admin/invoices" >Invoices</a>' in html
    assert '<a href="/admin/money" aria-current="page">Money</a>' in html


# The register


def test_the_register_filters_open_paid_overdue_and_all(
    admin: TestClient, session: Session, storage: Storage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    _, unpaid = admitted(session, storage, admin_user, edition, email="u@x.org")
    _, paid = admitted(session, storage, admin_user, edition, email="p@x.org")
    _, late = admitted(session, storage, admin_user, edition, email="l@x.org")
    pay(session, paid, "1500.00", received_on=YESTERDAY, reference="by hand", actor="test")
    late.due_date = office_today() - timedelta(days=5)
    session.add(late)
    session.commit()
    base = f"/admin/invoices?edition={edition.slug}"
    assert sorted(register_numbers(admin.get(base).text)) == sorted([unpaid.number, late.number])
    assert register_numbers(admin.get(base + "&status=paid").text) == [paid.number]
    overdue = admin.get(base + "&status=overdue").text
    assert register_numbers(overdue) == [late.number]
    assert "5 days late" in overdue
    assert len(register_numbers(admin.get(base + "&status=all").text)) == 3
    assert admin.get(base + "&status=nonsense").status_code == 422


def test_the_register_export_neutralises_formulas(
    admin: TestClient, session: Session, one_invoice: Invoice
) -> None:
    one_invoice.buyer = {**one_invoice.buyer, "name": '=HYPERLINK("http://x")'}
    session.add(one_invoice)
    session.commit()
    response = admin.get("/admin/invoices.csv?edition=diploma-open&status=all")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:2] == ["number", "kind"]
    assert rows[1][0] == one_invoice.number
    assert rows[1][4] == '\'=HYPERLINK("http://x")'


# One invoice


def test_the_invoice_page_shows_lines_with_participant_links_and_payments(
    admin: TestClient, session: Session, storage: Storage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application, invoice = admitted(session, storage, admin_user, edition)
    pay(session, invoice, "400.00", received_on=YESTERDAY, reference="by hand", actor="test")
    html = admin.get(f"/admin/invoices/{invoice.number}").text
    assert f'href="/admin/applications/{application.id}"' in html
    assert "Registration fee: Ama Banda" in html
    assert "ES91 2100 0418 4502 0005 1332" in html
    assert "by hand" in html and "400.00 EUR" in html
    assert f'href="/admin/invoices/{invoice.number}.pdf"' in html
    assert 'id="amount" name="amount" type="text" value="1100.00"' in html
    pdf = admin.get(f"/admin/invoices/{invoice.number}.pdf")
    assert pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"


def test_an_unknown_invoice_is_404(admin: TestClient) -> None:
    assert admin.get("/admin/invoices/2099-99999").status_code == 404


def test_recording_the_full_amount_confirms_the_participant_and_says_so(
    admin: TestClient, session: Session, storage: Storage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application, invoice = admitted(session, storage, admin_user, edition)
    response = record(admin, invoice, amount="1.500,00", reference="BANK REF 1")
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/invoices/{invoice.number}"
    message = flash(admin.get(response.headers["location"]).text)
    assert f"Recorded 1,500.00 EUR on {invoice.number}." in message
    assert f"Confirmed: Ama Banda ({application.reference})" in message
    assert "place is guaranteed" in message
    session.refresh(application)
    assert application.status == "confirmed"
    mails = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "place_guaranteed"))
    assert len(mails.all()) == 1
    (stored,) = payments.payments_for(session, invoice)
    assert (stored.amount, stored.method, stored.reference, stored.received_on) == (
        Decimal("1500.00"),
        "bank_transfer",
        "BANK REF 1",
        YESTERDAY,
    )


def test_partial_payments_add_up_and_the_flash_says_what_is_left(
    admin: TestClient, session: Session, one_invoice: Invoice
) -> None:
    record(admin, one_invoice, amount="500")
    response = record(admin, one_invoice, amount="250.50")
    message = flash(admin.get(response.headers["location"]).text)
    assert "Paid 750.50 EUR of 1,500.00 EUR; 749.50 EUR still to pay." in message
    assert "Confirmed" not in message
    assert paid_on(session, one_invoice) == Decimal("750.50")


def test_an_overpayment_is_recorded_and_the_flag_shown(
    admin: TestClient, session: Session, one_invoice: Invoice
) -> None:
    response = record(admin, one_invoice, amount="1600.00")
    message = flash(admin.get(response.headers["location"]).text)
    assert "Flagged: Overpaid by 100.00 EUR: refund the difference." in message
    assert paid_on(session, one_invoice) == Decimal("1600.00")


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"amount": "-50.00"}, "amount", "more than 0"),
        ({"amount": "0"}, "amount", "more than 0"),
        ({"amount": "lots"}, "amount", "as a number"),
        ({"amount": ""}, "amount", "Enter the amount"),
        ({"amount": "100", "received_on": "31/02/2024"}, "received_on", "YYYY-MM-DD"),
        ({"amount": "100", "received_on": "2999-01-01"}, "received_on", "future"),
    ],
)
def test_a_bad_payment_is_refused_next_to_its_field_and_nothing_is_recorded(
    admin: TestClient,
    session: Session,
    one_invoice: Invoice,
    form: dict[str, str],
    field: str,
    message: str,
) -> None:
    response = record(admin, one_invoice, **form)
    assert response.status_code == 422
    assert message in field_error(response.text, field)
    assert f'value="{form.get("received_on", YESTERDAY.isoformat())}"' in response.text
    assert paid_on(session, one_invoice) == Decimal("0.00")


def test_a_payment_on_a_credit_note_is_refused_with_a_clear_message(
    admin: TestClient, session: Session, storage: Storage, one_invoice: Invoice
) -> None:
    edition = session.get(Edition, one_invoice.edition_id)
    assert edition is not None
    line = invoicing.invoice_lines(session, one_invoice)[0]
    credit = invoicing.issue_document(
        session,
        edition=edition,
        buyer=one_invoice.buyer,
        lines=[(None, "Cancels line 1", -line.net, [])],
        seller=SELLER,
        actor="test",
        now=one_invoice.issued_at,
        storage=storage,
        kind=invoicing.InvoiceKind.credit_note,
        refers_to=one_invoice,
        credits=[line.id],
    )
    session.commit()
    page = admin.get(f"/admin/invoices/{credit.number}").text
    assert "Record a bank transfer" not in page
    assert f'href="/admin/invoices/{one_invoice.number}"' in page
    response = record(admin, credit, amount="100.00")
    assert response.status_code == 409
    assert f"Nothing was recorded. {credit.number} is a credit note" in unescape(response.text)
    assert session.exec(select(Payment)).all() == []


# The money overview


def test_the_money_page_adds_up_and_lists_overdue_and_flagged_payments(
    admin: TestClient, session: Session, storage: Storage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    _, late = admitted(session, storage, admin_user, edition, email="l@x.org")
    _, over = admitted(session, storage, admin_user, edition, email="o@x.org")
    pay(session, late, "500.00", received_on=YESTERDAY, reference="by hand", actor="test")
    pay(session, over, "1600.00", received_on=YESTERDAY, reference="by hand", actor="test")
    late.due_date = office_today() - timedelta(days=4)
    session.add(late)
    session.commit()
    html = unescape(admin.get(f"/admin/money?edition={edition.slug}").text)
    facts = dict(re.findall(r"<div[^>]*><dt>([^<]+)</dt><dd>([^<]+)</dd>", html))
    assert facts["Invoiced"] == "3,000.00 EUR"
    assert facts["Received"] == "2,100.00 EUR"
    assert facts["Outstanding"] == "1,000.00 EUR"
    assert facts["Overdue"] == "1,000.00 EUR"
    assert facts["Refunds owed"] == "100.00 EUR"
    overdue = html.split('id="overdue-heading"')[1].split('id="flagged-heading"')[0]
    assert late.number in overdue and over.number not in overdue
    assert '<td class="num">4</td>' in overdue
    flagged = html.split('id="flagged-heading"')[1]
    assert over.number in flagged and "Overpaid by 100.00 EUR" in flagged


# Statement import


def upload(client: TestClient, text: str, **form: str) -> Any:
    return client.post(
        "/admin/statements/preview",
        data={"csrf_token": token(client, "/admin/statements/import"), **form},
        files={"file": ("statement.csv", text.encode("cp1252"), "text/csv")},
    )


MAPPING = {
    "date_column": "Fecha",
    "amount_column": "Importe",
    "counterparty_column": "Ordenante",
    "text_column": "Concepto",
    "date_format": "DD/MM/YYYY",
}


def preview(client: TestClient, text: str) -> Any:
    return client.post(
        "/admin/statements/preview",
        data={"csrf_token": token(client, "/admin/statements/import"), "csv_text": text, **MAPPING},
    )


def checkboxes(html: str) -> list[tuple[str, bool]]:
    """(value, checked) of each line's tick box, in order."""
    return [
        (value, bool(checked))
        for value, checked in re.findall(
            r'<input type="checkbox" class="row-check" id="[^"]+" name="accept" value="([^"]+)"'
            r"( checked)?>",
            html,
        )
    ]


def import_form(client: TestClient, html: str, accept: list[str]) -> Any:
    text = unescape(re.search(r'<textarea name="csv_text" hidden>(.*?)</textarea>', html, re.S)[1])  # type: ignore[index]
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    data = {**{k: unescape(v) for k, v in hidden.items()}, "csv_text": text, "accept": accept}
    return client.post("/admin/statements/import", data=data)


def test_uploading_a_statement_first_asks_for_the_columns_of_its_header(
    admin: TestClient,
) -> None:
    text = "Fecha;Importe;Ordenante;Concepto\n01/03/2024;1.500,00;Ama Banda;Factura\n"
    response = upload(admin, text)
    assert response.status_code == 200
    html = unescape(response.text)
    assert "Which column is which?" in html
    for name, column in MAPPING.items():
        assert re.search(
            rf'<select id="{name}" name="{name}".*?<option value="{column}" selected>',
            html,
            re.S,
        ), name
    assert "<td>1.500,00</td>" in html


def test_an_upload_without_a_file_or_text_is_refused_next_to_the_file_field(
    admin: TestClient,
) -> None:
    response = admin.post(
        "/admin/statements/preview",
        data={"csrf_token": token(admin, "/admin/statements/import")},
    )
    assert response.status_code == 422
    assert "Choose the bank's CSV export" in field_error(response.text, "statement_file")


def test_a_statement_with_bad_lines_lists_each_with_its_line_number(admin: TestClient) -> None:
    text = (
        "Fecha;Importe;Ordenante;Concepto\n"
        "01/03/2024;10,00;A;ok\n"
        "2024-03-02;10,00;B;iso date\n"
        "03/03/2024;diez;C;words\n"
    )
    response = preview(admin, text)
    assert response.status_code == 422
    html = unescape(response.text)
    assert "2 lines cannot be read" in html
    assert "Line 3: the date is “2024-03-02”, not DD/MM/YYYY." in html
    assert "Line 4: the amount is “diez”" in html


def test_preview_then_import_records_ticked_lines_once_and_a_reimport_records_nothing(
    admin: TestClient, session: Session, storage: Storage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    by_number, numbered = admitted(session, storage, admin_user, edition, email="n@x.org")
    _, suggested = admitted(session, storage, admin_user, edition, email="s@x.org")
    pay(session, suggested, "100.00", received_on=YESTERDAY, reference="by hand", actor="test")
    day = YESTERDAY.strftime("%d/%m/%Y")
    text = (
        "Fecha;Importe;Ordenante;Concepto\n"
        f"{day};1.500,00;Ama Banda;Pago factura {numbered.number.replace('-', ' ')}\n"
        f"{day};1.400,00;Ayuntamiento;Inscripcion curso\n"
        f"{day};-25,00;Banco;Comision\n"
    )
    page = preview(admin, text)
    assert page.status_code == 200
    html = page.text
    boxes = checkboxes(html)
    assert [checked for _, checked in boxes] == [True, False]
    assert "by invoice number" in html and "by amount only" in html
    assert "Outgoing payment: ignored." in html

    done = import_form(admin, html, [boxes[0][0]])
    assert done.status_code == 200
    assert "1 payment recorded, 0 already recorded before, 2 lines skipped." in unescape(done.text)
    assert f"Ama Banda ({by_number.reference})" in unescape(done.text)
    session.refresh(by_number)
    assert by_number.status == "confirmed"
    assert paid_on(session, suggested) == Decimal("100.00")

    again = preview(admin, text).text
    assert "already recorded" in again
    assert [checked for _, checked in checkboxes(again)] == [False]
    redo = import_form(admin, again, [boxes[0][0]])
    assert "0 payments recorded, 1 already recorded before, 2 lines skipped." in unescape(redo.text)
    assert paid_on(session, numbered) == Decimal("1500.00")
    statement_payments = session.exec(select(Payment).where(Payment.source == "statement"))
    assert len(statement_payments.all()) == 1


def test_an_import_without_the_statement_text_asks_for_the_file_again(admin: TestClient) -> None:
    response = admin.post(
        "/admin/statements/import",
        data={"csrf_token": token(admin, "/admin/statements/import"), **MAPPING},
    )
    assert response.status_code == 422
    assert "upload it again" in field_error(response.text, "statement_file")


def test_with_jobs_left_to_workers_the_import_page_polls_until_a_worker_has_done_it(
    admin: TestClient,
    test_app: FastAPI,
    session: Session,
    storage: Storage,
    admin_user: StaffUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(test_app.state.settings, "jobs_in_process", False)
    edition = open_edition(session)
    _, invoice = admitted(session, storage, admin_user, edition, email="n@x.org")
    day = YESTERDAY.strftime("%d/%m/%Y")
    text = f"Fecha;Importe;Ordenante;Concepto\n{day};1.500,00;Ama Banda;Factura {invoice.number}\n"
    page = preview(admin, text).text
    queued = import_form(admin, page, [value for value, _ in checkboxes(page)])
    assert queued.status_code == 200
    assert "Queued: the 1 line of the statement" in unescape(queued.text)
    job = session.exec(select(BackgroundJob)).one()
    assert f'hx-get="/admin/statements/imports/{job.id}" hx-trigger="every 1s"' in queued.text
    assert not session.exec(select(Payment).where(Payment.source == statements.SOURCE)).all()

    # A worker claims the job and does it (here in the test's session).
    jobs.start_in_process(job.id or 0, job_context(session.get_bind(), storage), session)  # type: ignore[arg-type]
    polled = admin.get(f"/admin/statements/imports/{job.id}", headers={"HX-Request": "true"})
    assert "1 payment recorded, 0 already recorded before, 0 lines skipped." in unescape(
        polled.text
    )
    assert "hx-trigger" not in polled.text and "<h1>" not in polled.text
    assert len(session.exec(select(Payment).where(Payment.source == statements.SOURCE)).all()) == 1
    assert admin.get("/admin/statements/imports/999999").status_code == 404


# Group invoices


def test_the_group_invoice_button_issues_one_invoice_and_a_second_press_issues_none(
    admin: TestClient, session: Session, storage: Storage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    organisation = make_organisation(session, name="Ciudad X", country="MEX")
    group, _ = service.create_group(
        session,
        edition_slug=edition.slug,
        organisation_id=organisation.id or 0,
        contact_email="lead@ciudad.example",
        secret_key=SECRET,
        base_url=BASE,
    )
    for i in range(2):
        member = submit(session, storage, edition, email=f"g{i}@x.org", group_code=group.code)
        service.decide(
            session,
            application_id=member.id or 0,
            decision="admit",
            actor=admin_user,
            storage=storage,
            secret_key=SECRET,
            base_url=BASE,
            seller=SELLER,
        )
    register = f"/admin/invoices?edition={edition.slug}"
    page = admin.get(register).text
    assert group.code in page and "2 admitted members not yet invoiced" in page
    action = f"/admin/groups/{group.code}/invoice?edition={edition.slug}"
    form = {"csrf_token": csrf_from(page), "purchase_order": "PO-77", "back": register}
    response = admin.post(action, data=form, follow_redirects=False)
    assert response.status_code == 303
    (invoice,) = session.exec(select(Invoice).where(Invoice.group_id == group.id)).all()
    assert response.headers["location"] == f"/admin/invoices/{invoice.number}"
    assert invoice.buyer["po_number"] == "PO-77"
    assert len(invoicing.invoice_lines(session, invoice)) == 2
    shown = admin.get(response.headers["location"]).text
    assert f"Invoice {invoice.number} issued to Ciudad X for 2 participants" in flash(shown)

    second = admin.post(action, data=form, follow_redirects=False)
    assert second.status_code == 303
    assert second.headers["location"] == register
    assert "No invoice was issued" in flash(admin.get(register).text)
    assert len(session.exec(select(Invoice).where(Invoice.group_id == group.id)).all()) == 1


def test_the_group_invoice_never_redirects_off_site(admin: TestClient, session: Session) -> None:
    edition = open_edition(session)
    response = admin.post(
        f"/admin/groups/NOPE/invoice?edition={edition.slug}",
        data={"csrf_token": token(admin), "back": "//evil.example/admin/"},
        follow_redirects=False,
    )
    assert response.headers["location"] == f"/admin/invoices?edition={edition.slug}"
