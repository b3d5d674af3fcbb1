"""A tutor marks a whole session on a phone-sized screen, and the progress matrix follows."""

import re
from datetime import date, timedelta
from typing import Any

import httpx2 as httpx
import pytest

from tests.e2e.conftest import SCREENSHOTS, LiveServer, screenshot

pytestmark = pytest.mark.e2e

PHONE = {"width": 360, "height": 740}
PEOPLE = (
    ("Ama", "Banda", "Lilongwe City Council"),
    ("Jordi", "Puig", "Barcelona City Council"),
    ("Lucía", "Hernández", "Mexico City Government"),
    ("Jonas", "Becker", "Berlin Senate Chancellery"),
    ("Élodie", "Tremblay", "City of Montréal"),
    ("Min-jun", "Kim", "Seoul Metropolitan Government"),
    ("Camila", "Rojas", "Bogotá District Mayor's Office"),
    ("Thandiwe", "Nkosi", "eThekwini Municipality"),
    ("Selam", "Tesfaye", "Addis Ababa City Administration"),
    ("Mulenga", "Phiri", "Lusaka City Council"),
    ("Grace", "Nakato", "Kampala Capital City Authority"),
    ("Oliver", "Hughes", "Bristol City Council"),
    ("Patrick", "Kabila", "Kinshasa City Hall"),
    ("Rania", "Haddad", "Greater Amman Municipality"),
    ("Sofía", "Gómez", "Buenos Aires City Government"),
    ("Aiko", "Tanaka", "Tokyo Metropolitan Government"),
    ("Rahul", "Mehta", "Greater Mumbai Municipal Corporation"),
    ("Fatima", "Benali", "Casablanca Commune"),
    ("Nguyen", "Thi Lan", "Hanoi People's Committee"),
    ("Ana", "Souza", "São Paulo City Hall"),
    ("Kwame", "Mensah", "Accra Metropolitan Assembly"),
    ("Ingrid", "Larsen", "City of Oslo"),
    ("Mateo", "Silva", "Montevideo Municipality"),
    ("Zeynep", "Yılmaz", "Istanbul Metropolitan Municipality"),
    ("Hamid", "Rahimi", "Tehran Municipality"),
)
# The exceptions after "mark everyone present": (index in PEOPLE, status).
EXCEPTIONS = ((2, "absent"), (7, "absent"), (13, "excused"), (21, "absent"))


def _api(live_server: LiveServer) -> tuple[httpx.Client, dict[str, str]]:
    client = httpx.Client(base_url=live_server.url, timeout=30)
    token = client.post(
        "/api/v1/auth/token",
        data={"username": live_server.admin_email, "password": live_server.admin_password},
    ).json()["access_token"]
    return client, {"Authorization": f"Bearer {token}"}


def _confirmed_participants(live_server: LiveServer) -> tuple[str, int]:
    """An edition with 25 participants who paid in full, set up through the JSON API."""
    client, headers = _api(live_server)
    start = date.today() + timedelta(days=60)
    slug = f"phone-{live_server.database}"
    created = client.post(
        "/api/v1/editions",
        headers=headers,
        json={
            "slug": slug,
            "title": "Diploma in Internationalization",
            "edition_label": "attendance test",
            "place": "Barcelona",
            "start_date": start.isoformat(),
            "end_date": (start + timedelta(days=4)).isoformat(),
            "timezone": "Europe/Madrid",
            "capacity": 30,
            "currency": "EUR",
            "dues_year": start.year - 1,
            "income_fy": 2026,
            "fees": {"standard": "1500.00", "member": "1000.00", "group_tiers": []},
        },
    )
    assert created.status_code == 201, created.text
    first_session: int = created.json()["modules"][0]["sessions"][0]["id"]
    for index, (given, family, organisation) in enumerate(PEOPLE):
        body: dict[str, Any] = {
            "given_name": given,
            "family_name": family,
            "email": f"p{index}.{live_server.database}@city.example",
            "organisation_name": organisation,
            "country": "ESP",
            "job_title": "International relations officer",
            "motivation": "I coordinate my city's international partnerships and strategy. " * 2,
            "consent": True,
        }
        applied = client.post(f"/api/v1/editions/{slug}/applications", json=body)
        assert applied.status_code == 201, applied.text
        application_id = applied.json()["id"]
        decided = client.post(
            f"/api/v1/applications/{application_id}/decision",
            headers=headers,
            json={"decision": "admit"},
        )
        assert decided.status_code == 200, decided.text
        number = decided.json()["invoices"][0]["number"]
        paid = client.post(
            f"/api/v1/invoices/{number}/payments",
            headers=headers,
            json={
                "amount": "1500.00",
                "received_on": date.today().isoformat(),
                "method": "bank_transfer",
                "reference": number,
            },
        )
        assert paid.status_code == 201, paid.text
    client.close()
    return slug, first_session


