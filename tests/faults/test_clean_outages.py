"""Faults end cleanly: a full disk is a 503 that stores nothing half, a body sent too slowly
is a 408, and a job whose process was killed is resumed by the next process on its own."""

import asyncio
import errno
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from app.clock import utcnow
from app.config import Settings
from app.main import create_app
from app.models import BackgroundJob, Certificate
from app.platform import jobs
from app.platform.storage import LocalStorage, StorageUnavailable
from app.services.billing import statements
from tests.conftest import migrate, sqlite_url
from tests.factories import make_edition, make_eligible_participant


def fill_the_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write to the file store stops half-way with "No space left on device"."""
    write_bytes = Path.write_bytes

    def half_then_full(path: Path, data: bytes) -> int:
        if not path.name.endswith(".part"):  # not the store's (WeasyPrint's own caches)
            return write_bytes(path, data)
        with path.open("wb") as out:
            out.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Path, "write_bytes", half_then_full)


def test_a_full_disk_keeps_what_the_key_held_and_leaves_no_half_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("certificates/C-1.pdf", b"%PDF the first copy")
    fill_the_disk(monkeypatch)
    with pytest.raises(StorageUnavailable, match="disk is full"):
        storage.put("certificates/C-1.pdf", b"%PDF a second copy, longer than the first")
    monkeypatch.undo()
    assert storage.get("certificates/C-1.pdf") == b"%PDF the first copy"
    assert [p.name for p in (tmp_path / "certificates").iterdir()] == ["C-1.pdf"]


def test_a_certificate_on_a_full_disk_is_a_503_and_nothing_is_issued(
    client: TestClient,
    session: Session,
    admin_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    edition = make_edition(
        session, slug="diploma-full-disk", start_date="2099-11-16", end_date="2099-11-20"
    )
    participant = make_eligible_participant(session, edition)
    fill_the_disk(monkeypatch)
    response = client.post(
        f"/api/v1/applications/{participant.id}/certificate", headers=admin_headers
    )
    monkeypatch.undo()
    assert response.status_code == 503
    assert "disk is full" in response.json()["detail"]
    assert session.exec(select(Certificate)).all() == []
    # Once there is room again, the certificate is issued as usual.
    again = client.post(f"/api/v1/applications/{participant.id}/certificate", headers=admin_headers)
    assert again.status_code == 201, again.text


def test_a_body_sent_too_slowly_is_answered_408(app_settings: Settings) -> None:
    app = create_app(app_settings.model_copy(update={"request_body_timeout_seconds": 0.3}))
    sent: list[dict[str, Any]] = []

    async def trickle() -> dict[str, Any]:
        if not sent:
            sent.append({})
            return {"type": "http.request", "body": b"username=a", "more_body": True}
        await asyncio.sleep(3600)  # the rest never comes
        raise AssertionError

    answers: list[dict[str, Any]] = []

    async def collect(message: dict[str, Any]) -> None:
        answers.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/token",
        "raw_path": b"/api/v1/auth/token",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", b"1000"),
        ],
        "client": ("203.0.113.5", 40000),
        "server": ("testserver", 80),
    }
    started = time.monotonic()
    # In a thread of its own: a browser test in the same process may hold an event loop here.
    with ThreadPoolExecutor(1) as executor:
        executor.submit(
            lambda: asyncio.run(asyncio.wait_for(app(scope, trickle, collect), timeout=10))
        ).result(timeout=30)
    assert time.monotonic() - started < 5
    assert answers[0]["type"] == "http.response.start"
    assert answers[0]["status"] == 408


def test_a_statement_import_whose_process_was_killed_is_resumed_by_the_next_web_process(
    app_settings: Settings, tmp_path: Path
) -> None:
    url = sqlite_url(f"resume-{time.monotonic_ns()}.db")
    migrate(url)
    settings = app_settings.model_copy(
        update={
            "database_url": url,
            "var_dir": tmp_path,
            "mail_worker_in_process": True,
            "jobs_in_process": True,
            "jobs_poll_seconds": 0.2,
        }
    )
    app: FastAPI = create_app(settings)
    engine: Engine = app.state.engine
    with Session(engine) as session:
        job = BackgroundJob(
            kind=statements.JOB_KIND,
            payload={"csv_text": "", "mapping": {}, "accepted": [], "lines": 0},
            created_by="admin@example.org",
            status=jobs.RUNNING,
            claimed_by="web-1:4242:dead00",
            attempts=1,
            # Its process was killed (kill -9) a while ago: no beat since.
            heartbeat_at=utcnow() - jobs.STALE_AFTER - timedelta(seconds=5),
        )
        session.add(job)
        session.commit()
        job_id = job.id
    with TestClient(app):  # the next web process starts
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with Session(engine) as session:
                found = session.get(BackgroundJob, job_id)
                assert found is not None
                if found.status not in (jobs.QUEUED, jobs.RUNNING):
                    break
            time.sleep(0.1)
    assert found.status in (jobs.DONE, jobs.FAILED)
    assert found.claimed_by != "web-1:4242:dead00"
    assert found.attempts == 2
    engine.dispose()
