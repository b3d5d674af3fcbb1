"""The editions' JSON API: editions, their programme and fees, and quotes."""

from datetime import date, datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from app.models import Edition
from app.services.billing.quotes import MAX_GROUP_SIZE, quote_as_json, quote_for_edition
from app.services.editions import editions as edition_service
from app.services.schemas import MoneyOut
from app.web.dependencies import (
    ApiAdmin,
    ReadSessionDep,
    SessionDep,
)

router = APIRouter(prefix="/api/v1", tags=["api"])


class GroupTierOut(BaseModel):
    """A group discount tier."""

    min_size: int
    percent: MoneyOut


class FeesOut(BaseModel):
    """An edition's fee schedule."""

    standard: MoneyOut
    member: MoneyOut
    waiver_percent: MoneyOut
    group_tiers: list[GroupTierOut]
    are_examples: bool


class CancellationPolicyOut(BaseModel):
    """The values of the written cancellation policy."""

    cutoff_days: int
    refund_percent: MoneyOut
    refund_within_days: int


class SessionOut(BaseModel):
    """A session of a module."""

    id: int
    kind: str
    title: str
    starts_at: datetime
    ends_at: datetime
    place: str


class ModuleOut(BaseModel):
    """A module with its sessions."""

    id: int
    position: int
    title: str
    description: str
    sessions: list[SessionOut]


class EditionSummaryOut(BaseModel):
    """An edition in a list."""

    slug: str
    title: str
    edition_label: str
    course: str
    place: str
    start_date: date
    end_date: date
    dates_to_be_confirmed: bool
    timezone: str
    currency: str
    applications_open: datetime
    applications_close: datetime
    applications_are_open: bool


class EditionOut(EditionSummaryOut):
    """An edition with its modules, fees and derived dates."""

    venue_format: str
    description: str
    capacity: int
    dues_year: int
    income_fy: int
    fees: FeesOut
    cancellation_policy: CancellationPolicyOut
    cancellation_deadline: datetime
    fee_includes: list[str]
    fee_excludes: list[str]
    modules: list[ModuleOut]
    retention_days: int


def edition_summary(edition: Edition) -> dict[str, object]:
    """The list fields of an edition, timestamps on the edition's clock."""
    local = edition_service.local_time
    return {
        "slug": edition.slug,
        "title": edition.title,
        "edition_label": edition.edition_label,
        "course": edition.course.title,
        "place": edition.place,
        "start_date": edition.start_date,
        "end_date": edition.end_date,
        "dates_to_be_confirmed": edition.dates_to_be_confirmed,
        "timezone": edition.timezone,
        "currency": edition.currency,
        "applications_open": local(edition, edition.applications_open),
        "applications_close": local(edition, edition.applications_close),
        "applications_are_open": edition_service.applications_are_open(edition),
    }


def edition_out(edition: Edition) -> EditionOut:
    """The full public view of an edition."""
    local = edition_service.local_time
    return EditionOut.model_validate(
        {
            **edition_summary(edition),
            "venue_format": edition.venue_format,
            "description": edition.description,
            "capacity": edition.capacity,
            "dues_year": edition.dues_year,
            "income_fy": edition.income_fy,
            "fees": {
                "standard": edition.fee_standard,
                "member": edition.fee_member,
                "waiver_percent": edition.waiver_percent,
                "group_tiers": [
                    {"min_size": t.min_size, "percent": t.percent} for t in edition.group_tiers
                ],
                "are_examples": edition.fees_are_examples,
            },
            "cancellation_policy": {
                "cutoff_days": edition.cancellation_cutoff_days,
                "refund_percent": edition.refund_percent,
                "refund_within_days": edition.refund_within_days,
            },
            "cancellation_deadline": edition_service.cancellation_deadline(edition),
            "fee_includes": edition.fee_includes,
            "fee_excludes": edition.fee_excludes,
            "retention_days": edition.retention_days,
            "modules": [
                {
                    "id": m.id,
                    "position": m.position,
                    "title": m.title,
                    "description": m.description,
                    "sessions": [
                        {
                            "id": s.id,
                            "kind": s.kind,
                            "title": s.title,
                            "starts_at": local(edition, s.starts_at),
                            "ends_at": local(edition, s.ends_at),
                            "place": s.place,
                        }
                        for s in m.sessions
                    ],
                }
                for m in edition.modules
            ],
        }
    )


class QuoteIn(BaseModel):
    """Who would pay: a registry organisation, or a country alone (a non-member)."""

    model_config = ConfigDict(extra="forbid")

    organisation_id: int | None = None
    country: str | None = Field(default=None, max_length=100)
    group_size: int = Field(default=1, ge=1, le=MAX_GROUP_SIZE)


class QuoteLineOut(BaseModel):
    """One line of a quote and why it applies."""

    code: str
    label: str
    amount: str
    reason: str


class QuoteOut(BaseModel):
    """A participant's fee, line by line."""

    currency: str
    lines: list[QuoteLineOut]
    total: str
    member_in_good_standing: bool
    waived: bool
    group_size: int


@router.get("/editions", response_model=list[EditionSummaryOut])
def list_editions(session: SessionDep) -> list[dict[str, object]]:
    """Every edition, the latest first."""
    return [edition_summary(e) for e in edition_service.list_editions(session)]


@router.get("/editions/{slug}", response_model=EditionOut)
def get_edition(slug: str, session: SessionDep) -> EditionOut:
    """An edition with its modules, sessions, fees and cancellation deadline."""
    return edition_out(edition_service.get_edition(session, slug))


@router.post("/editions", response_model=EditionOut, status_code=status.HTTP_201_CREATED)
def create_edition(
    data: edition_service.EditionCreate, session: SessionDep, admin: ApiAdmin
) -> EditionOut:
    """Create an edition (without modules it gets the five lessons, one session each)."""
    return edition_out(edition_service.create_edition(session, data=data, actor=admin.email))


@router.patch("/editions/{slug}", response_model=EditionOut)
def update_edition(
    slug: str, data: edition_service.EditionPatch, session: SessionDep, admin: ApiAdmin
) -> EditionOut:
    """Change any of an edition's fields; derived deadlines follow."""
    return edition_out(
        edition_service.update_edition(session, slug=slug, data=data, actor=admin.email)
    )


@router.post("/editions/{slug}/quote", response_model=QuoteOut)
def quote(slug: str, data: QuoteIn, session: ReadSessionDep) -> dict[str, object]:
    """What one participant would pay, with the reason for each line."""
    edition = (
        edition_service.get_edition(session, slug)
        if data.group_size > 1
        else edition_service.get_edition_alone(session, slug)
    )
    return quote_as_json(
        quote_for_edition(
            session,
            edition=edition,
            organisation_id=data.organisation_id,
            country=data.country,
            group_size=data.group_size,
        )
    )
