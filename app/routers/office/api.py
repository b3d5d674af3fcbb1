"""Staff sign-in for the JSON API: a bearer token for a staff account."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from app.services.office.staff import authenticate, end_sessions, issue_token
from app.web.dependencies import ApiStaff, SessionDep, SettingsDep, client_address
from app.web.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["auth"])


class TokenOut(BaseModel):
    """A bearer token for staff calls."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


@router.post("/auth/token", response_model=TokenOut, responses=error_responses(401, 429))
def create_token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> TokenOut:
    """Exchange a staff e-mail and password for a bearer token."""
    user = authenticate(
        session,
        email=form.username,
        password=form.password,
        address=client_address(request),
        max_failures=settings.login_max_failures,
        window_seconds=settings.login_window_seconds,
        delay_seconds=settings.login_delay_seconds,
    )
    return TokenOut(access_token=issue_token(user, secret_key=settings.secret_key))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401))
def end_token(session: SessionDep, user: ApiStaff) -> Response:
    """End the token this call carries, with every other token and session of the account."""
    end_sessions(session, user.id or 0)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
