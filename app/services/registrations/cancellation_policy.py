"""The written cancellation policy: a pure decision, then the accounting it implies."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from app.clock import local_day
from app.money import ZERO, percent_of
from app.platform.i18n import N_, Amount, Day, Message, Moment, Number


@dataclass(frozen=True)
class PolicyFacts:
    """The edition's values that the policy depends on."""

    start_date: date
    timezone: str
    cutoff_days: int = 30
    refund_percent: Decimal = Decimal("75")
    refund_within_days: int = 30


@dataclass(frozen=True)
class CancellationDecision:
    """Accepted or refused, why, and the money: refund, retained, refund due date."""

    accepted: bool
    reason: Message
    deadline: datetime
    paid: Decimal
    refund: Decimal
    retained: Decimal
    refund_due_by: date | None


def deadline(policy: PolicyFacts) -> datetime:
    """The instant from which no cancellation is accepted: start - N days, 00:00 local time."""
    day = policy.start_date - timedelta(days=policy.cutoff_days)
    return datetime.combine(day, time(0, 0), tzinfo=ZoneInfo(policy.timezone))


def decide_cancellation(
    policy: PolicyFacts,
    *,
    received_at: datetime,
    payments_received: Decimal,
    refunds_made: Decimal = ZERO,
) -> CancellationDecision:
    """Apply the policy to a written cancellation received at `received_at` (any time zone).

    Accepted strictly before the deadline: refund = refund_percent of what is paid at that
    moment (payments minus refunds already made), half-up to the cent, due within N calendar
    days of the day it was received in the edition's time zone. From the deadline on: refused,
    nothing refunded, the participant stays registered.
    """
    if received_at.tzinfo is None:
        raise ValueError("the time a cancellation was received must carry a time zone")
    cutoff = deadline(policy)
    paid = max(payments_received - refunds_made, ZERO)
    received_on = local_day(received_at, policy.timezone)
    cutoff_words = Moment(cutoff, policy.timezone)
    if received_at >= cutoff:
        return CancellationDecision(
            accepted=False,
            reason=Message(
                N_(
                    "Cancellations are accepted only before %(deadline)s, %(days)s days before "
                    "the course starts; this one was received on %(received)s. The registration "
                    "stands and nothing is refunded."
                ),
                {
                    "deadline": cutoff_words,
                    "days": policy.cutoff_days,
                    "received": Day(received_on),
                },
            ),
            deadline=cutoff,
            paid=paid,
            refund=ZERO,
            retained=paid,
            refund_due_by=None,
        )
    refund = percent_of(paid, policy.refund_percent)
    due_by = received_on + timedelta(days=policy.refund_within_days)
    if paid == ZERO:
        reason = Message(
            N_("Cancelled before the deadline. Nothing was paid, so nothing is refunded.")
        )
    else:
        reason = Message(
            N_(
                "Cancelled before the deadline (%(deadline)s): %(percent)s %% of the %(paid)s "
                "paid is refunded by %(due)s; %(retained)s is retained."
            ),
            {
                "deadline": cutoff_words,
                "percent": Number(policy.refund_percent),
                "paid": Amount(paid),
                "due": Day(due_by),
                "retained": Amount(paid - refund),
            },
        )
    return CancellationDecision(
        accepted=True,
        reason=reason,
        deadline=cutoff,
        paid=paid,
        refund=refund,
        retained=paid - refund,
        refund_due_by=due_by if paid > ZERO else None,
    )
