"""Card payments over HTTP: the portal button, Checkout, the return pages and the webhook."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from app.config import Settings
from app.main import create_app
from app.models import Application, CardCheckout, Edition, Payment, StaffUser, StripeEvent
from app.platform.storage import LocalStorage
from app.services.billing import card_payments
from app.services.registrations import applications as service
from app.web.sessions import get_session
from tests.factories import open_edition
from tests.routers.office.test_auth import csrf_from
from tests.services.billing.test_card_payments import (
    admitted,
    cleanup,
    committed_paid_checkout,
    committed_participants,
    count_payments,
    new_id,
    run_together,
)
from tests.services.billing.test_invoicing import SECRET
from tests.stripe_fake import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    FakeStripe,
    event,
    running_fake_stripe,
    signed,
)


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with running_fake_stripe() as running:
        yield running


@pytest.fixture
def stripe_settings(settings: Settings, fake: FakeStripe) -> Settings:
    return settings.model_copy(
        update={
            "stripe_secret_key": SECRET_KEY,
            "stripe_webhook_secret": WEBHOOK_SECRET,
            "stripe_api_base": fake.url,
        }
    )


@pytest.fixture
def card_client(stripe_settings: Settings, session: Session) -> Iterator[TestClient]:
    """The app with Stripe configured (against the fake), on the test's session."""
    app = create_app(stripe_settings)

    def _session(_: Request) -> Iterator[Session]:
        yield session

    app.dependency_overrides[get_session] = _session
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def portal_of(session: Session, application: Application) -> str:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return f"/portal/{service.portal_token(application, edition, secret_key=SECRET)}"


