"""The administrators' view of applications: filtered, sorted, paginated lists."""

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from app.models import Application, Edition, Organisation

SortKey = Literal["submitted", "-submitted", "name", "-name", "country", "status"]
MemberStatus = Literal["", "member", "behind", "non_member"]


@dataclass
class ApplicationFilters:
    """What an administrator narrowed the list to."""

    edition_id: int | None = None
    status: str = ""
    q: str = ""
    organisation_id: int | None = None
    country: str = ""
    member_status: MemberStatus = ""
    group_id: int | None = None
    sort: SortKey = "submitted"
    page: int = 1
    per_page: int = 50


@dataclass
class ApplicationPage:
    """One page of applications and the count of all that match."""

    rows: list[Application] = field(default_factory=list)
    total: int = 0
    page: int = 1
    per_page: int = 50

    @property
    def pages(self) -> int:
        """How many pages the matches fill."""
        return max((self.total + self.per_page - 1) // self.per_page, 1)


_SORTS = {
    "submitted": (col(Application.submitted_at).asc(), col(Application.id).asc()),
    "-submitted": (col(Application.submitted_at).desc(), col(Application.id).desc()),
    "name": (func.lower(Application.family_name), func.lower(Application.given_name)),
    "-name": (
        func.lower(Application.family_name).desc(),
        func.lower(Application.given_name).desc(),
    ),
    "country": (col(Application.country), col(Application.submitted_at)),
    "status": (col(Application.status), col(Application.submitted_at)),
}


def list_applications(session: Session, filters: ApplicationFilters) -> ApplicationPage:
    """A page of applications matching the filters, in two queries whatever the page size."""
    conditions = []
    if filters.edition_id is not None:
        conditions.append(col(Application.edition_id) == filters.edition_id)
    if filters.status:
        conditions.append(col(Application.status) == filters.status)
    if filters.organisation_id is not None:
        conditions.append(col(Application.organisation_id) == filters.organisation_id)
    if filters.country:
        conditions.append(col(Application.country) == filters.country.upper())
    if filters.group_id is not None:
        conditions.append(col(Application.group_id) == filters.group_id)
    if filters.q.strip():
        pattern = f"%{filters.q.strip().lower()}%"
        conditions.append(
            or_(
                func.lower(Application.given_name).like(pattern),
                func.lower(Application.family_name).like(pattern),
                func.lower(Application.email).like(pattern),
                func.lower(Application.organisation_name).like(pattern),
                func.lower(Application.reference).like(pattern),
            )
        )
    statement = select(Application)
    count = select(func.count()).select_from(Application)
    if filters.member_status:
        dues_year = (
            select(Edition.dues_year).where(col(Edition.id) == col(Application.edition_id))
        ).scalar_subquery()
        statement = statement.outerjoin(
            Organisation, col(Organisation.id) == col(Application.organisation_id)
        )
        count = count.outerjoin(
            Organisation, col(Organisation.id) == col(Application.organisation_id)
        )
        if filters.member_status == "member":
            conditions.append(col(Organisation.is_member).is_(True))
            conditions.append(col(Organisation.dues_paid_through) >= dues_year)
        elif filters.member_status == "behind":
            conditions.append(col(Organisation.is_member).is_(True))
            conditions.append(
                or_(
                    col(Organisation.dues_paid_through).is_(None),
                    col(Organisation.dues_paid_through) < dues_year,
                )
            )
        else:
            conditions.append(
                or_(col(Organisation.id).is_(None), col(Organisation.is_member).is_(False))
            )
    for condition in conditions:
        statement = statement.where(condition)
        count = count.where(condition)
    per_page = max(1, min(filters.per_page, 200))
    total: int = session.exec(count).one()
    pages = max((total + per_page - 1) // per_page, 1)
    page = max(1, min(filters.page, pages))
    rows = session.exec(
        statement.order_by(*_SORTS.get(filters.sort, _SORTS["submitted"]))
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return ApplicationPage(rows=list(rows), total=total, page=page, per_page=per_page)
