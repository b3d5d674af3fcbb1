"""Card payments through Stripe Checkout: started from the portal, fulfilled exactly once."""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import stripe
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.db import SQLITE_IMMEDIATE
from app.models import (
    Application,
    CardCheckout,
    CheckoutStatus,
    Invoice,
    Payment,
    PaymentMethod,
    Refund,
    RefundStatus,
    StripeEvent,
)
from app.money import CENT, ZERO, as_money
from app.platform.audit import record_change
from app.services.billing.invoices import (
    amount_paid,
    counted_payments,
    get_invoice,
    invoice_lines,
    outstanding,
)
from app.services.billing.payments import (
    CONFIRMED,
    PaymentResult,
    lock_invoice,
    office_day,
    participant_invoices,
    record_payment,
    tell_uncovered,
)
from app.services.billing.refunds import RefundAlreadyCompleted, card_refunds_owed, refund_by_card
from app.services.errors import Conflict, DomainError, InvalidInput, NotFound

log = logging.getLogger("diplomat.stripe")

ACTOR = "stripe"
PAYMENT_SOURCE = "stripe"
REFUND_SOURCE = "stripe_refund"
WEBHOOK_TOLERANCE_SECONDS = 300


def signed_in_the_future(signature_header: str | None, *, now: float) -> bool:
    """Whether a Stripe-Signature header is stamped beyond the tolerance ahead of `now`.

    The library refuses only stamps too far in the past; one far ahead would let a captured
    signature be replayed for as long as it is ahead.
    """
    for part in (signature_header or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            return int(value) > now + WEBHOOK_TOLERANCE_SECONDS
    return False


# Stripe counts these in whole units, not cents; our amounts would be off a hundredfold.
ZERO_DECIMAL = "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF"
ZERO_DECIMAL_CURRENCIES = frozenset(ZERO_DECIMAL.split())
# Refunds that never paid anything out.
REFUND_NOT_PAID_OUT = ("failed", "canceled")

ReturnOutcome = Literal["guaranteed", "received", "processing"]


class CardPaymentUnavailable(DomainError):
    """Stripe could not be reached or refused the request; the applicant can try again."""


def stripe_client(*, api_key: str, api_base: str = "") -> stripe.StripeClient:
    """A client for Stripe's API, or for another address (tests point it at a local fake)."""
    if api_base:
        return stripe.StripeClient(
            api_key, base_addresses={"api": api_base.rstrip("/")}, max_network_retries=2
        )
    return stripe.StripeClient(api_key, max_network_retries=2)


def to_cents(amount: Decimal) -> int:
    """An amount as Stripe counts it (two-decimal currencies)."""
    return int((amount * 100).to_integral_value())


def stripe_cents(value: Any, what: str) -> int:
    """An amount in cents as a signed Stripe event gives it; anything else is refused.

    The signature proves who sent the event, not that every field is what we expect: a
    malformed amount is a DomainError, so the event is kept for a person and answered (Stripe
    retrying it would not mend it), never a 500.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(f"Stripe sent {what} {value!r}, not an amount in cents.")
    text = str(value).strip()
    if not text.isdigit() or len(text) > 11:
        raise InvalidInput(f"Stripe sent {what} {value!r}, not an amount in cents.")
    return int(text)


def from_cents(cents: int) -> Decimal:
    """Stripe's integer cents as a Decimal amount."""
    return (Decimal(cents) / 100).quantize(CENT)


def _object_id(value: Any) -> str:
    """The id of a Stripe reference, which is an id or, when expanded, the object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""


def _metadata(stripe_session: dict[str, Any]) -> dict[str, Any]:
    metadata = stripe_session.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _lock_invoice(session: Session, invoice: Invoice) -> None:
    """Serialise checkouts of one invoice, so two clicks share a row (SQLite holds the lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa_select(col(Invoice.id)).where(col(Invoice.id) == invoice.id).with_for_update()
        )


def invoice_for_application(session: Session, application: Application, number: str) -> Invoice:
    """One of the invoices with a line for this application; NotFound for any other."""
    for invoice in participant_invoices(session, application.id or 0):
        if invoice.number == number:
            return invoice
    raise NotFound("There is no such invoice for this application.")


def start_checkout(
    session: Session,
    *,
    application: Application,
    invoice: Invoice,
    success_url: str,
    cancel_url: str,
    client: stripe.StripeClient,
) -> str:
    """The Stripe Checkout URL for what is outstanding on one of the applicant's invoices."""
    if not any(line.application_id == application.id for line in invoice_lines(session, invoice)):
        raise NotFound("There is no such invoice for this application.")
    if invoice.currency.upper() in ZERO_DECIMAL_CURRENCIES:
        raise Conflict(f"Card payments in {invoice.currency} are not offered; pay by transfer.")
    _lock_invoice(session, invoice)
    due = outstanding(session, invoice)
    if due <= ZERO:
        raise Conflict(f"Nothing is left to pay on {invoice.number}.")
    row = session.exec(
        select(CardCheckout)
        .where(
            CardCheckout.invoice_id == invoice.id,
            CardCheckout.application_id == application.id,
            CardCheckout.status == CheckoutStatus.pending.value,
        )
        .order_by(col(CardCheckout.id).desc())
    ).first()
    superseded = None
    if row is not None and row.amount != due:
        # What is due changed (a transfer arrived): the old session must not take the old sum.
        row.status = CheckoutStatus.expired.value
        session.add(row)
        superseded, row = row.stripe_session_id, None
    if row is None:
        row = CardCheckout(
            invoice_id=invoice.id or 0,
            application_id=application.id or 0,
            amount=due,
            currency=invoice.currency,
        )
        session.add(row)
    # Our row exists before Stripe is called: its id keys the request, so a retry, a double
    # click or a lost response gets the same Checkout Session back instead of a second one.
    session.commit()
    if superseded:
        _expire_session(client, superseded)
    return _create_session(
        session,
        row=row,
        application=application,
        invoice=invoice,
        success_url=success_url,
        cancel_url=cancel_url,
        client=client,
    )


def _expire_session(client: stripe.StripeClient, stripe_session_id: str) -> None:
    try:
        client.v1.checkout.sessions.expire(stripe_session_id)
    except stripe.InvalidRequestError:
        # Expired already, or completed: a completed one's payment arrives by webhook and an
        # overpayment is flagged there.
        log.info("checkout session %s could not be expired", stripe_session_id)
    except stripe.StripeError as exc:
        raise CardPaymentUnavailable(
            "Card payment is unavailable just now; try again in a few minutes or pay by transfer."
        ) from exc


def checkout_idempotency_key(row: CardCheckout, cents: int) -> str:
    """The key of one checkout row's session at Stripe: the same on every retry of the row.

    The row's id alone repeats across installations sharing a Stripe account and after a
    database is restored from a backup (Stripe would answer the new checkout with the old
    one's session for 24 hours); the instant the row was made, to the microsecond, does not.
    """
    made = row.created_at.astimezone(UTC)
    return f"diplomat-checkout-{row.id}-{cents}-{made:%Y%m%dT%H%M%S%f}"


def _create_session(
    session: Session,
    *,
    row: CardCheckout,
    application: Application,
    invoice: Invoice,
    success_url: str,
    cancel_url: str,
    client: stripe.StripeClient,
    retry: bool = True,
) -> str:
    cents = to_cents(row.amount)
    metadata = {
        "invoice_number": invoice.number,
        "application_id": str(application.id),
        "checkout_id": str(row.id),
    }
    try:
        created = client.v1.checkout.sessions.create(
            {
                "mode": "payment",
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": row.currency.lower(),
                            "unit_amount": cents,
                            "product_data": {"name": f"Invoice {invoice.number}"},
                        },
                    }
                ],
                "metadata": metadata,
                "payment_intent_data": {"metadata": metadata},
                "client_reference_id": str(row.id),
                "customer_email": application.email,
                "success_url": success_url,
                "cancel_url": cancel_url,
            },
            {"idempotency_key": checkout_idempotency_key(row, cents)},
        )
    except stripe.IdempotencyError:
        if not retry:
            raise
        # The same key came with other parameters (the portal link was renewed since): this
        # row's session stays as it was and a new row starts afresh.
        row.status = CheckoutStatus.expired.value
        session.add(row)
        fresh = CardCheckout(
            invoice_id=row.invoice_id,
            application_id=row.application_id,
            amount=row.amount,
            currency=row.currency,
        )
        session.add(fresh)
        session.commit()
        return _create_session(
            session,
            row=fresh,
            application=application,
            invoice=invoice,
            success_url=success_url,
            cancel_url=cancel_url,
            client=client,
            retry=False,
        )
    except stripe.StripeError as exc:
        log.warning("stripe refused checkout %s: %s", row.id, exc)
        raise CardPaymentUnavailable(
            "Card payment is unavailable just now; try again in a few minutes or pay by transfer."
        ) from exc
    url = str(created.url)
    row.stripe_session_id = str(created.id)
    row.url = url
    session.add(row)
    session.commit()
    return url


