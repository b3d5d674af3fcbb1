"""Public pages: the list of editions, each edition's page and its price calculator."""

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from app.clock import edition_today
from app.models import Edition, Organisation
from app.services.billing.quotes import quote_for_edition
from app.services.editions import editions as edition_service
from app.services.editions.fees import Quote
from app.services.errors import InvalidInput
from app.services.registry.countries import all_countries
from app.services.registry.organisations import search_organisations
from app.web.dependencies import SessionDep, is_htmx, templates

router = APIRouter(include_in_schema=False)

ORGANISATION_CHOICES = 8


@dataclass
class Calculator:
    """What the price calculator shows: the choices made, the matches, the quote or errors."""

    org_q: str = ""
    organisation_id: int | None = None
    country: str = ""
    group_size: str = "1"
    options: list[Organisation] = field(default_factory=list)
    quote: Quote | None = None
    errors: dict[str, str] = field(default_factory=dict)


def _int_or_none(value: str) -> int | None:
    text = value.strip()
    return int(text) if text.isdigit() else None


def _options(session: Session, calc: Calculator) -> list[Organisation]:
    found = search_organisations(session, query=calc.org_q, limit=ORGANISATION_CHOICES)
    if calc.org_q.strip() == "":
        found = []
    chosen = session.get(Organisation, calc.organisation_id) if calc.organisation_id else None
    if chosen is not None and chosen not in found:
        found.insert(0, chosen)
    return found


def _calculate(session: Session, edition: Edition, calc: Calculator) -> None:
    size = _int_or_none(calc.group_size)
    if size is None:
        calc.errors["group_size"] = "The number of participants is a whole number, 1 or more."
        return
    if calc.organisation_id is None and not calc.country:
        # Without JavaScript a single match for the search stands for the choice.
        if len(calc.options) == 1 and calc.org_q:
            calc.organisation_id = calc.options[0].id
        else:
            return
    try:
        calc.quote = quote_for_edition(
            session,
            edition=edition,
            organisation_id=calc.organisation_id,
            country=calc.country or None,
            group_size=size,
        )
    except InvalidInput as exc:
        calc.errors = exc.fields or {"form": exc.message}


def _edition_context(edition: Edition, calc: Calculator) -> dict[str, Any]:
    return {
        "edition": edition,
        "deadline": edition_service.cancellation_deadline(edition),
        "applications_open": edition_service.applications_are_open(edition),
        "calc": calc,
        "countries": all_countries(),
    }


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep) -> Response:
    """Editions open for applications first, then upcoming and past ones."""
    open_now, upcoming, past = [], [], []
    for edition in edition_service.list_editions(session):
        if edition_service.applications_are_open(edition):
            open_now.append(edition)
        elif edition.end_date >= edition_today(edition):
            upcoming.append(edition)
        else:
            past.append(edition)
    return templates.TemplateResponse(
        request,
        "editions/public/home.html",
        {"open_now": open_now, "upcoming": upcoming, "past": past},
    )


@router.get("/editions/{slug}", response_class=HTMLResponse)
def edition_page(slug: str, request: Request, session: SessionDep) -> Response:
    """Place, dates, programme, fees, the price calculator and the cancellation deadline."""
    edition = edition_service.get_edition(session, slug, programme=True)
    return templates.TemplateResponse(
        request, "editions/public/edition.html", _edition_context(edition, Calculator())
    )


@router.get("/editions/{slug}/organisations", response_class=HTMLResponse)
def organisation_choices(
    slug: str,
    request: Request,
    session: SessionDep,
    org_q: str = "",
    organisation_id: str = "",
) -> Response:
    """The registry organisations matching what was typed (an htmx fragment)."""
    edition = edition_service.get_edition(session, slug)
    calc = Calculator(org_q=org_q[:100], organisation_id=_int_or_none(organisation_id))
    calc.options = _options(session, calc)
    return templates.TemplateResponse(
        request, "partials/org_options.html", {"edition": edition, "calc": calc}
    )


@router.get("/editions/{slug}/price", response_class=HTMLResponse)
def price(
    slug: str,
    request: Request,
    session: SessionDep,
    org_q: str = "",
    organisation_id: str = "",
    country: str = "",
    group_size: str = "1",
) -> Response:
    """The price and its reasons: a fragment for htmx, the whole edition page otherwise."""
    edition = edition_service.get_edition(session, slug)
    calc = Calculator(
        org_q=org_q[:100],
        organisation_id=_int_or_none(organisation_id),
        country=country[:100],
        group_size=group_size[:6],
    )
    calc.options = _options(session, calc)
    _calculate(session, edition, calc)
    if is_htmx(request):
        return templates.TemplateResponse(
            request, "partials/price.html", {"edition": edition, "calc": calc}
        )
    return templates.TemplateResponse(
        request, "editions/public/edition.html", _edition_context(edition, calc)
    )
