"""Reading countries as people write them."""

import pytest

from app.services.errors import InvalidInput
from app.services.registry.countries import country_name, parse_country

# The fast tier: pure rules, no database.
pytestmark = pytest.mark.rules


@pytest.mark.parametrize(
    ("given", "iso3"),
    [
        ("ES", "ESP"),
        ("esp", "ESP"),
        ("Spain", "ESP"),
        (" malawi ", "MWI"),
        ("XK", "XKX"),
        ("Kosovo", "XKX"),
        ("CHI", "CHI"),
        ("Bolivia", "BOL"),
        ("Côte d'Ivoire", "CIV"),
    ],
)
def test_codes_and_names_become_alpha3(given: str, iso3: str) -> None:
    assert parse_country(given) == iso3


@pytest.mark.parametrize("given", ["Congo", "Korea", "Narnia", "", "Q1"])
def test_ambiguous_or_unknown_countries_are_refused(given: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_country(given, field="row 3")
    assert "row 3" in raised.value.fields


def test_names_for_world_bank_codes() -> None:
    assert country_name("MWI") == "Malawi"
    assert country_name("XKX") == "Kosovo"
