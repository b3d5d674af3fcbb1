"""Administrators' pages for applications: the list, one application, decisions, exports, outbox."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.models import (
    ApplicantGroup,
    Application,
    ApplicationStatus,
    Edition,
    Organisation,
    StaffUser,
)
from app.platform.i18n import N_, gettext, translate
from app.platform.mail import retry_failed
from app.platform.stored_messages import MESSAGES_KEY
from app.services.billing import buyers
from app.services.certificates import eligibility
from app.services.certificates.issuing import (
    PARTICIPANT_STATUSES,
    certificate_of,
    verification_url,
    versions_of,
)
from app.services.editions.editions import applications_are_open, list_editions
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registrations import application_export as exports
from app.services.registrations import review as review_service
from app.services.registrations.applications import (
    Capacity,
    Decision,
    capacity,
    capacity_of,
    decide,
    get_application,
    group_size,
    revoke_portal_links,
)
from app.services.registrations.review import (
    ADMITTABLE,
    MEMBER_LABELS,
    ApplicationFilters,
    beyond_capacity,
)
from app.services.registry.organisations import membership_status
from app.services.teaching.final_work import final_work_of
from app.web.dependencies import (
    FormDep,
    PageAdmin,
    SellerDep,
    SessionDep,
    SettingsDep,
    StorageDep,
    certificate_options,
    is_htmx,
    templates,
)
from app.web.kit import flash, pop_flash, see_other
from app.web.security import verify_csrf

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)])

LIST_PATH = "/admin/applications"
PER_PAGE = 50
MAX_BULK = 200
STATUSES = [s.value for s in ApplicationStatus]
DECISIONS: tuple[str, ...] = get_args(Decision)
DECISION_LABELS = {
    "admit": N_("Admit"),
    "waitlist": N_("Put on the waiting list"),
    "reject": N_("Reject"),
}
DONE_WORDS = {
    "admit": N_("admitted"),
    "waitlist": N_("put on the waiting list"),
    "reject": N_("rejected"),
}
ACTION_WORDS = {
    "application.submitted": N_("Applied"),
    "application.admit": N_("Admitted"),
    "application.waitlist": N_("Put on the waiting list"),
    "application.reject": N_("Rejected"),
    "application.withdrawn": N_("Withdrawn by the applicant"),
    "application.portal_link_revoked": N_("Private links replaced; a new one was e-mailed"),
    "application.notes_changed": N_("Staff notes changed"),
}
SORT_COLUMNS = {
    "reference": N_("Reference"),
    "name": N_("Name"),
    "organisation": N_("Organisation"),
    "country": N_("Country"),
    "group": N_("Group"),
    "total": N_("Quote"),
    "status": N_("Status"),
    "submitted": N_("Applied"),
}


# Shared pieces


def _safe_back(target: str, default: str) -> str:
    """Only our own review pages: anything else would be an open redirect."""
    if (
        target.startswith((LIST_PATH, "/admin/outbox"))
        and not target.startswith("//")
        and not any(c in target for c in "\\\r\n")
    ):
        return target
    return default


def _wants_results(request: Request) -> bool:
    """An htmx swap of the results; htmx restoring history after a cache miss wants the page."""
    return is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"


def _default_edition(editions: list[Edition]) -> Edition | None:
    """The edition taking applications now, else the latest one."""
    for edition in editions:
        if applications_are_open(edition):
            return edition
    return editions[0] if editions else None


def _pick_edition(editions: list[Edition], slug: str) -> Edition | None:
    if not slug:
        return _default_edition(editions)
    for edition in editions:
        if edition.slug == slug:
            return edition
    raise NotFound(f"There is no edition {slug!r}.")


def _member_labels(*, short: bool = False) -> dict[str, str]:
    """Registry standings as words in the reader's language, translated once per page."""
    labels = review_service.MEMBER_SHORT_LABELS if short else MEMBER_LABELS
    return {key: gettext(label) for key, label in labels.items()}


def _step5(percent: float) -> int:
    return max(0, min(100, int(round(percent / 5) * 5)))


