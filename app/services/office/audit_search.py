"""Reading the audit log: filters, pages newest first, and each change told compactly."""

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, String, cast, func, or_
from sqlmodel import Session, col, select

from app.models import AuditEntry, Edition
from app.services.errors import InvalidInput

PER_PAGE = 50
EXPORT_LIMIT = 50_000
VALUE_LIMIT = 120
DEFAULT_TIMEZONE = "Europe/Madrid"
# What the office asks of the log, as action prefixes (entries are named `area.verb`).
ACTION_GROUPS: dict[str, str] = {
    "": "Every action",
    "application.": "Applications: state changes and notes",
    "invoice.": "Invoices issued",
    "credit_note.": "Credit notes issued",
    "payment.": "Payments and card refunds",
    "refund.": "Refunds",
    "final_work.": "Final work",
    "eligibility.": "Eligibility overrides",
    "certificate.": "Certificates",
    "edition.": "Editions and fees",
    "organisation": "Member registry",
    "seat_offer.": "Seat offers",
    "course_session.": "Programme and check-in",
}


@dataclass(frozen=True)
class AuditFilters:
    """What the log is narrowed to; dates are days on the office's calendar, inclusive."""

    actor: str = ""
    action: str = ""
    entity: str = ""
    entity_id: str = ""
    q: str = ""
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class Change:
    """One field of an entry: its value before and after (either may be missing)."""

    key: str
    before: str | None
    after: str | None


@dataclass
class AuditPage:
    """A page of entries, newest first, and where the next (older) page starts."""

    entries: list[AuditEntry]
    total: int
    older_than: int | None = None
    newer: bool = False
    changes: dict[int, list[Change]] = field(default_factory=dict)


def office_timezone(session: Session) -> str:
    """The office's clock: the time zone of the edition that starts last."""
    zone = session.exec(select(Edition.timezone).order_by(col(Edition.start_date).desc())).first()
    return zone or DEFAULT_TIMEZONE


def check_filters(filters: AuditFilters) -> None:
    """Refuse a range that ends before it starts, naming the field."""
    if filters.since and filters.until and filters.until < filters.since:
        raise InvalidInput(
            "Check the dates.", fields={"until": "The end date is before the start date."}
        )


def _conditions(filters: AuditFilters, timezone: str) -> list[ColumnElement[bool]]:
    zone = ZoneInfo(timezone)
    conditions: list[ColumnElement[bool]] = []
    if filters.actor.strip():
        conditions.append(
            func.lower(AuditEntry.actor).like(
                f"%{_like(filters.actor.strip().lower())}%", escape="\\"
            )
        )
    if filters.action.strip():
        conditions.append(
            col(AuditEntry.action).like(f"{_like(filters.action.strip())}%", escape="\\")
        )
    if filters.entity.strip():
        conditions.append(col(AuditEntry.entity) == filters.entity.strip())
    if filters.entity_id.strip():
        conditions.append(col(AuditEntry.entity_id) == filters.entity_id.strip())
    if filters.since:
        conditions.append(col(AuditEntry.at) >= datetime.combine(filters.since, time(0), zone))
    if filters.until:
        end = datetime.combine(filters.until + timedelta(days=1), time(0), zone)
        conditions.append(col(AuditEntry.at) < end)
    if filters.q.strip():
        text = filters.q.strip().lower()
        pattern = f"%{_like(text)}%"
        # Before and after are stored as JSON text, which writes accented letters as \u escapes.
        escaped = f"%{_like(json.dumps(text)[1:-1].lower())}%"
        values = [
            func.lower(cast(column, String)) for column in (AuditEntry.before, AuditEntry.after)
        ]
        conditions.append(
            or_(
                func.lower(AuditEntry.actor).like(pattern, escape="\\"),
                func.lower(AuditEntry.action).like(pattern, escape="\\"),
                func.lower(AuditEntry.entity_id).like(pattern, escape="\\"),
                *(
                    value.like(p, escape="\\")
                    for value in values
                    for p in dict.fromkeys((pattern, escaped))
                ),
            )
        )
    return conditions


def _like(text: str) -> str:
    """The text matched literally inside a LIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_entries(
    session: Session,
    filters: AuditFilters,
    *,
    timezone: str,
    older_than: int | None = None,
    per_page: int = PER_PAGE,
) -> AuditPage:
    """A page of matching entries, newest first, after the entry `older_than` if given.

    Pages are cut by entry id (the order entries were written), so a new entry arriving
    while someone reads never shifts what the next page shows.
    """
    check_filters(filters)
    conditions = _conditions(filters, timezone)
    total: int = session.exec(select(func.count()).select_from(AuditEntry).where(*conditions)).one()
    statement = select(AuditEntry).where(*conditions)
    if older_than is not None:
        statement = statement.where(col(AuditEntry.id) < older_than)
    found = list(session.exec(statement.order_by(col(AuditEntry.id).desc()).limit(per_page + 1)))
    more = len(found) > per_page
    entries = found[:per_page]
    return AuditPage(
        entries=entries,
        total=total,
        older_than=entries[-1].id if more and entries else None,
        newer=older_than is not None,
        changes={entry.id or 0: changes(entry) for entry in entries},
    )


def entries_for_export(
    session: Session, filters: AuditFilters, *, timezone: str, limit: int = EXPORT_LIMIT
) -> list[AuditEntry]:
    """Every matching entry, newest first, up to `limit`."""
    check_filters(filters)
    return list(
        session.exec(
            select(AuditEntry)
            .where(*_conditions(filters, timezone))
            .order_by(col(AuditEntry.id).desc())
            .limit(limit)
        )
    )


def entities(session: Session) -> list[str]:
    """The kinds of thing the log has entries about."""
    return sorted(session.exec(select(AuditEntry.entity).distinct()).all())


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 1] + "…"


def _blank(value: Any) -> bool:
    """Nothing worth a line: an empty text, list or mapping, or no value."""
    return value is None or value == "" or value == [] or value == {}


def changes(entry: AuditEntry) -> list[Change]:
    """The fields an entry touched: changed values, then values only before or after."""
    before = entry.before or {}
    after = entry.after or {}
    found = []
    for key in [*before, *(k for k in after if k not in before)]:
        if key in before and key in after:
            if before[key] == after[key]:
                continue
            found.append(Change(key, _short(before[key]), _short(after[key])))
        elif key in before:
            if not _blank(before[key]):
                found.append(Change(key, _short(before[key]), None))
        elif not _blank(after[key]):
            found.append(Change(key, None, _short(after[key])))
    return found


def entity_link(entry: AuditEntry) -> str | None:
    """The staff page of the thing an entry is about, where there is one."""
    if entry.entity == "application" and entry.entity_id.isdigit():
        return f"/admin/applications/{entry.entity_id}"
    if entry.entity in ("invoice", "credit_note") and entry.entity_id:
        return f"/admin/invoices/{entry.entity_id}"
    if entry.entity == "organisation" and entry.entity_id.isdigit():
        return f"/admin/organisations/{entry.entity_id}/edit"
    if entry.entity == "edition" and entry.entity_id and not entry.entity_id.isdigit():
        return f"/admin/editions/{entry.entity_id}/dashboard"
    if entry.entity == "refund":
        return "/admin/refunds"
    return None
