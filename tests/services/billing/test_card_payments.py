"""Card payments: checkouts started once, payments recorded once, events handled once."""

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import stripe
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from app.db import writer_engine
from app.models import (
    Application,
    CardCheckout,
    Edition,
    Invoice,
    Payment,
    StaffUser,
    StripeEvent,
)
from app.platform.storage import LocalStorage
from app.services.billing import card_payments, payments
from app.services.billing import invoices as invoicing
from app.services.errors import Conflict, NotFound
from tests.factories import admit, open_edition, submit
from tests.services.billing.test_invoicing import SELLER
from tests.stripe_fake import SECRET_KEY, FakeStripe, event, refunded_charge, running_fake_stripe

SUCCESS = "http://testserver/portal/t/card-payment/success?session_id={CHECKOUT_SESSION_ID}"
CANCEL = "http://testserver/portal/t/card-payment/cancelled"


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with running_fake_stripe() as running:
        yield running


@pytest.fixture
def stripe_api(fake: FakeStripe) -> stripe.StripeClient:
    return card_payments.stripe_client(api_key=SECRET_KEY, api_base=fake.url)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def admitted(
    session: Session, storage: LocalStorage, admin: StaffUser, edition: Any, **overrides: Any
) -> tuple[Application, Invoice]:
    """An admitted participant and their 1500.00 EUR invoice."""
    application = admit(session, storage, admin, submit(session, storage, edition, **overrides))
    invoice = payments.participant_invoices(session, application.id or 0)[0]
    return application, invoice


def start(
    session: Session, client: stripe.StripeClient, application: Application, invoice: Invoice
) -> str:
    return card_payments.start_checkout(
        session,
        application=application,
        invoice=invoice,
        success_url=SUCCESS,
        cancel_url=CANCEL,
        client=client,
    )


def only_checkout(session: Session) -> CardCheckout:
    return session.exec(select(CardCheckout)).one()


def stripe_payments(session: Session) -> list[Payment]:
    return list(session.exec(select(Payment).where(Payment.source == "stripe")).all())


