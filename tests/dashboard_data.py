"""The demo season's office, with the test suite's settings (app.services.office.demo_season)."""

from typing import Any

from app.services.billing.invoices import Seller
from app.services.office import demo_season
from app.services.office.demo_season import OfficeSettings

SECRET = "test-secret-key-" + "x" * 32
BASE = "http://testserver"
OFFICE_EMAIL = "Metropolis Diploma <diploma@metropolis.org>"
SELLER = Seller(
    name="Metropolis",
    address="Avinyó, 15\n08002 Barcelona",
    tax_id="ESG00000000",
    bank_name="Example Bank",
    iban="ES91 2100 0418 4502 0005 1332",
    bic="CAIXESBBXXX",
    due_days=14,
)
SETTINGS = OfficeSettings(
    seller=SELLER, secret_key=SECRET, base_url=BASE, office_email=OFFICE_EMAIL
)


def Office(*args: Any) -> demo_season.Office:
    """An office acting with the tests' settings."""
    return demo_season.Office(*args, SETTINGS)


def fill_demo_week(session: Any, edition: Any, **kwargs: Any) -> Any:
    """The demo season, with the tests' settings."""
    return demo_season.fill_demo_week(session, edition, settings=SETTINGS, **kwargs)
