"""A visitor finds the Diploma and an administrator logs in, in a real browser."""

import re

import pytest

from tests.e2e.conftest import LiveServer, screenshot

pytestmark = pytest.mark.e2e


def test_visitor_opens_the_edition_from_the_home_page(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    page.goto("/")
    assert page.get_by_role("heading", name="Past editions").is_visible()
    page.get_by_role("link", name=re.compile("2nd edition")).click()
    page.wait_for_url("**/editions/diploma-2024")
    assert page.get_by_role("heading", name="Programme").is_visible()
    assert page.locator("ol.modules > li").count() == 5
    assert page.get_by_text("Saturday 19 October 2024").is_visible()
    screenshot(page, f"edition-{live_server.database}")


def test_admin_logs_in_and_sees_the_admin_home(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    page.goto("/admin")
    page.wait_for_url("**/admin/login?next=%2Fadmin")
    page.get_by_role("textbox", name="E-mail").fill(live_server.admin_email)
    page.get_by_label("Password").fill(live_server.admin_password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin")
    assert page.get_by_role("heading", name="Course office").is_visible()
    assert page.get_by_role("cell", name="Barcelona").first.is_visible()
    screenshot(page, f"admin-home-{live_server.database}")
    page.get_by_role("button", name=re.compile("Log out")).click()
    page.wait_for_url("**/admin/login")


def test_keyboard_users_can_skip_to_content(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    page.goto("/")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused.strip() == "Skip to content"