@pytest.fixture
def participant(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> tuple[Application, str, str]:
    """An admitted participant: (application, portal path, invoice number)."""
    application, invoice = admitted(session, storage, admin_user, open_edition(session))
    return application, portal_of(session, application), invoice.number


def pay_by_card(client: TestClient, portal: str, number: str) -> Any:
    token = csrf_from(client.get(portal).text)
    return client.post(
        f"{portal}/pay-by-card",
        data={"invoice": number, "csrf_token": token},
        follow_redirects=False,
    )


def webhook(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post("/stripe/webhook", content=body, headers=headers)


def test_the_portal_offers_pay_by_card_only_when_stripe_is_configured(
    card_client: TestClient, stripe_settings: Settings, session: Session, participant: Any
) -> None:
    _, portal, _ = participant
    assert f'action="{portal}/pay-by-card"' in card_client.get(portal).text
    plain = create_app(stripe_settings.model_copy(update={"stripe_webhook_secret": ""}))
    plain.dependency_overrides[get_session] = card_client.app.dependency_overrides[get_session]  # type: ignore[attr-defined]
    with TestClient(plain, base_url="http://testserver") as without:
        page = without.get(portal)
    assert page.status_code == 200
    assert "pay-by-card" not in page.text
    assert "by bank transfer" in page.text


def test_pay_by_card_redirects_to_checkout_keyed_by_our_row_with_the_invoice_number(
    card_client: TestClient, fake: FakeStripe, session: Session, participant: Any
) -> None:
    _, portal, number = participant
    response = pay_by_card(card_client, portal, number)
    assert response.status_code == 303
    row = session.exec(select(CardCheckout)).one()
    assert response.headers["location"] == f"{fake.url}/pay/{row.stripe_session_id}"
    [sent] = fake.creates
    assert sent.idempotency_key == card_payments.checkout_idempotency_key(row, 150000)
    assert sent.form["metadata[invoice_number]"] == number
    assert sent.form["success_url"].endswith(
        f"{portal}/card-payment/success?session_id={{CHECKOUT_SESSION_ID}}"
    )


def test_a_second_click_reuses_the_same_checkout_session(
    card_client: TestClient, fake: FakeStripe, participant: Any
) -> None:
    _, portal, number = participant
    first = pay_by_card(card_client, portal, number)
    second = pay_by_card(card_client, portal, number)
    assert first.headers["location"] == second.headers["location"]
    assert fake.creates[0].idempotency_key == fake.creates[1].idempotency_key
    assert len(fake.sessions) == 1


def test_pay_by_card_without_the_csrf_token_is_refused(
    card_client: TestClient, fake: FakeStripe, participant: Any
) -> None:
    _, portal, number = participant
    response = card_client.post(
        f"{portal}/pay-by-card", data={"invoice": number}, follow_redirects=False
    )
    assert response.status_code == 403
    assert fake.creates == []


def test_another_applicants_link_cannot_start_a_checkout_for_this_invoice(
    card_client: TestClient,
    fake: FakeStripe,
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    participant: Any,
) -> None:
    application, _, number = participant
    edition = session.get(Edition, application.edition_id)
    other, _ = admitted(session, storage, admin_user, edition, email="other@x.org")
    response = pay_by_card(card_client, portal_of(session, other), number)
    assert response.status_code == 404
    assert fake.creates == []


def test_a_fully_paid_invoice_goes_back_to_the_portal_with_a_message(
    card_client: TestClient, fake: FakeStripe, session: Session, participant: Any
) -> None:
    _, portal, number = participant
    pay_by_card(card_client, portal, number)
    paid = fake.pay(session.exec(select(CardCheckout)).one().stripe_session_id or "")
    webhook(card_client, *signed(event("checkout.session.completed", paid, event_id=new_id())))
    response = pay_by_card(card_client, portal, number)
    assert response.status_code == 303
    assert response.headers["location"] == portal
    assert f"Nothing is left to pay on {number}." in card_client.get(portal).text
    assert len(fake.creates) == 1


def test_with_stripe_not_configured_the_card_routes_answer_404(
    client: TestClient, participant: Any
) -> None:
    _, portal, number = participant
    body, headers = signed(event("customer.created", {"id": "cus_1"}, event_id=new_id()))
    assert webhook(client, body, headers).status_code == 404
    assert pay_by_card(client, portal, number).status_code == 404
    assert client.get(f"{portal}/card-payment/success?session_id=cs_1").status_code == 404
    assert client.get(f"{portal}/card-payment/cancelled").status_code == 404


def started_and_paid(
    client: TestClient,
    fake: FakeStripe,
    session: Session,
    participant: Any,
    *,
    settled: bool = True,
) -> dict[str, Any]:
    _, portal, number = participant
    pay_by_card(client, portal, number)
    row = session.exec(select(CardCheckout)).one()
    return fake.pay(row.stripe_session_id or "", settled=settled)


def test_a_signed_completed_event_confirms_the_participant(
    card_client: TestClient, fake: FakeStripe, session: Session, participant: Any
) -> None:
    paid = started_and_paid(card_client, fake, session, participant)
    response = webhook(
        card_client, *signed(event("checkout.session.completed", paid, event_id=new_id()))
    )
    assert response.status_code == 200
    assert response.json() == {"received": True, "outcome": "recorded"}
    [payment] = session.exec(select(Payment)).all()
    assert (payment.source, payment.external_id) == ("stripe", paid["payment_intent"])
    assert session.get(Application, participant[0].id).status == "confirmed"  # type: ignore[union-attr]


def test_a_webhook_signed_with_another_secret_is_refused_and_nothing_is_stored(
    card_client: TestClient, fake: FakeStripe, session: Session, participant: Any
) -> None:
    paid = started_and_paid(card_client, fake, session, participant)
    body, headers = signed(
        event("checkout.session.completed", paid, event_id=new_id()), secret="whsec_other"
    )
    response = webhook(card_client, body, headers)
    assert response.status_code == 400
    assert "Stripe-Signature" in response.json()["detail"]
    assert session.exec(select(StripeEvent)).all() == []
    assert session.exec(select(Payment)).all() == []


def test_a_webhook_without_a_signature_is_refused(card_client: TestClient) -> None:
    body, _ = signed(event("customer.created", {"id": "cus_1"}, event_id=new_id()))
    response = card_client.post(
        "/stripe/webhook", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_a_signature_older_than_300_seconds_is_refused(
    card_client: TestClient, session: Session
) -> None:
    stale = event("customer.created", {"id": "cus_1"}, event_id=new_id())
    fresh = event("customer.created", {"id": "cus_2"}, event_id=new_id())
    now = int(time.time())
    assert webhook(card_client, *signed(stale, at=now - 301)).status_code == 400
    assert webhook(card_client, *signed(fresh, at=now - 290)).status_code == 200
    assert session.get(StripeEvent, stale["id"]) is None


def test_a_body_changed_after_signing_is_refused(card_client: TestClient) -> None:
    body, headers = signed(event("customer.created", {"id": "cus_1"}, event_id=new_id()))
    tampered = body.replace(b"cus_1", b"cus_2")
    assert webhook(card_client, tampered, headers).status_code == 400


def test_the_same_event_delivered_twice_answers_200_and_records_once(
    card_client: TestClient, fake: FakeStripe, session: Session, participant: Any
) -> None:
    paid = started_and_paid(card_client, fake, session, participant)
    body, headers = signed(event("checkout.session.completed", paid, event_id=new_id()))
    first = webhook(card_client, body, headers)
    again = webhook(card_client, body, headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["outcome"], again.json()["outcome"]) == ("recorded", "duplicate")
    assert len(session.exec(select(Payment)).all()) == 1
    assert len(session.exec(select(StripeEvent)).all()) == 1


def test_an_event_type_we_do_not_handle_answers_200_ignored(card_client: TestClient) -> None:
    body, headers = signed(event("customer.created", {"id": "cus_1"}, event_id=new_id()))
    response = webhook(card_client, body, headers)
    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"


def test_out_of_order_async_success_then_completed_records_one_payment(
    card_client: TestClient, fake: FakeStripe, session: Session, participant: Any
) -> None:
    at_completion = started_and_paid(card_client, fake, session, participant, settled=False)
    settled = fake.settle(at_completion["id"])
    succeeded = signed(
        event("checkout.session.async_payment_succeeded", settled, event_id=new_id())
    )
    completed = signed(event("checkout.session.completed", at_completion, event_id=new_id()))
    assert webhook(card_client, *succeeded).json()["outcome"] == "recorded"
    assert webhook(card_client, *completed).json()["outcome"] == "processing"
    assert len(session.exec(select(Payment)).all()) == 1
    assert session.exec(select(CardCheckout)).one().status == "paid"


def test_a_refund_in_stripe_is_recorded_once(
    card_client: TestClient, fake: FakeStripe, session: Session, participant: Any
) -> None:
    paid = started_and_paid(card_client, fake, session, participant)
    webhook(card_client, *signed(event("checkout.session.completed", paid, event_id=new_id())))
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": paid["payment_intent"],
        "amount_refunded": 150000,
        "refunds": {"data": [{"id": "re_1", "amount": 150000, "status": "succeeded"}]},
    }
    for _ in range(2):
        body, headers = signed(event("charge.refunded", charge, event_id=new_id()))
        assert webhook(card_client, body, headers).status_code == 200
    amounts = sorted(p.amount for p in session.exec(select(Payment)).all())
    assert [str(a) for a in amounts] == ["-1500.00", "1500.00"]


def test_the_success_page_records_the_payment_and_says_the_place_is_guaranteed(
    card_client: TestClient, fake: FakeStripe, session: Session, participant: Any
) -> None:
    _, portal, _ = participant
    paid = started_and_paid(card_client, fake, session, participant)
    response = card_client.get(
        f"{portal}/card-payment/success?session_id={paid['id']}", follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == portal
    assert "Payment received: your place is guaranteed." in card_client.get(portal).text
    assert len(session.exec(select(Payment)).all()) == 1
    later = webhook(
        card_client, *signed(event("checkout.session.completed", paid, event_id=new_id()))
    )
    assert later.json()["outcome"] == "already recorded"
    assert len(session.exec(select(Payment)).all()) == 1


def test_the_success_page_of_a_bank_debit_says_it_is_processing(
    card_client: TestClient, fake: FakeStripe, session: Session, participant: Any
) -> None:
    _, portal, _ = participant
    paid = started_and_paid(card_client, fake, session, participant, settled=False)
    back = card_client.get(f"{portal}/card-payment/success?session_id={paid['id']}")
    assert "Payment is processing" in back.text
    assert session.exec(select(Payment)).all() == []


def test_the_success_page_of_another_applicants_checkout_is_404(
    card_client: TestClient,
    fake: FakeStripe,
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    participant: Any,
) -> None:
    paid = started_and_paid(card_client, fake, session, participant)
    edition = session.get(Edition, participant[0].edition_id)
    other, _ = admitted(session, storage, admin_user, edition, email="other@x.org")
    response = card_client.get(
        f"{portal_of(session, other)}/card-payment/success?session_id={paid['id']}"
    )
    assert response.status_code == 404
    assert session.exec(select(Payment)).all() == []


def test_the_cancel_page_says_nothing_was_charged(
    card_client: TestClient, participant: Any
) -> None:
    _, portal, _ = participant
    response = card_client.get(f"{portal}/card-payment/cancelled", follow_redirects=False)
    assert response.status_code == 303
    assert "Card payment cancelled; nothing was charged." in card_client.get(portal).text


def test_success_page_and_webhook_racing_over_http_record_one_payment(
    engine: Engine, stripe_settings: Settings, fake: FakeStripe, tmp_path: Path
) -> None:
    edition_id, made = committed_participants(engine, LocalStorage(tmp_path), 3)
    event_ids = [new_id() for _ in made]
    client = card_payments.stripe_client(api_key=SECRET_KEY, api_base=fake.url)
    answers: list[int] = []
    try:
        # Each request gets its own session from the app, as in production.
        with TestClient(create_app(stripe_settings), base_url="http://testserver") as http:
            for (application_id, number), event_id in zip(made, event_ids, strict=True):
                paid = committed_paid_checkout(engine, fake, client, application_id, number)
                with Session(engine) as session:
                    application = session.get(Application, application_id)
                    assert application is not None
                    portal = portal_of(session, application)
                body, headers = signed(event("checkout.session.completed", paid, event_id=event_id))
                errors = run_together(
                    lambda body=body, headers=headers: answers.append(
                        webhook(http, body, headers).status_code
                    ),
                    lambda portal=portal, paid=paid: answers.append(
                        http.get(
                            f"{portal}/card-payment/success?session_id={paid['id']}",
                            follow_redirects=False,
                        ).status_code
                    ),
                )
                assert errors == []
                assert count_payments(engine, number) == 1
        assert sorted(answers) == [200] * len(made) + [303] * len(made)
        with Session(engine) as session:
            statuses = {session.get(Application, a).status for a, _ in made}  # type: ignore[union-attr]
        assert statuses == {"confirmed"}
    finally:
        cleanup(engine, edition_id, event_ids)


def test_five_concurrent_deliveries_over_http_record_one_payment(
    engine: Engine, stripe_settings: Settings, fake: FakeStripe, tmp_path: Path
) -> None:
    edition_id, [(application_id, number)] = committed_participants(
        engine, LocalStorage(tmp_path), 1
    )
    event_id = new_id()
    client = card_payments.stripe_client(api_key=SECRET_KEY, api_base=fake.url)
    outcomes: list[str] = []
    try:
        paid = committed_paid_checkout(engine, fake, client, application_id, number)
        body, headers = signed(event("checkout.session.completed", paid, event_id=event_id))
        with TestClient(create_app(stripe_settings), base_url="http://testserver") as http:

            def deliver() -> None:
                response = webhook(http, body, headers)
                assert response.status_code == 200
                outcomes.append(response.json()["outcome"])

            assert run_together(*[deliver] * 5) == []
        assert sorted(outcomes) == ["duplicate"] * 4 + ["recorded"]
        assert count_payments(engine, number) == 1
        with Session(engine) as session:
            assert (
                len(session.exec(select(StripeEvent).where(StripeEvent.id == event_id)).all()) == 1
            )
    finally:
        cleanup(engine, edition_id, [event_id])


def test_a_signature_stamped_more_than_300_seconds_ahead_is_refused(
    card_client: TestClient, session: Session
) -> None:
    ahead = event("customer.created", {"id": "cus_3"}, event_id=new_id())
    near = event("customer.created", {"id": "cus_4"}, event_id=new_id())
    now = int(time.time())
    response = webhook(card_client, *signed(ahead, at=now + 3600))
    assert response.status_code == 400
    assert "Stripe-Signature" in response.json()["detail"]
    # A little clock drift between Stripe and us is no reason to refuse.
    assert webhook(card_client, *signed(near, at=now + 60)).status_code == 200
    assert session.get(StripeEvent, ahead["id"]) is None
