"""Load on the running service against the floor of a bare insert endpoint, in one run.

Run: `.venv/bin/python bench/load.py [--users 100] [--rounds 5] [--workers 2]
      [--warmup 1] [--databases sqlite,postgresql] [--list-size 10000]`

For each database it starts the product (`uvicorn app.main:app`, N workers) on a fresh
database with the demo loaded, and beside it `bench/floor_app.py` (a bare FastAPI endpoint
that inserts one row into the same database, same workers). Then, over loopback:

  - the applicant journey: each user opens the edition page, asks for a quote, submits an
    application and opens their portal, `--rounds` times;
  - the floor, in turns with the journey (phases before each round): every simulated
    user inserts a row at the same moment, in the same shape as the journey's steps;
  - the administrators' list page, `/admin/applications`, with `--list-size` applications
    in the edition.

It prints requests per second and p50/p95/p99 per step, the ratios to the floor, and the
issue's targets: zero errors; submit throughput >= 0.5 x the floor; list page p95 <= 3 x
the floor's p95. PostgreSQL is used when DIPLOMAT_TEST_POSTGRES_URL (or the default local
server) is reachable.
"""

import argparse
import asyncio
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.server import Server, free_port  # noqa: E402

SECRET = "bench-secret-key-" + "k" * 40
MOTIVATION = "I coordinate our city's international projects and want to plan them better."


@dataclass
class Step:
    """Timings of one kind of request."""

    times: list[float] = field(default_factory=list)
    errors: int = 0
    span: float = 0.0  # seconds the step's phases lasted, all users at once

    def percentile(self, p: float) -> float:
        ordered = sorted(self.times)
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index]

    @property
    def rps(self) -> float:
        return len(self.times) / self.span if self.span > 0 else float("nan")


