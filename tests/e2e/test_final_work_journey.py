"""A participant uploads the final work, a tutor's page assesses it, the office overrides."""

import io
import re

import httpx2 as httpx
import pytest
from pypdf import PdfWriter

from tests.e2e.conftest import LiveServer, log_in, open_edition_slug, screenshot
from tests.e2e.test_application_journey import fill_application

pytestmark = pytest.mark.e2e


def _pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _admit_by_api(live_server: LiveServer, email: str) -> int:
    token = httpx.post(
        f"{live_server.url}/api/v1/auth/token",
        data={"username": live_server.admin_email, "password": live_server.admin_password},
        timeout=10,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    found = httpx.get(
        f"{live_server.url}/api/v1/applications", params={"q": email}, headers=headers, timeout=10
    ).json()["items"]
    application_id: int = found[0]["id"]
    decided = httpx.post(
        f"{live_server.url}/api/v1/applications/{application_id}/decision",
        json={"decision": "admit"},
        headers=headers,
        timeout=30,
    )
    assert decided.status_code == 200, decided.text
    return application_id


def test_a_final_work_is_uploaded_assessed_and_eligibility_overridden(
    page, live_server: LiveServer
) -> None:  # type: ignore[no-untyped-def]
    slug = open_edition_slug(live_server)
    email = f"final.{live_server.database}@lilongwe.example"
    fill_application(
        page, slug, email=email, organisation_search="Lilong", organisation="Lilongwe City Council"
    )
    page.get_by_role("button", name="Send my application").click()
    page.get_by_text("we received your application").wait_for()
    portal = page.url.split("?")[0]
    application_id = _admit_by_api(live_server, email)

    # The participant uploads: a renamed non-PDF is refused next to the field, a PDF is kept.
    page.goto(portal)
    page.locator("#final_work").set_input_files(
        files=[{"name": "work.pdf", "mimeType": "application/pdf", "buffer": b"not a pdf"}]
    )
    page.get_by_role("button", name="Upload my final work").click()
    page.locator("#final_work-error").wait_for()
    assert "is not a PDF document" in page.locator("#final_work-error").inner_text()
    page.locator("#final_work").set_input_files(
        files=[{"name": "City strategy.pdf", "mimeType": "application/pdf", "buffer": _pdf()}]
    )
    page.get_by_role("button", name="Upload my final work").click()
    page.get_by_text("is uploaded. Your tutor will assess it.").wait_for()
    assert page.get_by_text("Submitted, not yet assessed").is_visible()
    screenshot(page, f"portal-final-work-{live_server.database}")

    # The office assesses it on the final works page.
    log_in(page, live_server)
    page.get_by_role("link", name="Final works").click()
    page.goto(f"/admin/final-works?edition={slug}")
    card = page.locator(f"#participant-{application_id}")
    download = card.get_by_role("link", name=re.compile("Download"))
    assert page.request.get(download.get_attribute("href") or "").body().startswith(b"%PDF")
    card.get_by_label("Accepted").check()
    card.get_by_label(re.compile("Note to the participant")).fill("Clear goals and indicators.")
    card.get_by_role("button", name=re.compile("Save the assessment")).click()
    page.get_by_text("recorded as accepted").wait_for()
    screenshot(page, f"final-works-{live_server.database}")
    page.set_viewport_size({"width": 360, "height": 800})
    screenshot(page, f"final-works-narrow-{live_server.database}")
    page.set_viewport_size({"width": 1200, "height": 900})

    # The sessions are still to come: the office overrides with a written reason.
    page.goto(f"/admin/applications/{application_id}")
    section = page.locator("#eligibility")
    assert "Not eligible" in section.inner_text()
    assert "has not taken place yet" in section.inner_text()
    section.get_by_text("Make eligible despite these conditions").click()
    reason = "Attended the same lessons in the previous edition; agreed by the director."
    section.get_by_label("Reason for the override").fill(reason)
    section.get_by_role("button", name="Override and make eligible").click()
    page.get_by_text("Eligible by override").wait_for()
    assert page.get_by_text(reason).first.is_visible()
    screenshot(page, f"eligibility-override-{live_server.database}")

    page.goto(portal)
    assert page.get_by_text("Clear goals and indicators.").is_visible()
    assert page.locator("#final_work").count() == 0
