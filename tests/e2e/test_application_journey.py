"""Applying, being admitted, paying by bank transfer: in a real browser, on both databases."""

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import LiveServer, log_in, open_edition_slug, screenshot

pytestmark = pytest.mark.e2e

MOTIVATION = (
    "I lead our city's partnerships with other metropolitan governments and want to write "
    "our first international strategy with what I learn."
)


def fill_application(
    page, slug: str, *, email: str, organisation_search: str, organisation: str
) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"/editions/{slug}/apply")
    page.get_by_label("Given name").fill("Ama")
    page.get_by_label("Family name").fill("Banda")
    page.get_by_role("textbox", name="E-mail").fill(email)
    page.get_by_label("Find your organisation").fill(organisation_search)
    page.get_by_label(organisation).check()
    page.get_by_label("Job title").fill("International relations officer")
    page.get_by_label("Why do you want to take part?").fill(MOTIVATION)
    page.get_by_label("I agree that Metropolis stores").check()


def admit(page, live_server: LiveServer, email: str) -> None:  # type: ignore[no-untyped-def]
    log_in(page, live_server)
    page.goto(f"/admin/applications?q={email}")
    page.get_by_role("link", name=re.compile(r"^MD\d{2}-")).first.click()
    page.get_by_label("Admit").check()
    page.get_by_role("button", name="Decide and e-mail the applicant").click()
    page.wait_for_load_state()


def portal_link_from_outbox(page, subject_start: str) -> str:  # type: ignore[no-untyped-def]
    page.goto("/admin/outbox")
    page.get_by_role("link", name=re.compile(subject_start)).first.click()
    text = page.content()
    found = re.search(r"http://127\.0\.0\.1:\d+/portal/[A-Za-z0-9_.\-]+", text)
    assert found, "no portal link in the receipt"
    return found.group(0)


def test_a_member_applies_with_a_cv_is_admitted_pays_by_transfer_and_is_guaranteed(
    page, live_server: LiveServer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    slug = open_edition_slug(live_server)
    email = f"ama.{live_server.database}@barcelona.example"
    cv = tmp_path / "cv.pdf"
    cv.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    fill_application(
        page, slug, email=email, organisation_search="Barcel", organisation="Barcelona City Council"
    )
    page.locator("#price").get_by_text("Member rate:").wait_for()
    page.get_by_label("CV (optional, PDF, at most 5 MB)").set_input_files(str(cv))
    screenshot(page, f"apply-form-{live_server.database}")
    page.get_by_role("button", name="Send my application").click()
    page.get_by_text("we received your application").wait_for()
    reference = re.search(r"MD\d{2}-[0-9A-Z]{6}", page.content())
    assert reference
    screenshot(page, f"receipt-{live_server.database}")

    # The receipt e-mail is in the outbox with the private link; the link opens the portal.
    log_in(page, live_server)
    link = portal_link_from_outbox(page, f"We received your application {reference.group(0)}")
    page.goto(link)
    assert page.get_by_text("Received, under review").is_visible()

    admit(page, live_server, email)
    page.goto(link)
    page.get_by_text("Still to pay").wait_for()
    invoice_number = re.search(r"Invoice (\d{4}-\d{5})", page.content())
    assert invoice_number
    pdf = page.request.get(f"{link}/invoices/{invoice_number.group(1)}.pdf")
    assert pdf.ok
    assert pdf.body().startswith(b"%PDF")
    screenshot(page, f"portal-invoice-{live_server.database}")

    # The office records the bank transfer; the portal then says the place is guaranteed.
    page.goto(f"/admin/invoices/{invoice_number.group(1)}")
    page.get_by_label(re.compile("Amount received")).fill("1000.00")
    page.get_by_label("Bank reference").fill(f"Transfer {invoice_number.group(1)}")
    page.get_by_role("button", name="Record the payment").click()
    page.wait_for_load_state()
    page.goto(link)
    page.get_by_text("Paid in full: your place is guaranteed.").wait_for()
    assert page.get_by_text("Place confirmed").is_visible()
    screenshot(page, f"portal-guaranteed-{live_server.database}")


def test_a_low_income_member_is_admitted_with_a_fee_waiver_confirmation(
    page, live_server: LiveServer
) -> None:  # type: ignore[no-untyped-def]
    slug = open_edition_slug(live_server)
    email = f"waived.{live_server.database}@lilongwe.example"
    fill_application(
        page, slug, email=email, organisation_search="Lilong", organisation="Lilongwe City Council"
    )
    page.locator("#price").get_by_text("Fee waived: Malawi is low income").wait_for()
    page.get_by_role("button", name="Send my application").click()
    page.get_by_text("we received your application").wait_for()
    portal = page.url.split("?")[0]
    admit(page, live_server, email)
    page.goto(portal)
    assert page.get_by_text("Place confirmed").is_visible()
    waiver = page.get_by_role("link", name=re.compile("fee-waiver confirmation"))
    response = page.request.get(waiver.get_attribute("href") or "")
    assert response.ok
    assert response.headers["content-type"] == "application/pdf"
    assert response.body().startswith(b"%PDF")
    screenshot(page, f"portal-waived-{live_server.database}")