@pytest.fixture
def participant(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> tuple[Application, Invoice]:
    return admitted(session, storage, admin_user, open_edition(session))


def test_a_checkout_is_for_the_outstanding_amount_keyed_by_our_row_with_the_invoice_number(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    application, invoice = participant
    url = start(session, stripe_api, application, invoice)
    row = only_checkout(session)
    [sent] = fake.creates
    assert sent.idempotency_key == card_payments.checkout_idempotency_key(row, 150000)
    assert sent.form["metadata[invoice_number]"] == invoice.number
    assert sent.form["metadata[application_id]"] == str(application.id)
    assert sent.form["metadata[checkout_id]"] == str(row.id)
    assert sent.form["line_items[0][price_data][unit_amount]"] == "150000"
    assert sent.form["line_items[0][price_data][currency]"] == "eur"
    assert sent.form["line_items[0][price_data][product_data][name]"] == f"Invoice {invoice.number}"
    assert sent.form["success_url"] == SUCCESS
    assert (row.amount, row.status, row.url) == (Decimal("1500.00"), "pending", url)
    assert row.stripe_session_id in fake.sessions
    assert url == fake.sessions[row.stripe_session_id]["url"]


def test_a_second_start_reuses_the_row_and_the_idempotency_key(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    application, invoice = participant
    first = start(session, stripe_api, application, invoice)
    second = start(session, stripe_api, application, invoice)
    assert first == second
    assert len(session.exec(select(CardCheckout)).all()) == 1
    assert [c.idempotency_key for c in fake.creates] == [fake.creates[0].idempotency_key] * 2
    assert len(fake.sessions) == 1


def test_money_arriving_between_clicks_starts_a_session_for_the_rest_and_expires_the_old_one(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    application, invoice = participant
    start(session, stripe_api, application, invoice)
    payments.record_payment(
        session,
        invoice_number=invoice.number,
        amount=Decimal("500.00"),
        received_on=date.today(),
        method="bank_transfer",
        reference="part",
        actor="office",
    )
    start(session, stripe_api, application, invoice)
    old, new = session.exec(select(CardCheckout).order_by(col(CardCheckout.id))).all()
    assert (old.status, new.status, new.amount) == ("expired", "pending", Decimal("1000.00"))
    assert fake.sessions[old.stripe_session_id or ""]["status"] == "expired"
    assert fake.creates[1].form["line_items[0][price_data][unit_amount]"] == "100000"
    assert fake.creates[1].idempotency_key == card_payments.checkout_idempotency_key(new, 100000)


def test_nothing_outstanding_starts_no_checkout(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    application, invoice = participant
    payments.record_payment(
        session,
        invoice_number=invoice.number,
        amount=Decimal("1500.00"),
        received_on=date.today(),
        method="bank_transfer",
        reference="all",
        actor="office",
    )
    with pytest.raises(Conflict, match="Nothing is left to pay"):
        start(session, stripe_api, application, invoice)
    assert fake.creates == []
    assert session.exec(select(CardCheckout)).all() == []


def test_an_invoice_of_another_applicant_cannot_be_checked_out(
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
) -> None:
    edition = open_edition(session)
    _, theirs = admitted(session, storage, admin_user, edition)
    intruder, _ = admitted(session, storage, admin_user, edition, email="other@x.org")
    with pytest.raises(NotFound):
        card_payments.invoice_for_application(session, intruder, theirs.number)
    with pytest.raises(NotFound):
        start(session, stripe_api, intruder, theirs)
    assert fake.creates == []


def test_stripe_out_of_reach_is_reported_as_card_payment_unavailable(
    session: Session, participant: tuple[Application, Invoice]
) -> None:
    with running_fake_stripe() as gone:
        closed = gone.url
    application, invoice = participant
    client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": closed}, max_network_retries=0)
    with pytest.raises(card_payments.CardPaymentUnavailable, match="pay by transfer"):
        start(session, client, application, invoice)


def paid_session(
    fake: FakeStripe, session: Session, stripe_api: stripe.StripeClient, participant: Any
) -> dict[str, Any]:
    application, invoice = participant
    start(session, stripe_api, application, invoice)
    return fake.pay(only_checkout(session).stripe_session_id or "")


def new_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def test_a_paid_completed_checkout_confirms_the_participant_with_one_card_payment(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    paid = paid_session(fake, session, stripe_api, participant)
    event_id = new_id()
    outcome = card_payments.handle_event(
        session, event=event("checkout.session.completed", paid, event_id=event_id)
    )
    assert outcome == "recorded"
    [payment] = stripe_payments(session)
    assert (payment.amount, payment.method, payment.external_id, payment.reference) == (
        Decimal("1500.00"),
        "card",
        paid["payment_intent"],
        paid["id"],
    )
    assert session.get(Application, participant[0].id).status == "confirmed"  # type: ignore[union-attr]
    assert only_checkout(session).status == "paid"
    stored = session.get(StripeEvent, event_id)
    assert stored is not None and stored.processed_at is not None


@pytest.mark.parametrize(
    ("timezone", "hour", "days_from_utc"),
    [
        # 23:30 UTC is 00:30 the next day in Madrid.
        ("Europe/Madrid", 23, 1),
        # 01:00 UTC is 19:00 the day before in Mexico City: the UTC date would be the future.
        ("America/Mexico_City", 1, -1),
    ],
)
def test_card_money_is_dated_on_the_office_day_not_the_servers(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
    timezone: str,
    hour: int,
    days_from_utc: int,
) -> None:
    edition = session.get(Edition, participant[1].edition_id)
    assert edition is not None
    edition.timezone = timezone
    session.add(edition)
    session.flush()
    now = datetime.combine(date.today() - timedelta(days=2), time(hour, 0), tzinfo=UTC)
    office_day = now.date() + timedelta(days=days_from_utc)
    paid = paid_session(fake, session, stripe_api, participant)
    outcome = card_payments.handle_event(
        session, event=event("checkout.session.completed", paid, event_id=new_id()), now=now
    )
    assert outcome == "recorded"
    [payment] = stripe_payments(session)
    assert payment.received_on == office_day
    charge = refunded_charge(str(paid["payment_intent"]), [("re_day", 10000)])
    card_payments.handle_event(
        session, event=event("charge.refunded", charge, event_id=new_id()), now=now
    )
    [refund] = session.exec(select(Payment).where(Payment.source == "stripe_refund")).all()
    assert (refund.amount, refund.received_on) == (Decimal("-100.00"), office_day)


def test_a_redelivered_event_does_nothing(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    completed = event(
        "checkout.session.completed",
        paid_session(fake, session, stripe_api, participant),
        event_id=new_id(),
    )
    assert card_payments.handle_event(session, event=completed) == "recorded"
    assert card_payments.handle_event(session, event=completed) == "duplicate"
    assert len(stripe_payments(session)) == 1
    assert len(session.exec(select(StripeEvent)).all()) == 1


def test_async_success_before_completed_records_one_payment(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    application, invoice = participant
    start(session, stripe_api, application, invoice)
    session_id = only_checkout(session).stripe_session_id or ""
    at_completion = fake.pay(session_id, settled=False)
    settled = fake.settle(session_id)
    succeeded = event("checkout.session.async_payment_succeeded", settled, event_id=new_id())
    completed = event("checkout.session.completed", at_completion, event_id=new_id())
    assert card_payments.handle_event(session, event=succeeded) == "recorded"
    assert card_payments.handle_event(session, event=completed) == "processing"
    assert len(stripe_payments(session)) == 1
    assert only_checkout(session).status == "paid"
    assert session.get(Application, application.id).status == "confirmed"  # type: ignore[union-attr]


def test_a_paid_completed_event_after_async_success_finds_the_payment_recorded(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    paid = paid_session(fake, session, stripe_api, participant)
    succeeded = event("checkout.session.async_payment_succeeded", paid, event_id=new_id())
    completed = event("checkout.session.completed", paid, event_id=new_id())
    assert card_payments.handle_event(session, event=succeeded) == "recorded"
    assert card_payments.handle_event(session, event=completed) == "already recorded"
    assert len(stripe_payments(session)) == 1


def test_a_bank_debit_waits_for_its_outcome_before_confirming(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    application, invoice = participant
    start(session, stripe_api, application, invoice)
    session_id = only_checkout(session).stripe_session_id or ""
    completed = event(
        "checkout.session.completed", fake.pay(session_id, settled=False), event_id=new_id()
    )
    assert card_payments.handle_event(session, event=completed) == "processing"
    assert stripe_payments(session) == []
    assert only_checkout(session).status == "pending"
    assert session.get(Application, application.id).status == "admitted"  # type: ignore[union-attr]
    succeeded = event(
        "checkout.session.async_payment_succeeded", fake.settle(session_id), event_id=new_id()
    )
    assert card_payments.handle_event(session, event=succeeded) == "recorded"
    assert session.get(Application, application.id).status == "confirmed"  # type: ignore[union-attr]


def test_a_failed_bank_debit_marks_the_checkout_failed_and_records_nothing(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    application, invoice = participant
    start(session, stripe_api, application, invoice)
    unpaid = fake.pay(only_checkout(session).stripe_session_id or "", settled=False)
    failed = event("checkout.session.async_payment_failed", unpaid, event_id=new_id())
    assert card_payments.handle_event(session, event=failed) == "failed"
    assert only_checkout(session).status == "failed"
    assert stripe_payments(session) == []


def test_a_late_failure_or_expiry_never_unpays_a_paid_checkout(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    paid = paid_session(fake, session, stripe_api, participant)
    card_payments.handle_event(
        session, event=event("checkout.session.completed", paid, event_id=new_id())
    )
    for kind in ("checkout.session.async_payment_failed", "checkout.session.expired"):
        card_payments.handle_event(session, event=event(kind, paid, event_id=new_id()))
    assert only_checkout(session).status == "paid"


def record_card_payment(
    session: Session, fake: FakeStripe, stripe_api: stripe.StripeClient, participant: Any
) -> str:
    paid = paid_session(fake, session, stripe_api, participant)
    card_payments.handle_event(
        session, event=event("checkout.session.completed", paid, event_id=new_id())
    )
    return str(paid["payment_intent"])


def refunds(session: Session) -> list[Decimal]:
    return sorted(
        p.amount
        for p in session.exec(select(Payment).where(Payment.source == "stripe_refund")).all()
    )


def test_each_listed_refund_is_recorded_once_against_the_paid_invoice(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    intent = record_card_payment(session, fake, stripe_api, participant)
    first = refunded_charge(intent, [("re_1", 20000)])
    both = refunded_charge(intent, [("re_2", 30000), ("re_1", 20000)])
    assert (
        card_payments.handle_event(
            session, event=event("charge.refunded", first, event_id=new_id())
        )
        == "refund recorded"
    )
    card_payments.handle_event(session, event=event("charge.refunded", both, event_id=new_id()))
    assert (
        card_payments.handle_event(session, event=event("charge.refunded", both, event_id=new_id()))
        == "refund already recorded"
    )
    assert refunds(session) == [Decimal("-300.00"), Decimal("-200.00")]
    assert invoicing.amount_paid(session, participant[1]) == Decimal("1000.00")


def test_refunds_without_the_list_are_recorded_from_the_running_total_once(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    intent = record_card_payment(session, fake, stripe_api, participant)
    for total in (20000, 20000, 50000, 20000):
        charge = refunded_charge(intent, None, amount_refunded=total)
        card_payments.handle_event(
            session, event=event("charge.refunded", charge, event_id=new_id())
        )
    assert refunds(session) == [Decimal("-300.00"), Decimal("-200.00")]


def test_a_refund_of_a_payment_never_recorded_here_stays_unprocessed(session: Session) -> None:
    event_id = new_id()
    charge = refunded_charge("pi_unknown", [("re_9", 100)])
    outcome = card_payments.handle_event(
        session, event=event("charge.refunded", charge, event_id=event_id)
    )
    assert outcome == "unmatched"
    stored = session.get(StripeEvent, event_id)
    assert stored is not None and stored.processed_at is None
    assert refunds(session) == []


def test_an_unknown_event_type_is_stored_and_ignored(session: Session) -> None:
    event_id = new_id()
    outcome = card_payments.handle_event(
        session, event=event("customer.created", {"id": "cus_1"}, event_id=event_id)
    )
    assert outcome == "ignored"
    assert session.get(StripeEvent, event_id) is not None


def test_money_that_names_no_invoice_stays_unprocessed_and_a_resend_tries_again(
    session: Session,
) -> None:
    stray = {
        "id": "cs_elsewhere",
        "object": "checkout.session",
        "payment_status": "paid",
        "amount_total": 5000,
        "currency": "eur",
        "metadata": {},
        "payment_intent": "pi_elsewhere",
    }
    completed = event("checkout.session.completed", stray, event_id=new_id())
    assert card_payments.handle_event(session, event=completed) == "unmatched"
    assert card_payments.handle_event(session, event=completed) == "unmatched"
    assert session.exec(select(Payment)).all() == []
    assert len(session.exec(select(StripeEvent)).all()) == 1


def test_a_payment_in_another_currency_than_the_invoice_is_not_recorded(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    paid = {**paid_session(fake, session, stripe_api, participant), "currency": "usd"}
    outcome = card_payments.handle_event(
        session, event=event("checkout.session.completed", paid, event_id=new_id())
    )
    assert outcome == "unmatched"
    assert stripe_payments(session) == []


# The tests below run on several connections at once, so they commit for real and clean up.

_INVOICES = "SELECT id FROM invoice WHERE edition_id = :e"
_CLEANUP = (
    f"DELETE FROM card_checkout WHERE invoice_id IN ({_INVOICES})",
    f"DELETE FROM payment WHERE invoice_id IN ({_INVOICES})",
    f"DELETE FROM invoice_line WHERE invoice_id IN ({_INVOICES})",
    "DELETE FROM invoice WHERE edition_id = :e",
    "DELETE FROM outbox_message WHERE application_id IN "
    "(SELECT id FROM application WHERE edition_id = :e)",
    "DELETE FROM audit_entry WHERE entity = 'application' AND entity_id IN "
    "(SELECT CAST(id AS VARCHAR) FROM application WHERE edition_id = :e)",
    "DELETE FROM audit_entry WHERE entity = 'edition' AND entity_id IN "
    "(SELECT slug FROM edition WHERE id = :e)",
    "DELETE FROM application WHERE edition_id = :e",
    "DELETE FROM course_session WHERE module_id IN (SELECT id FROM module WHERE edition_id = :e)",
    "DELETE FROM module WHERE edition_id = :e",
    "DELETE FROM group_tier WHERE edition_id = :e",
    "DELETE FROM edition WHERE id = :e",
)


def committed_participants(
    engine: Engine, storage: LocalStorage, count: int
) -> tuple[int, list[tuple[int, str]]]:
    """An edition and `count` admitted participants with invoices, committed: (id, [(app, no.)])."""
    with Session(engine) as session:
        edition = open_edition(session, slug=f"stripe-{uuid.uuid4().hex[:8]}", capacity=count)
        made = []
        for i in range(count):
            application = submit(session, storage, edition, email=f"card{i}@x.org")
            application.status = "admitted"
            session.add(application)
            invoice = invoicing.issue_invoice(
                session, application=application, seller=SELLER, actor="t", storage=storage
            )
            session.commit()
            made.append((application.id or 0, invoice.number))
        return edition.id or 0, made


def cleanup(engine: Engine, edition_id: int, event_ids: list[str]) -> None:
    """Remove what a committing test made."""
    with engine.begin() as connection:
        for event_id in event_ids:
            connection.execute(text("DELETE FROM stripe_event WHERE id = :i"), {"i": event_id})
        for statement in _CLEANUP:
            connection.execute(text(statement), {"e": edition_id})


def committed_paid_checkout(
    engine: Engine, fake: FakeStripe, client: stripe.StripeClient, application_id: int, number: str
) -> dict[str, Any]:
    with Session(writer_engine(engine), expire_on_commit=False) as session:
        application = session.get(Application, application_id)
        assert application is not None
        start(session, client, application, invoicing.get_invoice(session, number))
        row = session.exec(
            select(CardCheckout).where(CardCheckout.application_id == application_id)
        ).one()
    return fake.pay(row.stripe_session_id or "")


def run_together(*calls: Any) -> list[BaseException]:
    """Start the calls at one moment on their own threads; the errors they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(calls))

    def run(call: Any) -> None:
        barrier.wait()
        try:
            call()
        except BaseException as exc:  # collected and asserted by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def count_payments(engine: Engine, number: str) -> int:
    with Session(engine) as session:
        invoice = invoicing.get_invoice(session, number)
        return len(payments.payments_for(session, invoice))


def test_five_concurrent_deliveries_of_one_event_record_one_payment(
    engine: Engine, tmp_path: Path, fake: FakeStripe, stripe_api: stripe.StripeClient
) -> None:
    edition_id, [(application_id, number)] = committed_participants(
        engine, LocalStorage(tmp_path), 1
    )
    event_id = new_id()
    outcomes: list[str] = []
    try:
        paid = committed_paid_checkout(engine, fake, stripe_api, application_id, number)
        completed = event("checkout.session.completed", paid, event_id=event_id)

        def deliver() -> None:
            with Session(writer_engine(engine)) as session:
                outcomes.append(card_payments.handle_event(session, event=completed))

        assert run_together(*[deliver] * 5) == []
        assert sorted(outcomes) == ["duplicate"] * 4 + ["recorded"]
        assert count_payments(engine, number) == 1
        with Session(engine) as session:
            assert session.get(Application, application_id).status == "confirmed"  # type: ignore[union-attr]
    finally:
        cleanup(engine, edition_id, [event_id])


def test_webhook_and_success_page_at_once_record_one_payment(
    engine: Engine, tmp_path: Path, fake: FakeStripe, stripe_api: stripe.StripeClient
) -> None:
    edition_id, made = committed_participants(engine, LocalStorage(tmp_path), 4)
    event_ids = [new_id() for _ in made]
    returns: list[str] = []
    try:
        for (application_id, number), event_id in zip(made, event_ids, strict=True):
            paid = committed_paid_checkout(engine, fake, stripe_api, application_id, number)

            def webhook(paid: dict[str, Any] = paid, event_id: str = event_id) -> None:
                completed = event("checkout.session.completed", paid, event_id=event_id)
                with Session(writer_engine(engine)) as session:
                    card_payments.handle_event(session, event=completed)

            def success_page(
                paid: dict[str, Any] = paid, application_id: int = application_id
            ) -> None:
                # A GET request's session: its transactions begin as readers.
                with Session(engine, expire_on_commit=False) as session:
                    application = session.get(Application, application_id)
                    assert application is not None
                    returns.append(
                        card_payments.return_from_checkout(
                            session,
                            application=application,
                            checkout_session_id=paid["id"],
                            client=stripe_api,
                        )
                    )

            assert run_together(webhook, success_page) == []
            assert count_payments(engine, number) == 1
        assert returns == ["guaranteed"] * len(made)
    finally:
        cleanup(engine, edition_id, event_ids)


def test_a_second_caller_waits_for_the_invoice_lock_and_gets_the_same_payment(
    engine: Engine,
    tmp_path: Path,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite writers take the lock at BEGIN: no one can insert in between")
    edition_id, [(application_id, number)] = committed_participants(
        engine, LocalStorage(tmp_path), 1
    )
    try:
        paid = committed_paid_checkout(engine, fake, stripe_api, application_id, number)
        real_held_money = payments.held_money
        others: list[payments.PaymentResult] = []

        def other_caller() -> None:
            with Session(writer_engine(engine), expire_on_commit=False) as other:
                others.append(
                    payments.record_payment(
                        other,
                        invoice_number=number,
                        amount=Decimal("1500.00"),
                        received_on=date.today(),
                        method="card",
                        reference=paid["id"],
                        actor="stripe",
                        source="stripe",
                        external_id=paid["payment_intent"],
                    )
                )

        waiting = threading.Thread(target=other_caller)

        def other_caller_arrives(session: Session, invoice: Invoice) -> Decimal:
            # Runs after record_payment locked the invoice and found no payment.
            monkeypatch.setattr(payments, "held_money", real_held_money)
            waiting.start()
            waiting.join(timeout=0.5)
            assert waiting.is_alive()  # held at the invoice's lock
            return real_held_money(session, invoice)

        monkeypatch.setattr(payments, "held_money", other_caller_arrives)
        with Session(engine, expire_on_commit=False) as session:
            result = card_payments.fulfil_checkout(session, stripe_session=paid)
        waiting.join(timeout=30)
        assert result is not None and not result.duplicate
        assert [r.duplicate for r in others] == [True]
        assert others[0].payment.id == result.payment.id
        assert count_payments(engine, number) == 1
    finally:
        cleanup(engine, edition_id, [])


# Card refunds owed after a cancellation go back through Stripe


def cancelled_card_payer(
    session: Session,
    storage: LocalStorage,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> tuple[str, Any]:
    from tests.services.registrations.test_cancellations import cancel

    intent = record_card_payment(session, fake, stripe_api, participant)
    outcome = cancel(session, storage, participant[0])
    assert outcome.refund is not None and outcome.refund.method == "card"
    return intent, outcome.refund


def test_an_owed_card_refund_is_sent_once_keyed_by_our_row_and_recorded_once(
    session: Session,
    storage: LocalStorage,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    intent, refund = cancelled_card_payer(session, storage, fake, stripe_api, participant)
    [outcome] = card_payments.send_card_refunds(session, client=stripe_api)
    assert outcome.sent and outcome.problem == ""
    [request] = fake.refund_requests
    assert request.form["payment_intent"] == intent
    assert request.form["amount"] == "112500"  # 75 % of 1500.00
    assert request.form["metadata[refund_id]"] == str(refund.id)
    assert request.idempotency_key == f"refund-{refund.id}-{intent}-112500"
    session.refresh(refund)
    assert (refund.status, refund.reference) == ("completed", outcome.stripe_refund_ids[0])
    assert refunds(session) == [Decimal("-1125.00")]
    # Another round sends nothing, and Stripe's charge.refunded for it records nothing more.
    assert card_payments.send_card_refunds(session, client=stripe_api) == []
    charge = refunded_charge(intent, [(outcome.stripe_refund_ids[0], 112500)])
    assert (
        card_payments.handle_event(
            session, event=event("charge.refunded", charge, event_id=new_id())
        )
        == "refund already recorded"
    )
    unlisted = refunded_charge(intent, None, amount_refunded=112500)
    card_payments.handle_event(session, event=event("charge.refunded", unlisted, event_id=new_id()))
    assert refunds(session) == [Decimal("-1125.00")]
    assert len(fake.refunds) == 1


def test_a_card_payment_on_a_paid_invoice_is_owed_back_to_the_card_and_sent_through_stripe(
    session: Session,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    _, invoice = participant
    # The card checkout was paid while a transfer for the same invoice was on its way.
    paid = paid_session(fake, session, stripe_api, participant)
    payments.record_payment(
        session,
        invoice_number=invoice.number,
        amount=Decimal("1500.00"),
        received_on=date.today(),
        method="bank_transfer",
        reference="paid by transfer first",
        actor="admin",
    )
    card_payments.handle_event(
        session, event=event("checkout.session.completed", paid, event_id=new_id())
    )
    intent = str(paid["payment_intent"])
    [owed] = card_payments.card_refunds_owed(session)
    assert (owed.reason, owed.amount, owed.method) == ("overpayment", Decimal("1500.00"), "card")
    [outcome] = card_payments.send_card_refunds(session, client=stripe_api)
    assert outcome.sent
    session.refresh(owed)
    assert owed.status == "completed"
    assert [r["payment_intent"] for r in fake.refunds.values()] == [intent]
    assert invoicing.amount_paid(session, invoice) == Decimal("1500.00")


def test_a_refund_made_in_stripes_dashboard_pays_the_owed_card_refund_of_that_amount(
    session: Session,
    storage: LocalStorage,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    intent, refund = cancelled_card_payer(session, storage, fake, stripe_api, participant)
    charge = refunded_charge(intent, [("re_dashboard", 112500)])
    later = refund.created_at + timedelta(seconds=1)
    card_payments.handle_event(
        session, event=event("charge.refunded", charge, event_id=new_id()), now=later
    )
    session.refresh(refund)
    assert refund.status == "completed"
    assert refunds(session) == [Decimal("-1125.00")]
    assert card_payments.send_card_refunds(session, client=stripe_api) == []
    assert not fake.refunds


def test_the_webhook_first_then_the_sender_still_records_one_refund(
    session: Session,
    storage: LocalStorage,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    intent, refund = cancelled_card_payer(session, storage, fake, stripe_api, participant)
    # Stripe made the refund and told us before our own call returned: the id is the same.
    made = fake.refund(
        {"payment_intent": intent, "amount": "112500"},
        f"refund-{refund.id}-{intent}-112500",
    )[1]
    charge = refunded_charge(intent, [(made["id"], 112500)])
    # Stripe lists the refund with the metadata our call gave it: the sender's, not the
    # dashboard's, so the webhook leaves completing it to the sender.
    charge["refunds"]["data"][0]["metadata"] = {"refund_id": str(refund.id)}
    later = refund.created_at + timedelta(seconds=1)
    card_payments.handle_event(
        session, event=event("charge.refunded", charge, event_id=new_id()), now=later
    )
    [outcome] = card_payments.send_card_refunds(session, client=stripe_api)
    assert outcome.sent and outcome.stripe_refund_ids == [made["id"]]
    assert refunds(session) == [Decimal("-1125.00")]
    assert len(fake.refunds) == 1


def test_a_refund_stripe_refuses_stays_owed_with_the_reason(
    session: Session,
    storage: LocalStorage,
    fake: FakeStripe,
    stripe_api: stripe.StripeClient,
    participant: tuple[Application, Invoice],
) -> None:
    _, refund = cancelled_card_payer(session, storage, fake, stripe_api, participant)
    fake.refuse_refunds = "Charge ch_1 has been disputed."
    [outcome] = card_payments.send_card_refunds(session, client=stripe_api)
    assert not outcome.sent and "disputed" in outcome.problem
    session.refresh(refund)
    assert refund.status == "owed"
    assert refunds(session) == []
    fake.refuse_refunds = ""
    [again] = card_payments.send_card_refunds(session, client=stripe_api)
    assert again.sent
