"""Editions: creating and changing them, and the dates derived from them."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any, Self, cast
from zoneinfo import ZoneInfo, available_timezones

import pycountry
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import bindparam
from sqlalchemy.orm import joinedload, selectinload
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.models import (
    AttendanceMark,
    Course,
    CourseSession,
    Edition,
    GroupTier,
    Module,
    SessionKind,
)
from app.platform.audit import record_change
from app.services.editions.fees import FeeSchedule
from app.services.editions.fees import GroupTier as PricingTier
from app.services.editions.vat import DEFAULT_EXEMPTION, EXEMPTIONS
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.schemas import DateIn, FiscalYear, InstantIn, MoneyIn, PercentIn

DIPLOMA_COURSE_SLUG = "diploma"
DIPLOMA_COURSE_TITLE = "Metropolis Diploma in Internationalization for Local Authorities"

# The five lessons of the Diploma: titles from the brochure, summaries in our own words.
DIPLOMA_LESSONS: tuple[tuple[str, str], ...] = (
    (
        "Cities in a changing international context",
        "What city diplomacy is and why cities act abroad: from twinning agreements to "
        "networks, multilateral forums and partnerships with the private and philanthropic "
        "sectors, seen from metropolitan governance.",
    ),
    (
        "Strategies for internationalization",
        "Why and how a metropolitan government writes an international strategy, who takes "
        "part, and how the strategy is put to work and fits the city's own structures.",
    ),
    (
        "City diplomacy and economic development",
        "How cities work with investors, development banks, foundations and companies to "
        "reach local economic goals, and how international economic plans connect with urban "
        "planning at several levels of government.",
    ),
    (
        "Measuring results and impact",
        "Showing residents what international work brings them: indicators, evaluation and "
        "the link between international activity and the city's other objectives.",
    ),
    (
        "Communicating the value of international engagement",
        "Telling local and global audiences why international action matters: narratives, "
        "audiences and channels that support strategy and accountability.",
    ),
)

DEFAULT_FEE_INCLUDES = [
    "Access to the course",
    "Course material",
    "Masterclasses by local government experts",
    "Site visits and transfers to them",
    "A 10-trip public transport card",
    "Coffee and tea breaks",
    "Lunches",
    "A networking event",
    "The certificate",
]
DEFAULT_FEE_EXCLUDES = [
    "Flights",
    "Accommodation (we share a list of hotels at several price levels)",
    "Transfers to and from the airport",
]

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$"


def _valid_timezone(value: str) -> str:
    if value not in available_timezones():
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Madrid)")
    return value


def _valid_currency(value: str) -> str:
    code = value.strip().upper()
    if pycountry.currencies.get(alpha_3=code) is None:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. EUR)")
    return code


class GroupTierIn(BaseModel):
    """A group discount tier."""

    model_config = ConfigDict(extra="forbid")

    min_size: int = Field(ge=2, le=1000)
    percent: PercentIn


def _check_tiers(tiers: list[GroupTierIn]) -> list[GroupTierIn]:
    for before, after in pairwise(tiers):
        if after.min_size <= before.min_size:
            raise ValueError("minimum sizes must be strictly increasing")
        if after.percent < before.percent:
            raise ValueError("a larger group cannot get a smaller percent off")
    return tiers


class FeesIn(BaseModel):
    """An edition's fee schedule."""

    model_config = ConfigDict(extra="forbid")

    standard: MoneyIn = Field(ge=0)
    member: MoneyIn = Field(ge=0)
    waiver_percent: PercentIn = Decimal("100")
    group_tiers: list[GroupTierIn] = Field(default_factory=list, max_length=20)
    are_examples: bool = False

    _tiers = field_validator("group_tiers")(_check_tiers)


class FeesPatch(BaseModel):
    """Any part of an edition's fee schedule."""

    model_config = ConfigDict(extra="forbid")

    standard: MoneyIn | None = Field(default=None, ge=0)
    member: MoneyIn | None = Field(default=None, ge=0)
    waiver_percent: PercentIn | None = None
    group_tiers: list[GroupTierIn] | None = Field(default=None, max_length=20)
    are_examples: bool | None = None

    _tiers = field_validator("group_tiers")(
        lambda tiers: None if tiers is None else _check_tiers(tiers)
    )


# Edition days and instants outside these years are typing mistakes, and the calendar files
# and deadlines computed from them (a day after 31 December 9999) would not exist.
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2199, 12, 31)


