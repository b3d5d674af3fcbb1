"""The audit log for administrators: who changed what and when, filtered, paged, exported."""

from dataclasses import dataclass
from datetime import date
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from app.platform.i18n import gettext
from app.services.errors import InvalidInput
from app.services.office import audit_search as audit_log
from app.services.office import exports as ex
from app.web.dependencies import PageAdmin, SessionDep, templates
from app.web.security import verify_csrf

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)])


@dataclass(frozen=True)
class AuditQuery:
    """The log's query string as typed, what it means, and any field at fault."""

    values: dict[str, str]
    filters: audit_log.AuditFilters
    errors: dict[str, str]

    def url(self, path: str = "/admin/audit", **changes: str | int | None) -> str:
        """This query with some values changed; empty values are left out."""
        merged = {**self.values, **changes}
        pairs = {k: str(v) for k, v in merged.items() if v not in (None, "")}
        return f"{path}?{urlencode(pairs)}" if pairs else path


def _day(value: str, name: str, errors: dict[str, str]) -> date | None:
    try:
        return ex.parse_day(value, name)
    except InvalidInput as exc:
        errors.update(exc.fields)
        return None


def audit_query(
    actor: Annotated[str, Query(max_length=254)] = "",
    action: Annotated[str, Query(max_length=80)] = "",
    entity: Annotated[str, Query(max_length=40)] = "",
    entity_id: Annotated[str, Query(max_length=80)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    since: Annotated[str, Query(max_length=20)] = "",
    until: Annotated[str, Query(max_length=20)] = "",
) -> AuditQuery:
    """The filters from the query string; a bad date is reported beside its field."""
    values = {
        "actor": actor.strip(),
        "action": action.strip(),
        "entity": entity.strip(),
        "entity_id": entity_id.strip(),
        "q": q.strip(),
        "since": since.strip(),
        "until": until.strip(),
    }
    errors: dict[str, str] = {}
    start = _day(since, "since", errors)
    end = _day(until, "until", errors)
    filters = audit_log.AuditFilters(
        actor=values["actor"],
        action=values["action"],
        entity=values["entity"],
        entity_id=values["entity_id"],
        q=values["q"],
        since=start,
        until=end,
    )
    try:
        audit_log.check_filters(filters)
    except InvalidInput as exc:
        errors.update(exc.fields)
    return AuditQuery(values=values, filters=filters, errors=errors)


AuditQueryDep = Annotated[AuditQuery, Depends(audit_query)]


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    query: AuditQueryDep,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The log newest first, fifty entries a page, with its filters and export links."""
    timezone = audit_log.office_timezone(session)
    page = None
    if not query.errors:
        page = audit_log.list_entries(session, query.filters, timezone=timezone, older_than=before)
    groups = dict(audit_log.ACTION_GROUPS)
    if query.values["action"] not in groups:
        groups[query.values["action"]] = gettext("Starting with “%(action)s”") % {
            "action": query.values["action"]
        }
    return templates.TemplateResponse(
        request,
        "office/audit/page.html",
        {
            "user": user,
            "active": "audit",
            "query": query,
            "page": page,
            "timezone": timezone,
            "action_groups": groups,
            "entities": audit_log.entities(session),
            "link": audit_log.entity_link,
            "export_limit": audit_log.EXPORT_LIMIT,
        },
        status_code=(status.HTTP_422_UNPROCESSABLE_CONTENT if query.errors else status.HTTP_200_OK),
    )


@router.get("/audit/export.{fmt}", response_model=None)
def audit_export(
    fmt: ex.ExportFormat, session: SessionDep, user: PageAdmin, query: AuditQueryDep
) -> Response:
    """The filtered log (newest first, at most 50,000 entries) as CSV or XLSX."""
    if query.errors:
        raise InvalidInput("Check the dates.", fields=query.errors)
    timezone = audit_log.office_timezone(session)
    entries = audit_log.entries_for_export(session, query.filters, timezone=timezone)
    body = ex.render(ex.audit_sheet(entries, timezone=timezone), fmt)
    return Response(
        body,
        media_type=ex.MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{ex.file_name("audit", "log", fmt)}"',
            "Cache-Control": "private, no-store",
        },
    )