def _checkout_for(session: Session, stripe_session: dict[str, Any]) -> CardCheckout | None:
    """Our row of a Checkout Session: by its session id, else by the id in its metadata."""
    session_id = _object_id(stripe_session)
    if session_id:
        row = session.exec(
            select(CardCheckout).where(CardCheckout.stripe_session_id == session_id)
        ).first()
        if row is not None:
            return row
    checkout_id = str(_metadata(stripe_session).get("checkout_id", ""))
    return session.get(CardCheckout, int(checkout_id)) if checkout_id.isdigit() else None


def _invoice_paid_by(
    session: Session, row: CardCheckout | None, stripe_session: dict[str, Any]
) -> Invoice:
    if row is not None:
        invoice = session.get(Invoice, row.invoice_id)
        assert invoice is not None
        return invoice
    number = _metadata(stripe_session).get("invoice_number")
    if not isinstance(number, str) or not number:
        raise NotFound(
            f"Checkout {_object_id(stripe_session)} is paid but names no invoice: match it by hand."
        )
    return get_invoice(session, number)


def fulfil_checkout(
    session: Session, *, stripe_session: dict[str, Any], now: datetime | None = None
) -> PaymentResult | None:
    """Record a paid Checkout Session's payment once, whoever asks first; None until it is paid.

    The webhook and the success page both call this, possibly at the same moment: the unique
    external id lets one insert win and the other read the winner's payment.
    """
    if stripe_session.get("payment_status") != "paid":
        return None
    now = now or utcnow()
    row = _checkout_for(session, stripe_session)
    invoice = _invoice_paid_by(session, row, stripe_session)
    currency = str(stripe_session.get("currency") or "").upper()
    if currency != invoice.currency.upper():
        raise Conflict(
            f"Checkout {_object_id(stripe_session)} was paid in {currency}, "
            f"but {invoice.number} is in {invoice.currency}: match it by hand."
        )
    external_id = _object_id(stripe_session.get("payment_intent")) or _object_id(stripe_session)
    if row is not None:
        row.status = CheckoutStatus.paid.value
        session.add(row)
    try:
        result = record_payment(
            session,
            invoice_number=invoice.number,
            amount=from_cents(stripe_cents(stripe_session.get("amount_total"), "amount_total")),
            received_on=office_day(session, invoice.edition_id, now),
            method=PaymentMethod.card.value,
            reference=_object_id(stripe_session),
            actor=ACTOR,
            source=PAYMENT_SOURCE,
            external_id=external_id,
            now=now,
        )
    except IntegrityError:
        # The other caller inserted the same payment between our check and our insert.
        session.rollback()
        existing = session.exec(select(Payment).where(Payment.external_id == external_id)).first()
        if existing is None:
            raise
        paid = amount_paid(session, invoice)
        return PaymentResult(existing, paid, outstanding(session, invoice), [], [], duplicate=True)
    # A payment found already is returned uncommitted: keep the checkout's status all the same.
    session.commit()
    return result


