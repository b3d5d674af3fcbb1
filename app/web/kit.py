"""What page routers share: the redirect after a form, flash messages, form fields, the edition
a page opens on when none is chosen."""

from typing import Any, Literal

from fastapi import Request, status
from fastapi.responses import RedirectResponse
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.models import Edition
from app.platform.i18n import translate
from app.services.editions.editions import get_edition


def see_other(url: str) -> RedirectResponse:
    """After a form is handled, the browser asks for `url` with a GET (no resubmission)."""
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def flash(request: Request, message: str) -> None:
    """Keep a message for the next page, in the language of the request that caused it."""
    request.session["flash"] = translate(message)


def pop_flash(request: Request) -> str | None:
    """The message kept for this page, once."""
    message = request.session.pop("flash", None)
    return message if isinstance(message, str) else None


def form_text(form: Any, name: str, limit: int | None = None, *, strip: bool = True) -> str:
    """A text field of a form (stripped, cut at `limit`); empty when absent or a file."""
    raw = form.get(name)
    if not isinstance(raw, str):
        return ""
    text = raw.strip() if strip else raw
    return text[:limit] if limit is not None else text


def chosen_edition(
    session: Session, slug: str, *, prefer: Literal["upcoming", "ended"]
) -> Edition | None:
    """The edition named by `slug`; without one, the edition a page is most likely wanted for:
    the one running or next (`upcoming`: attendance, final work, logistics), or the one that
    ended last (`ended`: certificates are due after the end)."""
    if slug:
        return get_edition(session, slug)
    editions = list(session.exec(select(Edition).order_by(col(Edition.start_date))).all())
    today = utcnow().date()
    if prefer == "ended":
        ended = [e for e in editions if e.end_date <= today]
        if ended:
            return ended[-1]
        return editions[0] if editions else None
    upcoming = [e for e in editions if e.end_date >= today]
    if upcoming:
        return upcoming[0]
    return editions[-1] if editions else None
