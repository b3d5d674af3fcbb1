"""The administrators' dashboard of an edition: seats, money, risks, funnel, attendance, origins."""

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app.models import Edition
from app.services.editions.editions import applications_are_open, get_edition, list_editions
from app.services.office.dashboard import edition_dashboard
from app.services.office.dashboard_charts import dashboard_charts
from app.web.dependencies import PageAdmin, SessionDep, templates
from app.web.security import verify_csrf

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)])

CONCERN_LABELS = {"payment": "payment", "attendance": "attendance", "final work": "final work"}


def dashboard_url(edition: Edition) -> str:
    """The address of an edition's dashboard."""
    return f"/admin/editions/{quote(edition.slug, safe='')}/dashboard"


def _current(session: Session) -> Edition | None:
    """The edition taking applications, else the next to start, else the latest."""
    editions = list_editions(session)
    open_now = next((e for e in editions if applications_are_open(e)), None)
    return open_now or (editions[0] if editions else None)


@router.get("/dashboard", response_model=None)
def dashboard_home(
    request: Request,
    session: SessionDep,
    user: PageAdmin,
    edition: Annotated[str, Query(max_length=80)] = "",
) -> Response:
    """The dashboard of the chosen edition (or the current one)."""
    chosen = get_edition(session, edition) if edition else _current(session)
    if chosen is None:
        return templates.TemplateResponse(
            request,
            "office/dashboard/page.html",
            {"user": user, "active": "dashboard", "edition": None, "editions": []},
        )
    return RedirectResponse(dashboard_url(chosen), status_code=status.HTTP_303_SEE_OTHER)


@router.get("/editions/{slug}/dashboard", response_class=HTMLResponse)
def dashboard_page(slug: str, request: Request, session: SessionDep, user: PageAdmin) -> Response:
    """Seats paid, money outstanding, who is at risk, and the figures behind them."""
    edition = get_edition(session, slug)
    dash = edition_dashboard(session, edition)
    return templates.TemplateResponse(
        request,
        "office/dashboard/page.html",
        {
            "user": user,
            "active": "dashboard",
            "edition": edition,
            "editions": list_editions(session),
            "dash": dash,
            "charts": dashboard_charts(dash),
            "concern_labels": CONCERN_LABELS,
        },
    )
