"""Courses, their editions, modules and sessions, and an edition's fee schedule."""

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import JSON, Column, String, Text, UniqueConstraint
from sqlmodel import Field, Relationship, SQLModel

from app.clock import utcnow
from app.models.types import Amount, UTCDateTime


class SessionKind(StrEnum):
    """What a session of a module is."""

    knowledge = "knowledge"
    skills = "skills"
    site_visit = "site_visit"


class Course(SQLModel, table=True):
    """A course that runs as editions (e.g. the Diploma)."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(sa_type=String(80), unique=True)
    title: str = Field(sa_type=String(200))
    provider: str = Field(default="Metropolis", sa_type=String(200))
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))

    editions: list["Edition"] = Relationship(back_populates="course")


class Edition(SQLModel, table=True):
    """One run of a course: dates, place, seats, fees and policy values."""

    id: int | None = Field(default=None, primary_key=True)
    course_id: int = Field(foreign_key="course.id", index=True)
    slug: str = Field(sa_type=String(80), unique=True)
    title: str = Field(sa_type=String(200))
    edition_label: str = Field(default="", sa_type=String(100))
    place: str = Field(sa_type=String(200))
    venue_format: str = Field(default="In person", sa_type=String(100))
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    start_date: date
    end_date: date
    dates_to_be_confirmed: bool = False
    timezone: str = Field(default="Europe/Madrid", sa_type=String(64))
    capacity: int
    currency: str = Field(default="EUR", sa_type=String(3))
    applications_open: datetime = Field(sa_type=UTCDateTime)
    applications_close: datetime = Field(sa_type=UTCDateTime)

    fee_standard: Decimal = Field(sa_type=Amount)
    fee_member: Decimal = Field(sa_type=Amount)
    waiver_percent: Decimal = Field(default=Decimal("100.00"), sa_type=Amount)
    fees_are_examples: bool = False
    dues_year: int
    income_fy: int

    # Tax on registration fees: a rate per edition, with the legal note shown on invoices.
    tax_rate: Decimal = Field(default=Decimal("0.00"), sa_type=Amount)
    tax_note: str = Field(default="", sa_type=String(300))
    # At a 0 % rate: the VATEX code of the exemption that applies (app/services/billing/vat.py).
    vat_exemption: str = Field(default="VATEX-EU-132-1I", sa_type=String(30))

    cancellation_cutoff_days: int = 30
    refund_percent: Decimal = Field(default=Decimal("75.00"), sa_type=Amount)
    refund_within_days: int = 30

    # Share of each module's sessions a participant must attend for the certificate;
    # 100 is the Diploma's rule, every session (an excused absence is not attendance).
    attendance_min_percent: int = 100

    # Personal data is kept this many days after the end date, then erased (GDPR storage
    # limitation): applicants never admitted entirely, participants their optional data.
    retention_days: int = 365

    fee_includes: list[str] = Field(default_factory=list, sa_type=JSON)
    fee_excludes: list[str] = Field(default_factory=list, sa_type=JSON)
    # Title and description in other languages: {"es": {"title": ..., "description": ...}};
    # a text not given falls back to the English one above (app.platform.i18n.localized).
    translations: dict[str, dict[str, str]] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )

    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    course: Course = Relationship(back_populates="editions")
    modules: list["Module"] = Relationship(
        back_populates="edition",
        sa_relationship_kwargs={"order_by": "Module.position", "cascade": "all, delete-orphan"},
    )
    group_tiers: list["GroupTier"] = Relationship(
        back_populates="edition",
        sa_relationship_kwargs={"order_by": "GroupTier.min_size", "cascade": "all, delete-orphan"},
    )


class GroupTier(SQLModel, table=True):
    """A group discount: groups of at least `min_size` get `percent` off."""

    __tablename__ = "group_tier"
    __table_args__ = (UniqueConstraint("edition_id", "min_size"),)

    id: int | None = Field(default=None, primary_key=True)
    # Set through the relationship when the row is attached to its edition.
    edition_id: int | None = Field(
        default=None, foreign_key="edition.id", index=True, nullable=False
    )
    min_size: int
    percent: Decimal = Field(sa_type=Amount)

    edition: Edition = Relationship(back_populates="group_tiers")


class Module(SQLModel, table=True):
    """One of the edition's modules (the Diploma has five lessons)."""

    __table_args__ = (UniqueConstraint("edition_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    edition_id: int | None = Field(
        default=None, foreign_key="edition.id", index=True, nullable=False
    )
    position: int
    title: str = Field(sa_type=String(200))
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # Title and description in other languages, as on Edition.
    translations: dict[str, dict[str, str]] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )

    edition: Edition = Relationship(back_populates="modules")
    sessions: list["CourseSession"] = Relationship(
        back_populates="module",
        sa_relationship_kwargs={
            "order_by": "CourseSession.starts_at",
            "cascade": "all, delete-orphan",
        },
    )


class CourseSession(SQLModel, table=True):
    """A knowledge session, skills session or site visit within a module."""

    __tablename__ = "course_session"

    id: int | None = Field(default=None, primary_key=True)
    module_id: int | None = Field(default=None, foreign_key="module.id", index=True, nullable=False)
    kind: str = Field(sa_type=String(16))
    title: str = Field(sa_type=String(200))
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    place: str = Field(default="", sa_type=String(200))

    module: Module = Relationship(back_populates="sessions")
