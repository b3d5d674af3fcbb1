"""Certificates: public verification, the portal's downloads, the office's pages, the JSON API
(the verifiable credential and what a verifier fetches are in `credentials.py`)."""

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from app.config import Settings
from app.models import Application, Certificate, Edition
from app.platform import i18n
from app.platform.i18n import gettext, translate, translate_fields
from app.platform.rate_limit import Limit, RateLimited, hit
from app.services.certificates import bulk_runs as runs
from app.services.certificates import issuing as service
from app.services.certificates.eligibility import evaluate_edition
from app.services.certificates.numbers import InvalidNumber, normalise
from app.services.editions.editions import get_edition
from app.services.errors import DomainError, InvalidInput, NotFound
from app.services.registrations.applications import application_for_token, get_application
from app.web.dependencies import (
    ApiAdmin,
    FormDep,
    PageAdmin,
    SessionDep,
    SettingsDep,
    StorageDep,
    certificate_options,
    client_address,
    is_htmx,
    templates,
)
from app.web.errors import error_responses
from app.web.kit import chosen_edition, form_text, see_other
from app.web.security import verify_csrf

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])
api_router = APIRouter(prefix="/api/v1", tags=["certificates"])

VERIFY_PAGE = "certificates/verify.html"
EDITION_PAGE = "certificates/office/edition.html"
PROGRESS_PARTIAL = "certificates/office/_progress.html"
VERIFY_SCOPE = "certificate-verify"
JWT_MEDIA_TYPE = "application/jwt"
BINARY = {"type": "string", "format": "binary"}
# A certificate is personal: no shared cache keeps it.
PRIVATE_FILE_HEADERS = {"Cache-Control": "private, no-store"}


# Shared pieces


def run_launcher() -> runs.Launcher:
    """How a bulk run starts in this process: in a background thread (tests run it in place)."""
    return runs.in_thread


OptionsDep = Annotated[service.CertificateOptions, Depends(certificate_options)]
LauncherDep = Annotated[runs.Launcher, Depends(run_launcher)]


def _pop(request: Request, key: str) -> Any:
    return request.session.pop(key, None)


def _pdf_response(data: bytes, filename: str) -> Response:
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            **PRIVATE_FILE_HEADERS,
        },
    )


def _badge_response(token: str, certificate: Certificate) -> Response:
    return Response(
        token,
        media_type=JWT_MEDIA_TYPE,
        headers={
            "Content-Disposition": (f'attachment; filename="open-badge-{certificate.number}.jwt"'),
            **PRIVATE_FILE_HEADERS,
        },
    )


def _throttle(session: Session, request: Request, settings: Settings) -> None:
    hit(
        session,
        scope=VERIFY_SCOPE,
        subject=client_address(request),
        limit=Limit(
            requests=settings.certificate_verify_limit,
            window_seconds=settings.certificate_verify_window_seconds,
        ),
    )


def _edition_of(session: Session, certificate: Certificate) -> Edition:
    edition = session.get(Edition, certificate.edition_id)
    assert edition is not None
    return edition


# Public verification