def _within_years(value: date | datetime | None) -> date | datetime | None:
    day = value.date() if isinstance(value, datetime) else value
    if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValueError(
            f"Give a day between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}."
        )
    return value


class SessionIn(BaseModel):
    """A session of a module."""

    model_config = ConfigDict(extra="forbid")

    kind: SessionKind
    title: str = Field(min_length=1, max_length=200)
    starts_at: InstantIn
    ends_at: InstantIn
    place: str = Field(default="", max_length=200)

    _in_years = field_validator("starts_at", "ends_at")(_within_years)

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class ModuleIn(BaseModel):
    """A module with its sessions."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    sessions: list[SessionIn] = Field(min_length=1, max_length=50)


def _valid_exemption(code: str) -> str:
    """A VATEX code the office can apply (ValueError names the choices)."""
    if code.strip().upper() not in EXEMPTIONS:
        raise ValueError(f"must be one of {', '.join(EXEMPTIONS)}")
    return code.strip().upper()


class EditionFields(BaseModel):
    """Fields shared by creating and changing an edition (all optional here)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str | None = Field(default=None, min_length=1, max_length=200)
    edition_label: str | None = Field(default=None, max_length=100)
    place: str | None = Field(default=None, min_length=1, max_length=200)
    venue_format: str | None = Field(default=None, max_length=100)
    description: str | None = Field(default=None, max_length=10000)
    start_date: DateIn | None = None
    end_date: DateIn | None = None
    dates_to_be_confirmed: bool | None = None
    timezone: str | None = None
    capacity: int | None = Field(default=None, ge=1, le=100000)
    currency: str | None = None
    dues_year: int | None = Field(default=None, ge=1900, le=2200)
    income_fy: FiscalYear | None = Field(default=None, ge=1990, le=2200)
    applications_open: InstantIn | None = None
    applications_close: InstantIn | None = None
    cancellation_cutoff_days: int | None = Field(default=None, ge=0, le=365)
    refund_percent: PercentIn | None = None
    refund_within_days: int | None = Field(default=None, ge=0, le=365)
    tax_rate: PercentIn | None = None
    tax_note: str | None = Field(default=None, max_length=300)
    # At a 0 % rate, the exemption that applies, as a VATEX code (editions/vat.py lists them).
    vat_exemption: str | None = Field(default=None, max_length=30)
    fee_includes: list[str] | None = Field(default=None, max_length=50)
    fee_excludes: list[str] | None = Field(default=None, max_length=50)
    modules: list[ModuleIn] | None = Field(default=None, max_length=20)
    retention_days: int | None = Field(default=None, ge=30, le=3650)

    _tz = field_validator("timezone")(lambda v: None if v is None else _valid_timezone(v))
    _cur = field_validator("currency")(lambda v: None if v is None else _valid_currency(v))
    _vat = field_validator("vat_exemption")(lambda v: None if v is None else _valid_exemption(v))
    _in_years = field_validator(
        "start_date", "end_date", "applications_open", "applications_close"
    )(_within_years)


