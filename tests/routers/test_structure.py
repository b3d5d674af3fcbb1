"""Rules every route follows, checked over the whole application."""

import inspect

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.web.security import verify_csrf
from app.web.sessions import get_session

# Routes that change state without a session cookie (the webhook is signed; the API uses
# bearer tokens, which a browser never sends by itself).
NO_CSRF_PREFIXES = ("/api/", "/stripe/")


def _calls(dependant: Dependant) -> set[object]:
    found: set[object] = set()
    for child in dependant.dependencies:
        found.add(child.call)
        found |= _calls(child)
    return found


def _routes(app: FastAPI) -> list[APIRoute]:
    """Every API route, including those of included routers (kept apart by FastAPI)."""
    found: list[APIRoute] = []
    pending = list(app.routes)
    while pending:
        route = pending.pop()
        if isinstance(route, APIRoute):
            found.append(route)
        elif (original := getattr(route, "original_router", None)) is not None:
            pending.extend(original.routes)
    assert len(found) > 50, "the walk must see the routers' routes"
    return found


def test_no_async_endpoint_touches_the_database(test_app: FastAPI) -> None:
    offenders = [
        f"{sorted(route.methods)} {route.path}"
        for route in _routes(test_app)
        if inspect.iscoroutinefunction(route.endpoint) and get_session in _calls(route.dependant)
    ]
    assert offenders == []


def test_every_page_that_changes_state_checks_the_csrf_token(test_app: FastAPI) -> None:
    unsafe = {"POST", "PUT", "PATCH", "DELETE"}
    offenders = [
        f"{sorted(route.methods)} {route.path}"
        for route in _routes(test_app)
        if route.methods & unsafe
        and not route.path.startswith(NO_CSRF_PREFIXES)
        and verify_csrf not in _calls(route.dependant)
    ]
    assert offenders == []
