"""Payments voided and listed, overpayments owed back, amounts typed in the forms."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Application, AuditEntry, Invoice, OutboxMessage, Refund, StaffUser
from app.platform.storage import Storage
from app.services.billing import invoices as invoicing
from app.services.billing import payments
from app.services.billing.refunds import refunds_due
from app.services.office.dashboard import _refunds
from app.services.office.exports import refund_sheet
from tests.factories import open_edition
from tests.routers.billing.test_admin_invoices import admitted, field_error, flash, record, token

YESTERDAY = date.today() - timedelta(days=1)


@pytest.fixture
def storage(client: TestClient) -> Storage:
    found: Storage = client.app.state.storage  # type: ignore[attr-defined]
    return found


@pytest.fixture
def participant(
    session: Session, storage: Storage, admin_user: StaffUser
) -> tuple[Application, Invoice]:
    return admitted(session, storage, admin_user, open_edition(session))


def api_pay(
    client: TestClient, headers: dict[str, str], number: str, amount: str, **extra: object
) -> object:
    body = {
        "amount": amount,
        "received_on": YESTERDAY.isoformat(),
        "method": "bank_transfer",
        "reference": "TRANSFER 1",
        **extra,
    }
    return client.post(f"/api/v1/invoices/{number}/payments", json=body, headers=headers)


# Amounts read one way


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("10.005", "at most two decimals"),
        ("1" * 29, "too large"),
        ("9" * 400, "too large"),
        ("1.500", "at most two decimals"),
    ],
)
def test_the_payment_form_refuses_three_decimals_and_huge_amounts_with_a_message(
    admin_headers: dict[str, str],
    client: TestClient,
    session: Session,
    participant: tuple[Application, Invoice],
    typed: str,
    message: str,
) -> None:
    from tests.routers.office.test_auth import login

    login(client, "admin@example.org", "admin-password-123")
    _, invoice = participant
    response = record(client, invoice, amount=typed[:40])
    assert response.status_code == 422
    assert message in field_error(response.text, "amount")
    assert invoicing.amount_paid(session, invoice) == Decimal("0.00")


@pytest.mark.parametrize(
    ("typed", "paid"),
    [("1500,00", "1500.00"), ("1.500,00", "1500.00"), ("1,500.00", "1500.00"), ("99,5", "99.50")],
)
def test_the_payment_form_reads_a_dot_or_a_comma_as_the_decimal_mark(
    admin_headers: dict[str, str],
    client: TestClient,
    session: Session,
    participant: tuple[Application, Invoice],
    typed: str,
    paid: str,
) -> None:
    from tests.routers.office.test_auth import login

    login(client, "admin@example.org", "admin-password-123")
    _, invoice = participant
    assert record(client, invoice, amount=typed).status_code == 303
    session.expire_all()
    assert invoicing.amount_paid(session, invoice) == Decimal(paid)


def test_the_api_refuses_the_same_amounts_and_never_answers_500(
    client: TestClient, admin_headers: dict[str, str], participant: tuple[Application, Invoice]
) -> None:
    _, invoice = participant
    for amount in ("10.005", "1" * 29, "9" * 400, "1e400"):
        response = api_pay(client, admin_headers, invoice.number, amount)
        assert response.status_code == 422, amount  # type: ignore[attr-defined]
    assert api_pay(client, admin_headers, invoice.number, "10,50").status_code == 201  # type: ignore[attr-defined]


# The same transfer twice


def test_the_same_transfer_twice_is_refused_unless_confirmed(
    client: TestClient,
    admin_headers: dict[str, str],
    session: Session,
    participant: tuple[Application, Invoice],
) -> None:
    _, invoice = participant
    assert api_pay(client, admin_headers, invoice.number, "500.00").status_code == 201  # type: ignore[attr-defined]
    again = api_pay(client, admin_headers, invoice.number, "500.00")
    assert again.status_code == 409  # type: ignore[attr-defined]
    assert "confirm" in again.json()["detail"]  # type: ignore[attr-defined]
    kept = api_pay(client, admin_headers, invoice.number, "500.00", confirm_duplicate=True)
    assert kept.status_code == 201  # type: ignore[attr-defined]
    assert invoicing.amount_paid(session, invoice) == Decimal("1000.00")


def test_the_payment_form_asks_to_confirm_the_same_transfer_twice(
    admin_headers: dict[str, str],
    client: TestClient,
    session: Session,
    participant: tuple[Application, Invoice],
) -> None:
    from tests.routers.office.test_auth import login

    login(client, "admin@example.org", "admin-password-123")
    _, invoice = participant
    assert record(client, invoice, amount="200", reference="REF 9").status_code == 303
    twice = record(client, invoice, amount="200", reference="ref  9")
    assert twice.status_code == 409
    assert 'name="confirm_duplicate"' in twice.text
    kept = record(client, invoice, amount="200", reference="REF 9", confirm_duplicate="yes")
    assert kept.status_code == 303
    session.expire_all()
    assert invoicing.amount_paid(session, invoice) == Decimal("400.00")


# Void, never delete


def test_a_voided_payment_stays_listed_and_leaves_every_balance(
    client: TestClient,
    admin_headers: dict[str, str],
    session: Session,
    participant: tuple[Application, Invoice],
) -> None:
    application, invoice = participant
    paid = api_pay(client, admin_headers, invoice.number, "1500.00").json()  # type: ignore[attr-defined]
    session.refresh(application)
    assert application.status == "confirmed"
    payment_id = paid["payment"]["id"]
    refused = client.post(
        f"/api/v1/payments/{payment_id}/void", json={"reason": ""}, headers=admin_headers
    )
    assert refused.status_code == 422
    voided = client.post(
        f"/api/v1/payments/{payment_id}/void",
        json={"reason": "Entered on the wrong invoice"},
        headers=admin_headers,
    )
    assert voided.status_code == 200, voided.text
    assert voided.json()["outstanding"] == "1500.00"
    assert voided.json()["uncovered"] == [application.reference]
    listed = client.get(f"/api/v1/invoices/{invoice.number}/payments", headers=admin_headers)
    assert [(p["id"], p["voided"], p["amount"]) for p in listed.json()] == [
        (payment_id, True, "1500.00")
    ]
    assert "Entered on the wrong invoice" in listed.json()[0]["note"]
    assert invoicing.amount_paid(session, invoice) == Decimal("0.00")
    assert invoicing.outstanding(session, invoice) == Decimal("1500.00")
    from app.models import Edition
    from app.services.office.exports import PaymentFilters, payment_sheet

    edition = session.get(Edition, invoice.edition_id)
    assert edition is not None
    rows = payment_sheet(session, edition, PaymentFilters()).rows
    assert [(row[3], row[5]) for row in rows] == [(Decimal("1500.00"), "voided")]
    received = payment_sheet(session, edition, PaymentFilters(kind="received")).rows
    assert received == []
    assert payments.participant_balance(session, application.id or 0).paid == Decimal("0.00")
    told = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.application_id == application.id, OutboxMessage.kind == "payment_voided"
        )
    ).all()
    assert len(told) == 1
    audit = session.exec(select(AuditEntry).where(AuditEntry.action == "payment.voided")).one()
    assert audit.entity_id == invoice.number
    again = client.post(
        f"/api/v1/payments/{payment_id}/void", json={"reason": "twice"}, headers=admin_headers
    )
    assert again.status_code == 409


def test_the_void_button_on_the_invoice_page_voids_and_says_who_is_no_longer_covered(
    admin_headers: dict[str, str],
    client: TestClient,
    session: Session,
    participant: tuple[Application, Invoice],
) -> None:
    from tests.routers.office.test_auth import login

    login(client, "admin@example.org", "admin-password-123")
    application, invoice = participant
    record(client, invoice, amount="1500.00", reference="bank")
    page = client.get(f"/admin/invoices/{invoice.number}").text
    payment = payments.payments_for(session, invoice)[0]
    assert f'action="/admin/payments/{payment.id}/void"' in page
    response = client.post(
        f"/admin/payments/{payment.id}/void",
        data={"csrf_token": token(client, f"/admin/invoices/{invoice.number}"), "reason": "typo"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    message = flash(client.get(response.headers["location"]).text)
    assert f"Payment {payment.id} is voided" in message
    assert application.reference in message
    session.expire_all()
    assert invoicing.amount_paid(session, invoice) == Decimal("0.00")


# Every euro owed back is a refund


def test_an_overpayment_of_100_is_owed_back_on_every_surface(
    client: TestClient,
    admin_headers: dict[str, str],
    session: Session,
    participant: tuple[Application, Invoice],
) -> None:
    application, invoice = participant
    assert api_pay(client, admin_headers, invoice.number, "1600.00").status_code == 201  # type: ignore[attr-defined]
    listed = client.get("/api/v1/refunds?status=owed", headers=admin_headers).json()
    assert [(r["reason"], r["amount"], r["invoice_number"], r["payee"]) for r in listed] == [
        ("overpayment", "100.00", invoice.number, {"kind": "person", "name": application.full_name})
    ]
    refund = session.exec(select(Refund)).one()
    assert refund.due_by == date.today() + timedelta(days=30)
    due = refunds_due(session)
    assert [r.refund.id for r in due.later] == [refund.id]
    from app.models import Edition

    edition = session.get(Edition, invoice.edition_id)
    assert edition is not None
    assert _refunds(session, edition, date.today()).owed_amount == Decimal("100.00")
    sheet = refund_sheet(session, edition, "owed", today=date.today())
    assert [(row[1], row[3]) for row in sheet.rows] == [(application.full_name, Decimal("100.00"))]
    # Paid back by bank transfer: no longer owed, and the invoice holds exactly its total.
    done = client.post(
        f"/api/v1/refunds/{refund.id}/complete",
        json={"completed_on": date.today().isoformat(), "reference": "SEPA 77"},
        headers=admin_headers,
    )
    assert done.status_code == 200, done.text
    assert client.get("/api/v1/refunds?status=owed", headers=admin_headers).json() == []
    paid_back = client.get("/api/v1/refunds?status=paid", headers=admin_headers).json()
    assert [r["amount"] for r in paid_back] == ["100.00"]
    assert invoicing.amount_paid(session, invoice) == Decimal("1500.00")


def test_the_refunds_page_takes_the_overpayers_account_and_can_keep_the_money_with_a_reason(
    client: TestClient,
    admin_headers: dict[str, str],
    session: Session,
    participant: tuple[Application, Invoice],
) -> None:
    from tests.routers.office.test_auth import login

    _, invoice = participant
    api_pay(client, admin_headers, invoice.number, "1600.00")
    refund = session.exec(select(Refund)).one()
    login(client, "admin@example.org", "admin-password-123")
    page = client.get("/admin/refunds").text
    assert f'action="/admin/refunds/{refund.id}/bank-details"' in page
    assert "overpaid" in page
    saved = client.post(
        f"/admin/refunds/{refund.id}/bank-details",
        data={
            "csrf_token": token(client, "/admin/refunds"),
            "account_holder": "Ama Banda",
            "iban": "ES712100041801020005",
        },
        follow_redirects=False,
    )
    assert "IBAN is not valid" in flash(client.get(saved.headers["location"]).text)
    kept = client.post(
        f"/admin/refunds/{refund.id}/keep",
        data={"csrf_token": token(client, "/admin/refunds"), "reason": "Paid towards 2027"},
        follow_redirects=False,
    )
    assert "is kept" in flash(client.get(kept.headers["location"]).text)
    session.refresh(refund)
    assert (refund.status, refund.kept_reason) == ("kept", "Paid towards 2027")
    assert client.get("/api/v1/refunds?status=owed", headers=admin_headers).json() == []
    from app.models import Edition
    from app.services.billing.money_overview import edition_money

    edition = session.get(Edition, invoice.edition_id)
    assert edition is not None
    assert edition_money(session, edition).refunds_owed == Decimal("0.00")