def return_from_checkout(
    session: Session,
    *,
    application: Application,
    checkout_session_id: str,
    client: stripe.StripeClient,
) -> ReturnOutcome:
    """What the success page tells the applicant, after fulfilling the session if it is paid."""
    # No transaction stays open while Stripe is asked.
    session.commit()
    try:
        found = client.v1.checkout.sessions.retrieve(checkout_session_id)
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise NotFound("There is no such card payment.") from exc
        raise CardPaymentUnavailable(
            "We could not check your card payment just now; it shows here once Stripe confirms it."
        ) from exc
    except stripe.StripeError as exc:
        raise CardPaymentUnavailable(
            "We could not check your card payment just now; it shows here once Stripe confirms it."
        ) from exc
    stripe_session = found.to_dict()
    if str(_metadata(stripe_session).get("application_id")) != str(application.id):
        raise NotFound("There is no such card payment.")
    if stripe_session.get("payment_status") != "paid":
        return "processing"
    # A GET request's transactions begin as readers; on SQLite a reader that writes after
    # another writer committed (the webhook, racing this page) fails, so begin as a writer.
    session.connection(execution_options={SQLITE_IMMEDIATE: True})
    fulfil_checkout(session, stripe_session=stripe_session)
    session.refresh(application)
    return "guaranteed" if application.status in CONFIRMED else "received"


