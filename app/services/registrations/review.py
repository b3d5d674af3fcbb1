"""The administrators' view of applications: lists, counts, the waiting list, bulk decisions."""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, bindparam, func, or_
from sqlalchemy.orm import load_only
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.models import (
    ApplicantGroup,
    Application,
    ApplicationStatus,
    AuditEntry,
    Edition,
    Organisation,
    OutboxMessage,
    StaffUser,
)
from app.platform.audit import record_change
from app.platform.i18n import N_
from app.platform.storage import Storage
from app.services.billing.invoices import Seller
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registrations.applications import Capacity, Decision, decide, get_application
from app.services.registry.countries import country_name
from app.services.registry.organisations import membership_status

SortKey = Literal[
    "submitted",
    "-submitted",
    "name",
    "-name",
    "country",
    "-country",
    "status",
    "-status",
    "reference",
    "-reference",
    "organisation",
    "-organisation",
    "group",
    "-group",
    "total",
    "-total",
]
MemberStatus = Literal["", "member", "behind", "non_member"]
MEMBER_LABELS = {
    "member": N_("Member, dues paid"),
    "behind": N_("Member behind on dues"),
    "non_member": N_("Non-member"),
}
# The same, short, for a column of the list.
MEMBER_SHORT_LABELS = {
    "member": N_("paid-up"),
    "behind": N_("behind"),
    "non_member": N_("non-member"),
}
# `group_code` takes a group's code, or one of these two words.
ANY_GROUP = "any"
NO_GROUP = "none"
NOTES_MAX = 10_000
ADMITTABLE = (ApplicationStatus.submitted.value, ApplicationStatus.waitlisted.value)


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
    group_code: str = ""


@dataclass(frozen=True)
class ApplicationRow:
    """An application with what the list shows beside it, all loaded in the same query."""

    application: Application
    edition: Edition
    organisation: Organisation | None
    group: ApplicantGroup | None

    @property
    def member_status(self) -> str:
        """The organisation's standing in the registry now, judged for the edition's dues year."""
        if self.organisation is None:
            return "non_member"
        return membership_status(self.organisation, dues_year=self.edition.dues_year)


