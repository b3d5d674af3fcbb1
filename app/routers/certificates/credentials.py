"""The certificate as a verifiable credential, and what a wallet or verifier fetches to check it:
the issuer's DID document and keys, its profile, the achievements and the revocation list."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, status
from fastapi.responses import JSONResponse, Response

from app.platform.rate_limit import Limit, RateLimited, hit
from app.routers.certificates.issuing import VERIFY_SCOPE, OptionsDep
from app.services.certificates import credentials, open_badges, verifiable
from app.services.certificates import issuing as service
from app.services.certificates.numbers import InvalidNumber
from app.services.editions.editions import get_edition
from app.services.errors import NotFound
from app.services.registrations.applications import application_for_token
from app.web.dependencies import (
    SessionDep,
    SettingsDep,
    client_address,
)
from app.web.errors import error_responses

router = APIRouter(tags=["open badges"])

LD_JSON = "application/ld+json"
VC_JWT = "application/vc+jwt"
DID_JSON = "application/did+ld+json"
JWK_JSON = "application/jwk+json"
JSON_OBJECT = {"schema": {"type": "object"}}
# What anyone may fetch about the issuer changes rarely; a revocation shows within a minute.
ISSUER_CACHE = {"Cache-Control": "public, max-age=3600"}
STATUS_CACHE = {"Cache-Control": "public, max-age=60"}
AcceptHeader = Annotated[str, Header(include_in_schema=False)]


def _wants_jwt(accept: str) -> bool:
    return any(part.split(";")[0].strip() == VC_JWT for part in accept.split(","))


def _json_ld(document: dict[str, Any], media_type: str = LD_JSON, **headers: str) -> Response:
    # Compact JSON, as served: a wallet stores the bytes it receives.
    return Response(
        json.dumps(document, ensure_ascii=False), media_type=media_type, headers=headers
    )


@router.get(
    "/api/v1/certificates/{number}/credential",
    response_class=Response,
    tags=["certificates"],
    responses={
        200: {"content": {LD_JSON: JSON_OBJECT, VC_JWT: {}}},
        **error_responses(404, 409, 429),
        422: {"description": "Not a certificate number: what is wrong with it."},
    },
)
def api_credential(
    number: Annotated[str, Path(max_length=80)],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    options: OptionsDep,
    accept: AcceptHeader = "",
) -> Response:
    """The certificate as an Open Badges 3.0 credential with a Data Integrity proof (public).

    `Accept: application/vc+jwt` gives the same credential as a VC-JWT (RS256). A revoked
    certificate has no credential (409); one issued earlier reads as revoked in the status list.
    """
    try:
        hit(
            session,
            scope=VERIFY_SCOPE,
            subject=client_address(request),
            limit=Limit(
                requests=settings.certificate_verify_limit,
                window_seconds=settings.certificate_verify_window_seconds,
            ),
        )
    except RateLimited as exc:
        return JSONResponse(
            {"detail": exc.message},
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(exc.retry_after)},
        )
    try:
        certificate = service.get_by_number(session, number)
    except InvalidNumber as exc:
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
    headers = {"Cache-Control": "no-store", "Vary": "Accept"}
    if _wants_jwt(accept):
        token = service.badge(session, certificate, options)
        return Response(token, media_type=VC_JWT, headers=headers)
    return _json_ld(verifiable.signed_credential(session, certificate, options), **headers)


@router.get("/portal/{token}/credential.json", include_in_schema=False)
def portal_credential(
    token: str, session: SessionDep, settings: SettingsDep, options: OptionsDep
) -> Response:
    """The participant's own credential as a file to keep or to add to a wallet."""
    application = application_for_token(session, token, secret_key=settings.secret_key)
    certificate = service.certificate_of(session, application.id or 0)
    if certificate is None:
        raise NotFound("No certificate has been issued for this application yet.")
    document = verifiable.signed_credential(session, certificate, options)
    return _json_ld(
        document,
        **{
            "Content-Disposition": (f'attachment; filename="credential-{certificate.number}.json"'),
            "Cache-Control": "private, no-store",
        },
    )


def _did_document(options: OptionsDep) -> Response:
    return _json_ld(credentials.did_document(options.issuer), DID_JSON, **ISSUER_CACHE)


router.add_api_route(
    open_badges.DID_DOCUMENT_PATH,
    _did_document,
    methods=["GET"],
    summary="The issuer's DID document (did:web)",
    response_class=Response,
    responses={200: {"content": {DID_JSON: JSON_OBJECT}}},
)
# A site served under a path resolves its did:web at <path>/did.json instead.
router.add_api_route("/did.json", _did_document, methods=["GET"], include_in_schema=False)


@router.get(open_badges.JWKS_PATH)
def jwks(options: OptionsDep) -> JSONResponse:
    """Every public key that checks a badge, current and past, as a JSON Web Key Set."""
    return JSONResponse(credentials.jwks(options.issuer), headers=ISSUER_CACHE)


@router.get(
    open_badges.KEYS_PATH + "/{kid}",
    response_class=Response,
    responses={200: {"content": {JWK_JSON: JSON_OBJECT}}, **error_responses(404)},
)
def key(kid: str, options: OptionsDep) -> Response:
    """One public key as a JWK: what the `kid` of every JWT credential names."""
    found = credentials.jwk(options.issuer, kid)
    if found is None:
        return JSONResponse({"detail": "No such key."}, status_code=status.HTTP_404_NOT_FOUND)
    return Response(json.dumps(found), media_type=JWK_JSON, headers=ISSUER_CACHE)


@router.get(
    open_badges.ISSUER_PATH,
    response_class=Response,
    responses={200: {"content": {LD_JSON: JSON_OBJECT}}},
)
def issuer_profile(options: OptionsDep) -> Response:
    """The issuer's Open Badges profile."""
    return _json_ld(open_badges.issuer_profile(options.issuer), **ISSUER_CACHE)


@router.get(
    open_badges.ACHIEVEMENT_PATH + "/{slug}",
    response_class=Response,
    responses={200: {"content": {LD_JSON: JSON_OBJECT}}, **error_responses(404)},
)
def achievement(slug: str, session: SessionDep, options: OptionsDep) -> Response:
    """What an edition's badge stands for: criteria from its modules and rule, and its image."""
    try:
        edition = get_edition(session, slug)
    except NotFound as exc:
        return JSONResponse({"detail": exc.message}, status_code=status.HTTP_404_NOT_FOUND)
    return _json_ld(verifiable.edition_achievement(session, edition, options))


@router.get(
    open_badges.STATUS_LIST_PATH,
    response_class=Response,
    responses={200: {"content": {LD_JSON: JSON_OBJECT, VC_JWT: {}}}},
)
def revocation_list(
    session: SessionDep, options: OptionsDep, accept: AcceptHeader = ""
) -> Response:
    """The revocation list: a Bitstring Status List credential with a Data Integrity proof.

    `Accept: application/vc+jwt` gives it as a JWT, for verifiers of the JWT credential.
    """
    headers = {**STATUS_CACHE, "Vary": "Accept"}
    if _wants_jwt(accept):
        return Response(
            verifiable.status_list_jwt(session, options), media_type=VC_JWT, headers=headers
        )
    return _json_ld(verifiable.signed_status_list(session, options), **headers)
