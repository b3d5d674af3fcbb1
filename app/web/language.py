"""Which language a request is answered in: the switcher's choice, else the browser's."""

from urllib.parse import parse_qs, urlencode

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.platform.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGE_NAMES,
    LANGUAGES,
    current_language,
    from_accept_language,
    is_language,
    set_language,
)

SESSION_KEY = "language"


class LanguageMiddleware:
    """Sets the request's language: `?lang=` (kept in the session) > session > Accept-Language.

    It sits inside the session middleware so the choice travels in the signed session cookie.
    A portal page may then prefer the language stored on its application
    (`app.platform.i18n.prefer_language`), unless the person chose one with the switcher.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = scope.get("session")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        asked = (query.get("lang") or [""])[0].strip().lower()
        if is_language(asked):
            language, chosen = asked, True
            if isinstance(session, dict):
                session[SESSION_KEY] = asked
        elif isinstance(session, dict) and is_language(session.get(SESSION_KEY)):
            language, chosen = str(session[SESSION_KEY]), True
        else:
            header = Headers(scope=scope).get("accept-language", "")
            language, chosen = from_accept_language(header) or DEFAULT_LANGUAGE, False
        set_language(language, chosen=chosen)
        await self.app(scope, receive, send)


def language_links(request: Request) -> list[dict[str, str | bool]]:
    """The switcher: this page in each language, the current one marked."""
    current = current_language()
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    links: list[dict[str, str | bool]] = []
    for code in LANGUAGES:
        query = urlencode([*params, ("lang", code)])
        links.append(
            {
                "code": code,
                "name": LANGUAGE_NAMES[code],
                "url": f"{request.url.path}?{query}",
                "current": code == current,
            }
        )
    return links
