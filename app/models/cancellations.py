"""Written cancellations, the refunds they owe, and seats offered to the waiting list."""

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, String, Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.models.types import Amount, UTCDateTime


class CancellationChannel(StrEnum):
    """How a written cancellation arrived; the policy accepts no other way."""

    email = "email"
    portal = "portal"


class RefundMethod(StrEnum):
    """How a refund goes back: to the card that paid, or by bank transfer."""

    card = "card"
    bank_transfer = "bank_transfer"


class RefundStatus(StrEnum):
    """Whether a refund is still owed or paid out."""

    owed = "owed"
    completed = "completed"
    # Not paid back, with a written reason (the payer asked the office to keep it, say).
    kept = "kept"
    # No longer owed: the payment whose excess it was is voided.
    withdrawn = "withdrawn"


class RefundReason(StrEnum):
    """Why money is owed back."""

    cancellation = "cancellation"
    overpayment = "overpayment"


class PayeeKind(StrEnum):
    """Who gets a refund: whoever paid, a person or the organisation of a group invoice."""

    person = "person"
    organisation = "organisation"


class OfferStatus(StrEnum):
    """Where a seat offered to a waitlisted applicant stands."""

    open = "open"
    accepted = "accepted"
    declined = "declined"
    expired = "expired"


class Cancellation(SQLModel, table=True):
    """One written cancellation request and the policy's answer, accepted or refused."""

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    # Set only on an accepted cancellation: the database itself refuses a second one.
    accepted_application_id: int | None = Field(
        default=None, foreign_key="application.id", unique=True
    )
    received_at: datetime = Field(sa_type=UTCDateTime, index=True)
    channel: str = Field(sa_type=String(12))
    # The four items the brochure requires, as the request gave them.
    course_name: str = Field(sa_type=String(300))
    full_name: str = Field(sa_type=String(200))
    registration_date: date
    contact: str = Field(sa_type=String(300))
    accepted: bool
    reason: str = Field(sa_column=Column(Text, nullable=False))
    # The reason's message id and values (`Message.as_json`), so it is shown in the reader's
    # language; None on rows recorded before it was kept (their English `reason` is shown).
    reason_message: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    deadline: datetime = Field(sa_type=UTCDateTime)
    paid: Decimal = Field(sa_type=Amount)
    refund_amount: Decimal = Field(sa_type=Amount)
    retained: Decimal = Field(sa_type=Amount)
    refund_due_by: date | None = None
    original_invoice_id: int | None = Field(default=None, foreign_key="invoice.id")
    credit_note_id: int | None = Field(default=None, foreign_key="invoice.id")
    fee_invoice_id: int | None = Field(default=None, foreign_key="invoice.id")
    # The e-mail itself, when an administrator attached it (.eml).
    email_key: str | None = Field(default=None, sa_type=String(200))
    email_filename: str | None = Field(default=None, sa_type=String(200))
    recorded_by: str = Field(sa_type=String(254))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Refund(SQLModel, table=True):
    """Money owed back (after an accepted cancellation or an overpayment) until paid out."""

    id: int | None = Field(default=None, primary_key=True)
    # None for an overpayment of a group invoice, which no one participant paid.
    application_id: int | None = Field(default=None, foreign_key="application.id", index=True)
    cancellation_id: int | None = Field(default=None, foreign_key="cancellation.id", unique=True)
    reason: str = Field(default=RefundReason.cancellation.value, sa_type=String(16))
    # The payment whose excess this refund pays back (reason overpayment).
    payment_id: int | None = Field(default=None, foreign_key="payment.id", unique=True)
    payee_kind: str = Field(default=PayeeKind.person.value, sa_type=String(16))
    payee_name: str = Field(default="", sa_type=String(200))
    # The invoice the money was paid against; the refund is paid out of it.
    invoice_id: int = Field(foreign_key="invoice.id", index=True)
    amount: Decimal = Field(sa_type=Amount)
    currency: str = Field(sa_type=String(3))
    due_by: date = Field(index=True)
    method: str = Field(sa_type=String(16))
    status: str = Field(default=RefundStatus.owed.value, sa_type=String(12), index=True)
    completed_on: date | None = None
    completed_by: str | None = Field(default=None, sa_type=String(254))
    reference: str = Field(default="", sa_type=String(200))
    # A bank refund needs the participant's account, given in the portal.
    account_holder: str = Field(default="", sa_type=String(200))
    iban: str = Field(default="", sa_type=String(34))
    bic: str = Field(default="", sa_type=String(11))
    # Put in a SEPA credit transfer file for the bank; paid once the statement shows it.
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    kept_reason: str = Field(default="", sa_type=String(500))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SeatOffer(SQLModel, table=True):
    """A freed seat offered to a waitlisted applicant until a time limit."""

    __tablename__ = "seat_offer"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    edition_id: int = Field(foreign_key="edition.id", index=True)
    offered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    status: str = Field(default=OfferStatus.open.value, sa_type=String(12), index=True)
    responded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
