"""kill -9 the server while 500 applications arrive: what was answered 201 is there once,
and nothing that failed is half there."""

import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import fresh_postgres_database
from tests.faults.server import Server

SUBMISSIONS = 500
KILL_AFTER = 150  # answers received before the server is killed
CONCURRENCY = 12
MOTIVATION = "I coordinate our city's international projects and want to learn to plan them."


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="diplomat-crash-") as folder:
        if request.param == "sqlite":
            running = Server(f"sqlite:///{Path(folder) / 'crash.db'}", Path(folder))
            running.init()
            yield running
            running.stop()
        else:
            with fresh_postgres_database() as url:
                running = Server(url, Path(folder))
                running.init()
                yield running
                running.stop()


def payload(i: int) -> dict[str, object]:
    return {
        "given_name": "Crash",
        "family_name": f"Test {i}",
        "email": f"crash{i}@city.example",
        "organisation_name": "Ciudad de Prueba",
        "country": "MEX",
        "job_title": "Officer",
        "motivation": MOTIVATION,
        "consent": True,
    }


def test_a_killed_server_loses_no_answered_application_and_leaves_none_half_written(
    server: Server,
) -> None:
    server.start(workers=2)
    slug = server.open_edition()
    answered = threading.Semaphore(0)
    counter = Counter[str]()
    created: dict[str, str] = {}  # e-mail -> reference, for every 201
    lock = threading.Lock()

    def submit(i: int) -> None:
        body = payload(i)
        try:
            answer = httpx.post(
                f"{server.url}/api/v1/editions/{slug}/applications", json=body, timeout=30
            )
        except httpx.TransportError:
            outcome = "connection error"
        else:
            outcome = str(answer.status_code)
            if answer.status_code == 201:
                with lock:
                    created[str(body["email"])] = answer.json()["reference"]
        with lock:
            counter[outcome] += 1
        answered.release()

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        futures = [pool.submit(submit, i) for i in range(SUBMISSIONS)]
        for _ in range(KILL_AFTER):
            answered.acquire()
        server.kill()
        for future in futures:
            future.result()
    assert sum(counter.values()) == SUBMISSIONS
    assert counter["201"] >= KILL_AFTER - CONCURRENCY
    assert counter["connection error"] > 0, counter  # the kill really cut requests off
    assert set(counter) <= {"201", "connection error", "503"}, counter

    server.start(workers=2)
    engine = create_engine(server.database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT a.email, a.reference, a.quoted_total, "
                "(SELECT count(*) FROM outbox_message o WHERE o.application_id = a.id "
                "AND o.kind = 'application_received') AS receipts "
                "FROM application a WHERE a.email LIKE 'crash%@city.example'"
            )
        ).all()
    engine.dispose()
    found = {row.email: row for row in rows}
    assert len(found) == len(rows)  # each e-mail once
    # Every 201 is there, with the reference it was given.
    for email, reference in created.items():
        assert found[email].reference == reference
    # Whatever is there is whole: its quote and its receipt were written with it.
    for row in rows:
        assert row.quoted_total is not None and row.receipts == 1, row
    # Applications whose answer was lost in the crash may exist (committed, then killed),
    # but only as whole rows; report the figures.
    kind = server.database_url.split(":")[0]
    print(
        f"\n{kind}: sent {SUBMISSIONS}, answered 201 {counter['201']}, "
        f"cut off {counter['connection error']}, rows found {len(rows)}"
    )
    # The restarted server serves the same data.
    answer = httpx.get(
        f"{server.url}/api/v1/applications",
        params={"edition": slug, "q": "crash", "per_page": 1},
        headers={"Authorization": f"Bearer {server.token()}"},
        timeout=30,
    )
    assert answer.status_code == 200 and answer.json()["total"] == len(rows)
