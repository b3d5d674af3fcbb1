"""Applications, applicant groups, the mail outbox and gap-free number sequences."""

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.models.types import Amount, UTCDateTime


class ApplicationStatus(StrEnum):
    """Where an application stands in its lifecycle (DOMAIN.md)."""

    submitted = "submitted"
    admitted = "admitted"
    waitlisted = "waitlisted"
    rejected = "rejected"
    confirmed = "confirmed"
    cancelled = "cancelled"
    completed = "completed"
    withdrawn = "withdrawn"


class ApplicantGroup(SQLModel, table=True):
    """Colleagues from one organisation applying together under a shared code."""

    __tablename__ = "applicant_group"

    id: int | None = Field(default=None, primary_key=True)
    edition_id: int = Field(foreign_key="edition.id", index=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    code: str = Field(sa_type=String(16), unique=True)
    contact_email: str = Field(sa_type=String(254))
    contact_name: str = Field(default="", sa_type=String(200))
    coordinator_token_version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Application(SQLModel, table=True):
    """One person's application to one edition, with what the office needs to run it."""

    __table_args__ = (
        UniqueConstraint("edition_id", "email"),
        # The review list of one edition: its default order, status chips, country and
        # organisation menus come from these without reading the table.
        Index("ix_application_edition_submitted", "edition_id", "submitted_at", "id"),
        Index("ix_application_edition_status", "edition_id", "status"),
        Index("ix_application_edition_country", "edition_id", "country"),
        Index("ix_application_edition_organisation", "edition_id", "organisation_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    edition_id: int = Field(foreign_key="edition.id")
    reference: str = Field(sa_type=String(20), unique=True)
    status: str = Field(default=ApplicationStatus.submitted.value, sa_type=String(16), index=True)
    # Bumped on every change of state: two administrators deciding at once, one wins.
    version: int = 1

    given_name: str = Field(sa_type=String(100))
    family_name: str = Field(sa_type=String(100))
    email: str = Field(sa_type=String(254), index=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", index=True)
    organisation_name: str = Field(sa_type=String(200))
    country: str = Field(sa_type=String(3), index=True)
    job_title: str = Field(sa_type=String(200))
    department: str = Field(default="", sa_type=String(200))
    years_in_international_affairs: int | None = None
    motivation: str = Field(sa_column=Column(Text, nullable=False))
    cv_key: str | None = Field(default=None, sa_type=String(200))
    cv_filename: str | None = Field(default=None, sa_type=String(200))
    group_id: int | None = Field(default=None, foreign_key="applicant_group.id", index=True)
    language: str = Field(default="en", sa_type=String(8))
    consent_at: datetime = Field(sa_type=UTCDateTime)

    quote: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    quoted_total: Decimal = Field(sa_type=Amount)
    portal_token_version: int = 1

    submitted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_by: str | None = Field(default=None, sa_type=String(254))
    decision_note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    waitlisted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    fee_waiver_number: str | None = Field(default=None, sa_type=String(20), unique=True)
    fee_waiver_key: str | None = Field(default=None, sa_type=String(200))
    staff_notes: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))

    # For the week in Barcelona, asked for after admission.
    certificate_name: str = Field(default="", sa_type=String(200))
    dietary: str = Field(default="", sa_type=String(500))
    accessibility: str = Field(default="", sa_type=String(500))
    arrival_date: date | None = None
    departure_date: date | None = None
    logistics_updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Held only for a visa invitation letter; erased after the edition.
    visa_letter_needed: bool = False
    nationality: str | None = Field(default=None, sa_type=String(3))
    passport_number: str | None = Field(default=None, sa_type=String(40))
    date_of_birth: date | None = None
    visa_letter_key: str | None = Field(default=None, sa_type=String(200))
    visa_letter_issued_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    # Erased on request or after the retention period: the row stays as a tombstone.
    erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # A participant's optional data (CV, visa details, needs) removed after retention.
    optional_data_erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def full_name(self) -> str:
        """Given name then family name."""
        return f"{self.given_name} {self.family_name}"


class OutboxMessage(SQLModel, table=True):
    """An e-mail written in the same transaction as the change it reports; sent later."""

    __tablename__ = "outbox_message"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_type=String(40))
    application_id: int | None = Field(default=None, foreign_key="application.id", index=True)
    to_address: str = Field(sa_type=String(254))
    subject: str = Field(sa_type=String(300))
    body_text: str = Field(sa_column=Column(Text, nullable=False))
    body_html: str = Field(sa_column=Column(Text, nullable=False))
    attachments: list[dict[str, str]] = Field(default_factory=list, sa_type=JSON)
    status: str = Field(default="pending", sa_type=String(12), index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    message_id: str = Field(sa_type=String(200))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class NumberSequence(SQLModel, table=True):
    """The last number used in a series and year; numbers are gap-free and never reused."""

    __tablename__ = "number_sequence"

    series: str = Field(sa_type=String(20), primary_key=True)
    year: int = Field(primary_key=True)
    last: int = 0
