"""Staff pages for the member registry and the World Bank income groups."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile, status
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from app.models import Organisation, StaffUser
from app.platform.i18n import N_, gettext, translate, translate_fields
from app.services.errors import Conflict, DomainError, InvalidInput
from app.services.registry import organisations as registry
from app.services.registry.countries import all_countries
from app.web.dependencies import PageAdmin, SessionDep, form_errors, is_htmx, read_upload, templates
from app.web.kit import flash, pop_flash, see_other
from app.web.security import verify_csrf

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)])

# A pasted or re-posted CSV is a text field: allow the whole 2 MB file plus the CR that
# browsers add before every LF, instead of Starlette's 1 MB default for a field.
IMPORT_FIELD_BYTES = registry.MAX_IMPORT_BYTES + 64 * 1024
INCOME_FIELD_BYTES = registry.MAX_INCOME_CSV_BYTES + 64 * 1024

ORGANISATION_FIELDS = {
    "name": N_("Name"),
    "country": N_("Country"),
    "is_member": N_("Metropolis member"),
    "dues_paid_through": N_("Dues paid through"),
}
STATUS_FILTERS = [
    ("all", N_("All")),
    ("member", N_("Paid-up members")),
    ("behind", N_("Behind on dues")),
    ("non_member", N_("Non-members")),
]


def _upload_text(file: UploadFile | None, pasted: str, *, max_bytes: int) -> str:
    """The CSV from the file input if one was chosen, else the pasted text."""
    if file is not None and file.filename:
        raw = read_upload(file, max_bytes + 1)
        if raw:
            return registry.decode_csv(raw, max_bytes=max_bytes, field_name="file")
    if pasted.strip():
        return pasted
    raise InvalidInput(
        gettext("No CSV was given."),
        fields={"file": gettext("Choose a CSV file or paste the rows below.")},
    )


# Member registry: the list


@router.get("/organisations", response_class=HTMLResponse)
def organisations(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    q: Annotated[str, Query(max_length=100)] = "",
    status_filter: Annotated[registry.MembershipFilter, Query(alias="status")] = "all",
    country: Annotated[str, Query(max_length=3)] = "",
    dues_year: Annotated[int | None, Query(ge=1900, le=2200)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    """The registry with search, membership and country filters; htmx gets the table only."""
    year = dues_year or registry.default_dues_year()
    listing = registry.list_organisations(
        session, query=q, status=status_filter, country=country, dues_year=year, page=page
    )
    filters = {"q": q, "status": status_filter, "country": country, "dues_year": year}
    context = {
        "user": user,
        "listing": listing,
        "filters": filters,
        "statuses": {
            o.id: registry.membership_status(o, dues_year=year) for o in listing.organisations
        },
        "status_filters": [(value, gettext(text)) for value, text in STATUS_FILTERS],
        "countries": registry.registry_countries(session),
        "flash": pop_flash(request),
        "htmx": is_htmx(request),
    }
    name = "registry/organisations.html"
    if context["htmx"]:
        return templates.TemplateResponse(request, name, context, block_name="results")
    return templates.TemplateResponse(request, name, context)


# Member registry: create and edit


def _form_page(
    request: Request,
    user: StaffUser,
    *,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    organisation_id: int | None = None,
    status_code: int = status.HTTP_200_OK,
) -> Response:
    return templates.TemplateResponse(
        request,
        "registry/organisation_form.html",
        {
            "user": user,
            "values": values,
            "errors": errors or {},
            "labels": {key: gettext(label) for key, label in ORGANISATION_FIELDS.items()},
            "organisation_id": organisation_id,
            "countries": all_countries(),
        },
        status_code=status_code,
    )


def _typed(
    name: str, country: str, is_member: str | None, dues_paid_through: str
) -> dict[str, Any]:
    """The form's values as typed, to validate and to show again."""
    return {
        "name": name,
        "country": country,
        "is_member": bool(is_member),
        "dues_paid_through": dues_paid_through.strip() or None,
    }


