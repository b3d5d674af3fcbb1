"""The application factory: middleware, routers, static files and error pages."""

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import __version__
from app.config import Settings, get_settings
from app.db import make_engine, writer_engine
from app.platform import jobs
from app.platform.i18n import N_
from app.platform.mail import MailSettings, deliver_due
from app.platform.readiness import readiness
from app.platform.storage import StorageUnavailable, make_storage
from app.routers.billing import api as billing_api
from app.routers.billing import money_back
from app.routers.billing import pages as billing_pages
from app.routers.billing import stripe as billing_stripe
from app.routers.certificates import credentials
from app.routers.certificates import issuing as certificates
from app.routers.editions import api as editions_api
from app.routers.editions import course_texts as editions_course_texts
from app.routers.editions import pages as editions_pages
from app.routers.editions import public as editions_public
from app.routers.office import api as office_api
from app.routers.office import audit as office_audit
from app.routers.office import dashboard as office_dashboard
from app.routers.office import exports as office_exports
from app.routers.office import personal_data as office_personal_data
from app.routers.office import sign_in as office_sign_in
from app.routers.registrations import api as registrations_api
from app.routers.registrations import cancellations
from app.routers.registrations import pages as registrations_pages
from app.routers.registrations import public as registrations_public
from app.routers.registry import api as registry_api
from app.routers.registry import pages as registry_pages
from app.routers.teaching import api as teaching_api
from app.routers.teaching import final_work, logistics
from app.routers.teaching import pages as teaching_pages
from app.services.billing import card_payments, verifactu_sender
from app.services.billing.invoice_files import render_invoice_attachment
from app.services.certificates.issuing import CertificateOptions
from app.services.errors import Conflict, DomainError, InvalidInput, NotFound
from app.services.office import personal_data
from app.services.office.staff import LoginFailed, LoginThrottled
from app.services.registrations import applications as application_rules
from app.services.registrations import waitlist
from app.services.teaching import final_work as final_work_rules
from app.web.body_timeout import BodyTimeoutMiddleware
from app.web.dependencies import (
    STATIC_DIR,
    ApiForbidden,
    ApiUnauthenticated,
    Forbidden,
    LoginRequired,
    templates,
)
from app.web.errors import document_api_errors
from app.web.input_checks import refuse_unstorable_input
from app.web.language import LanguageMiddleware
from app.web.request_id import RequestIdMiddleware
from app.web.security import (
    MAX_BODY_BYTES,
    BodyLimitMiddleware,
    CSRFError,
    SecurityHeadersMiddleware,
    upload_body_limit,
)
from app.worker import job_context

log = logging.getLogger("diplomat")

# Catalog ids: the error page shows them in the reader's language.
STATUS_TITLES = {
    400: N_("Bad request"),
    401: N_("Please log in"),
    403: N_("Not allowed"),
    404: N_("Page not found"),
    405: N_("Not allowed"),
    409: N_("Conflict"),
    422: N_("Please check the form"),
    413: N_("Too large to accept"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
    503: N_("Temporarily unavailable"),
}


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/stripe/")) or request.url.path in (
        "/healthz",
        "/readyz",
    )


def _error(request: Request, status_code: int, detail: Any, message: str = "") -> Response:
    if _wants_json(request):
        headers = {"WWW-Authenticate": "Bearer"} if status_code == 401 else None
        return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)
    return templates.TemplateResponse(
        request,
        "errors/error.html",
        {
            "status_code": status_code,
            "title": STATUS_TITLES.get(status_code, N_("Error")),
            "message": message or (detail if isinstance(detail, str) else ""),
        },
        status_code=status_code,
    )


