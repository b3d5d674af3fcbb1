"""Certificates with their versions, bulk issuing runs, and the public verification limiter."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.models.types import UTCDateTime


class Certificate(SQLModel, table=True):
    """A participant's certificate: one per application, under a number that never changes.

    The row holds the current version; each version (a name corrected and the certificate
    issued again) is kept in `certificate_version` with its own PDF.
    """

    __tablename__ = "certificate"

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(sa_type=String(24), unique=True)
    application_id: int = Field(foreign_key="application.id", unique=True)
    edition_id: int = Field(foreign_key="edition.id", index=True)
    version: int = 1
    holder_name: str = Field(sa_type=String(200))
    # The date of issue printed on the first version, in the edition's time zone.
    issued_on: date
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    issued_by: str = Field(sa_type=String(254))
    reissued_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    pdf_key: str | None = Field(default=None, sa_type=String(200))
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_by: str | None = Field(default=None, sa_type=String(254))
    revoke_reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CertificateVersion(SQLModel, table=True):
    """One issued version of a certificate, as printed, with its stored PDF."""

    __tablename__ = "certificate_version"
    __table_args__ = (UniqueConstraint("certificate_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    certificate_id: int = Field(foreign_key="certificate.id", index=True)
    version: int
    holder_name: str = Field(sa_type=String(200))
    issued_on: date
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    issued_by: str = Field(sa_type=String(254))
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    pdf_key: str | None = Field(default=None, sa_type=String(200))


class CertificateRun(SQLModel, table=True):
    """A bulk issuing run for an edition and its progress, read by every worker's pages."""

    __tablename__ = "certificate_run"

    id: int | None = Field(default=None, primary_key=True)
    edition_id: int = Field(foreign_key="edition.id", index=True)
    status: str = Field(default="running", sa_type=String(12), index=True)
    total: int = 0
    done: int = 0
    issued: int = 0
    already_issued: int = 0
    skipped: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    started_by: str = Field(sa_type=String(254))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Bumped as batches finish: a run whose worker died stops being "running" once it is stale.
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RateLimitWindow(SQLModel, table=True):
    """Requests from one address in one fixed time window, counted across every worker."""

    __tablename__ = "rate_limit_window"

    scope: str = Field(sa_type=String(40), primary_key=True)
    subject: str = Field(sa_type=String(64), primary_key=True)
    window_start: datetime = Field(sa_type=UTCDateTime, primary_key=True, index=True)
    hits: int = 0
