"""Spanish invoice records (VERI*FACTU): an append-only, chained record per issued document,
and the outbox of their submission to the tax agency."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.models.types import Amount, UTCDateTime


class TaxRecord(SQLModel, table=True):
    """One *registro de alta* or *registro de anulación*; the database refuses to change it.

    Each holds the AEAT schema's fields as they were fingerprinted, so the record can be
    rebuilt, checked and sent from this row alone.
    """

    __tablename__ = "tax_record"
    __table_args__ = (
        # One line per issuer: a second record after the same predecessor cannot exist.
        UniqueConstraint("issuer_tax_id", "sequence", name="uq_tax_record_issuer_sequence"),
    )

    id: int | None = Field(default=None, primary_key=True)
    invoice_id: int = Field(foreign_key="invoice.id", index=True)
    issuer_tax_id: str = Field(sa_type=String(9))
    # 1 for the issuer's first record, then one more per record.
    sequence: int
    previous_id: int | None = Field(
        default=None, foreign_key="tax_record.id", unique=True, nullable=True
    )
    record_type: str = Field(sa_type=String(10))  # "alta" or "anulacion"
    issuer_name: str = Field(sa_type=String(120))
    invoice_number: str = Field(sa_type=String(60))
    issue_date: date
    # Alta only: F1, R1 ...; by differences "I" and the invoices a corrective one corrects.
    invoice_type: str = Field(default="", sa_type=String(2))
    corrective_type: str = Field(default="", sa_type=String(1))
    corrected: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    description: str = Field(default="", sa_type=String(500))
    # IDDestinatario entries: {"name", "nif"} or {"name", "country", "id_type", "id"}.
    recipients: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    without_recipient: bool = False
    # DetalleDesglose entries, amounts as the strings that are sent.
    breakdown: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    tax_total: Decimal | None = Field(default=None, sa_type=Amount, nullable=True)
    total: Decimal | None = Field(default=None, sa_type=Amount, nullable=True)
    previous_number: str = Field(default="", sa_type=String(60))
    previous_issue_date: date | None = None
    previous_hash: str = Field(default="", sa_type=String(64))
    # FechaHoraHusoGenRegistro exactly as fingerprinted (ISO 8601 with the offset).
    generated_at: str = Field(sa_type=String(25))
    hash: str = Field(sa_type=String(64), index=True)
    # Alta only: the AEAT's checking address printed as the invoice's QR code (test or real).
    qr_url: str = Field(default="", sa_type=String(300))
    # SistemaInformatico: the software that made the record, as it was then.
    system: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TaxRecordSubmission(SQLModel, table=True):
    """A record's way to the tax agency: queued with the record, sent after the commit."""

    __tablename__ = "tax_record_submission"

    id: int | None = Field(default=None, primary_key=True)
    record_id: int = Field(foreign_key="tax_record.id", unique=True)
    issuer_tax_id: str = Field(sa_type=String(9))
    # pending, sending, accepted, accepted_with_errors, rejected
    status: str = Field(default="pending", sa_type=String(24), index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The agency's answer: its code and text for a record with errors or rejected, the CSV
    # (secure verification code) of the accepted submission.
    error_code: str = Field(default="", sa_type=String(20))
    error_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    csv: str = Field(default="", sa_type=String(100))
    # Why the last attempt did not arrive (network, outage); retried.
    last_problem: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # The agency asks for this long a pause before the next submission (TiempoEsperaEnvio).
    wait_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