def unprocessed_events(session: Session) -> list[StripeEvent]:
    """Signed card events that could not be matched to our records, newest first: a person
    looks at each in Stripe's dashboard and records the money by hand or asks for a resend."""
    return list(
        session.exec(
            select(StripeEvent)
            .where(col(StripeEvent.processed_at).is_(None))
            .order_by(col(StripeEvent.received_at).desc())
            .limit(50)
        ).all()
    )


def _claim_event(session: Session, *, event_id: str, kind: str, now: datetime) -> bool:
    """Store the event as processed, in the transaction that processes it; False if it was.

    Marked processed from the start: fulfilment commits part way, and a concurrent delivery
    must not find the row looking unprocessed in between.
    """
    session.add(StripeEvent(id=event_id, type=kind[:100], received_at=now, processed_at=now))
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        stored = session.get(StripeEvent, event_id, with_for_update=True)
        # One left unprocessed may be sent again (Stripe's "resend") once a person fixed it.
        if stored is None or stored.processed_at is not None:
            return False
        stored.processed_at = now
        session.add(stored)
    return True


def _finish_event(
    session: Session,
    *,
    event_id: str,
    kind: str,
    now: datetime,
    processed: bool,
    problem: str = "",
) -> bool:
    """Commit the event's row; False when a concurrent delivery stored it first."""
    row = session.get(StripeEvent, event_id)
    if row is None:
        # A rollback on the way (a lost race inside fulfilment) took our insert with it.
        row = StripeEvent(id=event_id, type=kind[:100], received_at=now)
    row.processed_at = now if processed else None
    row.problem = problem[:500]
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def _settle_checkout(session: Session, stripe_session: dict[str, Any], status: str) -> None:
    """Mark a pending checkout failed or expired; a paid one stays paid whatever arrives late."""
    row = _checkout_for(session, stripe_session)
    if row is not None and row.status == CheckoutStatus.pending.value:
        row.status = status
        session.add(row)


