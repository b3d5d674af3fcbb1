"""The member registry and the income classification: lookups, changes, CSV replacement."""

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import ColumnElement, and_, bindparam, delete, func, not_, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.models import IncomeGroup, Organisation
from app.platform.audit import record_change
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registry.countries import country_name, parse_country
from app.services.registry.reference_data import (
    INCOME_GROUP_CODES,
    INCOME_GROUP_NAMES,
    shipped_economy_names,
)

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


MAX_SEARCH_CHARS = 200


def search_organisations(
    session: Session, *, query: str = "", limit: int = 20
) -> list[Organisation]:
    """Organisations whose name contains `query`, or whose country code or name matches it."""
    statement = select(Organisation)
    text = query.strip()
    if len(text) > MAX_SEARCH_CHARS:
        # A pattern this long only ties up the database (SQLite's LIKE gives up, as "busy").
        raise InvalidInput(
            "The search is too long.",
            fields={"q": f"Search with at most {MAX_SEARCH_CHARS} characters."},
        )
    if text:
        statement = statement.where(_matches_text(text, max_codes=50))
    statement = statement.order_by(Organisation.name).limit(max(1, min(limit, 100)))
    return list(session.exec(statement).all())


def _matches_text(text: str, *, max_codes: int | None = None) -> ColumnElement[bool]:
    """Name contains `text`, or the country's name contains it, or it is the country's code."""
    pattern = f"%{text.lower()}%"
    conditions = [func.lower(Organisation.name).like(pattern)]
    codes = [code for code, name in _country_index() if text.lower() in name.lower()]
    if len(text) == 3:
        codes.append(text.upper())
    if codes:
        conditions.append(col(Organisation.country).in_(codes[:max_codes]))
    return or_(*conditions)


def _country_index() -> list[tuple[str, str]]:
    return [(code, country_name(code)) for code in shipped_economy_names()]


# Built once: every quote asks it. On the table, not the entity: a plain value needs none of
# the ORM's work on a statement.
_INCOME_TABLE = IncomeGroup.__table__  # type: ignore[attr-defined]
_INCOME_GROUP = select(_INCOME_TABLE.c.group).where(
    _INCOME_TABLE.c.fiscal_year == bindparam("fiscal_year"),
    _INCOME_TABLE.c.iso3 == bindparam("iso3"),
)
_INCOME_GROUP_VALUE = _INCOME_GROUP.scalar_subquery()


def income_group_query() -> Any:
    """`income_group_of` as a scalar expression with the parameters `iso3` and
    `fiscal_year`, to ask it along with something else."""
    return _INCOME_GROUP_VALUE


def income_group_in(fiscal_year: Any) -> Any:
    """The income group of the country `iso3` (a parameter) in `fiscal_year` (e.g. an
    edition's column), as a scalar expression to read along with it."""
    return (
        select(_INCOME_TABLE.c.group)
        .where(
            _INCOME_TABLE.c.fiscal_year == fiscal_year, _INCOME_TABLE.c.iso3 == bindparam("iso3")
        )
        .scalar_subquery()
    )


def income_group_of(session: Session, *, iso3: str, fiscal_year: int) -> str | None:
    """The country's income group in that fiscal year (never "the latest"), or None."""
    group: str | None = session.execute(
        _INCOME_GROUP, {"fiscal_year": fiscal_year, "iso3": iso3}
    ).scalar()
    return group


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


# The registry pages: listing with filters, editing, and the CSV import.

MembershipFilter = Literal["all", "member", "behind", "non_member"]
MembershipStatus = Literal["member", "behind", "non_member"]
ORGANISATIONS_PER_PAGE = 50
IMPORT_COLUMNS = ("name", "country", "is_member", "dues_paid_through")
MAX_IMPORT_BYTES = 2 * 1024 * 1024
# The same cap as PUT /api/v1/income-groups, so a file the API refuses is refused here too.
MAX_INCOME_CSV_BYTES = 1_000_000
_YES = frozenset({"yes", "y", "true", "1"})
_NO = frozenset({"no", "n", "false", "0", ""})


def default_dues_year(today: date | None = None) -> int:
    """The dues year the registry is judged by unless asked otherwise: last calendar year."""
    # Dues are paid for a year that has ended: the 2024 Diploma asks for dues paid through 2023.
    return (today or date.today()).year - 1


def membership_status(organisation: Organisation, *, dues_year: int) -> MembershipStatus:
    """`member` in good standing for `dues_year`, `behind` on dues, or `non_member`."""
    if not organisation.is_member:
        return "non_member"
    paid = organisation.dues_paid_through
    return "member" if paid is not None and paid >= dues_year else "behind"


