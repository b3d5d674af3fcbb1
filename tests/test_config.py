"""Settings: secrets, bank details, and what production refuses."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings, iban_is_valid

# The fast tier: pure rules, no database.
pytestmark = pytest.mark.rules


def test_development_generates_a_secret_once_into_var(tmp_path: Path) -> None:
    first = Settings(environment="development", secret_key="", var_dir=tmp_path)
    second = Settings(environment="development", secret_key="", var_dir=tmp_path)
    assert len(first.secret_key) >= 32
    assert first.secret_key == second.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_production_refuses_a_default_or_short_secret(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="DIPLOMAT_SECRET_KEY"):
        Settings(environment="production", secret_key="change-me", var_dir=tmp_path)
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(environment="production", secret_key="short", var_dir=tmp_path)


def test_production_needs_real_bank_details(tmp_path: Path) -> None:
    development = Settings(var_dir=tmp_path)
    (tmp_path / "badge.pem").write_text(development.open_badges_private_key)
    (tmp_path / "badge-rsa.pem").write_text(development.open_badges_rsa_private_key)
    with pytest.raises(ValidationError, match="DIPLOMAT_BANK_IBAN"):
        Settings(environment="production", secret_key="k" * 40, var_dir=tmp_path)
    ok = Settings(
        environment="production",
        secret_key="k" * 40,
        var_dir=tmp_path,
        bank_iban="DE89 3704 0044 0532 0130 00",
        organisation_tax_id="ESG12345674",
        # Certificates need a signing key and real signatories in production too.
        open_badges_private_key=(tmp_path / "badge.pem").read_text(),
        open_badges_rsa_private_key=(tmp_path / "badge-rsa.pem").read_text(),
        certificate_signatories=[{"name": "Ana Real", "title": "Director"}],
    )
    assert ok.https is False


def test_a_mistyped_iban_is_refused(tmp_path: Path) -> None:
    assert iban_is_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_is_valid("GB82 WEST 1234 5698 7654 33")
    with pytest.raises(ValidationError, match="not a valid IBAN"):
        Settings(bank_iban="ES00 0000", var_dir=tmp_path)


def test_https_base_url_makes_cookies_secure(tmp_path: Path) -> None:
    assert Settings(base_url="https://courses.example.org", var_dir=tmp_path).https


def test_the_sellers_tax_id_and_country_are_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="DIPLOMAT_ORGANISATION_TAX_ID"):
        Settings(var_dir=tmp_path, organisation_tax_id="G65318148")
    with pytest.raises(ValidationError, match="DIPLOMAT_ORGANISATION_COUNTRY"):
        Settings(var_dir=tmp_path, organisation_country="XQ")
    with pytest.raises(ValidationError, match="DIPLOMAT_ORGANISATION_POSTCODE"):
        Settings(var_dir=tmp_path, organisation_postcode=" ")
    settings = Settings(var_dir=tmp_path, organisation_tax_id="ESG65318149")
    assert settings.organisation_country == "ES"


def test_a_past_open_badges_key_must_be_a_public_key(tmp_path: Path) -> None:
    development = Settings(var_dir=tmp_path)
    with pytest.raises(ValidationError, match="PAST_PUBLIC_KEYS: key 1"):
        Settings(var_dir=tmp_path, open_badges_past_public_keys=["not a key"])
    # A private key is refused too: only public halves are kept once a key is retired.
    with pytest.raises(ValidationError, match="PAST_PUBLIC_KEYS: key 1"):
        Settings(
            var_dir=tmp_path,
            open_badges_past_public_keys=[development.open_badges_private_key],
        )
