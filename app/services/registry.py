"""The member registry and the income classification: lookups, changes, CSV replacement."""

import csv
import io

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, func, or_
from sqlmodel import Session, col, select

from app.db import utcnow
from app.models import IncomeGroup, Organisation
from app.services.audit import record_change
from app.services.countries import country_name, parse_country
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.reference_data import INCOME_GROUP_CODES, shipped_economy_names

MAX_CSV_ROWS = 5000


class OrganisationIn(BaseModel):
    """A registry entry as given by an administrator."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=2, max_length=200)
    country: str = Field(min_length=2, max_length=100)
    is_member: bool = False
    dues_paid_through: int | None = Field(default=None, ge=1900, le=2200)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        try:
            return parse_country(value)
        except InvalidInput as exc:
            raise ValueError(exc.fields.get("country", exc.message)) from exc


def create_organisation(session: Session, *, data: OrganisationIn, actor: str) -> Organisation:
    """Add an organisation; the same name in the same country twice is a Conflict."""
    existing = session.exec(
        select(Organisation).where(
            func.lower(Organisation.name) == data.name.lower(),
            Organisation.country == data.country,
        )
    ).first()
    if existing is not None:
        raise Conflict(
            f"{data.name} ({data.country}) is already in the registry.",
            fields={"name": "Already in the registry for this country."},
        )
    organisation = Organisation(**data.model_dump())
    session.add(organisation)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="organisation.created",
        entity="organisation",
        entity_id=organisation.id or 0,
        after=data.model_dump(),
    )
    session.commit()
    session.refresh(organisation)
    return organisation


def get_organisation(session: Session, organisation_id: int) -> Organisation:
    """The organisation with this id, or NotFound."""
    organisation = session.get(Organisation, organisation_id)
    if organisation is None:
        raise NotFound(f"There is no organisation {organisation_id}.")
    return organisation


def search_organisations(
    session: Session, *, query: str = "", limit: int = 20
) -> list[Organisation]:
    """Organisations whose name contains `query`, or whose country code or name matches it."""
    statement = select(Organisation)
    text = query.strip()
    if text:
        pattern = f"%{text.lower()}%"
        conditions = [func.lower(Organisation.name).like(pattern)]
        codes = [code for code, name in _country_index() if text.lower() in name.lower()]
        if len(text) == 3:
            codes.append(text.upper())
        if codes:
            conditions.append(col(Organisation.country).in_(codes[:50]))
        statement = statement.where(or_(*conditions))
    statement = statement.order_by(Organisation.name).limit(max(1, min(limit, 100)))
    return list(session.exec(statement).all())


def _country_index() -> list[tuple[str, str]]:
    return [(code, country_name(code)) for code in shipped_economy_names()]


def income_group_of(session: Session, *, iso3: str, fiscal_year: int) -> str | None:
    """The country's income group in that fiscal year (never "the latest"), or None."""
    return session.exec(
        select(IncomeGroup.group).where(
            IncomeGroup.fiscal_year == fiscal_year, IncomeGroup.iso3 == iso3
        )
    ).first()


def income_groups_for_year(session: Session, fiscal_year: int) -> list[IncomeGroup]:
    """A fiscal year's classification, by economy name."""
    return list(
        session.exec(
            select(IncomeGroup)
            .where(IncomeGroup.fiscal_year == fiscal_year)
            .order_by(IncomeGroup.name)
        ).all()
    )


def income_fiscal_years(session: Session) -> list[int]:
    """The fiscal years for which a classification is stored."""
    return list(
        session.exec(
            select(IncomeGroup.fiscal_year).distinct().order_by(col(IncomeGroup.fiscal_year))
        ).all()
    )


def parse_income_group_csv(text: str) -> list[tuple[str, str, str]]:
    """Rows `(iso3, name, group)` from CSV `iso3,income_group`; all bad rows in one error."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    rows: list[tuple[str, str, str]] = []
    faults: dict[str, str] = {}
    seen: dict[str, int] = {}
    names = shipped_economy_names()
    for line_number, record in enumerate(reader, start=1):
        cells = [cell.strip() for cell in record]
        if not any(cells):
            continue
        if line_number == 1 and cells and cells[0].lower() == "iso3":
            continue
        if len(rows) + len(faults) >= MAX_CSV_ROWS:
            faults["body"] = f"At most {MAX_CSV_ROWS} rows."
            break
        key = f"row {line_number}"
        if len(cells) != 2:
            faults[key] = f"expected 2 columns (iso3,income_group), got {len(cells)}"
            continue
        code, group = cells[0].upper(), cells[1].upper()
        problems = []
        if not code.isalpha() or len(code) != 3 or not _is_known_economy(code, names):
            problems.append(f"{cells[0]!r} is not a known ISO alpha-3 or World Bank code")
        if group not in INCOME_GROUP_CODES:
            problems.append(f"{cells[1]!r} is not an income group (L, LM, UM or H)")
        if code in seen:
            problems.append(f"{code} appears again (first on row {seen[code]})")
        if problems:
            faults[key] = "; ".join(problems)
            continue
        seen[code] = line_number
        rows.append((code, names.get(code) or country_name(code), group))
    if not rows and not faults:
        faults["body"] = "The CSV has no rows: send `iso3,income_group` lines."
    if faults:
        raise InvalidInput(
            f"{len(faults)} row(s) of the CSV are wrong; nothing was changed.", fields=faults
        )
    return rows


def _is_known_economy(code: str, names: dict[str, str]) -> bool:
    return code in names or country_name(code) != code


def replace_income_groups(session: Session, *, fiscal_year: int, csv_text: str, actor: str) -> int:
    """Replace one fiscal year's classification from CSV, all rows or none; returns the count."""
    if not 1990 <= fiscal_year <= 2200:
        raise InvalidInput(
            "Unknown fiscal year.", fields={"fiscal_year": "Give a year such as 2023 or FY2023."}
        )
    rows = parse_income_group_csv(csv_text)
    before = session.exec(
        select(func.count()).select_from(IncomeGroup).where(IncomeGroup.fiscal_year == fiscal_year)
    ).one()
    session.execute(delete(IncomeGroup).where(col(IncomeGroup.fiscal_year) == fiscal_year))
    session.add_all(
        IncomeGroup(fiscal_year=fiscal_year, iso3=code, name=name, group=group)
        for code, name, group in rows
    )
    record_change(
        session,
        actor=actor,
        action="income_groups.replaced",
        entity="income_groups",
        entity_id=f"FY{fiscal_year}",
        before={"rows": before},
        after={"rows": len(rows), "at": utcnow().isoformat()},
    )
    session.commit()
    return len(rows)
