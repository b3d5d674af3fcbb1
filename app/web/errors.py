"""The error answers of the JSON API, declared in the OpenAPI schema as they are sent.

Clients (and the fuzzing in CI) read the schema to know what a call may answer, so every
status an operation really returns is listed with its body. What follows from a route's
own declaration is added for every operation under `/api/` by `document_api_errors`:
401 for a bearer token, 403 for an administrator's token, 404 for a path naming a record,
400 and 413 for a request body. What depends on the rules (409, a 404 from a query or a
body field, 429) is declared on the route's decorator with `error_responses`.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict

from app.web.dependencies import api_admin, api_staff

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be read (malformed JSON or form), or the request breaks a rule.",
    401: "No valid bearer token (or, for the token itself, a wrong e-mail or password).",
    403: "The token's role does not allow this call (tutors see no money or admissions).",
    404: "Nothing with that number, code or slug.",
    409: "The state does not allow it now (already decided, duplicate, changed meanwhile).",
    413: "The request body is larger than this address accepts.",
    429: "Too many failed attempts; try again later.",
}
SAFE_METHODS = frozenset({"get", "head", "options"})


class ErrorOut(BaseModel):
    """An error: `detail` is a message, or the message with the fields at fault."""

    model_config = ConfigDict(extra="allow")

    detail: str | dict[str, Any] | list[Any]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route decorator: each code with the error body it carries."""
    return {
        code: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS.get(code, "Error.")}
        for code in codes
    }


def _calls(dependant: Dependant) -> set[Callable[..., Any]]:
    found: set[Callable[..., Any]] = set()
    for child in dependant.dependencies:
        if child.call is not None:
            found.add(child.call)
        found |= _calls(child)
    return found


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every JSON API route, including those of included routers (FastAPI keeps them apart)."""
    found: list[APIRoute] = []
    pending = list(app.routes)
    while pending:
        route = pending.pop()
        if isinstance(route, APIRoute):
            if route.path.startswith("/api/") and route.include_in_schema:
                found.append(route)
        elif (original := getattr(route, "original_router", None)) is not None:
            pending.extend(original.routes)
    return found


def derived_error_codes(route: APIRoute, method: str) -> list[int]:
    """The errors a route can answer because of how it is declared."""
    calls = _calls(route.dependant)
    codes: list[int] = []
    if route.body_field is not None and method.lower() not in SAFE_METHODS:
        codes += [400, 413]
    if api_staff in calls:
        codes.append(401)
    if api_admin in calls:
        codes.append(403)
    if "{" in route.path:
        codes.append(404)
    return codes


def document_api_errors(app: FastAPI) -> None:
    """Make `/openapi.json` list, for each API operation, the errors it can answer."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            separate_input_output_schemas=app.separate_input_output_schemas,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorOut", ErrorOut.model_json_schema())
        error_ref = {"$ref": "#/components/schemas/ErrorOut"}
        for route in api_routes(app):
            for method in route.methods or ():
                operation = schema["paths"].get(route.path, {}).get(method.lower())
                if operation is None:
                    continue
                responses = operation.setdefault("responses", {})
                for code in derived_error_codes(route, method):
                    responses.setdefault(
                        str(code),
                        {
                            "description": ERROR_DESCRIPTIONS[code],
                            "content": {"application/json": {"schema": error_ref}},
                        },
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