@dataclass
class ApplicationPage:
    """One page of applications and the count of all that match."""

    rows: list[Application] = field(default_factory=list)
    total: int = 0
    page: int = 1
    per_page: int = 50
    items: list[ApplicationRow] = field(default_factory=list)

    @property
    def pages(self) -> int:
        """How many pages the matches fill."""
        return max((self.total + self.per_page - 1) // self.per_page, 1)


_SORTS: dict[str, tuple[Any, ...]] = {
    "submitted": (col(Application.submitted_at).asc(), col(Application.id).asc()),
    "-submitted": (col(Application.submitted_at).desc(), col(Application.id).desc()),
    "name": (
        func.lower(Application.family_name),
        func.lower(Application.given_name),
        col(Application.id),
    ),
    "-name": (
        func.lower(Application.family_name).desc(),
        func.lower(Application.given_name).desc(),
        col(Application.id).desc(),
    ),
    "country": (col(Application.country), col(Application.submitted_at), col(Application.id)),
    "-country": (
        col(Application.country).desc(),
        col(Application.submitted_at),
        col(Application.id),
    ),
    "status": (col(Application.status), col(Application.submitted_at), col(Application.id)),
    "-status": (
        col(Application.status).desc(),
        col(Application.submitted_at),
        col(Application.id),
    ),
    "reference": (col(Application.reference),),
    "-reference": (col(Application.reference).desc(),),
    "organisation": (
        func.lower(Application.organisation_name),
        col(Application.submitted_at),
        col(Application.id),
    ),
    "-organisation": (
        func.lower(Application.organisation_name).desc(),
        col(Application.submitted_at),
        col(Application.id),
    ),
    # NULLs sort first on SQLite and last on PostgreSQL: order by "has no group" to agree.
    "group": (
        col(ApplicantGroup.code).is_(None),
        col(ApplicantGroup.code),
        col(Application.submitted_at),
        col(Application.id),
    ),
    "-group": (
        col(ApplicantGroup.code).is_(None),
        col(ApplicantGroup.code).desc(),
        col(Application.submitted_at),
        col(Application.id),
    ),
    "total": (col(Application.quoted_total), col(Application.submitted_at), col(Application.id)),
    "-total": (
        col(Application.quoted_total).desc(),
        col(Application.submitted_at),
        col(Application.id),
    ),
}
SORT_KEYS = frozenset(_SORTS)


def _conditions(
    filters: ApplicationFilters, *, with_status: bool = True
) -> tuple[list[ColumnElement[bool]], bool]:
    """The WHERE conditions of the filters, and whether they need the registry joined."""
    conditions: list[ColumnElement[bool]] = []
    if filters.edition_id is not None:
        conditions.append(col(Application.edition_id) == filters.edition_id)
    if with_status and filters.status:
        conditions.append(col(Application.status) == filters.status)
    if filters.organisation_id is not None:
        conditions.append(col(Application.organisation_id) == filters.organisation_id)
    if filters.country:
        conditions.append(col(Application.country) == filters.country.upper())
    if filters.group_id is not None:
        conditions.append(col(Application.group_id) == filters.group_id)
    code = filters.group_code.strip()
    if code == ANY_GROUP:
        conditions.append(col(Application.group_id).is_not(None))
    elif code == NO_GROUP:
        conditions.append(col(Application.group_id).is_(None))
    elif code:
        conditions.append(
            col(Application.group_id).in_(
                select(ApplicantGroup.id).where(ApplicantGroup.code == code.upper())
            )
        )
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
    if not filters.member_status:
        return conditions, False
    dues_year = col(Edition.dues_year)
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
    return conditions, True


def _with_registry(statement: Any) -> Any:
    """Join each application's edition and (if any) its registry organisation."""
    return statement.join(Edition, col(Edition.id) == col(Application.edition_id)).outerjoin(
        Organisation, col(Organisation.id) == col(Application.organisation_id)
    )


def _rows_statement(filters: ApplicationFilters) -> Any:
    """Applications with their edition, organisation and group: one query, however many rows."""
    conditions, _ = _conditions(filters)
    statement = _with_registry(select(Application, Edition, Organisation, ApplicantGroup))
    statement = statement.outerjoin(
        ApplicantGroup, col(ApplicantGroup.id) == col(Application.group_id)
    )
    return statement.where(*conditions).order_by(*_SORTS.get(filters.sort, _SORTS["submitted"]))


def count_applications(session: Session, filters: ApplicationFilters) -> int:
    """How many applications match the filters."""
    conditions, needs_registry = _conditions(filters)
    statement: Any = select(func.count()).select_from(Application)
    if needs_registry:
        statement = _with_registry(statement)
    total: int = session.exec(statement.where(*conditions)).one()
    return total


# What a page of the list shows (and the API's summaries); the rest of a row (motivation,
# quote, notes, visa details) stays in the database. Reading any other attribute raises.
def _only(model: Any, *names: str, raiseload: bool = False) -> Any:
    """Load only these columns of `model`'s rows."""
    return load_only(*(getattr(model, name) for name in names), raiseload=raiseload)


_LISTED = (
    _only(
        Application,
        *("id", "edition_id", "reference", "status", "version", "given_name", "family_name"),
        *("email", "organisation_id", "organisation_name", "country", "group_id"),
        *("quoted_total", "submitted_at"),
        raiseload=True,
    ),
    _only(Edition, "id", "timezone", "dues_year"),
    _only(Organisation, "id", "is_member", "dues_paid_through"),
    _only(ApplicantGroup, "id", "code"),
)


def list_applications(
    session: Session, filters: ApplicationFilters, *, total: int | None = None
) -> ApplicationPage:
    """A page of applications matching the filters, in two queries whatever the page size.

    `total`, when the caller already counted the matches (e.g. from `status_counts`), saves
    counting them again.
    """
    per_page = max(1, min(filters.per_page, 200))
    if total is None:
        total = count_applications(session, filters)
    pages = max((total + per_page - 1) // per_page, 1)
    page = max(1, min(filters.page, pages))
    found = session.exec(
        _rows_statement(filters).options(*_LISTED).offset((page - 1) * per_page).limit(per_page)
    ).all()
    items = [ApplicationRow(*row) for row in found]
    return ApplicationPage(
        rows=[item.application for item in items],
        total=total,
        page=page,
        per_page=per_page,
        items=items,
    )


def matching_applications(session: Session, filters: ApplicationFilters) -> list[ApplicationRow]:
    """Every application matching the filters (not one page), in the filters' order."""
    return [ApplicationRow(*row) for row in session.exec(_rows_statement(filters)).all()]


def status_counts(session: Session, filters: ApplicationFilters) -> dict[str, int]:
    """How many applications of each status match the other filters (one grouped query)."""
    conditions, needs_registry = _conditions(filters, with_status=False)
    statement: Any = select(Application.status, func.count()).select_from(Application)
    if needs_registry:
        statement = _with_registry(statement)
    rows = session.exec(statement.where(*conditions).group_by(col(Application.status))).all()
    return dict(rows)


@dataclass(frozen=True)
class FilterChoices:
    """What the list's filter menus offer for one edition."""

    organisations: list[tuple[int, str]]
    countries: list[tuple[str, str]]
    groups: list[tuple[str, str]]


def _distinct_in_edition(column: Any) -> Any:
    """The distinct values (not NULL) of an application column within one edition.

    It skips through the index on (edition_id, column) from one value to the next, a few
    look-ups per value, instead of reading every application of the edition as DISTINCT
    would: a menu of 30 countries costs the same with 100 applications or 10,000. The
    statement takes the edition as `edition_id`; it is built once.
    """
    in_edition = col(Application.edition_id) == bindparam("edition_id")
    first = select(func.min(column)).where(in_edition).scalar_subquery()
    found = select(first.label("value")).cte("found", recursive=True)
    following = select(func.min(column)).where(in_edition, column > found.c.value)
    found = found.union_all(
        select(following.scalar_subquery().label("value")).where(found.c.value.is_not(None))
    )
    return select(found.c.value).where(found.c.value.is_not(None))


# The menus' statements, built once: the list asks for them on every full page.
_EDITION_COUNTRIES = _distinct_in_edition(col(Application.country))
_EDITION_ORGANISATIONS = _distinct_in_edition(col(Application.organisation_id))
_ORGANISATIONS = select(Organisation.id, Organisation.name, Organisation.country).order_by(
    func.lower(Organisation.name), col(Organisation.country)
)
_EDITION_ORGANISATIONS_NAMED = _ORGANISATIONS.where(
    col(Organisation.id).in_(_EDITION_ORGANISATIONS.scalar_subquery())
)
_GROUPS = select(ApplicantGroup.code, Organisation.name).join(
    Organisation, col(Organisation.id) == col(ApplicantGroup.organisation_id)
)
_EDITION_GROUPS = _GROUPS.where(col(ApplicantGroup.edition_id) == bindparam("edition_id")).order_by(
    col(ApplicantGroup.code)
)


def filter_choices(session: Session, edition_id: int | None) -> FilterChoices:
    """Organisations, countries and groups that occur among an edition's applications."""
    if edition_id is None:
        applied = select(Application.organisation_id)
        organisations = session.exec(_ORGANISATIONS.where(col(Organisation.id).in_(applied))).all()
        countries = list(session.exec(select(Application.country).distinct()))
        groups = session.exec(_GROUPS.order_by(col(ApplicantGroup.code))).all()
    else:
        edition = {"edition_id": edition_id}
        organisations = session.exec(_EDITION_ORGANISATIONS_NAMED, params=edition).all()
        countries = list(session.exec(_EDITION_COUNTRIES, params=edition))
        groups = session.exec(_EDITION_GROUPS, params=edition).all()
    return FilterChoices(
        organisations=[(oid or 0, f"{name} ({country})") for oid, name, country in organisations],
        countries=sorted(((c, country_name(c)) for c in countries), key=lambda item: item[1]),
        groups=[(code, name) for code, name in groups],
    )


def waiting_list(session: Session, edition_id: int) -> list[Application]:
    """An edition's waitlisted applications in the order seats are offered to them."""
    return list(
        session.exec(
            select(Application)
            .where(
                Application.edition_id == edition_id,
                Application.status == ApplicationStatus.waitlisted.value,
            )
            .order_by(
                col(Application.waitlisted_at).is_(None),
                col(Application.waitlisted_at),
                col(Application.submitted_at),
                col(Application.id),
            )
        ).all()
    )


def timeline(session: Session, application_id: int) -> list[AuditEntry]:
    """The audit entries of an application, oldest first."""
    return list(
        session.exec(
            select(AuditEntry)
            .where(AuditEntry.entity == "application", AuditEntry.entity_id == str(application_id))
            .order_by(col(AuditEntry.at), col(AuditEntry.id))
        ).all()
    )


def application_mail(session: Session, application_id: int) -> list[OutboxMessage]:
    """The e-mails written to an application's applicant, oldest first."""
    return list(
        session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.application_id == application_id)
            .order_by(col(OutboxMessage.created_at), col(OutboxMessage.id))
        ).all()
    )