def _domain_status(exc: DomainError) -> int:
    if isinstance(exc, NotFound):
        return status.HTTP_404_NOT_FOUND
    if isinstance(exc, Conflict):
        return status.HTTP_409_CONFLICT
    if isinstance(exc, LoginThrottled):
        return status.HTTP_429_TOO_MANY_REQUESTS
    if isinstance(exc, LoginFailed):
        return status.HTTP_401_UNAUTHORIZED
    if isinstance(exc, InvalidInput):
        return status.HTTP_422_UNPROCESSABLE_CONTENT
    return status.HTTP_400_BAD_REQUEST


def _domain_detail(exc: DomainError, status_code: int) -> Any:
    if status_code == status.HTTP_422_UNPROCESSABLE_CONTENT:
        # The same shape FastAPI uses for its own validation errors: one entry per field.
        return [
            {"loc": ["body", field], "msg": message, "type": "value_error"}
            for field, message in (exc.fields or {"body": exc.message}).items()
        ]
    if exc.fields:
        return {"message": exc.message, "fields": exc.fields}
    return exc.message


async def _too_large(request: Request, message: str) -> Response:
    return _error(request, status.HTTP_413_CONTENT_TOO_LARGE, message, message)


def install_error_handlers(app: FastAPI) -> None:
    """JSON errors under /api, pages for people elsewhere; never a 500 for bad input."""

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        code = _domain_status(exc)
        answer = _error(request, code, _domain_detail(exc, code), exc.message)
        if isinstance(exc, LoginThrottled):
            answer.headers["Retry-After"] = str(exc.retry_after)
        return answer

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        message = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'input'}: {e['msg']}" for e in errors
        )
        return _error(request, status.HTTP_422_UNPROCESSABLE_CONTENT, errors, message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, exc.detail)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _: LoginRequired) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        url = f"/admin/login?next={quote(target, safe='')}"
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, _: Forbidden) -> Response:
        return _error(request, 403, "Your role does not allow this page.")

    @app.exception_handler(ApiUnauthenticated)
    async def unauthenticated(request: Request, _: ApiUnauthenticated) -> Response:
        return _error(request, 401, "Not authenticated: send a valid bearer token.")

    @app.exception_handler(ApiForbidden)
    async def api_forbidden(request: Request, _: ApiForbidden) -> Response:
        return _error(request, 403, "Your role does not allow this call.")

    @app.exception_handler(CSRFError)
    async def csrf_error(request: Request, _: CSRFError) -> Response:
        return _error(
            request,
            403,
            "The form was missing its security token.",
            "This form has expired or did not come from this site. Go back, reload the page "
            "and try again.",
        )

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def value_out_of_range(request: Request, exc: Exception) -> Response:
        # A number beyond what the column holds (SQLite: 64 bits, refused when bound;
        # PostgreSQL: "integer out of range") names nothing that can exist: bad input.
        log.warning("value out of range on %s %s: %s", request.method, request.url.path, exc)
        message = "A value in the request cannot be stored: a number out of range, or a NUL."
        detail = [{"loc": ["request"], "msg": message, "type": "value_error"}]
        return _error(request, status.HTTP_422_UNPROCESSABLE_CONTENT, detail, message)

    @app.exception_handler(StorageUnavailable)
    async def storage_unavailable(request: Request, exc: StorageUnavailable) -> Response:
        log.error("file storage unavailable on %s %s: %s", request.method, request.url.path, exc)
        return _error(request, 503, str(exc))

    @app.exception_handler(PoolTimeout)
    async def database_busy(request: Request, exc: PoolTimeout) -> Response:
        log.error("no database connection free in time: %s", exc)
        return _error(request, 503, "The service is busy; try again shortly.")

    @app.exception_handler(OperationalError)
    async def database_unavailable(request: Request, exc: OperationalError) -> Response:
        log.error("database unavailable: %s", exc)
        return _error(request, 503, "The database is unavailable; try again shortly.")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return _error(request, 503, "The database is unavailable; try again shortly.")
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(request, 500, "An unexpected error occurred; it has been logged.")


