"""Paying by card through a local stand-in for Stripe's checkout, and its webhook, in a browser."""

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from tests.e2e.conftest import LiveServer, log_in, open_edition_slug, screenshot
from tests.e2e.test_application_journey import (
    admit,
    fill_application,
    portal_link_from_outbox,
)
from tests.stripe_fake import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    FakeStripe,
    event,
    running_fake_stripe,
    signed,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[FakeStripe]:
    with running_fake_stripe() as running:
        yield running


@pytest.fixture(scope="module")
def server_env(fake_stripe: FakeStripe) -> dict[str, str]:
    return {
        "DIPLOMAT_STRIPE_SECRET_KEY": SECRET_KEY,
        "DIPLOMAT_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DIPLOMAT_STRIPE_API_BASE": fake_stripe.url,
        "DIPLOMAT_STRIPE_CHECKOUT_ORIGIN": fake_stripe.url,
    }


def post_event(live_server: LiveServer, stripe_event: dict[str, Any], **sign: Any) -> Any:
    body, headers = signed(stripe_event, **sign)
    url = f"{live_server.url}/stripe/webhook"
    return httpx.post(url, content=body, headers=headers, timeout=30)


def invoice_payments(live_server: LiveServer, number: str) -> list[dict[str, Any]]:
    token = httpx.post(
        f"{live_server.url}/api/v1/auth/token",
        data={"username": live_server.admin_email, "password": live_server.admin_password},
        timeout=30,
    ).json()["access_token"]
    found = httpx.get(
        f"{live_server.url}/api/v1/invoices/{number}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert found.status_code == 200, found.text
    payments: list[dict[str, Any]] = found.json()["payments"]
    return payments


def test_an_applicant_pays_by_card_and_a_replayed_webhook_changes_nothing(
    page, live_server: LiveServer, fake_stripe: FakeStripe
) -> None:  # type: ignore[no-untyped-def]
    slug = open_edition_slug(live_server)
    email = f"kofi.{live_server.database}@barcelona.example"
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
    page.get_by_text("Still to pay").wait_for()
    found = re.search(r"Invoice (\d{4}-\d{5})", page.content())
    assert found
    number = found.group(1)
    page.get_by_role("button", name="Pay by card").click()
    page.get_by_role("heading", name="Test checkout").wait_for()
    page.get_by_role("link", name="Pay now").click()
    page.wait_for_url(f"{link}*")
    page.get_by_text("Paid in full: your place is guaranteed.").wait_for()
    screenshot(page, f"portal-card-paid-{live_server.database}")
    [recorded] = invoice_payments(live_server, number)
    assert recorded["method"] == "card"

    # Stripe's own notice of the same payment, delivered twice: nothing more is recorded.
    [paid] = [
        s
        for s in fake_stripe.sessions.values()
        if s["metadata"].get("invoice_number") == number
        and str(s["success_url"]).startswith(live_server.url)
    ]
    completed = event("checkout.session.completed", paid, event_id=f"evt_{uuid.uuid4().hex}")
    first = post_event(live_server, completed)
    again = post_event(live_server, completed)
    assert (first.status_code, first.json()["outcome"]) == (200, "already recorded")
    assert (again.status_code, again.json()["outcome"]) == (200, "duplicate")
    # A wrong secret or a stale timestamp is refused and changes nothing.
    other = event("checkout.session.completed", paid, event_id=f"evt_{uuid.uuid4().hex}")
    assert post_event(live_server, other, secret="whsec_wrong").status_code == 400
    assert post_event(live_server, other, at=int(time.time()) - 600).status_code == 400
    assert invoice_payments(live_server, number) == [recorded]
    page.goto(link)
    assert page.get_by_text("Paid in full: your place is guaranteed.").is_visible()
    assert page.get_by_text("Place confirmed").is_visible()