def notes_fingerprint(notes: str) -> str:
    """A short hash of the notes as shown, so a save can tell if they changed meanwhile."""
    return hashlib.sha256(notes.encode()).hexdigest()[:16]


def save_staff_notes(
    session: Session,
    *,
    application_id: int,
    notes: str,
    actor: str,
    seen_fingerprint: str | None = None,
) -> Application:
    """Replace the office's notes on an application; audited, and refused if changed meanwhile."""
    application = get_application(session, application_id)
    text = notes.replace("\r\n", "\n").strip()
    if len(text) > NOTES_MAX:
        raise InvalidInput(
            "The notes are too long.",
            fields={"staff_notes": f"Notes can be at most {NOTES_MAX:,} characters."},
        )
    before = application.staff_notes
    if seen_fingerprint is not None and seen_fingerprint != notes_fingerprint(before):
        raise Conflict(
            "Another administrator changed the notes meanwhile; yours were not saved.",
            fields={"staff_notes": text},
        )
    if text == before:
        return application
    application.staff_notes = text
    application.updated_at = utcnow()
    session.add(application)
    record_change(
        session,
        actor=actor,
        action="application.notes_changed",
        entity="application",
        entity_id=application_id,
        before={"staff_notes": before},
        after={"staff_notes": text},
    )
    session.commit()
    return application


