"""Card payments through Stripe: the webhook events received, and the Checkout Sessions started."""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import String, Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.models.types import Amount, UTCDateTime


class CheckoutStatus(StrEnum):
    """Where a card checkout stands."""

    pending = "pending"
    paid = "paid"
    failed = "failed"
    expired = "expired"


class StripeEvent(SQLModel, table=True):
    """A webhook event, stored once by Stripe's own id so a redelivery does nothing."""

    __tablename__ = "stripe_event"

    id: str = Field(primary_key=True, sa_type=String(255))
    type: str = Field(sa_type=String(100))
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Empty while an event could not be matched to our records: someone should look.
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Why it was not processed, for the person who looks.
    problem: str = Field(default="", sa_type=String(500))


class CardCheckout(SQLModel, table=True):
    """One Stripe Checkout Session for what was outstanding on an invoice when it started."""

    __tablename__ = "card_checkout"

    id: int | None = Field(default=None, primary_key=True)
    invoice_id: int = Field(foreign_key="invoice.id", index=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    stripe_session_id: str | None = Field(default=None, sa_type=String(255), unique=True)
    amount: Decimal = Field(sa_type=Amount)
    currency: str = Field(sa_type=String(3))
    status: str = Field(default=CheckoutStatus.pending.value, sa_type=String(12), index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    url: str | None = Field(default=None, sa_type=Text)