@contextmanager
def database(kind: str) -> Any:
    """A fresh database URL, dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="diplomat-load-") as folder:
            yield f"sqlite:///{Path(folder) / 'load.db'}"
        return
    base = os.environ.get(
        "DIPLOMAT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    name = f"diplomat_load_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def start_floor(env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    # Started as the service is (tests/faults/server.py): uvicorn's defaults, access log
    # included, so neither side of the ratio pays for a line per request the other does not.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.floor_app:app",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(log.read_text())


def client_limits(users: int) -> httpx.Limits:
    """One connection per user, dropped after 2 idle seconds: uvicorn closes a kept-alive
    connection after 5, and a request sent on one it is closing fails with a read error."""
    return httpx.Limits(
        max_connections=users, max_keepalive_connections=users, keepalive_expiry=2.0
    )


async def timed(client: httpx.AsyncClient, step: Step, method: str, url: str, **kw: Any) -> Any:
    begin = time.perf_counter()
    try:
        answer = await client.request(method, url, **kw)
    except httpx.TransportError:
        step.errors += 1
        return None
    elapsed = time.perf_counter() - begin
    if answer.status_code >= 400:
        step.errors += 1
        return answer
    step.times.append(elapsed)
    return answer


async def floor_phase(client: httpx.AsyncClient, step: Step, users: int) -> None:
    """One phase of the floor in the journey's shape: every user sends one insert at the same
    moment, and the phase ends when all have answered. A closed loop (each user sending again
    as soon as answered) would never drain, and would flatter the floor against steps that
    start and finish together."""
    began = time.perf_counter()
    await asyncio.gather(*(timed(client, step, "POST", "/insert") for _ in range(users)))
    step.span += time.perf_counter() - began


def portal_path(database_url: str, reference: str) -> str:
    from sqlmodel import Session, select

    from app.db import make_engine
    from app.models import Application, Edition
    from app.services.registrations.applications import portal_token

    engine = make_engine(database_url)
    with Session(engine) as session:
        application = session.exec(
            select(Application).where(Application.reference == reference)
        ).one()
        edition = session.get(Edition, application.edition_id)
        assert edition is not None
        token = portal_token(application, edition, secret_key=SECRET)
    engine.dispose()
    return f"/portal/{token}"


STEPS = ("edition page", "quote", "submit", "portal")


async def run_journey(
    url: str,
    floor_url: str,
    database_url: str,
    slug: str,
    users: int,
    rounds: int,
    warmup: int,
) -> tuple[Step, dict[str, Step]]:
    """Each round, every user takes each step at the same moment: one phase per step.

    Each round begins with two counted phases of the floor, so the floor and the steps it is
    compared with are measured in turns, under the same conditions: on a shared machine the speed
    drifts over a run, and a floor measured first, all at once, carried that drift into
    every ratio.

    The first `warmup` rounds are not counted: each worker compiles its templates and fills
    its connection pool on first use, which a server that has run for a while has done.
    """
    counted = {name: Step() for name in STEPS}
    floor = Step()
    limits = client_limits(users)
    run = secrets.token_hex(3)
    async with (
        httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client,
        httpx.AsyncClient(base_url=floor_url, timeout=60, limits=limits) as floor_client,
    ):

        async def phase(name: str, calls: list[Any]) -> list[Any]:
            began = time.perf_counter()
            answers = await asyncio.gather(*calls)
            steps[name].span += time.perf_counter() - began
            return list(answers)

        for r in range(warmup + rounds):
            steps = counted if r >= warmup else {name: Step() for name in STEPS}
            # The floor's connections were idle through the last round and closed (see
            # `client_limits`): one phase, not counted, opens them again, so the counted ones
            # run on open connections, as the journey's steps do.
            for n in range(3):
                await floor_phase(floor_client, floor if r >= warmup and n else Step(), users)
            await phase(
                "edition page",
                [
                    timed(client, steps["edition page"], "GET", f"/editions/{slug}")
                    for _ in range(users)
                ],
            )
            await phase(
                "quote",
                [
                    timed(
                        client,
                        steps["quote"],
                        "POST",
                        f"/api/v1/editions/{slug}/quote",
                        json={"country": "MEX"},
                    )
                    for _ in range(users)
                ],
            )
            submitted = await phase(
                "submit",
                [
                    timed(
                        client,
                        steps["submit"],
                        "POST",
                        f"/api/v1/editions/{slug}/applications",
                        json={
                            "given_name": "Load",
                            "family_name": f"User {n}-{r}",
                            "email": f"load.{run}.{n}.{r}@city.example",
                            "organisation_name": "Ciudad de Carga",
                            "country": "MEX",
                            "job_title": "Officer",
                            "motivation": MOTIVATION,
                            "consent": True,
                        },
                    )
                    for n in range(users)
                ],
            )
            references = [
                a.json()["reference"] for a in submitted if a is not None and a.status_code == 201
            ]
            paths = [await asyncio.to_thread(portal_path, database_url, ref) for ref in references]
            await phase("portal", [timed(client, steps["portal"], "GET", path) for path in paths])
    return floor, counted


def fill_applications(database_url: str, slug: str, count: int) -> None:
    """`count` applications in the edition, written straight to the table in one go."""
    from decimal import Decimal

    from sqlmodel import Session, select

    from app.db import make_engine
    from app.models import Application, Edition

    engine = make_engine(database_url)
    now = datetime.now(UTC)
    statuses = ("submitted", "admitted", "waitlisted", "rejected")
    with Session(engine) as session:
        edition = session.exec(select(Edition).where(Edition.slug == slug)).one()
        session.add_all(
            Application(
                edition_id=edition.id or 0,
                reference=f"BL{i:08d}",
                status=statuses[i % 4],
                given_name=f"Given{i}",
                family_name=f"Family{i}",
                email=f"bulk{i}@city.example",
                organisation_name="Ciudad",
                country="MEX",
                job_title="Officer",
                motivation=MOTIVATION,
                consent_at=now,
                quoted_total=Decimal("1000.00"),
            )
            for i in range(count)
        )
        session.commit()
    # A table that grew to this size over months has statistics the planner uses, and its
    # pages are marked all-visible (index-only scans); one filled a moment ago has neither
    # until autovacuum comes round (PostgreSQL vacuums after 1,000 inserts). Do as it would.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        sqlite = engine.dialect.name == "sqlite"
        connection.execute(text("ANALYZE" if sqlite else "VACUUM ANALYZE application"))
    engine.dispose()


async def run_list(url: str, password: str, slug: str, users: int, per_user: int) -> Step:
    step = Step()
    clients = []
    for _ in range(users):
        client = httpx.AsyncClient(base_url=url, timeout=120)
        page = await client.get("/admin/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token, "no CSRF token on the login page"
        answer = await client.post(
            "/admin/login",
            data={"csrf_token": token.group(1), "email": "admin@example.org", "password": password},
        )
        assert answer.status_code in (200, 303), answer.status_code
        clients.append(client)
    # Not counted: one page per administrator first, so both workers have compiled the page.
    await asyncio.gather(*(c.get(f"/admin/applications?edition={slug}") for c in clients))
    began = time.perf_counter()

    async def user(client: httpx.AsyncClient) -> None:
        for _ in range(per_user):
            await timed(client, step, "GET", f"/admin/applications?edition={slug}")

    await asyncio.gather(*(user(c) for c in clients))
    step.span = time.perf_counter() - began
    for client in clients:
        await client.aclose()
    return step


def line(name: str, step: Step, floor: Step) -> str:
    ms = [step.percentile(p) * 1000 for p in (50, 95, 99)]
    return (
        f"  {name:<14} n={len(step.times):>5} err={step.errors:<3} {step.rps:8.1f} req/s "
        f"p50 {ms[0]:7.1f} ms  p95 {ms[1]:7.1f} ms  p99 {ms[2]:7.1f} ms   "
        f"x floor: rps {step.rps / floor.rps:5.2f}  "
        f"p95 {step.percentile(95) / floor.percentile(95):5.2f}"
    )


def bench(kind: str, args: argparse.Namespace) -> bool:
    with ExitStack() as stack:
        url = stack.enter_context(database(kind))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="diplomat-load-")))
        server = Server(url, folder)
        os.environ["DIPLOMAT_SECRET_KEY"] = SECRET
        server.init()
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "CREATE TABLE bench_floor (id INTEGER PRIMARY KEY AUTOINCREMENT, note TEXT)"
                    if kind == "sqlite"
                    else "CREATE TABLE bench_floor (id SERIAL PRIMARY KEY, note TEXT)"
                )
            )
        engine.dispose()
        server.start(workers=args.workers)
        stack.callback(server.stop)
        floor_port = free_port()
        floor = start_floor(server.env, floor_port, args.workers, folder / "floor.log")
        stack.callback(lambda: (floor.terminate(), floor.wait(timeout=15)))
        slug = server.open_edition()
        # Applications close to no one: make the edition big enough for every submission.
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE edition SET capacity = 100000 WHERE slug = :s"), {"s": slug}
            )
        engine.dispose()

        floor_step, steps = asyncio.run(
            run_journey(
                server.url,
                f"http://127.0.0.1:{floor_port}",
                url,
                slug,
                args.users,
                args.rounds,
                args.warmup,
            )
        )
        fill_applications(url, slug, args.list_size)
        listing = asyncio.run(run_list(server.url, server.password, slug, min(args.users, 20), 3))

        print(f"\n{kind}: {args.users} users, {args.workers} workers")
        print(line("floor insert", floor_step, floor_step))
        for name, step in steps.items():
            print(line(name, step, floor_step))
        print(line("admin list", listing, floor_step) + f"  ({args.list_size} applications)")
        errors = floor_step.errors + sum(s.errors for s in steps.values()) + listing.errors
        submit_ratio = steps["submit"].rps / floor_step.rps
        list_ratio = listing.percentile(95) / floor_step.percentile(95)
        ok = errors == 0 and submit_ratio >= 0.5 and list_ratio <= 3
        print(
            f"  targets: errors {errors} (0); submit throughput {submit_ratio:.2f} x floor "
            f"(>= 0.5); list p95 {list_ratio:.2f} x floor p95 (<= 3): {'met' if ok else 'NOT met'}"
        )
        return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="rounds run first, not counted")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--list-size", type=int, default=10000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    for kind in args.databases.split(","):
        bench(kind.strip(), args)


if __name__ == "__main__":
    main()