def beyond_capacity(seats: Capacity, admitting: int) -> int:
    """How many places admitting `admitting` more would promise beyond the edition's seats."""
    return max(seats.confirmed + seats.admitted + admitting - seats.seats, 0)


def admittable_by_edition(session: Session, application_ids: list[int]) -> dict[int, int]:
    """Edition id -> how many of these applications an admission would change."""
    if not application_ids:
        return {}
    rows = session.exec(
        select(Application.edition_id, func.count())
        .where(col(Application.id).in_(application_ids), col(Application.status).in_(ADMITTABLE))
        .group_by(col(Application.edition_id))
    ).all()
    return dict(rows)


@dataclass
class BulkOutcome:
    """What a bulk decision changed and what it could not."""

    decision: Decision
    decided: list[tuple[str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """`3 admitted, 1 could not be changed: MD99-7KQ3X9 is withdrawn now`."""
        done = {"admit": "admitted", "waitlist": "waitlisted", "reject": "rejected"}
        parts = [f"{len(self.decided)} {done[self.decision]}"]
        if self.refused:
            parts.append(f"{len(self.refused)} could not be changed: " + "; ".join(self.refused))
        return ", ".join(parts)


def decide_many(
    session: Session,
    *,
    choices: list[tuple[int, int | None]],
    decision: Decision,
    actor: StaffUser,
    note: str,
    storage: Storage,
    secret_key: str,
    base_url: str,
    seller: Seller | None = None,
    now: datetime | None = None,
) -> BulkOutcome:
    """Decide each (application id, version seen) on its own; one refusal stops no other."""
    outcome = BulkOutcome(decision=decision)
    for application_id, version in choices:
        try:
            decided = decide(
                session,
                application_id=application_id,
                decision=decision,
                actor=actor,
                note=note,
                expected_version=version,
                storage=storage,
                secret_key=secret_key,
                base_url=base_url,
                seller=seller,
                now=now,
            )
        except NotFound:
            outcome.refused.append(f"application {application_id} does not exist")
        except Conflict:
            current = session.get(Application, application_id)
            if current is None:
                outcome.refused.append(f"application {application_id} does not exist")
            else:
                outcome.refused.append(f"{current.reference} is {current.status} now")
        else:
            outcome.decided.append((decided.reference, decided.status))
    return outcome


# The outbox as administrators see it

OUTBOX_STATUSES = ("pending", "sending", "sent", "failed")


@dataclass
class OutboxPage:
    """One page of the outbox, newest first, with the reference of each message's application."""

    messages: list[OutboxMessage]
    references: dict[int, str]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages the matches fill."""
        return max((self.total + self.per_page - 1) // self.per_page, 1)


def _outbox_conditions(status: str, q: str) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if status:
        conditions.append(col(OutboxMessage.status) == status)
    if q.strip():
        pattern = f"%{q.strip().lower()}%"
        conditions.append(
            or_(
                func.lower(OutboxMessage.to_address).like(pattern),
                func.lower(OutboxMessage.subject).like(pattern),
                func.lower(OutboxMessage.kind).like(pattern),
            )
        )
    return conditions


def list_outbox(
    session: Session, *, status: str = "", q: str = "", page: int = 1, per_page: int = 50
) -> OutboxPage:
    """Queued, sending, sent and failed e-mails, newest first."""
    conditions = _outbox_conditions(status, q)
    total: int = session.exec(
        select(func.count()).select_from(OutboxMessage).where(*conditions)
    ).one()
    pages = max((total + per_page - 1) // per_page, 1)
    page = max(1, min(page, pages))
    rows = session.exec(
        select(OutboxMessage, Application.reference)
        .outerjoin(Application, col(Application.id) == col(OutboxMessage.application_id))
        .where(*conditions)
        .order_by(col(OutboxMessage.created_at).desc(), col(OutboxMessage.id).desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return OutboxPage(
        messages=[message for message, _ in rows],
        references={
            message.id or 0: reference for message, reference in rows if reference is not None
        },
        total=total,
        page=page,
        per_page=per_page,
    )


def outbox_counts(session: Session, *, q: str = "") -> dict[str, int]:
    """How many messages of each status match the search."""
    rows = session.exec(
        select(OutboxMessage.status, func.count())
        .where(*_outbox_conditions("", q))
        .group_by(col(OutboxMessage.status))
    ).all()
    return dict(rows)


def get_outbox_message(session: Session, message_id: int) -> OutboxMessage:
    """The outbox message with this id, or NotFound."""
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFound(f"There is no e-mail {message_id} in the outbox.")
    return message