def test_a_tutor_marks_25_participants_in_a_few_taps_on_a_phone(
    browser, live_server: LiveServer
) -> None:  # type: ignore[no-untyped-def]
    slug, session_id = _confirmed_participants(live_server)
    context = browser.new_context(
        base_url=live_server.url, viewport=PHONE, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto("/admin/login")
        page.get_by_role("textbox", name="E-mail").fill(live_server.admin_email)
        page.get_by_label("Password").fill(live_server.admin_password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/admin")

        # From the staff navigation to the session's sheet.
        page.get_by_role("link", name="Attendance", exact=True).click()
        page.goto(f"/admin/attendance?edition={slug}")
        page.locator(f'a[href="/admin/sessions/{session_id}"]').first.click()
        page.wait_for_url(f"**/admin/sessions/{session_id}")
        rows = page.locator(".sheet-row")
        assert rows.count() == 25
        # Nothing is wider than the phone, and every button is a comfortable target.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        box = page.locator(".mark-button").first.bounding_box()
        assert box is not None and box["height"] >= 44 and box["width"] >= 80

        taps = 0
        page.get_by_role("button", name="Mark everyone not yet marked present (25)").tap()
        taps += 1
        page.get_by_text("25 participants marked present.").wait_for()
        assert page.locator('.mark-present[aria-pressed="true"]').count() == 25

        for index, status in EXCEPTIONS:
            given, family, _ = PEOPLE[index]
            row = page.locator(".sheet-row", has_text=f"{given} {family}")
            row.get_by_role("button", name=status.capitalize()).tap()
            taps += 1
            row.locator(f'.mark-{status}[aria-pressed="true"]').wait_for()

        # A slip of the finger, taken back with Undo on the same row.
        given, family, _ = PEOPLE[4]
        row = page.locator(".sheet-row", has_text=f"{given} {family}")
        row.get_by_role("button", name="Absent").tap()
        taps += 1
        row.locator('.mark-absent[aria-pressed="true"]').wait_for()
        row.get_by_role("button", name=re.compile("^Undo")).tap()
        taps += 1
        row.locator('.mark-present[aria-pressed="true"]').wait_for()
        assert "undone by" in (row.text_content() or "")

        assert taps < 30
        counts = page.locator(".sheet-counts").text_content() or ""
        assert re.search(r"21 present\s+.*3 absent\s+.*1 excused\s+.*0 not marked", counts, re.S)
        screenshot(page, f"attendance-sheet-phone-{live_server.database}")

        # The sheet as saved: a reload shows the same marks (nothing waited for a save button).
        page.reload()
        assert page.locator('.mark-present[aria-pressed="true"]').count() == 21
        assert page.locator('.mark-absent[aria-pressed="true"]').count() == 3
        # What the tutor sees on arrival: the counts and "mark everyone" above the first rows.
        page.screenshot(
            path=str(SCREENSHOTS / f"attendance-sheet-phone-top-{live_server.database}.png")
        )

        # The matrix shows lesson 1 complete for 21 and missing for the 4 who were not there.
        page.goto(f"/admin/editions/{slug}/progress")
        # The matrix scrolls sideways inside its box; the page itself stays phone-wide.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert page.locator("td.cell-state.state-complete").count() == 21
        assert page.locator("td.cell-state.state-missing").count() == 4
        for index, _ in EXCEPTIONS:
            given, family, _ = PEOPLE[index]
            cell = page.locator("tr", has_text=f"{given} {family}").locator("td").first
            assert "0/1 missing" in (cell.text_content() or "")
        page.get_by_role("link", name=re.compile("At-risk list \\(4\\)")).wait_for()
        screenshot(page, f"attendance-matrix-phone-{live_server.database}")
        page.set_viewport_size({"width": 1200, "height": 900})
        screenshot(page, f"attendance-matrix-{live_server.database}")
    finally:
        context.close()
    assert errors == [], f"browser console errors: {errors}"
