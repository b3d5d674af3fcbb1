"""A real server (uvicorn in a child process) on each database, and Debian's Chromium."""

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import fresh_postgres_database, require_in_ci

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "e2e"


@dataclass
class LiveServer:
    """A running diplomat with its first administrator."""

    url: str
    admin_email: str
    admin_password: str
    database: str
    # The server's environment, for running `diplomat` commands against the same database.
    env: dict[str, str] = field(default_factory=dict, repr=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _cli(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _extra_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings a test module adds with a module-scoped `server_env` fixture (e.g. Stripe)."""
    try:
        extra: dict[str, str] = request.getfixturevalue("server_env")
    except pytest.FixtureLookupError:
        return {}
    return extra


@dataclass
class _Initialised:
    """A database after `diplomat init`, to copy for each module, with its password."""

    source: str  # the SQLite file, or the PostgreSQL database's name
    password: str


@pytest.fixture(scope="session")
def initialised() -> Iterator[Callable[[str], _Initialised]]:
    """`diplomat init` once per kind of database and test process, not once per module: it
    takes several seconds (migrations, the demo), and each browser-test module starts a
    server on each kind. Each module gets a copy, so what one module changes no other sees."""
    made: dict[str, _Initialised] = {}
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="diplomat-init-")))

        def get(kind: str) -> _Initialised:
            if kind not in made:
                if kind == "sqlite":
                    source = str(folder / "initialised.db")
                    url = f"sqlite:///{source}"
                else:
                    url = stack.enter_context(fresh_postgres_database())
                    source = make_url(url).database or ""
                env = {**os.environ, "DIPLOMAT_DATABASE_URL": url, "DIPLOMAT_VAR_DIR": str(folder)}
                found = re.search(r"password: (\S+)", _cli(["init"], env))
                assert found
                made[kind] = _Initialised(source, found.group(1))
            return made[kind]

        yield get


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_server(
    request: pytest.FixtureRequest, initialised: Callable[[str], _Initialised]
) -> Iterator[LiveServer]:
    """A copy of an initialised database, then `uvicorn app.main:app` on a free loopback port."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="diplomat-e2e-")))
        ready = initialised(request.param)
        if request.param == "sqlite":
            # Through SQLite's backup: a database in WAL mode is more than its main file.
            with (
                closing(sqlite3.connect(ready.source)) as source,
                closing(sqlite3.connect(folder / "e2e.db")) as copy,
            ):
                source.backup(copy)
            url = f"sqlite:///{folder / 'e2e.db'}"
        else:
            url = stack.enter_context(fresh_postgres_database(template=ready.source))
        port = _free_port()
        env = {
            **os.environ,
            "DIPLOMAT_DATABASE_URL": url,
            "DIPLOMAT_VAR_DIR": str(folder),
            "DIPLOMAT_BASE_URL": f"http://127.0.0.1:{port}",
            "DIPLOMAT_MAIL_POLL_SECONDS": "1",
            **_extra_env(request),
        }
        log = stack.enter_context((folder / "server.log").open("w"))
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    log.flush()
                    raise RuntimeError(
                        f"the server did not start: {(folder / 'server.log').read_text()}"
                    )
                time.sleep(0.2)
            yield LiveServer(base, "admin@example.org", ready.password, request.param, env)
        finally:
            server.terminate()
            server.wait(timeout=10)


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    """Debian's Chromium driven by Playwright (a browser download does not work here)."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        require_in_ci(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, live_server: LiveServer):  # type: ignore[no-untyped-def]
    """A fresh browser context and page; console errors fail the test."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []

    def on_console(message):  # type: ignore[no-untyped-def]
        # A form sent back with its faults marked answers 422 on purpose; Chromium logs it.
        if message.type == "error" and "status of 422" not in message.text:
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"browser console errors: {errors}"


def open_edition_slug(live_server: LiveServer) -> str:
    """The demo edition that is taking applications now."""
    editions = httpx.get(f"{live_server.url}/api/v1/editions", timeout=10).json()
    return next(e["slug"] for e in editions if e["applications_are_open"])


def log_in(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    """Log in as the first administrator."""
    page.goto("/admin/login")
    page.get_by_role("textbox", name="E-mail").fill(live_server.admin_email)
    page.get_by_label("Password").fill(live_server.admin_password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin")


def screenshot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """Save a full-page screenshot under var/e2e for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
