"""The registry's JSON API: organisations and the income classification."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import BaseModel, Field

from app.models import Organisation
from app.services.errors import InvalidInput
from app.services.registry import organisations as registry
from app.services.registry.countries import country_name
from app.services.schemas import FiscalYear
from app.web.dependencies import ApiAdmin, SessionDep
from app.web.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["registry"])


class OrganisationOut(BaseModel):
    """A registry entry as administrators see it."""

    id: int
    name: str
    country: str
    country_name: str
    is_member: bool
    dues_paid_through: int | None


class OrganisationPublicOut(BaseModel):
    """A registry entry as anyone may see it: no dues data."""

    id: int
    name: str
    country: str
    country_name: str
    is_member: bool


def organisation_fields(organisation: Organisation) -> dict[str, object]:
    """An organisation's fields with its country's name."""
    return {**organisation.model_dump(), "country_name": country_name(organisation.country)}


class IncomeGroupsOut(BaseModel):
    """The result of replacing a fiscal year's classification."""

    fiscal_year: int
    rows: int


@router.post(
    "/organisations",
    response_model=OrganisationOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(409),
)
def create_organisation(
    data: registry.OrganisationIn, session: SessionDep, admin: ApiAdmin
) -> dict[str, object]:
    """Add an organisation to the member registry."""
    organisation = registry.create_organisation(session, data=data, actor=admin.email)
    return organisation_fields(organisation)


@router.get("/organisations", response_model=list[OrganisationPublicOut])
def search_organisations(
    session: SessionDep,
    q: Annotated[str, Query(max_length=100)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[dict[str, object]]:
    """Search the registry by name or country (no dues data)."""
    return [
        organisation_fields(o) for o in registry.search_organisations(session, query=q, limit=limit)
    ]


async def request_body(request: Request) -> bytes:
    """The raw request body."""
    return await request.body()


@router.put(
    "/income-groups/{fiscal_year}",
    response_model=IncomeGroupsOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
def replace_income_groups(
    fiscal_year: Annotated[str, Path(max_length=10)],
    raw: Annotated[bytes, Depends(request_body)],
    session: SessionDep,
    admin: ApiAdmin,
) -> IncomeGroupsOut:
    """Replace a fiscal year's classification from CSV `iso3,income_group`, all rows or none."""
    year = _fiscal_year(fiscal_year)
    if len(raw) > 1_000_000:
        raise InvalidInput("The CSV is too large.", fields={"body": "At most 1 MB."})
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("The CSV is not UTF-8.", fields={"body": "Send UTF-8 text."}) from exc
    count = registry.replace_income_groups(
        session, fiscal_year=year, csv_text=text, actor=admin.email
    )
    return IncomeGroupsOut(fiscal_year=year, rows=count)


def _fiscal_year(value: str) -> int:
    class _Year(BaseModel):
        fiscal_year: FiscalYear = Field(ge=1990, le=2200)

    try:
        return _Year(fiscal_year=value).fiscal_year
    except ValueError as exc:
        raise InvalidInput(
            f"{value!r} is not a fiscal year.",
            fields={"fiscal_year": "Give a year such as 2023 or FY2023."},
        ) from exc
