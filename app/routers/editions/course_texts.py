"""The page where administrators enter an edition's texts in Spanish and French."""

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.models import Edition, StaffUser
from app.platform.i18n import LANGUAGE_NAMES, gettext, translate_fields
from app.services.editions import course_texts
from app.services.editions.editions import get_edition
from app.services.errors import InvalidInput
from app.web.dependencies import FormDep, PageAdmin, SessionDep, templates
from app.web.security import verify_csrf

router = APIRouter(
    prefix="/admin/editions",
    include_in_schema=False,
    dependencies=[Depends(verify_csrf)],
)
PAGE = "editions/office/translations.html"


def _render(
    request: Request,
    *,
    user: StaffUser,
    edition: Edition,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    flash: str = "",
    status_code: int = status.HTTP_200_OK,
) -> Response:
    return templates.TemplateResponse(
        request,
        PAGE,
        {
            "user": user,
            "active": "home",
            "edition": edition,
            "languages": [
                (code, LANGUAGE_NAMES[code]) for code in course_texts.TRANSLATED_LANGUAGES
            ],
            "values": values,
            "errors": errors or {},
            "flash": flash,
        },
        status_code=status_code,
    )


def _stored_values(edition: Edition) -> dict[str, str]:
    values: dict[str, str] = {}
    owners = [("edition", edition.translations)]
    owners += [(f"module-{m.id}", m.translations) for m in edition.modules]
    for owner, texts in owners:
        for language, fields in (texts or {}).items():
            for name, text in fields.items():
                values[f"{owner}-{language}-{name}"] = text
    return values


@router.get("/{slug}/translations", response_class=HTMLResponse)
def translations_page(
    request: Request, slug: str, session: SessionDep, user: PageAdmin
) -> Response:
    """The edition's and modules' titles and descriptions in each other language."""
    edition = get_edition(session, slug)
    flash = request.session.pop("flash", "")
    return _render(
        request,
        user=user,
        edition=edition,
        values=_stored_values(edition),
        flash=flash if isinstance(flash, str) else "",
    )


@router.post("/{slug}/translations", response_class=HTMLResponse)
def save_translations(
    request: Request, slug: str, session: SessionDep, user: PageAdmin, form: FormDep
) -> Response:
    """Store the texts; an empty field falls back to English."""
    edition = get_edition(session, slug)
    owners = ["edition", *(f"module-{m.id}" for m in edition.modules)]
    typed: dict[tuple[str, str, str], str] = {}
    for owner in owners:
        for language in course_texts.TRANSLATED_LANGUAGES:
            for name in course_texts.FIELDS:
                raw = form.get(f"{owner}-{language}-{name}")
                typed[(owner, language, name)] = raw.strip() if isinstance(raw, str) else ""
    texts = course_texts.TextsIn(typed)
    try:
        changed = course_texts.save_texts(session, edition=edition, texts=texts, actor=user.email)
    except InvalidInput as exc:
        values = {f"{o}-{lang}-{n}": v for (o, lang, n), v in typed.items()}
        return _render(
            request,
            user=user,
            edition=edition,
            values=values,
            errors=translate_fields(exc.fields),
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    request.session["flash"] = (
        gettext("Translations saved.") if changed else gettext("Nothing changed.")
    )
    return RedirectResponse(request.url.path, status_code=status.HTTP_303_SEE_OTHER)
