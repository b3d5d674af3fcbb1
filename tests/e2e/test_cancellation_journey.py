"""Cancelling a paid place from the portal: the preview first, then the written request."""

import re

import pytest

from tests.e2e.conftest import LiveServer, log_in, open_edition_slug, screenshot
from tests.e2e.test_application_journey import admit, fill_application, portal_link_from_outbox

pytestmark = pytest.mark.e2e


def test_a_participant_previews_then_cancels_and_gives_the_account_for_the_refund(
    page, live_server: LiveServer
) -> None:  # type: ignore[no-untyped-def]
    slug = open_edition_slug(live_server)
    email = f"nuria.{live_server.database}@barcelona.example"
    fill_application(
        page, slug, email=email, organisation_search="Barcel", organisation="Barcelona City Council"
    )
    page.get_by_role("button", name="Send my application").click()
    page.get_by_text("we received your application").wait_for()
    reference = re.search(r"MD\d{2}-[0-9A-Z]{6}", page.content())
    assert reference
    log_in(page, live_server)
    link = portal_link_from_outbox(page, f"We received your application {reference.group(0)}")
    admit(page, live_server, email)
    page.goto(link)
    found = re.search(r"Invoice (\d{4}-\d{5})", page.content())
    assert found
    number = found.group(1)
    page.goto(f"/admin/invoices/{number}")
    page.get_by_label(re.compile("Amount received")).fill("1000.00")
    page.get_by_label("Bank reference").fill(f"Transfer {number}")
    page.get_by_role("button", name="Record the payment").click()
    page.wait_for_load_state()

    # The preview says what will happen before anything does.
    page.goto(link)
    page.get_by_role("link", name="Cancel my place").click()
    page.get_by_role("heading", name="What will happen").wait_for()
    preview = page.locator(".cancel-outcome").inner_text()
    assert "You have paid 1,000.00 EUR" in preview
    assert "You get back 750.00 EUR by" in preview
    assert "250.00 EUR is retained as the cancellation fee" in preview
    assert email in page.locator(".cancel-items").inner_text()
    screenshot(page, f"cancel-preview-{live_server.database}")
    # Keeping the place changes nothing.
    page.get_by_role("link", name="Keep my place").click()
    page.get_by_text("Place confirmed").wait_for()

    page.get_by_role("link", name="Cancel my place").click()
    page.get_by_role("button", name="Confirm: cancel my place").click()
    page.get_by_text("Your place is cancelled.").wait_for()
    page.get_by_role("heading", name="Refund of 750.00 EUR").wait_for()

    # The account for the bank refund: a wrong IBAN is refused next to the field.
    page.get_by_label("Account holder").fill("Núria Puig")
    page.get_by_label("IBAN").fill("ES91 2100 0418 4502 0005 1333")
    page.get_by_role("button", name="Save the bank details").click()
    page.locator("#iban-error, .field-error").first.wait_for()
    page.get_by_label("IBAN").fill("ES91 2100 0418 4502 0005 1332")
    page.get_by_role("button", name="Save the bank details").click()
    page.locator("dd", has_text="account ending in 1332").wait_for()
    screenshot(page, f"cancel-done-{live_server.database}")

    # A second request changes nothing and says so.
    page.goto(f"{link}/cancel")
    page.get_by_text("already cancelled").first.wait_for()
    assert page.get_by_role("button", name="Confirm: cancel my place").count() == 0