def _refunds_of(
    session: Session, charge: dict[str, Any], payment_intent: str
) -> list[tuple[str, int, bool]]:
    """(external id, cents, whether we may have sent it) of each refund on a charge.

    A refund we sent names our refund row in its metadata; one made in Stripe's dashboard does
    not. Without the refund list, who made it is unknown.
    """
    refunds = charge.get("refunds")
    listed = refunds.get("data") if isinstance(refunds, dict) else None
    if isinstance(listed, list):
        return [
            (
                _object_id(refund),
                stripe_cents(refund.get("amount"), "a refund amount"),
                _sent_by_us(refund),
            )
            for refund in listed
            if isinstance(refund, dict) and refund.get("status") not in REFUND_NOT_PAID_OUT
        ]
    # API versions since 2022-11-15 leave the refund list out of the charge: record what the
    # running total adds to what is recorded already, keyed by that total.
    refunded = stripe_cents(charge.get("amount_refunded") or 0, "amount_refunded")
    recorded = session.exec(
        select(func.coalesce(func.sum(Payment.amount), 0)).where(
            Payment.source == REFUND_SOURCE,
            Payment.reference == payment_intent,
            counted_payments(),
        )
    ).one()
    already = -to_cents(Decimal(recorded))
    return [(f"{_object_id(charge)}:refunded:{refunded}", refunded - already, True)]


def _sent_by_us(refund: dict[str, Any]) -> bool:
    metadata = refund.get("metadata")
    return isinstance(metadata, dict) and bool(metadata.get("refund_id"))


def _record_refunds(session: Session, *, charge: dict[str, Any], now: datetime) -> str:
    payment_intent = _object_id(charge.get("payment_intent"))
    paid = (
        session.exec(select(Payment).where(Payment.external_id == payment_intent)).first()
        if payment_intent
        else None
    )
    if paid is None:
        raise NotFound(
            f"Charge {_object_id(charge)} was refunded, but its payment is not recorded here."
        )
    # Serialised with payments and cancellations on the invoice: the balance is read committed.
    invoice = lock_invoice(session, paid.invoice_id)
    recorded = 0
    amounts: list[Decimal] = []
    for external_id, cents, ours in _refunds_of(session, charge, payment_intent):
        if not external_id or cents <= 0:
            continue
        if session.exec(select(Payment.id).where(Payment.external_id == external_id)).first():
            continue
        refund = Payment(
            invoice_id=paid.invoice_id,
            amount=-from_cents(cents),
            received_on=office_day(session, invoice.edition_id, now),
            method=PaymentMethod.card.value,
            reference=payment_intent,
            source=REFUND_SOURCE,
            external_id=external_id,
            recorded_by=ACTOR,
            recorded_at=now,
        )
        try:
            with session.begin_nested():
                session.add(refund)
        except IntegrityError:
            continue  # another event listing the same refund recorded it a moment ago
        recorded += 1
        if not ours:
            amounts.append(-refund.amount)
        record_change(
            session,
            actor=ACTOR,
            action="payment.refunded",
            entity="invoice",
            entity_id=invoice.number,
            after={"amount": f"{refund.amount:.2f}", "refund": external_id},
        )
    if recorded:
        _settle_owed_card_refunds(session, invoice=invoice, amounts=amounts, now=now)
        # A refund made in Stripe's own dashboard may leave a confirmed seat unpaid.
        uncovered = tell_uncovered(session, invoice=invoice)
        if uncovered:
            record_change(
                session,
                actor=ACTOR,
                action="payment.uncovered",
                entity="invoice",
                entity_id=invoice.number,
                after={
                    "uncovered": uncovered,
                    "outstanding": f"{outstanding(session, invoice):.2f}",
                },
            )
    return "refund recorded" if recorded else "refund already recorded"


