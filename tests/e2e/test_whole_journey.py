"""The whole journey in a real browser, on both databases: from the application to the verified
certificate for a group paying by bank transfer, and from a card payment to the card refund
after a cancellation.

Everything a person does goes through the pages. Two steps have no page and use the product's
other doors: the editions are created through the JSON API (`POST /api/v1/editions`), and the
tutor's account with the command line (`diplomat users create --role tutor`).
"""

import re
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx2 as httpx
import pytest
from pypdf import PdfReader

from tests.e2e.conftest import LiveServer, _cli, log_in, screenshot
from tests.factories import pdf_bytes
from tests.stripe_fake import SECRET_KEY, WEBHOOK_SECRET, FakeStripe, running_fake_stripe

pytestmark = pytest.mark.e2e

ZONE = ZoneInfo("Europe/Madrid")
MOTIVATION = (
    "I lead our city's partnerships with other metropolitan governments and want to write "
    "our first international strategy with what I learn."
)
CERTIFICATE_NUMBER = r"MD\d\d-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]"
TUTOR = "tutor@metropolis.example"


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
        # The chores send owed card refunds; every second instead of every minute.
        "DIPLOMAT_CHORES_POLL_SECONDS": "1",
    }


@pytest.fixture
def open_page(browser, live_server: LiveServer) -> Iterator[Callable[[], Any]]:  # type: ignore[no-untyped-def]
    """Further browsers (a tutor's, each participant's); console errors fail the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def new_page() -> Any:
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1200, "height": 900}
        )
        contexts.append(context)
        opened = context.new_page()
        opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        opened.on("pageerror", lambda error: errors.append(str(error)))
        return opened

    yield new_page
    for context in contexts:
        context.close()
    assert errors == [], f"browser console errors: {errors}"


def shot(page, step: str, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    screenshot(page, f"journey-{step}-{live_server.database}")


def api_headers(live_server: LiveServer) -> dict[str, str]:
    answer = httpx.post(
        f"{live_server.url}/api/v1/auth/token",
        data={"username": live_server.admin_email, "password": live_server.admin_password},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def create_edition(live_server: LiveServer, body: dict[str, Any]) -> dict[str, Any]:
    """An edition through the API: there is no page that creates one."""
    base: dict[str, Any] = {
        "title": "Diploma in Internationalization",
        "place": "Barcelona",
        "timezone": "Europe/Madrid",
        "capacity": 20,
        "currency": "EUR",
        "dues_year": 2023,
        "income_fy": 2023,
        "fees": {
            "standard": "1500.00",
            "member": "1000.00",
            "group_tiers": [{"min_size": 2, "percent": "10"}],
        },
    }
    created = httpx.post(
        f"{live_server.url}/api/v1/editions",
        json=base | body,
        headers=api_headers(live_server),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    edition: dict[str, Any] = created.json()
    return edition


def running_edition(live_server: LiveServer) -> dict[str, Any]:
    """Started yesterday, ends tomorrow: two lessons, the last session going on right now."""
    now = datetime.now(ZONE).replace(second=0, microsecond=0)
    yesterday = now.date() - timedelta(days=1)

    def at(hour: int) -> str:
        return datetime(
            yesterday.year, yesterday.month, yesterday.day, hour, tzinfo=ZONE
        ).isoformat()

    return create_edition(
        live_server,
        {
            "slug": f"whole-journey-{live_server.database}",
            "edition_label": "Whole journey",
            "start_date": yesterday.isoformat(),
            "end_date": (now.date() + timedelta(days=1)).isoformat(),
            "applications_open": (now - timedelta(days=30)).isoformat(),
            "applications_close": (now + timedelta(days=30)).isoformat(),
            "modules": [
                {
                    "title": "Cities in a changing international context",
                    "sessions": [
                        {
                            "kind": "knowledge",
                            "title": "Cities abroad",
                            "starts_at": at(9),
                            "ends_at": at(12),
                        }
                    ],
                },
                {
                    "title": "Strategies for internationalization",
                    "sessions": [
                        {
                            "kind": "site_visit",
                            "title": "Visit to the city's international office",
                            "starts_at": at(15),
                            "ends_at": at(17),
                        },
                        {
                            "kind": "skills",
                            "title": "Writing the strategy",
                            "starts_at": (now - timedelta(minutes=10)).isoformat(),
                            "ends_at": (now + timedelta(hours=2)).isoformat(),
                        },
                    ],
                },
            ],
        },
    )


def create_tutor(live_server: LiveServer) -> str:
    """A tutor's account from the command line (there is no page for staff accounts)."""
    output = _cli(
        ["users", "create", TUTOR, "--role", "tutor", "--full-name", "Teresa Tutor"],
        live_server.env,
    )
    password = re.search(r"Password \(shown once\): (\S+)", output)
    assert password, output
    return password.group(1)