@dataclass(frozen=True)
class CapacityBar:
    """Seats of an edition and the widths (multiples of 5 %) of the bar that shows them."""

    seats: Capacity
    confirmed_width: int
    admitted_width: int

    @property
    def over(self) -> int:
        """Places already promised beyond the seats."""
        return beyond_capacity(self.seats, 0)

    @property
    def full(self) -> bool:
        """Whether one more admission goes past capacity."""
        return beyond_capacity(self.seats, 1) > 0


def capacity_bar(seats: Capacity) -> CapacityBar:
    """Widths for confirmed and admitted places; past capacity the bar is scaled to fit."""
    scale = max(seats.seats, seats.confirmed + seats.admitted, 1)
    confirmed = _step5(seats.confirmed * 100 / scale)
    if seats.confirmed:
        confirmed = max(confirmed, 5)
    promised = _step5((seats.confirmed + seats.admitted) * 100 / scale)
    if seats.admitted:
        promised = min(max(promised, confirmed + 5), 100)
    return CapacityBar(seats, confirmed, max(promised - confirmed, 0))


# The list and its query


@dataclass
class ListQuery:
    """The list's query string, read leniently, and links that keep it."""

    editions: list[Edition]
    edition: Edition | None
    filters: ApplicationFilters
    values: dict[str, str]

    def url(self, path: str = LIST_PATH, **changes: str | int | None) -> str:
        """This query with some values changed; empty and default values are left out."""
        merged: dict[str, Any] = {**self.values, **changes}
        if merged.get("sort") == "submitted":
            merged.pop("sort")
        if str(merged.get("page", "")) == "1":
            merged.pop("page")
        pairs = {k: str(v) for k, v in merged.items() if v not in (None, "")}
        return f"{path}?{urlencode(pairs)}" if pairs else path

    def sort_state(self, key: str) -> str:
        """`ascending`, `descending` or empty, for the column's aria-sort."""
        if self.filters.sort == key:
            return "ascending"
        if self.filters.sort == f"-{key}":
            return "descending"
        return ""

    def sort_url(self, key: str) -> str:
        """The link of a column header: sorts by it, or reverses it when it is the sort."""
        return self.url(sort=f"-{key}" if self.filters.sort == key else key, page=None)


