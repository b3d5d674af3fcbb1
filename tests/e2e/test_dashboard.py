"""The demo's 2nd edition, filled with a season of applications, seen on its dashboard.

The server is the real one (`diplomat init`, then uvicorn) on a database the test filled
through the services first, on SQLite and on PostgreSQL. The screenshots are kept for
people to look at: var/dashboard-example.png (1280 wide) and var/dashboard-example-390.png.
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlmodel import Session, select

from app.db import make_engine
from app.models import Edition, StaffUser
from app.platform.storage import LocalStorage
from tests.conftest import fresh_postgres_database
from tests.dashboard_data import fill_demo_week
from tests.e2e.conftest import LiveServer, _cli, _free_port

pytestmark = pytest.mark.e2e

VAR = Path(__file__).resolve().parents[2] / "var"
DEMO_SLUG = "diploma-2024"


def _fill(url: str, folder: Path) -> None:
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            edition = session.exec(select(Edition).where(Edition.slug == DEMO_SLUG)).one()
            admin = session.exec(select(StaffUser)).first()
            assert admin is not None
            fill_demo_week(session, edition, storage=LocalStorage(folder / "files"), admin=admin)
    finally:
        engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """`diplomat init`, the 2nd edition's season filled in, then `uvicorn app.main:app`."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="diplomat-dash-")))
        if request.param == "sqlite":
            url = f"sqlite:///{folder / 'e2e.db'}"
        else:
            url = stack.enter_context(fresh_postgres_database())
        port = _free_port()
        env = {
            **os.environ,
            "DIPLOMAT_DATABASE_URL": url,
            "DIPLOMAT_VAR_DIR": str(folder),
            "DIPLOMAT_BASE_URL": f"http://127.0.0.1:{port}",
            "DIPLOMAT_MAIL_WORKER_IN_PROCESS": "false",
        }
        output = _cli(["init"], env)
        password = re.search(r"password: (\S+)", output)
        assert password, output
        _fill(url, folder)
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
                    raise RuntimeError((folder / "server.log").read_text())
                time.sleep(0.2)
            yield LiveServer(base, "admin@example.org", password.group(1), request.param)
        finally:
            server.terminate()
            server.wait(timeout=10)


def _open_dashboard(browser, server: LiveServer, width: int):  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=server.url, viewport={"width": width, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("/admin/login?next=/admin/dashboard")
    page.get_by_role("textbox", name="E-mail").fill(server.admin_email)
    page.get_by_label("Password").fill(server.admin_password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard")
    page.goto(f"/admin/editions/{DEMO_SLUG}/dashboard")
    return context, page, errors


def test_the_demo_dashboard_answers_seats_money_and_risk_at_a_glance(
    browser, demo_server: LiveServer
) -> None:  # type: ignore[no-untyped-def]
    context, page, errors = _open_dashboard(browser, demo_server, 1280)
    try:
        seats = page.locator(".kpi-seats .kpi-value").inner_text()
        assert re.fullmatch(r"2\d\s+of 30", seats.strip()), seats
        assert "EUR" in page.locator(".kpi").nth(1).inner_text()
        risk = page.locator(".risk-table")
        assert risk.get_by_role("link", name="Lucía Hernández").is_visible()
        assert risk.get_by_text("no final work uploaded").is_visible()
        # The figures behind a chart open from its summary, by keyboard too.
        summary = page.get_by_text("Figures as a table").first
        summary.focus()
        page.keyboard.press("Enter")
        assert page.get_by_role("rowheader", name="Applied").first.is_visible()
        page.keyboard.press("Enter")
        page.evaluate("() => document.activeElement.blur()")
        if demo_server.database == "sqlite":
            VAR.mkdir(exist_ok=True)
            page.screenshot(path=str(VAR / "dashboard-example.png"), full_page=True)
        assert errors == []
    finally:
        context.close()


def test_the_dashboard_fits_a_phone(browser, demo_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    context, page, errors = _open_dashboard(browser, demo_server, 390)
    try:
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        box = page.locator("#chart-attendance").bounding_box()
        assert box is not None and box["width"] <= 390
        if demo_server.database == "sqlite":
            page.screenshot(path=str(VAR / "dashboard-example-390.png"), full_page=True)
        assert errors == []
    finally:
        context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_exports_and_audit_pages_work_in_a_browser(
    browser, demo_server: LiveServer, width: int
) -> None:  # type: ignore[no-untyped-def]
    context, page, errors = _open_dashboard(browser, demo_server, width)
    try:
        page.locator(".page-head").get_by_role("link", name="Exports").click()
        page.wait_for_url("**/admin/exports?edition=*")
        # A wrong date is sent back with the field marked; the page keeps working.
        form = page.locator("#invoices-export form")
        form.get_by_label("Issued from").fill("2024-11-30")
        form.get_by_label("Issued until").fill("2024-11-01")
        form.get_by_role("button", name="CSV").click()
        assert page.get_by_text("The end date is before the start date.").is_visible()
        with page.expect_download() as download:
            page.locator("#payments-export").get_by_role("button", name="XLSX").click()
        assert download.value.suggested_filename.startswith(f"payments-{DEMO_SLUG}-")
        page.goto("/admin/audit?action=payment.")
        assert page.locator(".audit-table tbody tr").count() >= 20
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        if demo_server.database == "sqlite":
            (VAR / "e2e").mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(VAR / "e2e" / f"audit-{width}.png"), full_page=True)
            page.goto(f"/admin/exports?edition={DEMO_SLUG}")
            page.screenshot(path=str(VAR / "e2e" / f"exports-{width}.png"), full_page=True)
        assert [e for e in errors if "status of 422" not in e] == []
    finally:
        context.close()
