"""Stripe's loose ends: dashboard refunds reach the balance, malformed amounts reach a person,
and checkout keys never repeat."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Application, AuditEntry, CardCheckout, OutboxMessage, Payment, StripeEvent
from app.services.billing import card_payments
from app.services.billing import invoices as invoicing
from tests.routers.billing.test_stripe import (  # noqa: F401 - fixtures
    card_client,
    fake,
    participant,
    started_and_paid,
    storage,
    stripe_settings,
    webhook,
)
from tests.services.billing.test_card_payments import new_id
from tests.stripe_fake import FakeStripe, event, signed


def test_a_refund_made_in_stripes_dashboard_reaches_the_balance_and_tells_the_participant(
    card_client: TestClient,  # noqa: F811
    fake: FakeStripe,  # noqa: F811
    session: Session,
    participant: Any,  # noqa: F811
) -> None:
    paid = started_and_paid(card_client, fake, session, participant)
    webhook(card_client, *signed(event("checkout.session.completed", paid, event_id=new_id())))
    application: Application = participant[0]
    invoice = invoicing.get_invoice(session, participant[2])
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": paid["payment_intent"],
        "amount_refunded": 50000,
        "refunds": {"data": [{"id": "re_dash", "amount": 50000, "status": "succeeded"}]},
    }
    body, headers = signed(event("charge.refunded", charge, event_id=new_id()))
    assert webhook(card_client, body, headers).json()["outcome"] == "refund recorded"
    session.expire_all()
    assert invoicing.amount_paid(session, invoice) == Decimal("1000.00")
    assert invoicing.outstanding(session, invoice) == Decimal("500.00")
    told = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.application_id == application.id,
            OutboxMessage.kind == "payment_voided",
        )
    ).all()
    assert len(told) == 1
    shown = session.exec(select(AuditEntry).where(AuditEntry.action == "payment.uncovered")).one()
    assert shown.entity_id == invoice.number


def test_a_signed_event_with_a_malformed_amount_is_answered_and_kept_for_a_person(
    card_client: TestClient,  # noqa: F811
    fake: FakeStripe,  # noqa: F811
    session: Session,
    participant: Any,  # noqa: F811
) -> None:
    paid = started_and_paid(card_client, fake, session, participant)
    for bad in ("12abc", -5, 1.5, True, "9" * 40):
        broken = {**paid, "amount_total": bad}
        event_id = new_id()
        response = webhook(
            card_client, *signed(event("checkout.session.completed", broken, event_id=event_id))
        )
        assert response.status_code == 200, bad
        assert response.json()["outcome"] == "unmatched"
        stored = session.exec(select(StripeEvent).where(StripeEvent.id == event_id)).one()
        assert stored.processed_at is None
        assert "not an amount in cents" in stored.problem
    assert session.exec(select(Payment)).all() == []
    # The office sees them on the money page, with why.
    from tests.routers.office.test_auth import login

    login(card_client, "admin@example.org", "admin-password-123")
    money = card_client.get("/admin/money").text
    assert "Card events that need a person" in money
    assert "not an amount in cents" in money


def test_checkout_keys_differ_for_the_same_row_id_made_at_another_moment() -> None:
    made = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    first = CardCheckout(
        id=7, invoice_id=1, application_id=1, amount=Decimal("1500.00"), currency="EUR"
    )
    first.created_at = made
    restored = CardCheckout(
        id=7, invoice_id=1, application_id=1, amount=Decimal("1500.00"), currency="EUR"
    )
    restored.created_at = made + timedelta(days=3)
    key = card_payments.checkout_idempotency_key
    assert key(first, 150000) == key(first, 150000)
    assert key(first, 150000) != key(restored, 150000)