def _verify_page(
    request: Request,
    *,
    status_code: int = 200,
    typed: str = "",
    error: str = "",
    view: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return templates.TemplateResponse(
        request,
        VERIFY_PAGE,
        {"typed": typed, "error": error, "view": view},
        status_code=status_code,
        headers=headers,
    )


@router.get("/verify", response_class=HTMLResponse)
def verify_form(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    number: Annotated[str, Query(max_length=80)] = "",
) -> Response:
    """Check a certificate by its number; a typed number goes to its own page."""
    if not number:
        return _verify_page(request)
    try:
        _throttle(session, request, settings)
    except RateLimited as exc:
        return _verify_page(
            request,
            status_code=429,
            typed=number,
            error=translate(exc.message),
            headers={"Retry-After": str(exc.retry_after)},
        )
    try:
        canonical = normalise(number)
    except InvalidNumber as exc:
        return _verify_page(
            request,
            status_code=422,
            typed=number,
            error=translate(exc.fields.get("number", exc.message)),
        )
    return see_other(f"/verify/{canonical}")


@router.get("/verify/{number}", response_class=HTMLResponse)
def verify_page(
    number: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Whether a certificate is genuine and current, with the little anyone may see of it."""
    try:
        _throttle(session, request, settings)
    except RateLimited as exc:
        return _verify_page(
            request,
            status_code=429,
            typed=number[:80],
            error=translate(exc.message),
            headers={"Retry-After": str(exc.retry_after)},
        )
    try:
        certificate = service.get_by_number(session, number[:80])
    except InvalidNumber as exc:
        return _verify_page(
            request,
            status_code=422,
            typed=number[:80],
            error=translate(exc.fields.get("number", exc.message)),
        )
    except NotFound as exc:
        return _verify_page(
            request, status_code=404, typed=number[:80], error=translate(exc.message)
        )
    if certificate.number != number:
        # Typed in lower case or without dashes: the canonical address is the one to share.
        return RedirectResponse(
            f"/verify/{certificate.number}", status_code=status.HTTP_308_PERMANENT_REDIRECT
        )
    view = service.public_view(session, certificate)
    edition = _edition_of(session, certificate)
    # The page is in the visitor's language: the course as entered in it, dates written its way.
    view["course"] = i18n.localized(edition, "title")
    view["dates_words"] = i18n.date_range_words(edition.start_date, edition.end_date)
    for name in ("issued_on", "revoked_on", "reissued_on"):
        if view[name]:
            view[f"{name}_words"] = i18n.day_month_year(date.fromisoformat(view[name]))
    return _verify_page(request, view=view)


# The participant's portal


@router.get("/portal/{token}/certificate.pdf")
def portal_certificate_pdf(
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    options: OptionsDep,
) -> Response:
    """The participant's own certificate, as stored when it was issued."""
    application = application_for_token(session, token, secret_key=settings.secret_key)
    certificate = service.certificate_of(session, application.id or 0)
    if certificate is None:
        raise NotFound("No certificate has been issued for this application yet.")
    if certificate.revoked_at is not None:
        raise NotFound("This certificate was revoked.")
    data = service.ensure_pdf(session, certificate, storage=storage, options=options)
    return _pdf_response(data, service.pdf_filename(certificate))


@router.get("/portal/{token}/open-badge.jwt")
def portal_badge(
    token: str, session: SessionDep, settings: SettingsDep, options: OptionsDep
) -> Response:
    """The participant's certificate as a signed Open Badges 3.0 credential."""
    application = application_for_token(session, token, secret_key=settings.secret_key)
    certificate = service.certificate_of(session, application.id or 0)
    if certificate is None:
        raise NotFound("No certificate has been issued for this application yet.")
    return _badge_response(service.badge(session, certificate, options), certificate)


# The office's pages


def _back_to_application(application_id: int) -> RedirectResponse:
    return see_other(f"/admin/applications/{application_id}#certificate")


@router.post("/admin/applications/{application_id}/certificate")
def issue_page(
    application_id: int,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    options: OptionsDep,
    user: PageAdmin,
) -> Response:
    """Issue one participant's certificate from their application page."""
    try:
        result = service.issue_certificate(
            session,
            application_id=application_id,
            actor=user.email,
            storage=storage,
            options=options,
        )
    except service.NotEligible as exc:
        request.session["flash"] = gettext("Not issued: %(reasons)s") % {
            "reasons": "; ".join(translate(reason) for reason in exc.reasons)
        }
    else:
        certificate = result.certificate
        request.session["flash"] = (
            gettext("Certificate %(number)s issued to %(name)s; they were e-mailed it.")
            if result.created
            else gettext("Certificate %(number)s was issued already.")
        ) % {"number": certificate.number, "name": certificate.holder_name}
    return _back_to_application(application_id)


@router.get("/admin/applications/{application_id}/certificate.pdf")
def admin_certificate_pdf(
    application_id: int,
    session: SessionDep,
    storage: StorageDep,
    options: OptionsDep,
    user: PageAdmin,
) -> Response:
    """The certificate's current version as stored."""
    certificate = service.certificate_of(session, application_id)
    if certificate is None:
        raise NotFound("No certificate has been issued for this application.")
    data = service.ensure_pdf(session, certificate, storage=storage, options=options)
    return _pdf_response(data, service.pdf_filename(certificate))


@router.post("/admin/certificates/{number}/revoke")
def revoke_page(
    number: str,
    request: Request,
    form: FormDep,
    session: SessionDep,
    options: OptionsDep,
    user: PageAdmin,
) -> Response:
    """Revoke a certificate with a written reason."""
    certificate = service.get_by_number(session, number)
    reason = form_text(form, "reason", 2000)
    try:
        service.revoke(session, number=number, reason=reason, actor=user.email, options=options)
    except InvalidInput as exc:
        request.session["certificate_form"] = {
            "errors": translate_fields(exc.fields),
            "values": {"reason": reason},
            "open": "revoke",
        }
    except DomainError as exc:
        request.session["flash"] = translate(exc.message)
    else:
        request.session["flash"] = f"Certificate {certificate.number} is revoked."
    return _back_to_application(certificate.application_id)


@router.post("/admin/certificates/{number}/reissue")
def reissue_page(
    number: str,
    request: Request,
    form: FormDep,
    session: SessionDep,
    storage: StorageDep,
    options: OptionsDep,
    user: PageAdmin,
) -> Response:
    """Issue a corrected version under the same number."""
    certificate = service.get_by_number(session, number)
    holder = form_text(form, "holder_name", 300)
    reason = form_text(form, "reissue_reason", 2000)
    try:
        updated = service.reissue(
            session,
            number=number,
            holder=holder,
            reason=reason,
            actor=user.email,
            storage=storage,
            options=options,
        )
    except InvalidInput as exc:
        errors = {
            ("reissue_reason" if k == "reason" else k): v
            for k, v in translate_fields(exc.fields).items()
        }
        request.session["certificate_form"] = {
            "errors": errors,
            "values": {"holder_name": holder, "reissue_reason": reason},
            "open": "reissue",
        }
    except DomainError as exc:
        request.session["flash"] = translate(exc.message)
    else:
        request.session["flash"] = gettext(
            "Certificate %(number)s re-issued as version %(version)s in the name of %(name)s; "
            "the participant was e-mailed it."
        ) % {"number": updated.number, "version": updated.version, "name": updated.holder_name}
    return _back_to_application(certificate.application_id)


def _run_view(run: Any) -> dict[str, Any] | None:
    if run is None:
        return None
    state = runs.status_of(run)
    waiting = state in runs.ACTIVE
    percent = round(100 * run.done / run.total) if run.total else (0 if waiting else 100)
    return {"run": run, "state": state, "percent": percent}


def _edition_context(session: Session, edition: Edition) -> dict[str, Any]:
    certificates = service.certificates_of_edition(session, edition)
    eligibility = evaluate_edition(session, edition)
    issued = {c.application_id for c in certificates}
    wanted = set(eligibility) | issued
    applications = (
        {
            a.id: a
            for a in session.exec(select(Application).where(col(Application.id).in_(wanted))).all()
        }
        if wanted
        else {}
    )
    waiting = [i for i, answer in eligibility.items() if answer.eligible and i not in issued]
    not_yet = [
        (applications[i], answer)
        for i, answer in eligibility.items()
        if not answer.eligible and i not in issued and i in applications
    ]
    return {
        "edition": edition,
        "certificates": certificates,
        "applications": applications,
        "waiting": len(waiting),
        "not_yet": sorted(not_yet, key=lambda pair: service.holder_name(pair[0])),
        "progress": _run_view(runs.latest_run(session, edition)),
    }


@router.get("/admin/certificates", response_class=HTMLResponse)
def certificates_home(
    session: SessionDep,
    user: PageAdmin,
    edition_slug: Annotated[str, Query(alias="edition", max_length=80)] = "",
) -> Response:
    """The certificates of the edition that ended last (or the one asked for)."""
    edition = chosen_edition(session, edition_slug, prefer="ended")
    if edition is None:
        raise NotFound("There is no edition yet.")
    return see_other(f"/admin/editions/{edition.slug}/certificates")


@router.get("/admin/editions/{slug}/certificates", response_class=HTMLResponse)
def edition_certificates(
    slug: str, request: Request, session: SessionDep, user: PageAdmin
) -> Response:
    """An edition's certificates: issue them all, follow the progress, and the list."""
    edition = get_edition(session, slug)
    editions = list(session.exec(select(Edition).order_by(col(Edition.start_date).desc())).all())
    return templates.TemplateResponse(
        request,
        EDITION_PAGE,
        {
            "user": user,
            "active": "certificates",
            "editions": editions,
            "flash": _pop(request, "flash"),
            **_edition_context(session, edition),
        },
    )


@router.post("/admin/editions/{slug}/certificates/run", response_class=HTMLResponse)
def start_run(
    slug: str,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    options: OptionsDep,
    launch: LauncherDep,
    user: PageAdmin,
) -> Response:
    """Start issuing every eligible participant's certificate; the page shows its progress."""
    edition = get_edition(session, slug)
    try:
        run = runs.start_run(
            session,
            edition=edition,
            actor=user.email,
            engine=request.app.state.engine,
            storage=storage,
            options=options,
            # Left to the `diplomat worker` processes unless this process does it.
            launch=launch if request.app.state.settings.jobs_in_process else None,
        )
    except DomainError as exc:
        if is_htmx(request):
            latest = runs.latest_run(session, edition)
            return _progress(
                request, edition, latest, message=translate(exc.message), status_code=409
            )
        request.session["flash"] = translate(exc.message)
        return see_other(f"/admin/editions/{slug}/certificates")
    if is_htmx(request):
        session.refresh(run)
        return _progress(request, edition, run)
    return see_other(f"/admin/editions/{slug}/certificates#progress")


def _progress(
    request: Request,
    edition: Edition,
    run: Any,
    *,
    message: str = "",
    status_code: int = 200,
) -> Response:
    return templates.TemplateResponse(
        request,
        PROGRESS_PARTIAL,
        {"edition": edition, "progress": _run_view(run), "message": message},
        status_code=status_code,
    )


@router.get("/admin/editions/{slug}/certificates/runs/{run_id}", response_class=HTMLResponse)
def run_progress(
    slug: str, run_id: int, request: Request, session: SessionDep, user: PageAdmin
) -> Response:
    """The progress of a run, polled by the page every second while it goes on."""
    edition = get_edition(session, slug)
    return _progress(request, edition, runs.get_run(session, run_id, edition))


# The JSON API


class CertificateIssued(BaseModel):
    """An issued certificate and where to find it."""

    number: str
    version: int
    holder: str
    issued_on: str
    verification_url: str
    pdf_url: str
    badge_url: str
    linkedin_url: str
    revoked: bool


class NotEligibleOut(BaseModel):
    """Why a participant cannot receive the certificate yet."""

    detail: str
    reasons: list[str]


class BulkIssued(BaseModel):
    """What issuing an edition's certificates did."""

    issued: int
    already_issued: int
    certificates: list[dict[str, Any]]
    skipped: list[dict[str, Any]]


class CertificateView(BaseModel):
    """What anyone may know about a certificate."""

    number: str
    valid: bool
    revoked: bool
    revoked_on: str | None
    holder: str
    course: str
    edition: str
    place: str
    start_date: str
    end_date: str
    issued_on: str
    version: int
    reissued_on: str | None


class RevokeIn(BaseModel):
    """Why the certificate is revoked."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=2000)


class ReissueIn(BaseModel):
    """The corrected name and why."""

    model_config = ConfigDict(extra="forbid")

    holder_name: str = Field(max_length=300)
    reason: str = Field(max_length=2000)


def _issued(
    session: Session, certificate: Certificate, options: service.CertificateOptions
) -> CertificateIssued:
    edition = _edition_of(session, certificate)
    base = f"{options.base_url}/api/v1/certificates/{certificate.number}"
    return CertificateIssued(
        number=certificate.number,
        version=certificate.version,
        holder=certificate.holder_name,
        issued_on=certificate.issued_on.isoformat(),
        verification_url=service.verification_url(options, certificate.number),
        pdf_url=f"{base}/pdf",
        badge_url=f"{base}/badge",
        linkedin_url=service.linkedin_url(options, certificate, edition),
        revoked=certificate.revoked_at is not None,
    )


def _invalid_number(exc: InvalidNumber) -> JSONResponse:
    return JSONResponse(
        {
            "detail": [
                {
                    "loc": ["path", "number"],
                    "msg": exc.fields.get("number", exc.message),
                    "type": "value_error",
                }
            ]
        },
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


@api_router.post(
    "/applications/{application_id}/certificate",
    response_model=CertificateIssued,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "Issued before: the existing certificate", "model": CertificateIssued},
        409: {
            "description": "Not eligible: `detail` and every unmet condition in `reasons`.",
            "model": NotEligibleOut,
        },
    },
)
def api_issue(
    application_id: int,
    session: SessionDep,
    storage: StorageDep,
    options: OptionsDep,
    admin: ApiAdmin,
) -> Response:
    """Issue a participant's certificate (201); one issued before is answered with 200.

    A participant who is not eligible gets 409 with every unmet condition in `reasons`.
    """
    get_application(session, application_id)
    try:
        result = service.issue_certificate(
            session,
            application_id=application_id,
            actor=admin.email,
            storage=storage,
            options=options,
        )
    except service.NotEligible as exc:
        return JSONResponse(
            {"detail": exc.message, "reasons": exc.reasons},
            status_code=status.HTTP_409_CONFLICT,
        )
    body = _issued(session, result.certificate, options)
    return JSONResponse(
        body.model_dump(),
        status_code=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
    )


@api_router.post("/editions/{slug}/certificates", response_model=BulkIssued)
def api_issue_edition(
    slug: str,
    session: SessionDep,
    storage: StorageDep,
    options: OptionsDep,
    admin: ApiAdmin,
) -> BulkIssued:
    """Issue the certificate of every eligible participant who has none; list who was skipped."""
    edition = get_edition(session, slug)
    result = service.issue_for_edition(
        session, edition=edition, actor=admin.email, storage=storage, options=options
    )
    return BulkIssued(
        issued=len(result.issued),
        already_issued=result.already_issued,
        certificates=[
            {"application_id": c.application_id, "number": c.number} for c in result.issued
        ],
        skipped=result.skipped,
    )


@api_router.get(
    "/certificates/{number}",
    response_model=CertificateView,
    responses={
        **error_responses(404, 429),
        422: {"description": "Not a certificate number: what is wrong with it."},
    },
)
def api_verify(
    number: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Verify a certificate (public, rate-limited per address): valid or revoked, and whose."""
    try:
        _throttle(session, request, settings)
    except RateLimited as exc:
        return JSONResponse(
            {"detail": exc.message},
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(exc.retry_after)},
        )
    try:
        certificate = service.get_by_number(session, number[:80])
    except InvalidNumber as exc:
        return _invalid_number(exc)
    return JSONResponse(
        CertificateView.model_validate(service.public_view(session, certificate)).model_dump()
    )


def _admin_certificate(session: Session, number: str) -> Certificate | JSONResponse:
    try:
        return service.get_by_number(session, number[:80])
    except InvalidNumber as exc:
        return _invalid_number(exc)


@api_router.get(
    "/certificates/{number}/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {"schema": BINARY}}}},
)
def api_pdf(
    number: str, session: SessionDep, storage: StorageDep, options: OptionsDep, admin: ApiAdmin
) -> Response:
    """The certificate's current PDF, as stored."""
    found = _admin_certificate(session, number)
    if isinstance(found, JSONResponse):
        return found
    data = service.ensure_pdf(session, found, storage=storage, options=options)
    return _pdf_response(data, service.pdf_filename(found))


@api_router.get(
    "/certificates/{number}/badge",
    response_class=Response,
    responses={
        200: {"content": {JWT_MEDIA_TYPE: {}}},
        **error_responses(409),
    },
)
def api_badge(number: str, session: SessionDep, options: OptionsDep, admin: ApiAdmin) -> Response:
    """The certificate as a signed Open Badges 3.0 credential (compact JWS)."""
    found = _admin_certificate(session, number)
    if isinstance(found, JSONResponse):
        return found
    return _badge_response(service.badge(session, found, options), found)


@api_router.post(
    "/certificates/{number}/revoke",
    response_model=CertificateIssued,
    responses=error_responses(409),
)
def api_revoke(
    number: str, data: RevokeIn, session: SessionDep, options: OptionsDep, admin: ApiAdmin
) -> Response:
    """Revoke a certificate for good; the reason is kept and verification says revoked."""
    found = _admin_certificate(session, number)
    if isinstance(found, JSONResponse):
        return found
    certificate = service.revoke(
        session, number=found.number, reason=data.reason, actor=admin.email, options=options
    )
    return JSONResponse(_issued(session, certificate, options).model_dump())


@api_router.post(
    "/certificates/{number}/reissue",
    response_model=CertificateIssued,
    responses=error_responses(409),
)
def api_reissue(
    number: str,
    data: ReissueIn,
    session: SessionDep,
    storage: StorageDep,
    options: OptionsDep,
    admin: ApiAdmin,
) -> Response:
    """Issue a new version with a corrected name under the same number."""
    found = _admin_certificate(session, number)
    if isinstance(found, JSONResponse):
        return found
    certificate = service.reissue(
        session,
        number=found.number,
        holder=data.holder_name,
        reason=data.reason,
        actor=admin.email,
        storage=storage,
        options=options,
    )
    return JSONResponse(_issued(session, certificate, options).model_dump())
