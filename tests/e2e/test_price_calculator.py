"""The price calculator updates as the organisation changes, without a page reload."""

import pytest

from tests.e2e.conftest import LiveServer, screenshot

pytestmark = pytest.mark.e2e


def test_price_follows_the_chosen_organisation_and_group_size(
    page, live_server: LiveServer
) -> None:  # type: ignore[no-untyped-def]
    page.goto("/editions/diploma-2024")
    page.evaluate("window.notReloaded = true")
    search = page.get_by_label("Find your organisation")
    search.fill("lilon")
    page.get_by_label("Lilongwe City Council").check()
    price = page.locator("#price")
    price.get_by_text("Fee waived: Malawi is low income").wait_for()
    assert "0.00 EUR" in price.inner_text()

    search.fill("Bogot")
    page.get_by_label("Bogotá District Mayor's Office").check()
    price.get_by_text("Standard rate:").wait_for()
    page.get_by_label("Participants from your organisation").fill("4")
    price.get_by_text("Group discount (15 %)").wait_for()
    assert "1,275.00 EUR" in price.inner_text()
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, f"price-calculator-{live_server.database}")
