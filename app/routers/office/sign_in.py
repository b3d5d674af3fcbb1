"""Staff pages: login, logout and the administrators' home."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func
from sqlmodel import select

from app.models import Organisation
from app.platform.i18n import translate
from app.services.editions import editions as edition_service
from app.services.office.staff import LoginFailed, LoginThrottled, authenticate, end_sessions
from app.web.dependencies import (
    PageStaff,
    SessionDep,
    SettingsDep,
    client_address,
    staff_from_session,
    templates,
)
from app.web.security import csrf_token, verify_csrf

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(verify_csrf)])


def _safe_next(target: str | None) -> str:
    # Only our own staff pages: an absolute or protocol-relative URL would be an open redirect.
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return "/admin"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    """The staff login form."""
    return templates.TemplateResponse(
        request, "office/login.html", {"next": _safe_next(next), "email": "", "error": None}
    )


@router.post("/login", response_model=None)
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=500)] = "/admin",
) -> Response:
    """Check the credentials, start a fresh staff session, go where the user was headed."""
    target = _safe_next(next)
    try:
        user = authenticate(
            session,
            email=email,
            password=password,
            address=client_address(request),
            max_failures=settings.login_max_failures,
            window_seconds=settings.login_window_seconds,
            delay_seconds=settings.login_delay_seconds,
        )
    except (LoginFailed, LoginThrottled) as exc:
        code = (
            status.HTTP_429_TOO_MANY_REQUESTS
            if isinstance(exc, LoginThrottled)
            else status.HTTP_401_UNAUTHORIZED
        )
        return templates.TemplateResponse(
            request,
            "office/login.html",
            {"next": target, "email": email, "error": translate(exc.message)},
            status_code=code,
            headers=(
                {"Retry-After": str(exc.retry_after)} if isinstance(exc, LoginThrottled) else None
            ),
        )
    # A new session on login: nothing from before (a planted token) carries over.
    request.session.clear()
    request.session["staff_id"] = user.id
    request.session["pw"] = user.password_hash[-12:]
    request.session["gen"] = user.session_generation
    csrf_token(request)
    return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)


@router.post("/logout")
def logout(request: Request, session: SessionDep) -> RedirectResponse:
    """End the staff session, and every copy of it: the member's sessions elsewhere end too.

    The session lives in a signed cookie; clearing it here would leave a copy taken earlier
    (from a shared computer, say) working until it expired.
    """
    user = staff_from_session(request, session)
    if user is not None:
        end_sessions(session, user.id or 0)
    request.session.clear()
    return RedirectResponse("/admin/login", status_code=status.HTTP_303_SEE_OTHER)


@router.get("", response_class=HTMLResponse)
def admin_home(request: Request, session: SessionDep, user: PageStaff) -> Response:
    """Every edition with its key dates, and the registry at a glance."""
    editions = edition_service.list_editions(session)
    organisations = session.exec(select(func.count()).select_from(Organisation)).one()
    members = session.exec(
        select(func.count()).select_from(Organisation).where(Organisation.is_member)
    ).one()
    return templates.TemplateResponse(
        request,
        "office/home.html",
        {
            "user": user,
            "editions": [
                (
                    e,
                    edition_service.cancellation_deadline(e),
                    edition_service.applications_are_open(e),
                )
                for e in editions
            ],
            "organisations": organisations,
            "members": members,
        },
    )
