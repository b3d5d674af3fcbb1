"""Public pages: the list of editions and each edition's page."""

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.services import editions as edition_service
from app.web import SessionDep, templates

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep) -> Response:
    """Editions open for applications first, then upcoming and past ones."""
    today = date.today()
    open_now, upcoming, past = [], [], []
    for edition in edition_service.list_editions(session):
        if edition_service.applications_are_open(edition):
            open_now.append(edition)
        elif edition.end_date >= today:
            upcoming.append(edition)
        else:
            past.append(edition)
    return templates.TemplateResponse(
        request,
        "pages/home.html",
        {"open_now": open_now, "upcoming": upcoming, "past": past},
    )


@router.get("/editions/{slug}", response_class=HTMLResponse)
def edition_page(slug: str, request: Request, session: SessionDep) -> Response:
    """Place, dates, programme, fees and the cancellation deadline of one edition."""
    edition = edition_service.get_edition(session, slug)
    return templates.TemplateResponse(
        request,
        "pages/edition.html",
        {
            "edition": edition,
            "deadline": edition_service.cancellation_deadline(edition),
            "applications_open": edition_service.applications_are_open(edition),
        },
    )
