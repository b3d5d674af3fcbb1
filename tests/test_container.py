"""The container: built without the local clutter, started without migrating, ready only
once migrated, believing no forwarded header by default; logs as JSON lines with request ids.
(No Docker daemon is needed: the Dockerfile and .dockerignore are read.)"""

import io
import json
import logging
import logging.config
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.config import PROJECT_ROOT, Settings
from app.main import create_app
from app.platform import jobs
from app.platform.logs import log_config
from tests.conftest import migrate, sqlite_url

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
IGNORED = {
    line.strip()
    for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
}


def instructions(name: str) -> list[str]:
    """The arguments of every instruction `name` (continuation lines joined)."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [
        line.split(None, 1)[1]
        for line in joined.splitlines()
        if line.strip().upper().startswith(name + " ")
    ]


def test_the_container_starts_without_migrating() -> None:
    [command] = instructions("CMD")
    assert "db upgrade" not in command and "alembic" not in command
    assert instructions("ENTRYPOINT") == []


def test_the_container_believes_no_forwarded_header_by_default() -> None:
    assert "forwarded-allow-ips" not in DOCKERFILE
    assert "--proxy-headers" not in DOCKERFILE
    env = " ".join(instructions("ENV"))
    assert 'DIPLOMAT_FORWARDED_ALLOW_IPS=""' in env
    assert Settings().forwarded_allow_ips == ""


def test_the_build_context_leaves_out_the_virtualenv_history_and_local_data() -> None:
    for needed in (".git", ".venv", "var/", ".env", "**/__pycache__", ".pytest_cache"):
        assert needed in IGNORED, needed


def test_the_image_installs_a_locked_non_editable_package_with_its_migrations() -> None:
    runs = " ".join(instructions("RUN"))
    assert "pip install --require-hashes" in runs
    assert " -e " not in runs and "--editable" not in runs
    assert "migrations ./app/migrations" in " ".join(instructions("COPY"))


def test_the_image_checks_its_own_liveness() -> None:
    [check] = instructions("HEALTHCHECK")
    assert "/healthz" in check


def test_migrations_are_found_inside_an_installed_package(tmp_path: Path) -> None:
    # The image's layout: the package with app/migrations and no checkout around it.
    import shutil
    import subprocess
    import sys

    shutil.copytree(PROJECT_ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("*.mo"))
    shutil.copytree(PROJECT_ROOT / "migrations", tmp_path / "app" / "migrations")
    script = (
        "import app.config as c, pathlib; c.PROJECT_ROOT = pathlib.Path('/nonexistent');"
        "import app.db as db; db.PROJECT_ROOT = c.PROJECT_ROOT;"
        "from alembic.script import ScriptDirectory;"
        "print(ScriptDirectory.from_config(db.alembic_config(url='x')).get_heads())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"\['[\w]+'\]", done.stdout), done.stdout


def test_ready_only_once_migrated_while_alive_throughout(app_settings: Settings) -> None:
    url = sqlite_url(f"ready-{time.monotonic_ns()}.db")
    app = create_app(app_settings.model_copy(update={"database_url": url}))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        before = client.get("/readyz")
        assert before.status_code == 503
        assert before.json()["migrations"] == "not migrated"
        migrate(url)
        after = client.get("/readyz")
        assert after.status_code == 200, after.text
        assert after.json() | {"version": ""} == {
            "status": "ready",
            "database": "up",
            "migrations": "at head",
            "storage": "writable",
            "version": "",
        }
    app.state.engine.dispose()


@pytest.fixture
def json_logs() -> io.StringIO:
    stream = io.StringIO()
    config = log_config(json_lines=True)
    config["handlers"]["default"]["stream"] = stream
    logging.config.dictConfig(config)
    yield stream
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    logging.getLogger().handlers.clear()


def test_log_lines_are_json_with_the_request_id_that_reaches_jobs_and_mail(
    client: TestClient, session: Session, json_logs: io.StringIO, admin_headers: dict[str, str]
) -> None:
    from tests.security import csrf_for, two_participants

    edition, applicant, _ = two_participants(session)
    page = f"/editions/{edition.slug}/portal-link"
    csrf = csrf_for(client, page)
    answer = client.post(
        page,
        data={"email": applicant.application.email, "csrf_token": csrf},
        headers={"X-Request-ID": "req-portal-link-1"},
    )
    assert answer.headers["x-request-id"] == "req-portal-link-1"
    job = jobs.enqueue(session, kind="unknown-kind", payload={}, actor="x")
    session.commit()
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert all({"time", "level", "logger", "message", "request_id"} <= set(x) for x in lines)
    mail = [x for x in lines if x["logger"] == "diplomat.mail" and "(portal_link)" in x["message"]]
    assert [x["request_id"] for x in mail] == ["req-portal-link-1"]
    # A job carries the id of the request that queued it into its own log lines.
    assert job.payload["request_id"] == "-"
    with_id = jobs.enqueue(session, kind="unknown-kind", payload={}, actor="x")
    with_id.payload = {**with_id.payload, "request_id": "req-job-7"}
    session.commit()
    held = jobs.claim(session, with_id.id or 0, worker="w")
    assert held is not None
    jobs.run_claimed(
        held, jobs.JobContext(engine=session.get_bind(), storage=None), session=session
    )  # type: ignore[arg-type]
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert any(x["logger"] == "diplomat.jobs" and x["request_id"] == "req-job-7" for x in lines)