def mail_settings(settings: Settings) -> MailSettings:
    """How this service sends mail."""
    return MailSettings(
        sender=settings.mail_from,
        smtp_host=settings.smtp_host,
        smtp_port=settings.smtp_port,
        smtp_username=settings.smtp_username,
        smtp_password=settings.smtp_password,
        smtp_starttls=settings.smtp_starttls,
        mail_dir=settings.mail_dir,
        render_attachment=render_invoice_attachment,
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the outbox sender inside the web process when configured to (the embedded default)."""
    settings: Settings = app.state.settings
    tasks = []
    if settings.mail_worker_in_process:
        tasks.append(asyncio.create_task(_send_mail_forever(app, settings)))
        tasks.append(asyncio.create_task(_run_chores_forever(app, settings)))
        if settings.jobs_in_process:
            tasks.append(asyncio.create_task(_resume_jobs_forever(app, settings)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        app.state.engine.dispose()


async def _send_mail_forever(app: FastAPI, settings: Settings) -> None:
    config = mail_settings(settings)
    while True:
        try:
            await asyncio.to_thread(
                deliver_due, app.state.engine, settings=config, storage=app.state.storage
            )
        except Exception:
            # The database may be away for a moment; the next round tries again.
            log.exception("the mail sender failed a round")
        await asyncio.sleep(settings.mail_poll_seconds)


def run_chores(engine: Engine, settings: Settings) -> None:
    """One round of what the office would otherwise forget: offers that ran out, personal data
    past its retention period, card refunds."""
    waitlist.run_offer_expiry(
        engine,
        offer_days=settings.waitlist_offer_days,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
    )
    personal_data.erase_expired(engine, storage=make_storage(settings))
    if settings.verifactu_enabled and settings.verifactu_sending:
        sent = verifactu_sender.run_sender(engine, settings)
        if sent is not None and sent.problems:
            log.warning("VERI*FACTU records not sent: %s", "; ".join(sent.problems))
    if settings.stripe_enabled:
        client = card_payments.stripe_client(
            api_key=settings.stripe_secret_key, api_base=settings.stripe_api_base
        )
        with Session(writer_engine(engine), expire_on_commit=False) as session:
            for outcome in card_payments.send_card_refunds(session, client=client):
                if outcome.problem:
                    log.warning("card refund %s not sent: %s", outcome.refund_id, outcome.problem)


def resume_jobs(engine: Engine, context: jobs.JobContext, *, worker: str) -> int:
    """Do every job that is queued or lost its process (kill -9, a crash); how many."""
    done = 0
    while jobs.work_once(engine, context, worker=worker) is not None:
        done += 1
    return done


async def _resume_jobs_forever(app: FastAPI, settings: Settings) -> None:
    # Without this, a job whose web process died waited for a person to start it again: in
    # the embedded default no `diplomat worker` runs to claim it.
    context = job_context(
        app.state.engine,
        app.state.storage,
        CertificateOptions.from_settings(settings, cpu_count=os.cpu_count()),
    )
    worker = jobs.worker_name()
    while True:
        try:
            await asyncio.to_thread(resume_jobs, app.state.engine, context, worker=worker)
        except Exception:
            log.exception("resuming background jobs failed a round")
        await asyncio.sleep(settings.jobs_poll_seconds)


async def _run_chores_forever(app: FastAPI, settings: Settings) -> None:
    while True:
        try:
            await asyncio.to_thread(run_chores, app.state.engine, settings)
        except Exception:
            log.exception("the office chores failed a round")
        await asyncio.sleep(settings.chores_poll_seconds)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for the given (or configured) settings."""
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=lifespan,
        title="diplomat",
        version=__version__,
        summary="The course office for city-network training.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        # Before every endpoint: no NUL in any text, no over-long query value (a 422 naming it).
        dependencies=[Depends(refuse_unstorable_input)],
    )
    app.state.settings = settings
    app.state.engine = make_engine(settings.database_url)
    app.state.storage = make_storage(settings)
    # The language of the request; inside the session middleware, which keeps the choice.
    app.add_middleware(LanguageMiddleware)
    # Inside the session middleware (added later, so outside): its refusal page has a session.
    app.add_middleware(
        BodyLimitMiddleware,
        default=MAX_BODY_BYTES,
        uploads={
            r"/editions/[^/]+/apply": upload_body_limit(application_rules.CV_MAX_BYTES),
            r"/portal/[^/]+/final-work": upload_body_limit(final_work_rules.FINAL_WORK_MAX_BYTES),
        },
        refuse=_too_large,
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie="diplomat_session",
        max_age=12 * 3600,
        same_site="lax",
        https_only=settings.https,
    )
    app.add_middleware(
        SecurityHeadersMiddleware,
        https=settings.https,
        checkout_origin=settings.stripe_checkout_origin,
    )
    app.add_middleware(BodyTimeoutMiddleware, seconds=settings.request_body_timeout_seconds)
    app.add_middleware(RequestIdMiddleware)
    if settings.forwarded_allow_ips:
        # Outermost: every throttle and log sees the client the named proxies report, and
        # nobody else's X-Forwarded-For is believed (uvicorn itself runs without it).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # Routes are matched in order, one after another, and each one tried costs a few
    # microseconds: of about 180 routes, the last is reached after 0.8 ms. The health check,
    # which probes call every few seconds, comes first, then what applicants use most
    # (applying, the edition page, the portal, the public API). No path of one group can
    # match another's (/admin, /api/v1, /portal and /editions stay apart).
    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        """Liveness: the process answers (the database is asked by /readyz, so an outage of
        the database does not get every web process restarted)."""
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> JSONResponse:
        """Readiness: the database reachable and migrated to this code's head, files writable."""
        ready, checks = readiness(request.app.state.engine, request.app.state.storage)
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", **checks, "version": __version__},
            status_code=200 if ready else 503,
        )

    app.include_router(registrations_api.router)
    app.include_router(editions_public.router)
    app.include_router(registrations_public.router)
    app.include_router(editions_api.router)
    app.include_router(registry_api.router)
    app.include_router(office_api.router)
    app.include_router(office_sign_in.router)
    app.include_router(registrations_pages.router)
    app.include_router(editions_pages.router)
    app.include_router(billing_pages.router)
    app.include_router(registry_pages.router)
    app.include_router(editions_course_texts.router)
    app.include_router(office_dashboard.router)
    app.include_router(office_exports.router)
    app.include_router(office_audit.router)
    app.include_router(office_personal_data.router)
    app.include_router(cancellations.router)
    app.include_router(cancellations.api_router)
    app.include_router(logistics.router)
    app.include_router(certificates.router)
    app.include_router(certificates.api_router)
    app.include_router(credentials.router)
    app.include_router(final_work.router)
    app.include_router(final_work.api_router)
    app.include_router(billing_api.router)
    app.include_router(billing_stripe.router)
    app.include_router(teaching_pages.router)
    app.include_router(teaching_api.router)
    app.include_router(money_back.router)
    app.include_router(money_back.pages_router)

    install_error_handlers(app)
    # The API's error answers, declared in /openapi.json as they are sent.
    document_api_errors(app)
    return app


class _LazyApp:
    """`app.main:app` for uvicorn: the factory runs on first use, so importing stays cheap."""

    def __init__(self) -> None:
        self._instance: FastAPI | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._instance is None:
            self._instance = create_app()
            settle_heap()
        await self._instance(scope, receive, send)


def settle_heap() -> None:
    """Leave what the process has built so far out of the garbage collector's full passes.

    The modules, the application and its routes, some 270,000 objects, live as long as the
    process; every full collection walked them all again (0.15 s each under load, a pause in
    the middle of whichever request triggered it). Collected once, then frozen, they are
    never walked again; what requests make is collected as before.
    """
    gc.collect()
    gc.freeze()


app = _LazyApp()
