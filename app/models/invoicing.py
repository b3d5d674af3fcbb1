"""Invoices and credit notes (frozen copies), their lines, and payments received."""

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, String, Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.models.types import Amount, UTCDateTime


class InvoiceKind(StrEnum):
    """An invoice, or a credit note that cancels (part of) one."""

    invoice = "invoice"
    credit_note = "credit_note"


class PaymentMethod(StrEnum):
    """How money arrived."""

    bank_transfer = "bank_transfer"
    card = "card"
    other = "other"


class Invoice(SQLModel, table=True):
    """An issued invoice or credit note; nothing on it changes after issue."""

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(sa_type=String(20), unique=True)
    kind: str = Field(default=InvoiceKind.invoice.value, sa_type=String(12))
    purpose: str = Field(default="registration", sa_type=String(20))
    refers_to_id: int | None = Field(default=None, foreign_key="invoice.id", index=True)
    edition_id: int = Field(foreign_key="edition.id", index=True)
    group_id: int | None = Field(default=None, foreign_key="applicant_group.id", index=True)
    issue_date: date
    due_date: date
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    issued_by: str = Field(sa_type=String(254))
    currency: str = Field(sa_type=String(3))
    seller: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    buyer: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    payment_instructions: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    tax_rate: Decimal = Field(default=Decimal("0.00"), sa_type=Amount)
    tax_note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    net_total: Decimal = Field(sa_type=Amount)
    tax_total: Decimal = Field(sa_type=Amount)
    total: Decimal = Field(sa_type=Amount)
    # "issued", or "credited" once a credit note cancels all of it.
    status: str = Field(default="issued", sa_type=String(12), index=True)
    pdf_key: str | None = Field(default=None, sa_type=String(200))
    # What the invoice is for: the course, edition, place and dates, as on the day of issue.
    subject: str = Field(default="", sa_type=String(300))


class InvoiceLine(SQLModel, table=True):
    """One line of an invoice: for registrations, one participant's fee."""

    __tablename__ = "invoice_line"

    id: int | None = Field(default=None, primary_key=True)
    invoice_id: int = Field(foreign_key="invoice.id", index=True)
    position: int
    application_id: int | None = Field(default=None, foreign_key="application.id", index=True)
    # For a credit note: the line of the original invoice this one negates.
    credits_line_id: int | None = Field(default=None, foreign_key="invoice_line.id", index=True)
    description: str = Field(sa_type=String(500))
    details: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    net: Decimal = Field(sa_type=Amount)
    tax: Decimal = Field(sa_type=Amount)
    gross: Decimal = Field(sa_type=Amount)
    # EN 16931 VAT category (UNCL 5305: S standard, E exempt) and, when exempt, why.
    vat_category: str = Field(default="S", sa_type=String(2))
    vat_exemption_code: str = Field(default="", sa_type=String(30))
    vat_exemption_reason: str = Field(default="", sa_type=String(300))


class Payment(SQLModel, table=True):
    """Money received against an invoice (or, negative, a refund paid out)."""

    id: int | None = Field(default=None, primary_key=True)
    invoice_id: int = Field(foreign_key="invoice.id", index=True)
    amount: Decimal = Field(sa_type=Amount)
    received_on: date
    method: str = Field(sa_type=String(16))
    reference: str = Field(default="", sa_type=String(200))
    source: str = Field(default="manual", sa_type=String(16))
    # The provider's or statement's own id: the same payment is never recorded twice.
    external_id: str | None = Field(default=None, sa_type=String(200), unique=True)
    recorded_by: str = Field(sa_type=String(254))
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    flagged: bool = False
    flag_reason: str = Field(default="", sa_type=String(500))
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # What of this payment went beyond the invoice's balance when it was recorded: owed back.
    overpaid: Decimal = Field(default=Decimal("0.00"), sa_type=Amount)
    # Who paid, as the statement line, the card or the administrator named them.
    payer: str = Field(default="", sa_type=String(200))
    # A mistaken payment is voided, never deleted: it stays, out of every balance.
    voided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    voided_by: str = Field(default="", sa_type=String(254))
    void_reason: str = Field(default="", sa_type=String(500))