class EditionCreate(EditionFields):
    """A new edition; without modules it gets the Diploma's five lessons."""

    slug: str = Field(pattern=SLUG_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    place: str = Field(min_length=1, max_length=200)
    start_date: DateIn
    end_date: DateIn
    timezone: str
    capacity: int = Field(ge=1, le=100000)
    currency: str = "EUR"
    dues_year: int = Field(ge=1900, le=2200)
    income_fy: FiscalYear = Field(ge=1990, le=2200)
    fees: FeesIn
    course: str = Field(default=DIPLOMA_COURSE_SLUG, pattern=SLUG_PATTERN)

    _tz2 = field_validator("timezone")(_valid_timezone)
    _cur2 = field_validator("currency")(_valid_currency)


class EditionPatch(EditionFields):
    """Any of an edition's fields."""

    fees: FeesPatch | None = None


def cancellation_deadline(edition: Edition) -> datetime:
    """The instant from which no cancellation is accepted: start - N days, 00:00 local."""
    day = edition.start_date - timedelta(days=edition.cancellation_cutoff_days)
    return datetime.combine(day, time(0, 0), tzinfo=ZoneInfo(edition.timezone))


def local_time(edition: Edition, instant: datetime) -> datetime:
    """An instant as the edition's wall clock shows it."""
    return instant.astimezone(ZoneInfo(edition.timezone))


def applications_are_open(edition: Edition, *, now: datetime | None = None) -> bool:
    """Whether the application window is open now."""
    now = now or utcnow()
    return edition.applications_open <= now < edition.applications_close


def fee_schedule(edition: Edition, *, group_size: int) -> FeeSchedule:
    """The edition's fee schedule for the pricing rules, for a group of `group_size`.

    Every group discount starts at two people, so one person's schedule leaves them out:
    they are not read for an edition that came without them (`get_edition_alone`).
    """
    group_tiers = group_size > 1 or "group_tiers" in edition.__dict__
    return FeeSchedule(
        standard=edition.fee_standard,
        member=edition.fee_member,
        waiver_percent=edition.waiver_percent,
        group_tiers=tuple(
            PricingTier(min_size=t.min_size, percent=t.percent) for t in edition.group_tiers
        )
        if group_tiers
        else (),
    )


# Built once: each call only binds the slug.
_EDITION_ALONE = select(Edition).where(col(Edition.slug) == bindparam("slug"))
_EDITION_BY_SLUG = _EDITION_ALONE.options(joinedload(cast(Any, Edition.group_tiers)))


# The same with what its public page shows: the course, and the programme's modules and
# sessions in one query each rather than one per module.
_EDITION_WITH_PROGRAMME = _EDITION_BY_SLUG.options(
    joinedload(cast(Any, Edition.course)),
    selectinload(cast(Any, Edition.modules)).selectinload(cast(Any, Module.sessions)),
)


def get_edition(session: Session, slug: str, *, programme: bool = False) -> Edition:
    """The edition with this slug, or NotFound; its group discounts come in the same query.

    With `programme`, its course, modules and sessions are loaded too (three queries in all).
    """
    statement = _EDITION_WITH_PROGRAMME if programme else _EDITION_BY_SLUG
    return _one_edition(session, statement, slug)


def get_edition_alone(session: Session, slug: str) -> Edition:
    """The edition with this slug, or NotFound, without its group discounts (read when first
    used): one person's application or quote has no use for them, and the join costs a third
    of the edition's reading."""
    return _one_edition(session, _EDITION_ALONE, slug)


def _one_edition(session: Session, statement: Any, slug: str) -> Edition:
    edition: Edition | None = session.exec(statement, params={"slug": slug}).unique().first()
    if edition is None:
        raise NotFound(f"There is no edition {slug!r}.")
    return edition


def list_editions(session: Session) -> list[Edition]:
    """Every edition, the soonest first."""
    return list(session.exec(select(Edition).order_by(col(Edition.start_date).desc())).all())


def default_modules(start_date: date, end_date: date, timezone: str) -> list[ModuleIn]:
    """The Diploma's five lessons, one knowledge session each, spread over the days."""
    zone = ZoneInfo(timezone)
    days = max((end_date - start_date).days + 1, 1)
    modules = []
    for index, (title, description) in enumerate(DIPLOMA_LESSONS):
        day = start_date + timedelta(days=min(index, days - 1))
        starts = datetime.combine(day, time(9, 30), tzinfo=zone)
        modules.append(
            ModuleIn(
                title=title,
                description=description,
                sessions=[
                    SessionIn(
                        kind=SessionKind.knowledge,
                        title=f"Lesson {index + 1}: {title}",
                        starts_at=starts,
                        ends_at=starts + timedelta(hours=3),
                    )
                ],
            )
        )
    return modules


def _get_or_create_course(session: Session, slug: str) -> Course:
    course = session.exec(select(Course).where(Course.slug == slug)).first()
    if course is not None:
        return course
    if slug != DIPLOMA_COURSE_SLUG:
        raise InvalidInput(f"There is no course {slug!r}.", fields={"course": "Unknown course."})
    course = Course(slug=DIPLOMA_COURSE_SLUG, title=DIPLOMA_COURSE_TITLE)
    session.add(course)
    session.flush()
    return course


def _check_consistency(edition: Edition) -> None:
    faults: dict[str, str] = {}
    if edition.end_date < edition.start_date:
        faults["end_date"] = "The end date must be on or after the start date."
    if edition.applications_close < edition.applications_open:
        faults["applications_close"] = "Applications cannot close before they open."
    if faults:
        raise InvalidInput("The edition's dates do not fit together.", fields=faults)


def _replace_modules(edition: Edition, modules: list[ModuleIn]) -> None:
    edition.modules.clear()
    for position, module_in in enumerate(modules, start=1):
        module = Module(position=position, title=module_in.title, description=module_in.description)
        module.sessions = [
            CourseSession(
                kind=s.kind.value,
                title=s.title,
                starts_at=s.starts_at.astimezone(UTC),
                ends_at=s.ends_at.astimezone(UTC),
                place=s.place,
            )
            for s in sorted(module_in.sessions, key=lambda s: s.starts_at)
        ]
        edition.modules.append(module)


def _replace_tiers(edition: Edition, tiers: list[GroupTierIn]) -> None:
    edition.group_tiers.clear()
    for tier in tiers:
        edition.group_tiers.append(GroupTier(min_size=tier.min_size, percent=tier.percent))


def edition_snapshot(edition: Edition) -> dict[str, Any]:
    """The edition's settings as plain JSON values, for the audit log."""
    return {
        "title": edition.title,
        "edition_label": edition.edition_label,
        "place": edition.place,
        "venue_format": edition.venue_format,
        "description": edition.description,
        "start_date": edition.start_date.isoformat(),
        "end_date": edition.end_date.isoformat(),
        "dates_to_be_confirmed": edition.dates_to_be_confirmed,
        "timezone": edition.timezone,
        "capacity": edition.capacity,
        "currency": edition.currency,
        "applications_open": edition.applications_open.isoformat(),
        "applications_close": edition.applications_close.isoformat(),
        "fee_standard": str(edition.fee_standard),
        "fee_member": str(edition.fee_member),
        "waiver_percent": str(edition.waiver_percent),
        "fees_are_examples": edition.fees_are_examples,
        "group_tiers": [[t.min_size, str(t.percent)] for t in edition.group_tiers],
        "dues_year": edition.dues_year,
        "income_fy": edition.income_fy,
        "cancellation_cutoff_days": edition.cancellation_cutoff_days,
        "refund_percent": str(edition.refund_percent),
        "refund_within_days": edition.refund_within_days,
        "tax_rate": str(edition.tax_rate),
        "tax_note": edition.tax_note,
        "vat_exemption": edition.vat_exemption,
        "fee_includes": list(edition.fee_includes),
        "fee_excludes": list(edition.fee_excludes),
        "retention_days": edition.retention_days,
    }


_SIMPLE_FIELDS = (
    "title",
    "edition_label",
    "place",
    "venue_format",
    "description",
    "start_date",
    "end_date",
    "dates_to_be_confirmed",
    "timezone",
    "capacity",
    "currency",
    "dues_year",
    "income_fy",
    "cancellation_cutoff_days",
    "refund_percent",
    "refund_within_days",
    "tax_rate",
    "tax_note",
    "vat_exemption",
    "fee_includes",
    "fee_excludes",
    "retention_days",
)


def create_edition(session: Session, *, data: EditionCreate, actor: str) -> Edition:
    """Store a new edition; a taken slug is a Conflict."""
    if session.exec(select(Edition.id).where(Edition.slug == data.slug)).first() is not None:
        raise Conflict(
            f"An edition {data.slug!r} already exists.", fields={"slug": "This slug is taken."}
        )
    course = _get_or_create_course(session, data.course)
    zone = ZoneInfo(data.timezone)
    closes = data.applications_close or datetime.combine(data.start_date, time(0), tzinfo=zone)
    # Without a given opening, the window opens now (or is empty for an edition in the past).
    opens = data.applications_open or min(utcnow(), closes)
    edition = Edition(
        course_id=course.id,  # type: ignore[arg-type]
        slug=data.slug,
        title=data.title,
        edition_label=data.edition_label or "",
        place=data.place,
        venue_format=data.venue_format or "In person",
        description=data.description or "",
        start_date=data.start_date,
        end_date=data.end_date,
        dates_to_be_confirmed=bool(data.dates_to_be_confirmed),
        timezone=data.timezone,
        capacity=data.capacity,
        currency=data.currency,
        applications_open=opens.astimezone(UTC),
        applications_close=closes.astimezone(UTC),
        fee_standard=data.fees.standard,
        fee_member=data.fees.member,
        waiver_percent=data.fees.waiver_percent,
        fees_are_examples=data.fees.are_examples,
        dues_year=data.dues_year,
        income_fy=data.income_fy,
        cancellation_cutoff_days=(
            30 if data.cancellation_cutoff_days is None else data.cancellation_cutoff_days
        ),
        refund_percent=Decimal("75") if data.refund_percent is None else data.refund_percent,
        refund_within_days=30 if data.refund_within_days is None else data.refund_within_days,
        tax_rate=Decimal("0") if data.tax_rate is None else data.tax_rate,
        tax_note=data.tax_note or "",
        vat_exemption=data.vat_exemption or DEFAULT_EXEMPTION,
        fee_includes=(
            list(DEFAULT_FEE_INCLUDES) if data.fee_includes is None else data.fee_includes
        ),
        fee_excludes=(
            list(DEFAULT_FEE_EXCLUDES) if data.fee_excludes is None else data.fee_excludes
        ),
        retention_days=365 if data.retention_days is None else data.retention_days,
    )
    _check_consistency(edition)
    session.add(edition)
    _replace_tiers(edition, data.fees.group_tiers)
    _replace_modules(
        edition, data.modules or default_modules(data.start_date, data.end_date, data.timezone)
    )
    session.flush()
    record_change(
        session,
        actor=actor,
        action="edition.created",
        entity="edition",
        entity_id=edition.slug,
        after=edition_snapshot(edition),
    )
    session.commit()
    session.refresh(edition)
    return edition


def _check_unchanged_since(session: Session, edition: Edition, expected: datetime) -> None:
    """Conflict unless the stored edition was last changed at `expected` (an aware instant)."""
    if expected.tzinfo is None:
        raise InvalidInput(
            "The time the edition was loaded needs a time zone.",
            fields={"updated_at": "Give the time with its UTC offset."},
        )
    # Lock the row until the commit: a save that passed the same check first makes this one
    # wait and then see its new updated_at (PostgreSQL; SQLite serialises writers anyway).
    # Only the column is read again: with the group discounts joined, PostgreSQL would refuse
    # to lock the outer join's side.
    session.refresh(edition, ["updated_at"], with_for_update=True)
    if edition.updated_at.astimezone(UTC) != expected.astimezone(UTC):
        raise Conflict(
            f"The edition {edition.slug!r} was changed at {edition.updated_at.isoformat()}, "
            "after it was loaded; review the stored values and try again.",
            fields={"updated_at": edition.updated_at.isoformat()},
        )


def update_edition(
    session: Session,
    *,
    slug: str,
    data: EditionPatch,
    actor: str,
    expected_updated_at: datetime | None = None,
) -> Edition:
    """Change an edition; with `expected_updated_at`, only if nobody changed it since."""
    edition = get_edition(session, slug)
    if expected_updated_at is not None:
        _check_unchanged_since(session, edition, expected_updated_at)
    before = edition_snapshot(edition)
    given = data.model_dump(exclude_unset=True)
    for name in _SIMPLE_FIELDS:
        if name in given and given[name] is not None:
            setattr(edition, name, getattr(data, name))
    for name in ("applications_open", "applications_close"):
        value = getattr(data, name)
        if name in given and value is not None:
            setattr(edition, name, value.astimezone(UTC))
    if data.fees is not None:
        fees = data.fees
        if fees.standard is not None:
            edition.fee_standard = fees.standard
        if fees.member is not None:
            edition.fee_member = fees.member
        if fees.waiver_percent is not None:
            edition.waiver_percent = fees.waiver_percent
        if fees.are_examples is not None:
            edition.fees_are_examples = fees.are_examples
        if fees.group_tiers is not None:
            # The unit of work inserts before it deletes: flush the old rows out first, or a
            # kept min_size collides with itself on the (edition_id, min_size) unique key.
            edition.group_tiers.clear()
            session.flush()
            _replace_tiers(edition, fees.group_tiers)
    if data.modules is not None:
        marked = session.exec(
            select(AttendanceMark.id)
            .join(CourseSession, col(CourseSession.id) == col(AttendanceMark.course_session_id))
            .join(Module, col(Module.id) == col(CourseSession.module_id))
            .where(Module.edition_id == edition.id)
            .limit(1)
        ).first()
        if marked is not None:
            session.rollback()
            raise Conflict(
                "Attendance has been taken in this edition's sessions, so its modules cannot "
                "be replaced; change single sessions on the programme page instead."
            )
        _replace_modules(edition, data.modules)
    try:
        _check_consistency(edition)
    except InvalidInput:
        # The loaded edition was already changed in memory: undo it so nothing leaks out.
        session.rollback()
        raise
    session.add(edition)
    session.flush()
    after = edition_snapshot(edition)
    changed_before = {k: v for k, v in before.items() if after.get(k) != v}
    changed_after = {k: after[k] for k in changed_before}
    if changed_after or data.modules is not None:
        # Only a real change moves the stamp: a form opened before a no-op PATCH still saves.
        edition.updated_at = utcnow()
        record_change(
            session,
            actor=actor,
            action="edition.updated",
            entity="edition",
            entity_id=edition.slug,
            before=changed_before,
            after=changed_after,
        )
    session.commit()
    session.refresh(edition)
    return edition
