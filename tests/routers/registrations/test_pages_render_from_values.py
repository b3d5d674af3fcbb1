"""Pages are rendered from the values their route gathered: no template function reads the
database, opens a second session or changes the cookie session while a page renders."""

import inspect
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jinja2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, SQLModel

import app.main  # noqa: F401 - every router registers what it adds to the templates
from app.models import Application, Edition
from app.services.registrations import applications as applications_service
from app.web.dependencies import templates
from tests.conftest import ADMIN_PASSWORD
from tests.factories import make_edition, make_eligible_participant, open_edition
from tests.routers.office.test_auth import login
from tests.routers.registrations.test_apply import form_data, post_form

SECRET = "test-secret-key-" + "x" * 32


def _touches_rows(annotation: Any) -> bool:
    """Whether a parameter of this type could read the database: a session, an engine, or a
    table row whose attributes load lazily."""
    for kind in (annotation, *typing.get_args(annotation)):
        if isinstance(kind, type) and (
            issubclass(kind, (OrmSession, Engine))
            or (issubclass(kind, SQLModel) and getattr(kind, "__table__", None) is not None)
        ):
            return True
    return False


def test_no_template_global_or_filter_takes_a_session_or_a_row() -> None:
    functions: dict[str, Callable[..., Any]] = {
        name: value
        for name, value in (*templates.env.globals.items(), *templates.env.filters.items())
        if callable(value) and not isinstance(value, type)
    }
    assert functions, "the templates have globals and filters"
    offending = []
    for name, function in functions.items():
        try:
            hints = typing.get_type_hints(function)
        except (NameError, TypeError):
            hints = {}
        hints.pop("return", None)
        try:
            names = set(inspect.signature(function).parameters)
        except ValueError:
            names = set()
        if "session" in names or any(_touches_rows(hint) for hint in hints.values()):
            offending.append(name)
    assert offending == []


@contextmanager
def statements_while_rendering(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """The SQL run while a Jinja template renders (the route's own reads are not counted)."""
    rendering = [False]
    seen: list[str] = []
    original = jinja2.Template.render

    def render(self: jinja2.Template, *args: Any, **kwargs: Any) -> str:
        rendering[0] = True
        try:
            return original(self, *args, **kwargs)
        finally:
            rendering[0] = False

    def count(*args: object) -> None:
        if rendering[0]:
            seen.append(" ".join(str(args[2]).split()))

    monkeypatch.setattr(jinja2.Template, "render", render)
    bind = session.connection()
    event.listen(bind, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(bind, "before_cursor_execute", count)


def _token(session: Session, application: Application) -> str:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return applications_service.portal_token(application, edition, secret_key=SECRET)


def test_the_portal_of_a_new_applicant_reads_nothing_while_it_renders(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_edition(session)
    location = post_form(client, form_data()).headers["location"].split("?")[0]
    with statements_while_rendering(session, monkeypatch) as seen:
        page = client.get(location)
    assert page.status_code == 200 and "Withdraw my application" in page.text
    assert seen == []


def test_a_participants_portal_with_every_panel_reads_nothing_while_it_renders(
    client: TestClient,
    session: Session,
    admin_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    edition = make_edition(
        session, slug="diploma-render", start_date="2099-11-16", end_date="2099-11-20"
    )
    participant = make_eligible_participant(session, edition, family_name="Banda")
    issued = client.post(
        f"/api/v1/applications/{participant.id}/certificate", headers=admin_headers
    )
    assert issued.status_code == 201
    with statements_while_rendering(session, monkeypatch) as seen:
        page = client.get(f"/portal/{_token(session, participant)}")
    assert page.status_code == 200
    for panel in ("Your certificate", "Programme and your attendance", "Your final work"):
        assert panel in page.text
    assert seen == []


def test_an_application_page_of_the_office_reads_nothing_while_it_renders(
    client: TestClient,
    session: Session,
    admin_user: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    edition = make_edition(
        session, slug="diploma-office-render", start_date="2099-11-16", end_date="2099-11-20"
    )
    participant = make_eligible_participant(session, edition)
    login(client, "admin@example.org", ADMIN_PASSWORD)
    with statements_while_rendering(session, monkeypatch) as seen:
        page = client.get(f"/admin/applications/{participant.id}")
    assert page.status_code == 200 and "Certificate eligibility" in page.text
    assert seen == []
