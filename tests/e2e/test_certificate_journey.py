"""A participant who completed the course gets the certificate, checks it, and it is revoked:
in a real browser, on both databases."""

import re
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx2 as httpx
import pytest
import zxingcpp
from PIL import Image
from pypdf import PdfReader

from tests.e2e.conftest import LiveServer, log_in, screenshot
from tests.e2e.test_application_journey import portal_link_from_outbox
from tests.factories import application_payload, edition_payload, pdf_bytes

pytestmark = pytest.mark.e2e

NAME = ("Zoë", "Ñúñez-Østergård")


def api_token(live_server: LiveServer) -> dict[str, str]:
    answer = httpx.post(
        f"{live_server.url}/api/v1/auth/token",
        data={"username": live_server.admin_email, "password": live_server.admin_password},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def finished_edition(live_server: LiveServer, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
    """An edition that ended last week; its application window is still open for this test."""
    today = datetime.now(UTC).date()
    slug = f"cert-journey-{live_server.database}"
    body = edition_payload(
        slug=slug,
        edition_label="Spring edition",
        start_date=(today - timedelta(days=12)).isoformat(),
        end_date=(today - timedelta(days=8)).isoformat(),
        applications_open=(datetime.now(UTC) - timedelta(days=60)).isoformat(),
        applications_close=(datetime.now(UTC) + timedelta(days=30)).isoformat(),
    )
    created = httpx.post(f"{live_server.url}/api/v1/editions", json=body, headers=headers)
    assert created.status_code == 201, created.text
    return httpx.get(f"{live_server.url}/api/v1/editions/{slug}", timeout=10).json()


def paid_participant(
    live_server: LiveServer, headers: dict[str, str], slug: str, name: tuple[str, str]
) -> tuple[int, str]:
    """Apply, be admitted, pay the invoice in full: a confirmed participant (id, reference)."""
    base = live_server.url
    local = name[0].encode("ascii", "ignore").decode().lower() or "participant"
    email = f"{local}.{live_server.database}@valencia.example"
    applied = httpx.post(
        f"{base}/api/v1/editions/{slug}/applications",
        json=application_payload(given_name=name[0], family_name=name[1], email=email),
        timeout=10,
    )
    assert applied.status_code == 201, applied.text
    application_id: int = applied.json()["id"]
    admitted = httpx.post(
        f"{base}/api/v1/applications/{application_id}/decision",
        json={"decision": "admit"},
        headers=headers,
        timeout=30,
    )
    assert admitted.status_code == 200, admitted.text
    invoice = admitted.json()["invoices"][0]
    paid = httpx.post(
        f"{base}/api/v1/invoices/{invoice['number']}/payments",
        json={
            "amount": invoice["total"],
            "received_on": date.today().isoformat(),
            "method": "bank_transfer",
            "reference": invoice["number"],
        },
        headers=headers,
        timeout=30,
    )
    assert paid.status_code == 201, paid.text
    return application_id, applied.json()["reference"]


def present_everywhere(
    live_server: LiveServer,
    headers: dict[str, str],
    edition: dict,
    application_id: int,  # type: ignore[type-arg]
) -> None:
    for module in edition["modules"]:
        for course_session in module["sessions"]:
            marked = httpx.put(
                f"{live_server.url}/api/v1/sessions/{course_session['id']}/attendance/{application_id}",
                json={"status": "present"},
                headers=headers,
                timeout=10,
            )
            assert marked.status_code == 200, marked.text


def eligible_participant(
    page,  # type: ignore[no-untyped-def]
    live_server: LiveServer,
    headers: dict[str, str],
    edition: dict,  # type: ignore[type-arg]
    name: tuple[str, str],
    folder: Path,
) -> tuple[int, str]:
    """Paid, present everywhere, final work uploaded from the portal and accepted."""
    application_id, reference = paid_participant(live_server, headers, edition["slug"], name)
    present_everywhere(live_server, headers, edition, application_id)
    portal = portal_link_from_outbox(page, f"We received your application {reference}")
    page.goto(portal)
    work = folder / f"final-work-{application_id}.pdf"
    work.write_bytes(pdf_bytes())
    page.locator("#final_work").set_input_files(str(work))
    page.get_by_role("button", name="Upload my final work").click()
    page.wait_for_load_state()
    accepted = httpx.put(
        f"{live_server.url}/api/v1/applications/{application_id}/final-work",
        json={"status": "accepted"},
        headers=headers,
        timeout=10,
    )
    assert accepted.status_code == 200, accepted.text
    return application_id, portal


def decode_qr(pdf: Path) -> list[str]:
    subprocess.run(
        ["pdftoppm", "-png", "-r", "150", "-singlefile", str(pdf), str(pdf.with_suffix(""))],
        check=True,
    )
    return [r.text for r in zxingcpp.read_barcodes(Image.open(pdf.with_suffix(".png")))]


def test_a_participant_downloads_a_valid_certificate_which_is_later_revoked(
    page, live_server: LiveServer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    headers = api_token(live_server)
    edition = finished_edition(live_server, headers)
    log_in(page, live_server)
    application_id, portal = eligible_participant(
        page, live_server, headers, edition, NAME, tmp_path
    )
    # The office issues the certificate from the application's page.
    page.goto(f"/admin/applications/{application_id}")
    page.get_by_text("Meets every condition for the certificate.").wait_for()
    page.get_by_role("button", name="Issue the certificate").click()
    page.get_by_text(re.compile(r"Certificate MD\d\d-[0-9A-Z-]+ issued")).wait_for()
    number = re.search(r"MD\d\d-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]", page.content())
    assert number
    screenshot(page, f"certificate-admin-{live_server.database}")

    # The participant finds it in the portal and downloads it.
    page.goto(portal)
    page.get_by_role("heading", name="Your certificate").wait_for()
    linkedin = page.get_by_role("link", name=re.compile("Add to LinkedIn"))
    assert "Ñúñez" not in (linkedin.get_attribute("href") or "")
    screenshot(page, f"certificate-portal-{live_server.database}")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download my certificate (PDF)").click()
    saved = tmp_path / "certificate.pdf"
    download.value.save_as(saved)
    reader = PdfReader(saved)
    assert len(reader.pages) == 1
    text = " ".join(reader.pages[0].extract_text().split())
    assert "Zoë Ñúñez-Østergård" in text
    assert number.group(0) in text
    for module in edition["modules"]:
        assert module["title"] in text
    verification_url = f"{live_server.url}/verify/{number.group(0)}"
    assert decode_qr(saved) == [verification_url]

    # Anyone can check it: valid now, revoked after the office revokes it.
    page.goto(verification_url)
    page.get_by_role("heading", name="Valid certificate").wait_for()
    assert page.get_by_text("Zoë Ñúñez-Østergård").is_visible()
    screenshot(page, f"certificate-verify-{live_server.database}")

    page.goto(f"/admin/applications/{application_id}")
    page.get_by_text("Revoke", exact=True).click()
    page.get_by_label(re.compile("Reason")).fill("Issued by mistake during the journey test.")
    page.get_by_role("button", name="Revoke the certificate").click()
    page.get_by_text(f"Certificate {number.group(0)} is revoked.").wait_for()

    page.goto(verification_url)
    page.get_by_role("heading", name="Revoked certificate").wait_for()
    assert not page.get_by_role("heading", name="Valid certificate").is_visible()
    screenshot(page, f"certificate-revoked-{live_server.database}")

    # A second participant is issued with the edition's button; the page shows the progress.
    second, _ = eligible_participant(
        page, live_server, headers, edition, ("Wang", "Xiaoming 王小明"), tmp_path
    )
    page.goto(f"/admin/editions/{edition['slug']}/certificates")
    page.get_by_role("button", name="Issue 1 certificate").click()
    page.get_by_text("Finished: 1 certificate issued").wait_for(timeout=60_000)
    page.get_by_role("link", name="Show the updated list").click()
    page.get_by_role("link", name="Wang Xiaoming 王小明").wait_for()
    screenshot(page, f"certificate-edition-{live_server.database}")
    details = httpx.get(
        f"{live_server.url}/api/v1/applications/{second}", headers=headers, timeout=10
    ).json()
    assert details["status"] == "completed"

    # The verification page on a phone.
    page.set_viewport_size({"width": 360, "height": 800})
    page.goto(verification_url)
    page.get_by_role("heading", name="Revoked certificate").wait_for()
    screenshot(page, f"certificate-revoked-phone-{live_server.database}")
