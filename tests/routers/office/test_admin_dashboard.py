"""The dashboard page: for administrators only, with its figures, charts and data tables."""

import re
import xml.etree.ElementTree as ET
from datetime import datetime
from html import unescape
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import StaffUser
from app.platform.storage import LocalStorage
from tests.attendance_data import programme
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD
from tests.dashboard_data import Office
from tests.factories import open_edition
from tests.routers.office.test_auth import login

MADRID = ZoneInfo("Europe/Madrid")


@pytest.fixture
def admin(client: TestClient, admin_user: StaffUser) -> TestClient:
    """The client, logged in as an administrator."""
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    return client


@pytest.fixture
def office(session: Session, tmp_path: Path, admin_user: StaffUser) -> Office:
    edition = open_edition(session, modules=programme(2, 1, 1, 1, 1), capacity=12)
    return Office(session, edition, LocalStorage(tmp_path / "files"), admin_user)


def fill(office: Office) -> None:
    """Two paid participants (one absent once), one unpaid and overdue, one refused."""
    now = datetime.now(MADRID)
    paid = []
    for given in ("Ama", "Kofi"):
        application = office.apply(
            given, "Mensah", at=now, organisation_name="=HYPERLINK(1)", country="GHA"
        )
        office.decide(application, "admit", at=now)
        office.pay(application, at=now)
        paid.append(application)
    office.mark(paid[0], office.sessions()[0], "present")
    office.mark(paid[1], office.sessions()[0], "absent")
    unpaid = office.apply("Rania", "Haddad", at=now, organisation_name="Amman", country="JOR")
    office.decide(unpaid, "admit", at=datetime(2024, 1, 10, 10, 0, tzinfo=MADRID))
    office.decide(
        office.apply("Lee", "Refused", at=now, organisation_name="Seoul", country="KOR"),
        "reject",
        at=now,
    )
    office.session.commit()


def test_the_dashboard_answers_seats_money_and_risk_at_a_glance(
    admin: TestClient, office: Office
) -> None:
    fill(office)
    response = admin.get(f"/admin/editions/{office.edition.slug}/dashboard")
    assert response.status_code == 200
    html = response.text
    text = unescape(re.sub(r"<[^>]+>", " ", html))
    words = " ".join(text.split())
    assert "Seats paid 2 of 12" in words
    assert "Outstanding 1,500.00 EUR" in words
    assert "1,500.00 EUR overdue" in words
    assert "At risk of not completing 2 of 3 participants" in words
    # Kofi was absent (attendance) and Rania's invoice is overdue (payment).
    risk = html[html.index('id="at-risk-heading"') : html.index('id="funnel-heading"')]
    assert "Kofi Mensah" in risk and "Rania Haddad" in risk and "Ama Mensah" not in risk
    assert "absent from Lesson 1" in risk
    # Every chart is named and has its figures beside it.
    svgs = re.findall(r"<svg xmlns=.*?</svg>", html, flags=re.S)
    titles = set()
    for svg in svgs:
        root = ET.fromstring(svg)  # noqa: S314 (our own page)
        assert root.get("role") == "img"
        titles.add(root.find("{http://www.w3.org/2000/svg}title").text)  # type: ignore[union-attr]
    assert titles >= {
        "Seats",
        "Applications funnel",
        "Money (EUR)",
        "Attendance by lesson and session",
        "Applications by country",
        "Applications by membership",
    }
    assert html.count('<table class="chart-table">') == 6
    assert '<th scope="row">Ghana</th><td class="num">2</td>' in html
    assert '<th scope="row">Applied</th><td class="num">4</td>' in html
    assert "css/reports.css" in html


def test_the_dashboard_link_opens_the_current_edition(admin: TestClient, office: Office) -> None:
    response = admin.get("/admin/dashboard", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/editions/{office.edition.slug}/dashboard"
    chosen = admin.get(f"/admin/dashboard?edition={office.edition.slug}", follow_redirects=False)
    assert chosen.headers["location"] == f"/admin/editions/{office.edition.slug}/dashboard"
    home = admin.get("/admin")
    assert f'href="/admin/editions/{office.edition.slug}/dashboard"' in home.text
    assert 'href="/admin/dashboard"' in home.text


def test_an_unknown_edition_is_404(admin: TestClient) -> None:
    assert admin.get("/admin/editions/nope/dashboard").status_code == 404
    assert admin.get("/admin/dashboard?edition=nope").status_code == 404


def test_tutors_may_not_see_the_dashboard(
    client: TestClient, tutor_user: StaffUser, office: Office
) -> None:
    assert login(client, "tutor@example.org", TUTOR_PASSWORD).status_code == 303
    assert client.get(f"/admin/editions/{office.edition.slug}/dashboard").status_code == 403
    assert client.get("/admin/dashboard").status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client: TestClient, office: Office) -> None:
    response = client.get(
        f"/admin/editions/{office.edition.slug}/dashboard", follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login?next=")


def test_without_editions_the_dashboard_and_exports_say_so(admin: TestClient) -> None:
    dashboard = admin.get("/admin/dashboard")
    assert dashboard.status_code == 200 and "No editions yet." in dashboard.text
    exports = admin.get("/admin/exports")
    assert exports.status_code == 200 and "No editions yet." in exports.text
    assert admin.get("/admin/exports/invoices.csv").status_code == 422


def test_an_edition_without_applications_has_a_calm_dashboard(
    admin: TestClient, office: Office
) -> None:
    response = admin.get(f"/admin/editions/{office.edition.slug}/dashboard")
    assert response.status_code == 200
    assert "Nobody is at risk now." in response.text
    assert "No applications yet." in response.text
    assert "to come" in response.text