def _submitted(
    request: Request,
    user: StaffUser,
    values: dict[str, Any],
    organisation_id: int | None,
    save: Callable[[registry.OrganisationIn], Organisation],
) -> Response:
    """Validate the typed values, save them, and answer with a redirect or the form again."""
    try:
        data = registry.OrganisationIn.model_validate(values)
    except ValidationError as exc:
        errors = {k: v for k, v in form_errors(exc).items() if k in ORGANISATION_FIELDS}
        return _form_page(
            request,
            user,
            values=values,
            errors=errors or {"name": gettext("Check the values.")},
            organisation_id=organisation_id,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    try:
        organisation = save(data)
    except (Conflict, InvalidInput) as exc:
        code = (
            status.HTTP_409_CONFLICT
            if isinstance(exc, Conflict)
            else status.HTTP_422_UNPROCESSABLE_CONTENT
        )
        return _form_page(
            request,
            user,
            values=values,
            errors=translate_fields(exc.fields) or {"name": translate(exc.message)},
            organisation_id=organisation_id,
            status_code=code,
        )
    saved = (
        gettext("%(name)s (%(country)s) updated.")
        if organisation_id
        else gettext("%(name)s (%(country)s) added.")
    )
    flash(request, saved % {"name": organisation.name, "country": organisation.country})
    return see_other("/admin/organisations")


@router.get("/organisations/new", response_class=HTMLResponse)
def new_organisation_form(request: Request, user: PageAdmin) -> Response:
    """An empty form for a new registry entry."""
    values = {"name": "", "country": "", "is_member": False, "dues_paid_through": None}
    return _form_page(request, user, values=values)


@router.post("/organisations/new", response_model=None)
def create_organisation(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    name: Annotated[str, Form(max_length=1000)] = "",
    country: Annotated[str, Form(max_length=1000)] = "",
    is_member: Annotated[str | None, Form(max_length=10)] = None,
    dues_paid_through: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Add a registry entry, or show the form again with a message next to each fault."""
    values = _typed(name, country, is_member, dues_paid_through)
    return _submitted(
        request,
        user,
        values,
        None,
        lambda data: registry.create_organisation(session, data=data, actor=user.email),
    )


@router.get("/organisations/{organisation_id}/edit", response_class=HTMLResponse)
def edit_organisation_form(
    request: Request, session: SessionDep, user: PageAdmin, organisation_id: int
) -> Response:
    """The form for an existing registry entry."""
    organisation = registry.get_organisation(session, organisation_id)
    values = {
        "name": organisation.name,
        "country": organisation.country,
        "is_member": organisation.is_member,
        "dues_paid_through": organisation.dues_paid_through,
    }
    return _form_page(request, user, values=values, organisation_id=organisation_id)


@router.post("/organisations/{organisation_id}/edit", response_model=None)
def update_organisation(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    organisation_id: int,
    name: Annotated[str, Form(max_length=1000)] = "",
    country: Annotated[str, Form(max_length=1000)] = "",
    is_member: Annotated[str | None, Form(max_length=10)] = None,
    dues_paid_through: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Change a registry entry, or show the form again with a message next to each fault."""
    registry.get_organisation(session, organisation_id)
    values = _typed(name, country, is_member, dues_paid_through)
    return _submitted(
        request,
        user,
        values,
        organisation_id,
        lambda data: registry.update_organisation(
            session, organisation_id=organisation_id, data=data, actor=user.email
        ),
    )


# Member registry: CSV import


def _import_page(
    request: Request,
    user: StaffUser,
    *,
    csv_text: str = "",
    errors: dict[str, str] | None = None,
    status_code: int = status.HTTP_200_OK,
) -> Response:
    return templates.TemplateResponse(
        request,
        "registry/import.html",
        {
            "user": user,
            "csv_text": csv_text,
            "errors": errors or {},
            "columns": registry.IMPORT_COLUMNS,
            "max_rows": registry.MAX_CSV_ROWS,
        },
        status_code=status_code,
    )


def _preview_page(
    request: Request,
    user: StaffUser,
    *,
    plan: registry.ImportPlan,
    csv_text: str,
    notice: str | None = None,
) -> Response:
    return templates.TemplateResponse(
        request,
        "registry/import_preview.html",
        {
            "user": user,
            "plan": plan,
            "faults": plan.faults,
            "csv_text": csv_text,
            "notice": notice,
            "labels": {key: gettext(label) for key, label in ORGANISATION_FIELDS.items()},
        },
        status_code=status.HTTP_200_OK if plan.can_apply else status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


@router.get("/organisations/import", response_class=HTMLResponse)
def import_form(request: Request, user: PageAdmin) -> Response:
    """Upload or paste a registry CSV to preview."""
    return _import_page(request, user)


@router.post(
    "/organisations/import/preview",
    response_class=HTMLResponse,
    form_limits={"max_part_size": IMPORT_FIELD_BYTES},
)
def import_preview(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    file: Annotated[UploadFile | None, File()] = None,
    csv_text: Annotated[str, Form()] = "",
) -> Response:
    """What the CSV would create and update, row by row; nothing is written."""
    try:
        text = _upload_text(file, csv_text, max_bytes=registry.MAX_IMPORT_BYTES)
    except InvalidInput as exc:
        return _import_page(
            request,
            user,
            csv_text=csv_text,
            errors=exc.fields,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    plan = registry.plan_organisation_import(session, text)
    return _preview_page(request, user, plan=plan, csv_text=text)


@router.post(
    "/organisations/import/apply",
    response_model=None,
    form_limits={"max_part_size": IMPORT_FIELD_BYTES},
)
def import_apply(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    csv_text: Annotated[str, Form()] = "",
) -> Response:
    """Apply the previewed CSV, checked again, all rows or none."""
    try:
        created, updated = registry.apply_organisation_import(
            session, csv_text=csv_text, actor=user.email
        )
    except DomainError as exc:
        plan = registry.plan_organisation_import(session, csv_text)
        notice = gettext("Nothing was changed. %(reason)s") % {"reason": translate(exc.message)}
        return _preview_page(request, user, plan=plan, csv_text=csv_text, notice=notice)
    flash(
        request,
        gettext("%(created)s created, %(updated)s updated.")
        % {"created": created, "updated": updated},
    )
    return see_other("/admin/organisations")


# Income groups


def _income_page(
    request: Request,
    session: SessionDep,
    user: StaffUser,
    *,
    fiscal_year: int | None,
    query: str = "",
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = status.HTTP_200_OK,
) -> Response:
    years = registry.income_fiscal_years(session)
    year = fiscal_year if fiscal_year is not None else (years[-1] if years else None)
    table = registry.income_group_table(session, fiscal_year=year, query=query) if year else None
    errors = errors or {}
    return templates.TemplateResponse(
        request,
        "registry/income_groups.html",
        {
            "user": user,
            "years": years,
            "year": year,
            "query": query,
            "table": table,
            "group_words": registry.income_group_words,
            "form": form or {"fiscal_year": "", "csv_text": ""},
            "errors": errors,
            "row_errors": {k: v for k, v in errors.items() if k.startswith("row ")},
            "flash": pop_flash(request),
        },
        status_code=status_code,
    )


@router.get("/income-groups", response_class=HTMLResponse)
def income_groups(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    fy: Annotated[int | None, Query(ge=1990, le=2200)] = None,
    q: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """A fiscal year's classification with counts per group, and the form to upload a year."""
    return _income_page(request, session, user, fiscal_year=fy, query=q)


@router.post(
    "/income-groups",
    response_model=None,
    form_limits={"max_part_size": INCOME_FIELD_BYTES},
)
def upload_income_groups(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    fiscal_year: Annotated[str, Form(max_length=20)] = "",
    file: Annotated[UploadFile | None, File()] = None,
    csv_text: Annotated[str, Form()] = "",
) -> Response:
    """Store (or replace) one fiscal year's classification from CSV, all rows or none."""
    form = {"fiscal_year": fiscal_year, "csv_text": csv_text}
    errors: dict[str, str] = {}
    year = text = None
    try:
        year = registry.parse_fiscal_year(fiscal_year)
    except InvalidInput as exc:
        errors.update(exc.fields)
    try:
        text = _upload_text(file, csv_text, max_bytes=registry.MAX_INCOME_CSV_BYTES)
    except InvalidInput as exc:
        errors.update(exc.fields)
    if year is not None and text is not None:
        try:
            count = registry.replace_income_groups(
                session, fiscal_year=year, csv_text=text, actor=user.email
            )
        except InvalidInput as exc:
            # The service names a fault of the whole file "body"; on this page that is the file.
            errors.update({"file" if k == "body" else k: v for k, v in exc.fields.items()})
            errors = errors or {"file": exc.message}
    if errors or year is None:
        stored = registry.income_fiscal_years(session)
        return _income_page(
            request,
            session,
            user,
            # Beside the form, the year being replaced if it is stored; else the latest.
            fiscal_year=year if year in stored else None,
            form=form,
            errors=errors,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    flash(
        request, gettext("FY%(year)s stored: %(count)s economies.") % {"year": year, "count": count}
    )
    return see_other(f"/admin/income-groups?fy={year}")
