"""Security headers, request body limits and CSRF protection for forms."""

import hmac
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"

# Request bodies over this are refused with 413 before they are read: the largest ordinary
# body is a 2 MB file (registry import, bank statement, cancellation e-mail) with its form.
# Addresses taking larger uploads get their own limit (`BodyLimitMiddleware(uploads=...)`).
MAX_BODY_BYTES = 3 * 1024 * 1024
# Room for the form around an upload: the other fields and the multipart boundaries.
FORM_OVERHEAD_BYTES = 512 * 1024


def upload_body_limit(file_bytes: int) -> int:
    """The body limit of an address taking one file of at most `file_bytes`."""
    return file_bytes + FORM_OVERHEAD_BYTES


class BodyTooLarge(HTTPException):
    """A request body went past its limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))
        self.limit = limit


def too_large_message(limit: int) -> str:
    """Why a body was refused, in the sizes a person chooses files by."""
    file_bytes = limit - FORM_OVERHEAD_BYTES if limit > MAX_BODY_BYTES else limit
    megabytes = max(1, round(file_bytes / (1024 * 1024)))
    return (
        f"What was sent is larger than this page accepts: a file here may be at most "
        f"{megabytes} MB. Go back and choose a smaller file."
    )


class BodyLimitMiddleware:
    """Refuses request bodies over their address's limit with 413, without reading them.

    A declared Content-Length over the limit is answered at once; a body sent without one
    (chunked) is counted as it arrives and refused the moment it passes the limit, so an
    oversized upload is never spooled to disk or memory in full.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        default: int,
        uploads: Mapping[str, int],
        refuse: Callable[[Request, str], Awaitable[Response]],
    ) -> None:
        self.app = app
        self.default = default
        self.uploads = [(re.compile(pattern), limit) for pattern, limit in uploads.items()]
        self.refuse = refuse

    def limit_for(self, path: str) -> int:
        """The body limit of an address."""
        for pattern, limit in self.uploads:
            if pattern.fullmatch(path):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            response = await self.refuse(Request(scope), too_large_message(limit))
            await response(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted_receive, send)


def page_csp(checkout_origin: str = STRIPE_CHECKOUT_ORIGIN) -> str:
    """The pages' policy; forms may also lead to the card checkout ("Pay by card" redirects)."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"font-src 'self'; connect-src 'self'; form-action 'self' {checkout_origin}; "
        "base-uri 'none'; "
        "object-src 'none'; frame-ancestors 'none'"
    )


PAGE_CSP = page_csp()
# FastAPI's interactive docs page is built from an inline script and a CDN bundle.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
    "https://fastapi.tiangolo.com; frame-ancestors 'none'"
)


class CSRFError(Exception):
    """A state-changing form arrived without the session's token."""


class SecurityHeadersMiddleware:
    """Adds CSP, framing, referrer and sniffing headers to every response."""

    def __init__(
        self, app: ASGIApp, *, https: bool, checkout_origin: str = STRIPE_CHECKOUT_ORIGIN
    ) -> None:
        self.app = app
        self.https = https
        self.page_csp = page_csp(checkout_origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = DOCS_CSP if path in ("/docs", "/redoc") else self.page_csp

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", csp)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                if self.https:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def verify_csrf(request: Request) -> AsyncIterator[None]:
    """Refuse a state-changing request whose token (form field or header) is missing or wrong.

    It also closes the parsed form after the response, so uploaded files never linger.
    """
    form = None
    content_type = request.headers.get("content-type", "")
    if request.method not in SAFE_METHODS and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
    try:
        if request.method not in SAFE_METHODS:
            expected = request.session.get("csrf")
            sent = request.headers.get(CSRF_HEADER)
            if not sent and form is not None:
                value = form.get(CSRF_FIELD)
                sent = value if isinstance(value, str) else None
            if not isinstance(expected, str) or not sent or not hmac.compare_digest(expected, sent):
                raise CSRFError
        yield
    finally:
        if form is not None:
            await form.close()
