"""The JSON API under generated input: Schemathesis over `/openapi.json`, every operation.

Each run builds a throwaway database (SQLite, and PostgreSQL), loads the demo, and through
the API itself adds applications in every state: paid, invoiced, waived, cancelled with a
refund, waitlisted, a group with its invoice. Then, with an administrator's token, every
operation of the schema gets a bounded number of generated requests, valid and invalid,
half of them aimed at records that exist (so the fuzzing reaches the rules, not only 404).

Every answer must
- never be a 5xx;
- have a status code, content type and body the schema declares for that operation;
- for an invalid request, be a refusal (Schemathesis' `negative_data_rejection`).

And no request may change data it should not. The whole database is read before and after
each request and compared row by row:
- a GET changes nothing;
- a refused request (4xx) changes nothing; only the counters throttling keeps may move
  (a failed log-in, a call to a rate-limited address);
- a request that changes anything else answered 2xx and left an audit entry (attendance
  marks keep their own history instead);
- append-only records stay so: audit entries, payments and invoice lines are never updated
  or deleted; an issued invoice keeps its number, kind, buyer, seller, totals and dates;
  an application keeps its reference, e-mail and edition, and none is deleted;
- at the end, every series of invoice numbers is still without gaps.

The Stripe webhook is not in the schema (its body is signed); its own tests cover it.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, MetaData, select
from sqlmodel import Session, SQLModel

from app.config import Settings
from app.main import create_app
from app.services.office.demo import load_demo
from app.services.office.staff import create_user
from tests.conftest import _TMP, fresh_postgres_database, migrate, sqlite_url
from tests.factories import application_payload

# Generated requests per operation and per mode (valid, invalid); with two modes and the
# aimed half this keeps the whole run, both databases, near two minutes on two cores.
EXAMPLES_PER_MODE = 10
ADMIN_EMAIL = "fuzz-admin@example.org"
ADMIN_PASSWORD = "fuzz-admin-password-1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Counters that throttling keeps, which any request may move (a failed log-in, a call to a
# rate-limited address), refused or not, GET or not; they are not the office's data.
COUNTERS = {"login_attempt", "rate_limit_window"}
# Declarations some routes still lack (their answers are right, their schema entries say
# otherwise): each skips only the named checks; remove it once declared.
NOT_YET_DECLARED: dict[str, list[Any]] = {}
# Where a write is recorded: the audit log, and attendance's own history of every mark.
AUDIT_TRAILS = {"audit_entry", "attendance_change"}
APPEND_ONLY = {"audit_entry", "attendance_change", "payment", "invoice_line"}
FROZEN_COLUMNS = {
    "invoice": {
        "number",
        "kind",
        "series",
        "purpose",
        "refers_to_id",
        "issue_date",
        "currency",
        "seller",
        "buyer",
        "net_total",
        "tax_total",
        "total",
    },
    "application": {"reference", "email", "edition_id", "submitted_at"},
}
UNDELETABLE = {"application", "invoice", "edition", "organisation", "cancellation", "refund"}

Rows = dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]


LEAVER_EMAIL = "leaver@fuzz.example"
LOGOUT = "POST /api/v1/auth/logout"


@dataclass
class World:
    """The application under test, its token, and records the fuzzing can aim at."""

    app: FastAPI
    engine: Engine
    token: str
    metadata: MetaData
    known: dict[str, list[Any]] = field(default_factory=dict)
    # Logging out ends every token of its account: it is fuzzed with another account's.
    leaver_token: str = ""
    # Only the fuzzing writes (no mail sender, no chores), so the state after one request
    # is the state before the next: each request costs one read of the database, not two.
    last_snapshot: Rows | None = None


def _tables(metadata: MetaData) -> list[Any]:
    return [t for t in metadata.sorted_tables if t.name != "alembic_version"]


def snapshot(world: World) -> Rows:
    """Every row of every table, keyed by primary key."""
    rows: Rows = {}
    with world.engine.connect() as connection:
        for table in _tables(world.metadata):
            keys = list(table.primary_key.columns) or list(table.columns)
            result = connection.execute(select(table))
            names = list(result.keys())
            positions = [names.index(k.name) for k in keys]
            rows[table.name] = {
                tuple(row[i] for i in positions): tuple(row) for row in result.all()
            }
    return rows


@dataclass
class Change:
    """What one request did to one table."""

    inserted: int = 0
    deleted: int = 0
    updated: dict[tuple[Any, ...], set[str]] = field(default_factory=dict)


def compare(world: World, before: Rows, after: Rows) -> dict[str, Change]:
    """The tables a request changed, with the columns changed in each updated row."""
    changes: dict[str, Change] = {}
    columns = {t.name: [c.name for c in t.columns] for t in _tables(world.metadata)}
    for name, old in before.items():
        new = after[name]
        if old == new:
            continue
        change = Change(inserted=len(new.keys() - old.keys()), deleted=len(old.keys() - new.keys()))
        for key in old.keys() & new.keys():
            if old[key] != new[key]:
                change.updated[key] = {
                    column
                    for column, a, b in zip(columns[name], old[key], new[key], strict=True)
                    if a != b
                }
        changes[name] = change
    return changes


def data_problems(method: str, path: str, status: int, changes: dict[str, Change]) -> list[str]:
    """What a request changed that it should not have."""
    problems: list[str] = []
    changed = {
        name
        for name, change in changes.items()
        if name not in COUNTERS
        and not (
            # Ending sessions moves only the account's generation: no record of the office.
            name == "staff_user"
            and not (change.inserted or change.deleted)
            and set().union(*change.updated.values()) <= {"session_generation"}
        )
    }
    if method in SAFE_METHODS and changed:
        problems.append(f"a {method} changed {sorted(changed)}")
    if status >= 400 and changed:
        problems.append(f"refused with {status} but changed {sorted(changed)}")
    elif changed and not changed & AUDIT_TRAILS:
        what = {
            name: sorted(set().union(*change.updated.values())) or "rows"
            for name, change in changes.items()
            if name in changed
        }
        problems.append(f"changed {what} without an audit entry")
    for name, change in changes.items():
        if name in APPEND_ONLY and (change.deleted or change.updated):
            problems.append(f"{name} is append-only but rows were updated or deleted")
        if name in UNDELETABLE and change.deleted:
            problems.append(f"{change.deleted} {name} rows were deleted")
        frozen = FROZEN_COLUMNS.get(name, set())
        for key, columns in change.updated.items():
            if columns & frozen:
                problems.append(f"{name} {key} changed {sorted(columns & frozen)}")
    return problems


def gaps_in_invoice_numbers(world: World) -> list[str]:
    """Series (`2026-`, `C2026-`, ...) whose numbers skip one."""
    found: dict[str, list[int]] = {}
    with world.engine.connect() as connection:
        table = world.metadata.tables["invoice"]
        for (number,) in connection.execute(select(table.c.number)):
            prefix, _, sequence = number.rpartition("-")
            found.setdefault(prefix, []).append(int(sequence))
    return [
        f"series {prefix}: {sorted(numbers)}"
        for prefix, numbers in found.items()
        if sorted(numbers) != list(range(1, len(numbers) + 1))
    ]


def build_world(database_url: str, var_dir: Path) -> World:
    """A migrated database with the demo and applications in every state, built through the API."""
    migrate(database_url)
    settings = Settings(
        environment="test",
        database_url=database_url,
        secret_key="fuzz-secret-key-" + "x" * 32,
        var_dir=var_dir,
        login_max_failures=1000,
        mail_worker_in_process=False,
    )
    app = create_app(settings)
    engine: Engine = app.state.engine
    with Session(engine) as session:
        load_demo(session)
        create_user(session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role="admin")
        create_user(session, email=LEAVER_EMAIL, password=ADMIN_PASSWORD, role="tutor")
    client = TestClient(app)
    leaver_token = client.post(
        "/api/v1/auth/token", data={"username": LEAVER_EMAIL, "password": ADMIN_PASSWORD}
    ).json()["access_token"]
    token = client.post(
        "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    editions = client.get("/api/v1/editions").json()
    slug = next(e["slug"] for e in editions if e["applications_are_open"])
    past_slug = next(e["slug"] for e in editions if not e["applications_are_open"])
    organisations = {o["name"]: o["id"] for o in client.get("/api/v1/organisations").json()}

    def apply(tag: str, **overrides: Any) -> int:
        body = application_payload(email=f"{tag}@fuzz.example", given_name=tag.title())
        body.update(overrides)
        response = client.post(f"/api/v1/editions/{slug}/applications", json=body)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def decide(application_id: int, decision: str) -> dict[str, Any]:
        response = client.post(
            f"/api/v1/applications/{application_id}/decision",
            json={"decision": decision},
            headers=auth,
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def pay(number: str, amount: str) -> None:
        response = client.post(
            f"/api/v1/invoices/{number}/payments",
            json={
                "amount": amount,
                "received_on": (date.today() - timedelta(days=1)).isoformat(),
                "method": "bank_transfer",
                "reference": number,
            },
            headers=auth,
        )
        assert response.status_code == 201, response.text

    paid = decide(apply("paid"), "admit")
    pay(paid["invoices"][0]["number"], paid["invoices"][0]["total"])
    invoiced = decide(apply("invoiced"), "admit")
    waived = decide(
        apply(
            "waived",
            organisation_id=organisations["Lilongwe City Council"],
            organisation_name=None,
            country=None,
        ),
        "admit",
    )
    cancelled = decide(apply("cancelled"), "admit")
    pay(cancelled["invoices"][0]["number"], cancelled["invoices"][0]["total"])
    cancellation = client.post(
        f"/api/v1/applications/{cancelled['id']}/cancellation",
        json={
            # Now: a fixed hour of today may still be to come, and an earlier time would
            # come before the application itself.
            "received_at": datetime.now(UTC).isoformat(),
            "channel": "email",
            "course_name": "Diploma",
            "full_name": "Cancelled Banda",
            "registration_date": date.today().isoformat(),
            "contact": "cancelled@fuzz.example",
        },
        headers=auth,
    )
    assert cancellation.status_code == 200, cancellation.text
    refund_id = cancellation.json()["refund"]["id"]
    waitlisted = decide(apply("waitlisted"), "waitlist")
    submitted = apply("submitted")
    group = client.post(
        f"/api/v1/editions/{slug}/groups",
        json={
            "organisation_id": organisations["Barcelona City Council"],
            "contact_email": "coordinator@fuzz.example",
        },
    )
    assert group.status_code == 201, group.text
    code = group.json()["code"]
    members = [
        apply(
            f"member{n}",
            organisation_id=organisations["Barcelona City Council"],
            organisation_name=None,
            country=None,
            group_code=code,
        )
        for n in (1, 2)
    ]
    for member in members:
        decide(member, "admit")
    group_invoice = client.post(f"/api/v1/editions/{slug}/groups/{code}/invoice", headers=auth)
    assert group_invoice.status_code == 201, group_invoice.text
    edition = client.get(f"/api/v1/editions/{slug}").json()
    invoice_numbers = [
        paid["invoices"][0]["number"],
        invoiced["invoices"][0]["number"],
        group_invoice.json()["number"],
    ]
    for number in invoice_numbers:
        # Rendered once here: the first download stores the PDF, which is not the fuzzing's doing.
        assert client.get(f"/api/v1/invoices/{number}/pdf", headers=auth).status_code == 200
    metadata = SQLModel.metadata
    return World(
        app=app,
        engine=engine,
        token=token,
        leaver_token=leaver_token,
        metadata=metadata,
        known={
            "slug": [slug, past_slug],
            "application_id": [
                paid["id"],
                invoiced["id"],
                waived["id"],
                cancelled["id"],
                waitlisted["id"],
                submitted,
                *members,
            ],
            "number": invoice_numbers,
            "refund_id": [refund_id],
            "code": [code],
            "session_id": [s["id"] for m in edition["modules"] for s in m["sessions"]][:3],
            "fiscal_year": ["2023", "FY2026"],
        },
    )


def aimed_path_parameters(world: World, path: str) -> list[dict[str, Any]]:
    """Path parameters naming records that exist, one set per known value of the first one."""
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    if not names or any(name not in world.known for name in names):
        return []
    first = names[0]
    return [
        {name: (value if name == first else world.known[name][0]) for name in names}
        for value in world.known[first]
    ]


def check_one(world: World, case: Any, path: str, headers: dict[str, str]) -> None:
    """Send one generated request; check the answer and what it changed."""
    before = world.last_snapshot or snapshot(world)
    response = case.call(headers=headers)
    world.last_snapshot = after = snapshot(world)
    problems = data_problems(
        case.method.upper(), path, response.status_code, compare(world, before, after)
    )
    assert not problems, (
        f"{case.method.upper()} {case.formatted_path} -> {response.status_code}: "
        + "; ".join(problems)
        + f"\nReproduce with: {case.as_curl_command()}"
    )
    label = f"{case.method.upper()} {path}"
    skipped = NOT_YET_DECLARED.get(label, [])
    case.validate_response(response, checks=[c for c in CHECKS if c not in skipped])


def fuzz_operation(
    world: World, operation: Any, mode: GenerationMode, headers: dict[str, str]
) -> str | None:
    """Generated requests for one operation in one mode; the first failure, if any.

    Raises Hypothesis' `Unsatisfiable` when nothing in the operation can be made invalid.
    """
    strategies = [operation.as_strategy(generation_mode=mode)] + [
        operation.as_strategy(generation_mode=mode, path_parameters=values)
        for values in aimed_path_parameters(world, operation.path)
    ]
    found: list[str] = []

    @hypothesis.settings(
        max_examples=EXAMPLES_PER_MODE,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=st.one_of(strategies))
    def run(case: Any) -> None:
        # Requests change the database, so a failure is recorded, not raised: Hypothesis
        # would replay it against a changed state and call it flaky.
        if found:
            return
        try:
            check_one(world, case, operation.path, headers)
        except (Exception, BaseExceptionGroup) as exc:
            found.append(str(exc))

    run()
    return found[0] if found else None


def fuzz_every_operation(world: World) -> tuple[list[str], list[str]]:
    """Run every operation of the schema; the failures found and the operations run."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)
    headers = {"Authorization": f"Bearer {world.token}"}
    failures: list[str] = []
    exercised: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            own = {"Authorization": f"Bearer {world.leaver_token}"}
            try:
                failure = fuzz_operation(
                    world, operation, mode, own if label == LOGOUT else headers
                )
            except hypothesis.errors.Unsatisfiable:
                # Nothing in this operation can be made invalid (no parameters, no body).
                assert mode is GenerationMode.NEGATIVE, label
                continue
            if failure:
                failures.append(f"{label} ({mode.value}):\n{failure}")
            exercised.append(label)
    return failures, exercised


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzz_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A brand-new database of each kind, dropped afterwards."""
    if request.param == "sqlite":
        name = f"fuzz-{time.monotonic_ns()}.db"
        yield sqlite_url(name)
        (_TMP / name).unlink(missing_ok=True)
    else:
        with fresh_postgres_database() as url:
            yield url


def test_every_api_operation_answers_within_its_schema_and_changes_only_what_it_should(
    fuzz_database: str,
) -> None:
    world = build_world(fuzz_database, _TMP / f"fuzz-var-{time.monotonic_ns()}")
    try:
        failures, exercised = fuzz_every_operation(world)
        assert not failures, "\n\n".join(failures)
        operations = set(exercised)
        documented = {
            f"{method.upper()} {path}"
            for path, item in world.app.openapi()["paths"].items()
            for method in item
        }
        assert operations == documented
        assert gaps_in_invoice_numbers(world) == []
    finally:
        world.engine.dispose()