@dataclass(frozen=True)
class OrganisationPage:
    """One page of a filtered registry listing."""

    organisations: list[Organisation]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages the whole listing has (at least one)."""
        return max(1, -(-self.total // self.per_page))


def list_organisations(
    session: Session,
    *,
    dues_year: int,
    query: str = "",
    status: MembershipFilter = "all",
    country: str = "",
    page: int = 1,
    per_page: int = ORGANISATIONS_PER_PAGE,
) -> OrganisationPage:
    """The registry by name, filtered by text, membership status for `dues_year` and country."""
    conditions: list[ColumnElement[bool]] = []
    text = query.strip()
    if text:
        conditions.append(_matches_text(text))
    if country.strip():
        conditions.append(col(Organisation.country) == country.strip().upper())
    is_member = col(Organisation.is_member)
    paid = col(Organisation.dues_paid_through)
    if status == "member":
        conditions.append(and_(is_member, paid >= dues_year))
    elif status == "behind":
        conditions.append(and_(is_member, or_(paid.is_(None), paid < dues_year)))
    elif status == "non_member":
        conditions.append(not_(is_member))
    total = session.exec(select(func.count()).select_from(Organisation).where(*conditions)).one()
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages)
    organisations = session.exec(
        select(Organisation)
        .where(*conditions)
        .order_by(func.lower(Organisation.name), col(Organisation.country), col(Organisation.id))
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return OrganisationPage(list(organisations), total, page, per_page)


def registry_countries(session: Session) -> list[tuple[str, str]]:
    """(alpha-3, name) of each country with an organisation in the registry, by name."""
    codes = session.exec(select(Organisation.country).distinct()).all()
    return sorted(((code, country_name(code)) for code in codes), key=lambda item: item[1])


def _snapshot(organisation: Organisation) -> dict[str, Any]:
    return {
        "name": organisation.name,
        "country": organisation.country,
        "is_member": organisation.is_member,
        "dues_paid_through": organisation.dues_paid_through,
    }


def update_organisation(
    session: Session, *, organisation_id: int, data: OrganisationIn, actor: str
) -> Organisation:
    """Change an organisation; another entry of the same name in the same country is a Conflict."""
    organisation = get_organisation(session, organisation_id)
    clash = session.exec(
        select(Organisation).where(
            func.lower(Organisation.name) == data.name.lower(),
            Organisation.country == data.country,
            Organisation.id != organisation_id,
        )
    ).first()
    if clash is not None:
        raise Conflict(
            f"{data.name} ({data.country}) is already in the registry.",
            fields={"name": "Another entry has this name in this country."},
        )
    before = _snapshot(organisation)
    after = data.model_dump()
    if after == before:
        return organisation
    for name, value in after.items():
        setattr(organisation, name, value)
    organisation.updated_at = utcnow()
    session.add(organisation)
    record_change(
        session,
        actor=actor,
        action="organisation.updated",
        entity="organisation",
        entity_id=organisation_id,
        before=before,
        after=after,
    )
    try:
        session.commit()
    except IntegrityError as exc:
        # Someone stored the same name and country between our check and the commit.
        session.rollback()
        raise Conflict(
            f"{data.name} ({data.country}) is already in the registry.",
            fields={"name": "Another entry has this name in this country."},
        ) from exc
    session.refresh(organisation)
    return organisation


ImportAction = Literal["create", "update", "error"]


@dataclass(frozen=True)
class ImportRow:
    """One data line of an import file and what applying it would do."""

    line: int
    # The parsed values when the row is valid; the cells as written when it is not.
    values: dict[str, Any]
    action: ImportAction
    errors: dict[str, str] = field(default_factory=dict)  # column, or "row" -> message
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (before, after)
    organisation_id: int | None = None  # the entry an update changes


@dataclass(frozen=True)
class ImportPlan:
    """What an import file would create and update, or why it cannot be applied."""

    rows: list[ImportRow]
    problems: dict[str, str] = field(default_factory=dict)  # faults of the whole file

    @property
    def creates(self) -> int:
        """Rows that add an organisation."""
        return sum(1 for row in self.rows if row.action == "create")

    @property
    def updates(self) -> int:
        """Rows that change an organisation already in the registry."""
        return sum(1 for row in self.rows if row.action == "update" and row.changes)

    @property
    def unchanged(self) -> int:
        """Rows that match an organisation exactly."""
        return sum(1 for row in self.rows if row.action == "update" and not row.changes)

    @property
    def error_rows(self) -> int:
        """Rows that cannot be applied."""
        return sum(1 for row in self.rows if row.action == "error")

    @property
    def faults(self) -> dict[str, str]:
        """Every fault, keyed by "row N" (its line) or by "file" / "header"."""
        faults = dict(self.problems)
        for row in self.rows:
            if row.errors:
                faults[f"row {row.line}"] = "; ".join(
                    message if column == "row" else f"{column}: {message}"
                    for column, message in row.errors.items()
                )
        return faults

    @property
    def can_apply(self) -> bool:
        """Whether every row is valid (an import applies all rows or none)."""
        return bool(self.rows) and not self.faults


def decode_csv(raw: bytes, *, max_bytes: int, field_name: str = "file") -> str:
    """The text of an uploaded CSV, which must be UTF-8 (a byte-order mark is fine)."""
    if len(raw) > max_bytes:
        raise InvalidInput(
            "The CSV is too large.",
            fields={field_name: f"The file is larger than {round(max_bytes / 1_000_000)} MB."},
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            "The CSV is not UTF-8.",
            fields={field_name: "The file is not UTF-8 text: save it as “CSV UTF-8” and retry."},
        ) from exc
    if "\x00" in text:
        raise InvalidInput(
            "The file is not a CSV.", fields={field_name: "The file is not a text CSV."}
        )
    return text


def plan_organisation_import(session: Session, csv_text: str) -> ImportPlan:
    """Parse and check a registry CSV against what is stored; nothing is written."""
    text = csv_text.lstrip("\ufeff").replace("\r\n", "\n")
    if len(text.encode("utf-8")) > MAX_IMPORT_BYTES:
        return ImportPlan(rows=[], problems={"file": "The CSV is larger than 2 MB: split it."})
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows: list[ImportRow] = []
    stored = {
        (organisation.name.casefold(), organisation.country): organisation
        for organisation in session.exec(select(Organisation)).all()
    }
    seen: dict[tuple[str, str], int] = {}
    last_line = 0
    try:
        for record in reader:
            line, last_line = last_line + 1, reader.line_num
            cells = [cell.strip() for cell in record]
            if not any(cells):
                continue
            if header is None:
                problem = _import_header_problem(cells)
                if problem:
                    return ImportPlan(rows=[], problems={"header": problem})
                header = [cell.lower() for cell in cells]
                continue
            if len(rows) >= MAX_CSV_ROWS:
                return ImportPlan(
                    rows=[], problems={"file": f"At most {MAX_CSV_ROWS} rows: split the file."}
                )
            rows.append(_plan_import_row(line, cells, header, stored, seen))
    except csv.Error as exc:
        return ImportPlan(rows=[], problems={"file": f"Line {reader.line_num} is not CSV: {exc}."})
    if header is None:
        return ImportPlan(
            rows=[],
            problems={"header": f"The file is empty: start with the header {_COLUMNS_TEXT}."},
        )
    if not rows:
        return ImportPlan(rows=[], problems={"file": "The CSV has a header but no rows."})
    return ImportPlan(rows=rows)


_COLUMNS_TEXT = ",".join(IMPORT_COLUMNS)


def _import_header_problem(cells: list[str]) -> str | None:
    names = [cell.lower() for cell in cells]
    faults = []
    unknown = [cell for cell in cells if cell.lower() not in IMPORT_COLUMNS]
    if unknown:
        faults.append("unknown column(s) " + ", ".join(repr(cell) for cell in unknown))
    missing = [column for column in IMPORT_COLUMNS if column not in names]
    if missing:
        faults.append("missing " + ", ".join(missing))
    repeated = sorted(column for column, count in Counter(names).items() if count > 1)
    if repeated:
        faults.append("repeated " + ", ".join(repeated))
    if not faults:
        return None
    return f"The first line must be the header {_COLUMNS_TEXT} (in any order): {'; '.join(faults)}."


def _plan_import_row(
    line: int,
    cells: list[str],
    header: list[str],
    stored: dict[tuple[str, str], Organisation],
    seen: dict[tuple[str, str], int],
) -> ImportRow:
    if len(cells) != len(header):
        return ImportRow(
            line=line,
            values=dict(zip(header, cells, strict=False)),
            action="error",
            errors={"row": f"Expected {len(header)} columns, found {len(cells)}."},
        )
    written = dict(zip(header, cells, strict=True))
    errors: dict[str, str] = {}
    given: dict[str, Any] = {"name": written["name"], "country": written["country"]}
    member = written["is_member"].lower()
    if member in _YES or member in _NO:
        given["is_member"] = member in _YES
    else:
        errors["is_member"] = f"{written['is_member']!r} is not yes or no."
    dues = written["dues_paid_through"]
    if dues.isascii() and dues.isdigit() and 1900 <= int(dues) <= 2200:
        given["dues_paid_through"] = int(dues)
    elif dues:
        errors["dues_paid_through"] = f"{dues!r} is not a year between 1900 and 2200."
    try:
        data = OrganisationIn.model_validate(given)
    except ValidationError as exc:
        for error in exc.errors():
            column = str(error["loc"][0]) if error["loc"] else "row"
            message = str(error["msg"]).removeprefix("Value error, ")
            message = message[:1].upper() + message[1:]
            errors.setdefault(column, message if message.endswith(".") else message + ".")
        return ImportRow(line=line, values=written, action="error", errors=errors)
    if errors:
        return ImportRow(line=line, values=written, action="error", errors=errors)
    key = (data.name.casefold(), data.country)
    if key in seen:
        return ImportRow(
            line=line,
            values=written,
            action="error",
            errors={"row": f"The same organisation as line {seen[key]}."},
        )
    seen[key] = line
    values = data.model_dump()
    existing = stored.get(key)
    if existing is None:
        return ImportRow(line=line, values=values, action="create")
    before = _snapshot(existing)
    changes = {
        name: (before[name], values[name])
        for name in ("name", "is_member", "dues_paid_through")
        if before[name] != values[name]
    }
    return ImportRow(
        line=line,
        values=values,
        action="update",
        changes=changes,
        organisation_id=existing.id,
    )


def apply_organisation_import(session: Session, *, csv_text: str, actor: str) -> tuple[int, int]:
    """Apply every row of a registry CSV in one transaction, or none; (created, updated)."""
    plan = plan_organisation_import(session, csv_text)
    faults = plan.faults
    if faults:
        raise InvalidInput(
            f"{len(faults)} problem(s) in the CSV; nothing was changed.", fields=faults
        )
    now = utcnow()
    created: list[Organisation] = []
    updated = 0
    for row in plan.rows:
        if row.action == "create":
            organisation = Organisation(**row.values, created_at=now, updated_at=now)
            session.add(organisation)
            created.append(organisation)
        elif row.changes and row.organisation_id is not None:
            organisation = get_organisation(session, row.organisation_id)
            before = _snapshot(organisation)
            for name, (_, value) in row.changes.items():
                setattr(organisation, name, value)
            organisation.updated_at = now
            session.add(organisation)
            record_change(
                session,
                actor=actor,
                action="organisation.updated",
                entity="organisation",
                entity_id=row.organisation_id,
                before=before,
                after=_snapshot(organisation),
            )
            updated += 1
    try:
        session.flush()
        for organisation in created:
            record_change(
                session,
                actor=actor,
                action="organisation.created",
                entity="organisation",
                entity_id=organisation.id or 0,
                after=_snapshot(organisation),
            )
        record_change(
            session,
            actor=actor,
            action="organisations.imported",
            entity="organisation",
            entity_id="csv",
            after={"rows": len(plan.rows), "created": len(created), "updated": updated},
        )
        session.commit()
    except IntegrityError as exc:
        # Another change stored one of these organisations after the plan was made.
        session.rollback()
        raise Conflict(
            "The registry changed while the file was applied; nothing was changed. "
            "Preview the file again."
        ) from exc
    return len(created), updated


def parse_fiscal_year(value: str) -> int:
    """A World Bank fiscal year from `2023` or `FY2023`; InvalidInput otherwise."""
    text = value.strip().lower().removeprefix("fy")
    if text.isascii() and text.isdigit() and 1990 <= int(text) <= 2200:
        return int(text)
    raise InvalidInput(
        f"{value!r} is not a fiscal year.",
        fields={"fiscal_year": "Give a year such as 2023 or FY2023."},
    )


@dataclass(frozen=True)
class IncomeGroupTable:
    """A fiscal year's classification, the rows matching a search, and counts per group."""

    fiscal_year: int
    rows: list[IncomeGroup]
    counts: dict[str, int]  # group code -> economies in the whole year
    total: int


def income_group_table(session: Session, *, fiscal_year: int, query: str = "") -> IncomeGroupTable:
    """A fiscal year's classification filtered by code or economy name, with group counts."""
    everything = income_groups_for_year(session, fiscal_year)
    counts = Counter(row.group for row in everything)
    text = query.strip().casefold()
    rows = [
        row
        for row in everything
        if not text or text in row.iso3.casefold() or text in row.name.casefold()
    ]
    return IncomeGroupTable(
        fiscal_year=fiscal_year,
        rows=rows,
        counts={code: counts.get(code, 0) for code in INCOME_GROUP_CODES},
        total=len(everything),
    )


def income_group_words(code: str) -> str:
    """`low income` for `L`, and so on."""
    return INCOME_GROUP_NAMES.get(code, code)