def list_query(
    session: SessionDep,
    edition: Annotated[str, Query(max_length=80)] = "",
    status_filter: Annotated[str, Query(alias="status", max_length=20)] = "",
    q: Annotated[str, Query(max_length=100)] = "",
    organisation: Annotated[str, Query(max_length=12)] = "",
    country: Annotated[str, Query(max_length=3)] = "",
    member: Annotated[str, Query(max_length=12)] = "",
    group: Annotated[str, Query(max_length=20)] = "",
    sort: Annotated[str, Query(max_length=20)] = "submitted",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> ListQuery:
    """The list's filters from a query string; unknown values are ignored, not refused."""
    editions = list_editions(session)
    chosen = _pick_edition(editions, edition)
    status_value = status_filter if status_filter in STATUSES else ""
    member_value = member if member in MEMBER_LABELS else ""
    organisation_id = int(organisation) if organisation.isdigit() else None
    sort_value = sort if sort in review_service.SORT_KEYS else "submitted"
    filters = ApplicationFilters(
        edition_id=chosen.id if chosen else None,
        status=status_value,
        q=q.strip(),
        organisation_id=organisation_id,
        country=country.strip().upper(),
        member_status=member_value,  # type: ignore[arg-type]
        group_code=group.strip(),
        sort=sort_value,  # type: ignore[arg-type]
        page=page,
        per_page=PER_PAGE,
    )
    values = {
        "edition": chosen.slug if chosen else "",
        "status": status_value,
        "q": filters.q,
        "organisation": str(organisation_id) if organisation_id is not None else "",
        "country": filters.country,
        "member": member_value,
        "group": filters.group_code,
        "sort": sort_value,
        "page": str(page),
    }
    return ListQuery(editions=editions, edition=chosen, filters=filters, values=values)


ListQueryDep = Annotated[ListQuery, Depends(list_query)]


@router.get("/applications", response_class=HTMLResponse)
def applications(
    request: Request, session: SessionDep, user: PageAdmin, query: ListQueryDep
) -> Response:
    """Applications of an edition with filters, search, sort and pages; htmx gets the results."""
    counts = review_service.status_counts(session, query.filters)
    # The chips count every status under the other filters: the list's total is among them.
    total = counts.get(query.filters.status, 0) if query.filters.status else sum(counts.values())
    listing = review_service.list_applications(session, query.filters, total=total)
    edition = query.edition
    seats = None
    if edition is not None:
        # The chips count every status: with no other filter they counted the whole edition,
        # and the seats need no second count.
        filters = query.filters
        whole_edition = filters == ApplicationFilters(
            edition_id=edition.id,
            status=filters.status,
            sort=filters.sort,
            page=filters.page,
            per_page=filters.per_page,
        )
        seats = capacity_of(edition, counts) if whole_edition else capacity(session, edition)
    context = {
        "user": user,
        "active": "applications",
        "query": query,
        "edition": edition,
        "listing": listing,
        "counts": counts,
        "count_all": sum(counts.values()),
        "statuses": STATUSES,
        "choices": review_service.filter_choices(session, edition.id if edition else None),
        "bar": capacity_bar(seats) if seats is not None else None,
        "member_labels": _member_labels(),
        "member_short": _member_labels(short=True),
        # Each row's checkbox label, translated once for the page and filled in per row.
        "select_label": gettext("Select %(reference)s, %(name)s"),
        "sort_columns": {key: gettext(label) for key, label in SORT_COLUMNS.items()},
        "decisions": {key: gettext(label) for key, label in DECISION_LABELS.items()},
        "flash": pop_flash(request),
        "htmx": _wants_results(request),
    }
    name = "registrations/review/list.html"
    if context["htmx"]:
        return templates.TemplateResponse(request, name, context, block_name="results")
    return templates.TemplateResponse(request, name, context)


@router.get("/applications/waiting-list", response_class=HTMLResponse)
def waiting_list(
    request: Request, session: SessionDep, user: PageAdmin, query: ListQueryDep
) -> Response:
    """The waiting list of an edition in the order seats are offered."""
    edition = query.edition
    waiting = review_service.waiting_list(session, edition.id or 0) if edition else []
    return templates.TemplateResponse(
        request,
        "registrations/review/waiting_list.html",
        {
            "user": user,
            "active": "applications",
            "query": query,
            "edition": edition,
            "waiting": waiting,
            "bar": capacity_bar(capacity(session, edition)) if edition else None,
            "back": query.url("/admin/applications/waiting-list", page=None),
            "flash": pop_flash(request),
        },
    )


def _export_name(query: ListQuery, suffix: str) -> str:
    slug = query.edition.slug if query.edition else "all"
    return f"applications-{slug}-{date.today().isoformat()}.{suffix}"


@router.get("/applications/export.csv")
def export_csv(session: SessionDep, user: PageAdmin, query: ListQueryDep) -> Response:
    """Every application matching the list's filters, as CSV for Excel."""
    rows = review_service.matching_applications(session, query.filters)
    return Response(
        exports.applications_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{_export_name(query, "csv")}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/applications/export.xlsx")
def export_xlsx(session: SessionDep, user: PageAdmin, query: ListQueryDep) -> Response:
    """Every application matching the list's filters, as an Excel workbook."""
    rows = review_service.matching_applications(session, query.filters)
    return Response(
        exports.applications_xlsx(rows),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={
            "Content-Disposition": f'attachment; filename="{_export_name(query, "xlsx")}"',
            "Cache-Control": "no-store",
        },
    )


# Decisions


def _confirm_page(
    request: Request,
    user: StaffUser,
    *,
    message: str,
    action: str,
    fields: list[tuple[str, str]],
    back: str,
) -> Response:
    """Ask before admitting past capacity; the form posts the same values again, confirmed."""
    return templates.TemplateResponse(
        request,
        "registrations/review/confirm.html",
        {
            "user": user,
            "active": "applications",
            "message": message,
            "action": action,
            "fields": [*fields, ("confirm_over_capacity", "1")],
            "back": back,
        },
    )


def _over_capacity_message(seats: Capacity, admitting: int) -> str:
    over = beyond_capacity(seats, admitting)
    return gettext(
        "This admits %(over)s beyond the %(seats)s seats; seats are guaranteed only on "
        "payment. Admit anyway?"
    ) % {"over": over, "seats": seats.seats}


def _parse_choices(selected: list[str]) -> list[tuple[int, int | None]]:
    """`id:version` values of the checked rows, each once, in order."""
    choices: dict[int, int | None] = {}
    for value in selected:
        id_part, _, version_part = value.partition(":")
        if not id_part.isdigit():
            continue
        choices.setdefault(int(id_part), int(version_part) if version_part.isdigit() else None)
    return list(choices.items())


@router.post("/applications/bulk-decision", response_model=None)
def bulk_decision(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    seller: SellerDep,
    user: PageAdmin,
    selected: Annotated[list[str] | None, Form()] = None,
    decision: Annotated[str, Form(max_length=20)] = "",
    message: Annotated[str, Form(max_length=2000)] = "",
    confirm_over_capacity: Annotated[str, Form(max_length=1)] = "",
    back: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Decide each selected application separately; say what changed and what could not."""
    target = _safe_back(back, LIST_PATH)
    # One page of the list at most; a longer list is not something the page can send.
    choices = _parse_choices((selected or [])[:MAX_BULK])
    if decision not in DECISIONS:
        flash(
            request, gettext("Choose a decision (admit, waitlist or reject) for the selected rows.")
        )
        return see_other(target)
    if not choices:
        flash(request, gettext("Select at least one application; nothing was changed."))
        return see_other(target)
    if decision == "admit" and confirm_over_capacity != "1":
        admitting = review_service.admittable_by_edition(session, [c[0] for c in choices])
        for edition_id, count in admitting.items():
            edition = session.get(Edition, edition_id)
            assert edition is not None
            seats = capacity(session, edition)
            if beyond_capacity(seats, count) > 0:
                fields = [("selected", f"{i}:{v}" if v is not None else str(i)) for i, v in choices]
                return _confirm_page(
                    request,
                    user,
                    message=_over_capacity_message(seats, count),
                    action="/admin/applications/bulk-decision",
                    fields=[
                        *fields,
                        ("decision", decision),
                        ("message", message),
                        ("back", target),
                    ],
                    back=target,
                )
    outcome = review_service.decide_many(
        session,
        choices=choices,
        decision=decision,  # type: ignore[arg-type]
        actor=user,
        note=message.strip(),
        storage=storage,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
        seller=seller,
    )
    flash(request, outcome.summary() + ".")
    return see_other(target)


@dataclass(frozen=True)
class QuoteLine:
    """A line of the quote stored at application, its amount back as a Decimal."""

    label: str
    reason: str
    amount: Decimal
    messages: dict[str, Any] | None = None


def _quote_lines(quote: dict[str, Any]) -> list[QuoteLine]:
    return [
        QuoteLine(
            label=str(line.get("label", "")),
            reason=str(line.get("reason", "")),
            amount=Decimal(str(line.get("amount", "0"))),
            messages=line.get(MESSAGES_KEY),
        )
        for line in quote.get("lines", [])
    ]


def _detail_context(
    session: Session, user: StaffUser, application: Application, **extra: Any
) -> dict[str, Any]:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    organisation = (
        session.get(Organisation, application.organisation_id)
        if application.organisation_id is not None
        else None
    )
    group = (
        session.get(ApplicantGroup, application.group_id)
        if application.group_id is not None
        else None
    )
    seats = capacity(session, edition)
    member = (
        membership_status(organisation, dues_year=edition.dues_year)
        if organisation
        else "non_member"
    )
    choices = [
        d
        for d in DECISIONS
        if (d == "waitlist" and application.status == ApplicationStatus.submitted.value)
        or (d != "waitlist" and application.status in ADMITTABLE)
    ]
    context: dict[str, Any] = {
        "user": user,
        "active": "applications",
        "application": application,
        "quote_lines": _quote_lines(application.quote),
        "quote_currency": str(application.quote.get("currency") or edition.currency),
        "edition": edition,
        "organisation": organisation,
        "member_status": member,
        "member_labels": _member_labels(),
        "group": group,
        "group_size": group_size(session, group.id or 0) if group else 0,
        "bar": capacity_bar(seats),
        "admitting_overflows": beyond_capacity(seats, 1) > 0,
        "decision_choices": choices,
        "decision_labels": {key: gettext(label) for key, label in DECISION_LABELS.items()},
        "timeline": review_service.timeline(session, application.id or 0),
        "action_words": {key: gettext(words) for key, words in ACTION_WORDS.items()},
        "mails": review_service.application_mail(session, application.id or 0),
        "notes_fingerprint": review_service.notes_fingerprint(application.staff_notes),
        "list_url": f"{LIST_PATH}?{urlencode({'edition': edition.slug})}",
        "form": {"decision": "", "message": ""},
        "errors": {},
        "conflict": None,
        "notes_conflict": None,
        "flash": None,
        "billing": buyers.form_values(buyers.application_billing(session, application.id or 0)),
        "billing_errors": {},
        "billing_id": "office",
    }
    context.update(extra)
    return context


def _eligibility_panel(
    request: Request, session: Session, application: Application
) -> dict[str, Any]:
    """The certificate conditions, and the override form as it came back with its messages."""
    form = request.session.pop("eligibility_form", None)
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return {
        "form": form if isinstance(form, dict) else {},
        "answer": eligibility.evaluate(session, application),
        "override": eligibility.override_of(session, application.id or 0),
        "history": eligibility.override_history(session, application.id or 0),
        "work": final_work_of(session, application.id or 0),
        "timezone": edition.timezone,
        "reason_min": eligibility.OVERRIDE_REASON_MIN,
        "can_override": application.status in eligibility.CONFIRMED,
    }


def _certificate_panel(
    request: Request, session: Session, application: Application
) -> dict[str, Any]:
    """The certificate section: the certificate and its versions, or the eligibility."""
    certificate = certificate_of(session, application.id or 0)
    panel: dict[str, Any] = {"certificate": certificate, "errors": {}}
    # What the certificate forms sent, when they came back with a message for a field.
    form = request.session.pop("certificate_form", None)
    panel.update(form if isinstance(form, dict) else {})
    if certificate is None:
        if application.status in PARTICIPANT_STATUSES:
            panel["eligibility"] = eligibility.evaluate(session, application)
        return panel
    edition = session.get(Edition, certificate.edition_id)
    assert edition is not None
    options = certificate_options(request)
    panel["versions"] = versions_of(session, certificate)
    panel["verification_url"] = verification_url(options, certificate.number)
    panel["timezone"] = edition.timezone
    return panel


def _detail_page(
    request: Request,
    session: Session,
    user: StaffUser,
    application: Application,
    *,
    status_code: int = status.HTTP_200_OK,
    **extra: Any,
) -> Response:
    context = _detail_context(session, user, application, **extra)
    context.update(
        eligibility=_eligibility_panel(request, session, application),
        certificate_panel=_certificate_panel(request, session, application),
    )
    return templates.TemplateResponse(
        request, "registrations/review/detail.html", context, status_code=status_code
    )


@router.get("/applications/{application_id}", response_class=HTMLResponse)
def application_page(
    application_id: int, request: Request, session: SessionDep, user: PageAdmin
) -> Response:
    """Everything an applicant sent, the quote, notes, timeline and the decision form."""
    application = get_application(session, application_id)
    return _detail_page(request, session, user, application, flash=pop_flash(request))


def _stored_file(storage: Any, key: str, filename: str) -> Response:
    return Response(
        storage.get(key),
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/applications/{application_id}/cv")
def application_cv(
    application_id: int, session: SessionDep, storage: StorageDep, user: PageAdmin
) -> Response:
    """The applicant's CV as the PDF they uploaded."""
    application = get_application(session, application_id)
    if not application.cv_key:
        raise NotFound(gettext("This application has no CV."))
    return _stored_file(storage, application.cv_key, f"cv-{application.reference}.pdf")


@router.get("/applications/{application_id}/fee-waiver.pdf")
def application_fee_waiver(
    application_id: int, session: SessionDep, storage: StorageDep, user: PageAdmin
) -> Response:
    """The numbered fee-waiver confirmation issued at admission."""
    application = get_application(session, application_id)
    if not application.fee_waiver_key:
        raise NotFound(gettext("This application has no fee-waiver confirmation."))
    return _stored_file(
        storage, application.fee_waiver_key, f"fee-waiver-{application.fee_waiver_number}.pdf"
    )


@router.post("/applications/{application_id}/decision", response_model=None)
def application_decision(
    application_id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    seller: SellerDep,
    user: PageAdmin,
    version: Annotated[int, Form(ge=1)],
    decision: Annotated[str, Form(max_length=20)] = "",
    message: Annotated[str, Form(max_length=2000)] = "",
    confirm_over_capacity: Annotated[str, Form(max_length=1)] = "",
    back: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Admit, waitlist or reject one application as the administrator saw it (its version)."""
    application = get_application(session, application_id)
    page = f"{LIST_PATH}/{application_id}"
    form = {"decision": decision, "message": message}
    if decision not in DECISIONS:
        return _detail_page(
            request,
            session,
            user,
            application,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            form=form,
            errors={"decision": gettext("Choose admit, waitlist or reject.")},
        )
    if (
        decision == "admit"
        and confirm_over_capacity != "1"
        and application.status in ADMITTABLE
        and application.version == version
    ):
        edition = session.get(Edition, application.edition_id)
        assert edition is not None
        seats = capacity(session, edition)
        if beyond_capacity(seats, 1) > 0:
            return _confirm_page(
                request,
                user,
                message=_over_capacity_message(seats, 1),
                action=f"{page}/decision",
                fields=[
                    ("version", str(version)),
                    ("decision", decision),
                    ("message", message),
                    ("back", back),
                ],
                back=_safe_back(back, page),
            )
    try:
        decided = decide(
            session,
            application_id=application_id,
            decision=decision,  # type: ignore[arg-type]
            actor=user,
            note=message.strip(),
            expected_version=version,
            storage=storage,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
            seller=seller,
        )
    except Conflict:
        current = get_application(session, application_id)
        if current.version != version:
            conflict = gettext(
                "Another administrator changed this application meanwhile: it is now "
                "%(status)s. Nothing was changed."
            ) % {"status": gettext(current.status)}
        else:
            conflict = gettext(
                "This application is %(status)s: it cannot be %(done)s from there. Nothing was "
                "changed."
            ) % {"status": gettext(current.status), "done": gettext(DONE_WORDS[decision])}
        return _detail_page(
            request,
            session,
            user,
            current,
            status_code=status.HTTP_409_CONFLICT,
            form=form,
            conflict=conflict,
        )
    values = {"reference": decided.reference, "email": decided.email}
    if decided.status == ApplicationStatus.confirmed.value:
        done = gettext(
            "%(reference)s admitted and confirmed at once (fee waived); the fee-waiver "
            "confirmation to %(email)s is queued."
        )
    elif decision == "admit":
        done = gettext("%(reference)s admitted; the e-mail to %(email)s is queued.")
    elif decision == "waitlist":
        done = gettext("%(reference)s put on the waiting list; the e-mail to %(email)s is queued.")
    else:
        done = gettext("%(reference)s rejected; the e-mail to %(email)s is queued.")
    flash(request, done % values)
    return see_other(_safe_back(back, page))


@router.post("/applications/{application_id}/notes", response_model=None)
def application_notes(
    application_id: int,
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    staff_notes: Annotated[str, Form(max_length=20_000)] = "",
    notes_seen: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Save the office's notes on an application (only the office sees them)."""
    try:
        review_service.save_staff_notes(
            session,
            application_id=application_id,
            notes=staff_notes,
            actor=user.email,
            seen_fingerprint=notes_seen or None,
        )
    except (Conflict, InvalidInput) as exc:
        application = get_application(session, application_id)
        conflict = isinstance(exc, Conflict)
        return _detail_page(
            request,
            session,
            user,
            application,
            status_code=(
                status.HTTP_409_CONFLICT if conflict else status.HTTP_422_UNPROCESSABLE_CONTENT
            ),
            notes_conflict={"message": translate(exc.message), "text": staff_notes},
        )
    flash(request, gettext("Notes saved."))
    return see_other(f"{LIST_PATH}/{application_id}#notes")


@router.post("/applications/{application_id}/billing", response_model=None)
def application_billing(
    application_id: int, request: Request, session: SessionDep, user: PageAdmin, form: FormDep
) -> Response:
    """Who the application's next invoice is made out to (issued invoices keep their copy)."""
    application = get_application(session, application_id)
    try:
        data = buyers.billing_from_form(form)
        if data is None:
            raise InvalidInput(
                "Give the legal name.", fields={"legal_name": gettext("Give the legal name.")}
            )
        buyers.save_application_billing(
            session, application=application, data=data, actor=user.email
        )
    except InvalidInput as exc:
        session.rollback()
        return _detail_page(
            request,
            session,
            user,
            get_application(session, application_id),
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            billing=buyers.submitted_values(form),
            billing_errors=buyers.form_errors(exc),
        )
    session.commit()
    flash(request, gettext("Invoice details saved for the next invoice."))
    return see_other(f"{LIST_PATH}/{application_id}#invoice-details")


@router.post("/applications/{application_id}/new-link", response_model=None)
def application_new_link(
    application_id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: PageAdmin,
) -> Response:
    """End every private link sent so far and e-mail the applicant a new one."""
    application = revoke_portal_links(
        session,
        application_id=application_id,
        actor=user.email,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
    )
    flash(
        request,
        gettext("The earlier private links no longer work; a new link to %(email)s is queued.")
        % {"email": application.email},
    )
    return see_other(f"{LIST_PATH}/{application_id}")


# The outbox

OUTBOX_PATH = "/admin/outbox"


def _office_timezone(session: Session) -> str:
    """Outbox times are shown on the clock of the current edition (the office's)."""
    edition = _default_edition(list_editions(session))
    return edition.timezone if edition else "UTC"


@router.get("/outbox", response_class=HTMLResponse)
def outbox(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    status_filter: Annotated[str, Query(alias="status", max_length=20)] = "",
    q: Annotated[str, Query(max_length=100)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """Every e-mail the service wrote: queued, being sent, sent and failed."""
    status_value = status_filter if status_filter in review_service.OUTBOX_STATUSES else ""
    listing = review_service.list_outbox(session, status=status_value, q=q, page=page)
    counts = review_service.outbox_counts(session, q=q)

    def url(**changes: str | int | None) -> str:
        merged: dict[str, Any] = {"status": status_value, "q": q.strip(), **changes}
        pairs = {k: str(v) for k, v in merged.items() if v not in (None, "", 1)}
        return f"{OUTBOX_PATH}?{urlencode(pairs)}" if pairs else OUTBOX_PATH

    context = {
        "user": user,
        "active": "outbox",
        "listing": listing,
        "counts": counts,
        "count_all": sum(counts.values()),
        "statuses": review_service.OUTBOX_STATUSES,
        "status_value": status_value,
        "q": q,
        "url": url,
        "timezone": _office_timezone(session),
        "flash": pop_flash(request),
        "htmx": _wants_results(request),
    }
    name = "office/outbox/list.html"
    if context["htmx"]:
        return templates.TemplateResponse(request, name, context, block_name="results")
    return templates.TemplateResponse(request, name, context)


@router.get("/outbox/{message_id}", response_class=HTMLResponse)
def outbox_message(
    message_id: int, request: Request, session: SessionDep, user: PageAdmin
) -> Response:
    """One e-mail: its addresses, state, plain-text part and HTML source."""
    message = review_service.get_outbox_message(session, message_id)
    application = (
        session.get(Application, message.application_id) if message.application_id else None
    )
    return templates.TemplateResponse(
        request,
        "office/outbox/detail.html",
        {
            "user": user,
            "active": "outbox",
            "message": message,
            "application": application,
            "timezone": _office_timezone(session),
            "flash": pop_flash(request),
        },
    )


@router.get("/outbox/{message_id}/body.html")
def outbox_message_html(message_id: int, session: SessionDep, user: PageAdmin) -> Response:
    """The HTML part as a file; served as plain text so it never runs in our pages."""
    message = review_service.get_outbox_message(session, message_id)
    return Response(
        message.body_html,
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="message-{message_id}.html"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/outbox/{message_id}/retry", response_model=None)
def outbox_retry(
    message_id: int,
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    back: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Queue a failed e-mail again."""
    message = review_service.get_outbox_message(session, message_id)
    if message.status != "failed":
        flash(
            request,
            gettext("Only a failed e-mail can be retried; this one is %(status)s.")
            % {"status": gettext(message.status)},
        )
    else:
        retry_failed(session, message_id)
        flash(
            request,
            gettext("The e-mail to %(address)s is queued again.") % {"address": message.to_address},
        )
    return see_other(_safe_back(back, f"{OUTBOX_PATH}/{message_id}"))