def apply(  # type: ignore[no-untyped-def]
    page,
    slug: str,
    *,
    name: tuple[str, str],
    email: str,
    group_code: str = "",
    cv: Path | None = None,
) -> tuple[str, str]:
    """Fill and send the application form as a Barcelona official; (portal link, reference)."""
    page.goto(f"/editions/{slug}/apply")
    page.get_by_label("Given name").fill(name[0])
    page.get_by_label("Family name").fill(name[1])
    page.get_by_role("textbox", name="E-mail").fill(email)
    page.get_by_label("Find your organisation").fill("Barcel")
    page.get_by_label("Barcelona City Council").check()
    page.get_by_label("Job title").fill("International relations officer")
    page.get_by_label("Why do you want to take part?").fill(MOTIVATION)
    page.get_by_label("I agree that Metropolis stores").check()
    if group_code:
        page.get_by_label("Group code (optional)").fill(group_code)
    if cv is not None:
        page.get_by_label("CV (optional, PDF, at most 5 MB)").set_input_files(str(cv))
    price = page.locator("#price")
    price.get_by_text("Member rate: Barcelona City Council is a Metropolis member").wait_for()
    assert "1,000.00 EUR" in price.inner_text()
    page.get_by_role("button", name="Send my application").click()
    page.get_by_text("we received your application").wait_for()
    reference = re.search(r"MD\d{2}-[0-9A-Z]{6}", page.content())
    assert reference
    assert page.get_by_text("Received, under review").is_visible()
    return page.url.split("?")[0], reference.group(0)


def portal_section(page, heading: str) -> str:  # type: ignore[no-untyped-def]
    """The text of the portal's section under this heading."""
    return page.locator(
        "section", has=page.get_by_role("heading", name=heading, exact=True)
    ).first.inner_text()