def _settle_owed_card_refunds(
    session: Session, *, invoice: Invoice, amounts: list[Decimal], now: datetime
) -> None:
    """A refund made in Stripe's dashboard pays an owed card refund of the same amount."""
    for amount in amounts:
        owed = next(
            (
                r
                for r in card_refunds_owed(session)
                if r.invoice_id == invoice.id and r.amount == amount
            ),
            None,
        )
        if owed is None:
            continue
        # The negative payment is recorded already: only the refund's status moves.
        owed.status = RefundStatus.completed.value
        owed.completed_on = office_day(session, invoice.edition_id, now)
        owed.completed_by = ACTOR
        owed.reference = "paid in Stripe's dashboard"
        session.add(owed)
        record_change(
            session,
            actor=ACTOR,
            action="refund.completed",
            entity="refund",
            entity_id=owed.id or 0,
            after={"amount": f"{amount:.2f}", "invoice": invoice.number, "method": "card"},
        )


def _dispatch(session: Session, *, kind: str, obj: dict[str, Any], now: datetime) -> str:
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        result = fulfil_checkout(session, stripe_session=obj, now=now)
        if result is None:
            # Completed with a method that settles later (a bank debit): wait for the outcome.
            return "processing"
        return "already recorded" if result.duplicate else "recorded"
    if kind == "checkout.session.async_payment_failed":
        _settle_checkout(session, obj, CheckoutStatus.failed.value)
        return "failed"
    if kind == "checkout.session.expired":
        _settle_checkout(session, obj, CheckoutStatus.expired.value)
        return "expired"
    if kind == "charge.refunded":
        return _record_refunds(session, charge=obj, now=now)
    return "ignored"


def handle_event(session: Session, *, event: dict[str, Any], now: datetime | None = None) -> str:
    """Act once on a verified webhook event; what happened, in a word or two.

    The event's row is inserted first, in the same transaction as what it causes: a
    redelivery finds it and does nothing, and a crash leaves no row, so Stripe's retry
    processes it again.
    """
    now = now or utcnow()
    event_id = str(event.get("id") or "")
    kind = str(event.get("type") or "")
    if not event_id:
        return "ignored"
    if not _claim_event(session, event_id=event_id, kind=kind, now=now):
        return "duplicate"
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    try:
        outcome = _dispatch(session, kind=kind, obj=obj if isinstance(obj, dict) else {}, now=now)
    except DomainError as exc:
        # Money we cannot match stays on record, unprocessed, for a person: Stripe retrying
        # the same event would not help.
        session.rollback()
        log.error("stripe event %s (%s) not processed: %s", event_id, kind, exc.message)
        stored = _finish_event(
            session,
            event_id=event_id,
            kind=kind,
            now=now,
            processed=False,
            problem=exc.message,
        )
        return "unmatched" if stored else "duplicate"
    stored = _finish_event(session, event_id=event_id, kind=kind, now=now, processed=True)
    return outcome if stored else "duplicate"


@dataclass(frozen=True)
class CardRefundOutcome:
    """What became of one owed card refund: sent back through Stripe, or why not yet."""

    refund_id: int
    sent: bool
    stripe_refund_ids: list[str]
    problem: str = ""


def _card_payments_of(session: Session, refund: Refund) -> list[tuple[Payment, Decimal]]:
    """The invoice's Stripe payments, each with what is left to refund on it, largest first.

    Only refunds recorded before this refund was owed count against a payment: the plan, and
    so the idempotency keys, stay the same on every retry, even when Stripe's webhook for
    this very refund was recorded in between.
    """
    paid = session.exec(
        select(Payment).where(
            Payment.invoice_id == refund.invoice_id,
            Payment.source == "stripe",
            col(Payment.amount) > 0,
            col(Payment.external_id).is_not(None),
        )
    ).all()
    found: list[tuple[Payment, Decimal]] = []
    for payment in paid:
        refunded = session.exec(
            select(func.coalesce(func.sum(Payment.amount), 0)).where(
                Payment.source == REFUND_SOURCE,
                Payment.reference == payment.external_id,
                col(Payment.recorded_at) < refund.created_at,
                counted_payments(),
            )
        ).one()
        left = payment.amount + as_money(refunded)
        if left > ZERO:
            found.append((payment, left))
    return sorted(found, key=lambda item: item[1], reverse=True)