def test_a_group_applies_pays_attends_hands_in_and_verifies_the_certificate(
    page, open_page, live_server: LiveServer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    db = live_server.database
    edition = running_edition(live_server)
    slug = edition["slug"]
    tutor_password = create_tutor(live_server)
    ama_email, jordi_email = f"ama.{db}@barcelona.example", f"jordi.{db}@barcelona.example"

    # 1. Ama starts a group for Barcelona City Council and gets its code.
    ama = open_page()
    ama.goto(f"/editions/{slug}/groups/new")
    ama.get_by_label("Find your organisation").fill("Barcel")
    ama.get_by_label("Barcelona City Council").check()
    ama.get_by_label("Your name").fill("Ama Banda")
    ama.get_by_label("Your e-mail").fill(ama_email)
    ama.get_by_role("button", name="Create the group").click()
    ama.get_by_role("heading", name="Your group is ready").wait_for()
    code = ama.locator(".group-code").inner_text().strip()
    assert re.fullmatch(r"G-[0-9A-Z]{4}-[0-9A-Z]{4}", code), code
    assert ama.get_by_text(f"We sent it to {ama_email}").is_visible()
    shot(ama, "01-group-created", live_server)

    # 2. She applies with her CV (a real PDF) and the group's code.
    cv = tmp_path / "cv.pdf"
    cv.write_bytes(pdf_bytes())
    ama.get_by_role("link", name="Apply now").click()
    ama_portal, ama_reference = apply(
        ama, slug, name=("Ama", "Banda"), email=ama_email, group_code=code, cv=cv
    )
    shot(ama, "02-ama-applied", live_server)

    # 3. Her colleague joins with the code; his quote already counts the group of two.
    jordi = open_page()
    jordi_portal, jordi_reference = apply(
        jordi, slug, name=("Jordi", "Puig"), email=jordi_email, group_code=code
    )
    quote = portal_section(jordi, "Your price as quoted")
    assert "Group of 2 from one organisation: 10 % off." in quote
    assert "900.00 EUR" in quote
    shot(jordi, "03-jordi-applied", live_server)

    # 4. The office logs in: the receipt is in the outbox, the CV is the PDF she sent.
    log_in(page, live_server)
    page.goto("/admin/outbox")
    page.get_by_role("link", name=f"We received your application {ama_reference}").wait_for()
    page.goto(f"/admin/applications?edition={slug}&group={code}")
    table = page.locator("table").last
    assert table.locator("tr", has_text=ama_reference).get_by_text("submitted").is_visible()
    assert table.locator("tr", has_text=jordi_reference).get_by_text("submitted").is_visible()
    page.get_by_role("link", name=ama_reference).click()
    page.get_by_text("Group " + code + ", 2 members in the running").wait_for()
    cv_link = page.get_by_role("link", name=re.compile("Download the CV"))
    assert page.get_by_text("sent as “cv.pdf”").is_visible()
    assert page.request.get(cv_link.get_attribute("href") or "").body() == cv.read_bytes()
    shot(page, "04-office-reads-the-application", live_server)

    # 5. Both are admitted together from the list.
    page.goto(f"/admin/applications?edition={slug}&group={code}")
    page.get_by_label(re.compile(f"^Select {ama_reference}")).check()
    page.get_by_label(re.compile(f"^Select {jordi_reference}")).check()
    page.get_by_label("Decision", exact=True).select_option(label="Admit")
    page.get_by_role("button", name="Apply to selected").click()
    page.get_by_text("2 admitted.").wait_for()
    table = page.locator("table").last
    assert table.locator("tr", has_text=ama_reference).get_by_text("admitted").is_visible()
    assert table.locator("tr", has_text=jordi_reference).get_by_text("admitted").is_visible()
    assert page.get_by_text("0 confirmed, 2 admitted awaiting payment, 20 seats").first.is_visible()
    shot(page, "05-both-admitted", live_server)

    # 6. The group invoice: one invoice to the organisation, one line per participant.
    page.goto(f"/admin/invoices?edition={slug}")
    group = page.locator(".group-invoice-form", has_text=code)
    assert "2 admitted members not yet invoiced" in group.inner_text()
    group.get_by_role("button", name="Issue the group invoice").click()
    page.wait_for_url(re.compile(r"/admin/invoices/\d{4}-\d{5}$"))
    number = page.url.rsplit("/", 1)[1]
    summary = f"Invoice {number} issued to Barcelona City Council for 2 participants: 1,800.00 EUR."
    page.get_by_text(summary).wait_for()
    lines = page.locator("table", has_text="Registration fee").inner_text()
    assert "Registration fee: Ama Banda" in lines and "Registration fee: Jordi Puig" in lines
    assert lines.count("Group of 2 from one organisation: 10 % off. (-100.00)") == 2
    assert lines.count("900.00 EUR") >= 4  # net and amount of each line
    pdf = page.request.get(f"/admin/invoices/{number}.pdf")
    assert pdf.ok and pdf.body().startswith(b"%PDF")
    shot(page, "06-group-invoice", live_server)

    # 7. The bank transfer of the whole amount confirms both.
    page.get_by_label(re.compile("Amount received")).fill("1800.00")
    page.get_by_label("Bank reference").fill(f"Barcelona City Council {number}")
    page.get_by_role("button", name="Record the payment").click()
    confirmed = (
        f"Recorded 1,800.00 EUR on {number}. Paid 1,800.00 EUR of 1,800.00 EUR. "
        f"Confirmed: Ama Banda ({ama_reference}), Jordi Puig ({jordi_reference})"
    )
    page.get_by_text(confirmed).wait_for()
    shot(page, "07-transfer-recorded", live_server)
    for portal, person in ((ama_portal, ama), (jordi_portal, jordi)):
        person.goto(portal)
        person.get_by_text("Paid in full: your place is guaranteed.").wait_for()
        assert person.get_by_text("Place confirmed").is_visible()
        invoices = portal_section(person, "Invoices and payments")
        assert f"Invoice {number}" in invoices and "1,800.00 EUR" in invoices
        assert "paid" in invoices
    shot(ama, "07-ama-confirmed", live_server)

    # 8. The tutor logs in and takes attendance: the two sessions of yesterday, all present.
    tutor = open_page()
    tutor.goto("/admin/login")
    tutor.get_by_role("textbox", name="E-mail").fill(TUTOR)
    tutor.get_by_label("Password").fill(tutor_password)
    tutor.get_by_role("button", name="Log in").click()
    tutor.wait_for_url("**/admin")
    assert tutor.get_by_text(f"Logged in as {TUTOR} (tutor).").is_visible()
    # Tutors see no money: the invoices and the certificates are closed to them.
    assert tutor.request.get("/admin/invoices").status == 403
    assert tutor.request.get(f"/admin/editions/{slug}/certificates").status == 403
    tutor.get_by_role("link", name="Attendance", exact=True).click()
    tutor.goto(f"/admin/attendance?edition={slug}")
    for title in ("Cities abroad", "Visit to the city's international office"):
        tutor.get_by_role("link", name=f"Sheet of {title}").click()
        tutor.get_by_role("heading", name=title).wait_for()
        assert tutor.locator(".sheet-row").count() == 2
        tutor.get_by_role("button", name="Mark everyone not yet marked present (2)").click()
        tutor.get_by_text("2 participants marked present.").wait_for()
        counts = " ".join(tutor.locator(".sheet-counts").inner_text().split())
        assert "2 present" in counts and "0 not marked" in counts, counts
        tutor.goto(f"/admin/attendance?edition={slug}")
    shot(tutor, "08-tutor-sessions", live_server)

    # 9. The session going on now: the tutor shows its code, Jordi checks in by himself.
    tutor.get_by_role("link", name="Check-in code of Writing the strategy").click()
    assert tutor.get_by_text("open now").is_visible()
    tutor.get_by_role("button", name="Show the check-in code").click()
    shown = tutor.locator(".check-in-code")
    shown.wait_for()
    check_in_code = re.sub(r"\s", "", shown.inner_text())
    assert re.fullmatch(r"[A-Z2-9]{6}", check_in_code), check_in_code
    shot(tutor, "09-check-in-code", live_server)
    jordi.goto(jordi_portal)
    assert jordi.get_by_text("Now: Writing the strategy").is_visible()
    jordi.get_by_label("Code shown by your tutor").fill(check_in_code.lower())
    jordi.get_by_role("button", name="Check in", exact=True).click()
    jordi.get_by_text("You are marked present at Writing the strategy").wait_for()
    programme = portal_section(jordi, "Programme and your attendance")
    assert "3 of 3 sessions attended so far." in programme
    shot(jordi, "09-jordi-checked-in", live_server)

    # 10. On the sheet Jordi shows as checked in; the tutor marks Ama, who is in the room.
    tutor.goto(f"/admin/attendance?edition={slug}")
    tutor.get_by_role("link", name="Sheet of Writing the strategy").click()
    jordi_row = tutor.locator(".sheet-row", has_text="Jordi Puig")
    assert "checked in themselves" in jordi_row.inner_text()
    tutor.get_by_role("button", name="Mark everyone not yet marked present (1)").click()
    tutor.get_by_text("1 participant marked present.").wait_for()
    assert tutor.locator('.mark-present[aria-pressed="true"]').count() == 2
    shot(tutor, "10-sheet-now", live_server)
    tutor.goto(f"/admin/editions/{slug}/progress")
    assert tutor.locator("td.cell-state.state-complete").count() == 4  # 2 people x 2 lessons
    assert tutor.locator("td.cell-state.state-missing, td.cell-state.state-partial").count() == 0
    shot(tutor, "10-progress", live_server)

    # 11. Both hand in their final work from their page; the tutor accepts both.
    for person, portal in ((ama, ama_portal), (jordi, jordi_portal)):
        person.goto(portal)
        person.locator("#final_work").set_input_files(str(cv))
        person.get_by_role("button", name="Upload my final work").click()
        person.get_by_text("is uploaded. Your tutor will assess it.").wait_for()
        assert person.get_by_text("Submitted, not yet assessed").is_visible()
    shot(ama, "11-final-work-uploaded", live_server)
    tutor.goto(f"/admin/final-works?edition={slug}")
    for name in ("Ama Banda", "Jordi Puig"):
        card = tutor.locator("[id^=participant-]", has_text=name)
        assert "Awaiting assessment" in card.inner_text()
        card.get_by_label("Accepted").check()
        card.get_by_label(re.compile("Note to the participant")).fill("Clear goals and indicators.")
        card.get_by_role("button", name=re.compile("Save the assessment")).click()
        tutor.get_by_text(f"Final work of {name} recorded as accepted.").wait_for()
    shot(tutor, "11-final-works-accepted", live_server)

    # 12. The office issues the certificates in bulk and the progress bar runs to the end.
    page.goto(f"/admin/editions/{slug}/certificates")
    assert re.search(r"ELIGIBLE, NOT ISSUED YET\s+2", page.locator("main").inner_text(), re.I)
    page.get_by_role("button", name="Issue 2 certificates").click()
    page.get_by_text("Finished: 2 certificates issued.").wait_for(timeout=60_000)
    bar = page.locator("progress")
    assert bar.get_attribute("value") == "100"
    shot(page, "12-certificates-issued", live_server)
    page.get_by_role("link", name="Show the updated list").click()
    page.get_by_role("link", name="Ama Banda").wait_for()
    assert page.get_by_role("link", name="Jordi Puig").is_visible()

    # 13. Ama downloads her certificate from her page.
    ama.goto(ama_portal)
    assert ama.get_by_text("Completed").first.is_visible()
    ama.get_by_role("heading", name="Your certificate").wait_for()
    shown_number = re.search(CERTIFICATE_NUMBER, portal_section(ama, "Your certificate"))
    assert shown_number
    shot(ama, "13-portal-certificate", live_server)
    with ama.expect_download() as download:
        ama.get_by_role("link", name="Download my certificate (PDF)").click()
    saved = tmp_path / "certificate.pdf"
    download.value.save_as(saved)
    text = " ".join(PdfReader(saved).pages[0].extract_text().split())
    assert "Ama Banda" in text
    for module in edition["modules"]:
        assert module["title"] in text
    printed = re.search(CERTIFICATE_NUMBER, text)
    assert printed and printed.group(0) == shown_number.group(0)

    # 14. Anyone checks the number from the PDF on the public page, without logging in.
    visitor = open_page()
    visitor.goto("/verify")
    visitor.get_by_label("Certificate number").fill(printed.group(0).lower())
    visitor.get_by_role("button", name="Verify").click()
    visitor.get_by_role("heading", name="Valid certificate").wait_for()
    facts = visitor.locator(".verify-facts").inner_text()
    assert printed.group(0) in facts and "Ama Banda" in facts
    assert "Whole journey" in facts and "Barcelona" in facts
    assert ama_email not in visitor.content()
    shot(visitor, "14-verified", live_server)


def test_a_card_payment_is_cancelled_31_days_ahead_and_75_percent_goes_back_to_the_card(
    page, open_page, live_server: LiveServer, fake_stripe: FakeStripe
) -> None:  # type: ignore[no-untyped-def]
    db = live_server.database
    start = datetime.now(ZONE).date() + timedelta(days=31)
    edition = create_edition(
        live_server,
        {
            "slug": f"card-journey-{db}",
            "edition_label": "Card journey",
            "start_date": start.isoformat(),
            "end_date": (start + timedelta(days=4)).isoformat(),
        },
    )
    slug = edition["slug"]
    deadline = date.fromisoformat(edition["cancellation_deadline"][:10])
    assert deadline == start - timedelta(days=30)
    email = f"kofi.{db}@barcelona.example"

    # 1. Kofi applies; the office admits him and his invoice of 1,000.00 EUR is issued.
    kofi = open_page()
    portal, reference = apply(kofi, slug, name=("Kofi", "Mensah"), email=email)
    log_in(page, live_server)
    page.goto(f"/admin/applications?edition={slug}&q={email}")
    page.get_by_role("link", name=reference).click()
    page.get_by_label("Admit").check()
    page.get_by_role("button", name="Decide and e-mail the applicant").click()
    page.get_by_text(f"{reference} admitted").wait_for()
    kofi.goto(portal)
    kofi.get_by_text("Still to pay: 1,000.00 EUR.").wait_for()
    found = re.search(r"Invoice (\d{4}-\d{5})", kofi.content())
    assert found
    number = found.group(1)
    shot(kofi, "card-01-invoice", live_server)

    # 2. He pays by card on the provider's hosted page and comes back guaranteed.
    kofi.get_by_role("button", name="Pay by card").click()
    kofi.get_by_role("heading", name="Test checkout").wait_for()
    assert kofi.get_by_text("Pay 1000.00 EUR").is_visible()
    shot(kofi, "card-02-checkout", live_server)
    kofi.get_by_role("link", name="Pay now").click()
    kofi.wait_for_url(f"{portal}*")
    kofi.get_by_text("Paid in full: your place is guaranteed.").wait_for()
    assert kofi.get_by_text("Place confirmed").is_visible()
    shot(kofi, "card-03-paid", live_server)
    [paid] = [
        s
        for s in fake_stripe.sessions.values()
        if s["metadata"].get("invoice_number") == number
        and str(s["success_url"]).startswith(live_server.url)
    ]
    assert paid["amount_total"] == 100000 and paid["payment_status"] == "paid"

    # 3. 31 days before the start he cancels: 75 % back to the card, 25 % retained.
    kofi.get_by_role("link", name="Cancel my place").click()
    kofi.get_by_role("heading", name="What will happen").wait_for()
    preview = " ".join(kofi.locator(".cancel-outcome").inner_text().split())
    assert "You have paid 1,000.00 EUR." in preview
    refund_due = datetime.now(ZONE).date() + timedelta(days=30)
    due_words = f"{refund_due:%A} {refund_due.day} {refund_due:%B %Y}"
    assert f"You get back 750.00 EUR by {due_words}, to the card you paid with." in preview
    assert "250.00 EUR is retained as the cancellation fee" in preview
    shot(kofi, "card-04-cancel-preview", live_server)
    kofi.get_by_role("button", name="Confirm: cancel my place").click()
    kofi.get_by_text("Your place is cancelled.").wait_for()
    kofi.get_by_role("heading", name="Refund of 750.00 EUR").wait_for()
    invoices = portal_section(kofi, "Invoices and payments")
    assert re.search(rf"Invoice {number}.*1,000\.00 EUR\s+cancelled", invoices)
    assert re.search(r"Credit note CN\d{4}-\d{5}.*-1,000\.00 EUR\s+credit", invoices)
    assert re.search(r"Invoice \d{4}-\d{5}.*250\.00 EUR\s+paid", invoices)
    shot(kofi, "card-05-cancelled", live_server)

    # 4. The office's chores send the refund through the provider; the page then says paid.
    refund = portal_section(kofi, "Your cancellation")
    deadline_for_refund = time.monotonic() + 30
    while "paid on" not in refund:
        assert time.monotonic() < deadline_for_refund, refund
        time.sleep(0.5)
        kofi.reload()
        refund = portal_section(kofi, "Your cancellation")
    today = datetime.now(ZONE).date()
    assert f"paid on {today:%A} {today.day} {today:%B %Y}" in refund
    assert "Refund of 750.00 EUR" in refund and "back to the card you paid with" in refund
    shot(kofi, "card-06-refund-paid", live_server)
    [sent] = [
        r for r in fake_stripe.refunds.values() if r["payment_intent"] == paid["payment_intent"]
    ]
    assert sent["amount"] == 75000 and sent["status"] == "succeeded"

    # 5. The office sees it among the refunds paid, and on the invoice's payments.
    page.goto("/admin/refunds")
    recent = page.locator("li", has_text=reference).inner_text()
    assert "750.00 EUR" in recent and sent["id"] in recent
    assert "No refund is overdue." in page.locator("main").inner_text()
    shot(page, "card-07-office-refunds", live_server)
    page.goto(f"/admin/invoices/{number}")
    payments = page.locator("table", has_text="VALUE DATE").inner_text()
    assert re.search(r"1,000\.00 EUR\s+card", payments)
    assert re.search(r"-750\.00 EUR\s+card\s+" + re.escape(paid["payment_intent"]), payments)
    assert re.search(r"-250\.00 EUR\s+other\s+Retained as cancellation fee", payments)
    shot(page, "card-08-office-invoice", live_server)