def _record_card_refund(
    session: Session, *, payment: Payment, stripe_refund: dict[str, Any], now: datetime
) -> None:
    """The negative payment for a refund Stripe made; the webhook may have recorded it first."""
    external_id = _object_id(stripe_refund)
    if session.exec(select(Payment.id).where(Payment.external_id == external_id)).first():
        return
    invoice = session.get(Invoice, payment.invoice_id)
    received_on = office_day(session, invoice.edition_id if invoice else None, now)
    try:
        with session.begin_nested():
            session.add(
                Payment(
                    invoice_id=payment.invoice_id,
                    amount=-from_cents(
                        stripe_cents(stripe_refund.get("amount"), "a refund amount")
                    ),
                    received_on=received_on,
                    method=PaymentMethod.card.value,
                    reference=payment.external_id or "",
                    source=REFUND_SOURCE,
                    external_id=external_id,
                    recorded_by=ACTOR,
                    recorded_at=now,
                )
            )
    except IntegrityError:
        pass  # the charge.refunded webhook recorded the same refund a moment ago


def send_card_refund(
    session: Session, *, refund: Refund, client: stripe.StripeClient, now: datetime | None = None
) -> CardRefundOutcome:
    """Send one owed card refund back to the card(s) that paid the invoice, through Stripe.

    The idempotency key comes from our refund row and the payment it goes against, so a retry
    after a timeout, or two runners at once, make one refund at Stripe. The negative payment is
    recorded under Stripe's refund id, which the `charge.refunded` webhook also uses: whichever
    arrives second records nothing.
    """
    now = now or utcnow()
    refund_id = refund.id or 0
    left = refund.amount
    sent: list[str] = []
    for payment, available in _card_payments_of(session, refund):
        if left <= ZERO:
            break
        part = min(left, available)
        try:
            made = client.v1.refunds.create(
                {
                    "payment_intent": payment.external_id or "",
                    "amount": to_cents(part),
                    "metadata": {"refund_id": str(refund_id), "invoice_id": str(refund.invoice_id)},
                },
                {"idempotency_key": f"refund-{refund_id}-{payment.external_id}-{to_cents(part)}"},
            )
        except stripe.StripeError as exc:
            log.warning("stripe refused refund %s: %s", refund_id, exc)
            session.rollback()
            return CardRefundOutcome(refund_id, False, sent, f"Stripe refused the refund: {exc}")
        _record_card_refund(
            session,
            payment=payment,
            stripe_refund={"id": str(made.id), "amount": int(made.amount)},
            now=now,
        )
        session.commit()
        sent.append(str(made.id))
        left -= part
    if left > ZERO:
        problem = (
            f"{left:.2f} {refund.currency} of refund {refund_id} has no card payment left to go "
            "back to: pay it by bank transfer."
        )
        return CardRefundOutcome(refund_id, False, sent, problem)
    # The day it was paid is the office's day (the edition's clock), as for any refund.
    invoice = session.get(Invoice, refund.invoice_id)
    try:
        refund_by_card(
            session,
            refund_id=refund_id,
            completed_on=office_day(session, invoice.edition_id if invoice else None, now),
            reference=", ".join(sent),
            payment_recorded=True,
            now=now,
        )
    except RefundAlreadyCompleted:
        return CardRefundOutcome(refund_id, False, sent, "Already sent.")
    return CardRefundOutcome(refund_id, True, sent)


def send_card_refunds(
    session: Session, *, client: stripe.StripeClient, now: datetime | None = None
) -> list[CardRefundOutcome]:
    """Send every owed card refund through Stripe; those Stripe refuses stay owed for the office."""
    return [
        send_card_refund(session, refund=refund, client=client, now=now)
        for refund in card_refunds_owed(session)
    ]
