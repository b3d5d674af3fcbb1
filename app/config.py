"""Settings, read once from the environment (prefix DIPLOMAT_) or a `.env` file."""

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAR_DIR = PROJECT_ROOT / "var"
EXAMPLE_IBAN = "ES91 2100 0418 4502 0005 1332"
EXAMPLE_TAX_ID = "ESG00000000 (example)"
INSECURE_SECRET = "change-me"  # noqa: S105 - the value a production secret must not keep


class Settings(BaseSettings):
    """Every setting of the service; production refuses insecure defaults."""

    model_config = SettingsConfigDict(env_prefix="DIPLOMAT_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    var_dir: Path = DEFAULT_VAR_DIR
    database_url: str = ""
    secret_key: str = INSECURE_SECRET
    base_url: str = "http://127.0.0.1:8000"

    # Login throttling: this many failures in the window for one account or address -> 429.
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    api_token_hours: int = Field(default=8, ge=1)

    # Outgoing mail (the outbox delivers; until configured, mail goes to var/mail).
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = True
    mail_from: str = "Metropolis Diploma <diploma@metropolis.org>"
    # The embedded default sends queued mail from inside the web process.
    mail_worker_in_process: bool = True
    mail_poll_seconds: float = Field(default=5.0, gt=0)
    # How often the in-process office chores run: expiring seat offers, sending card refunds.
    chores_poll_seconds: float = Field(default=60.0, gt=0)

    # Card payments; invisible until both are set.
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    # Another address for the Stripe API (tests point it at a local fake); empty: Stripe's own.
    stripe_api_base: str = ""
    # Where "Pay by card" sends the browser; allowed as a form target in the pages' policy.
    stripe_checkout_origin: str = "https://checkout.stripe.com"

    # The seller on invoices and the signer of letters.
    organisation_name: str = "Metropolis (World Association of the Major Metropolises)"
    organisation_address: str = "Avinyó, 15\n08002 Barcelona\nSpain"
    organisation_tax_id: str = EXAMPLE_TAX_ID
    bank_name: str = "Example Bank, Barcelona"
    bank_iban: str = EXAMPLE_IBAN
    bank_bic: str = "CAIXESBBXXX"
    invoice_due_days: int = Field(default=14, ge=0, le=365)
    # Days a waitlisted applicant has to accept a freed seat before it goes to the next one.
    waitlist_offer_days: int = Field(default=5, ge=1, le=60)

    @model_validator(mode="after")
    def _fill_development_defaults(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'diplomat.db'}"
        if self.secret_key in ("", INSECURE_SECRET):
            if self.environment == "production":
                raise ValueError(
                    "DIPLOMAT_SECRET_KEY is missing or left at its default: set it to a long "
                    "random value before starting in production, e.g. the output of "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
                )
            self.secret_key = _development_secret(self.var_dir)
        elif self.environment == "production" and len(self.secret_key) < 32:
            raise ValueError("DIPLOMAT_SECRET_KEY must be at least 32 characters in production.")
        if not iban_is_valid(self.bank_iban):
            raise ValueError(f"DIPLOMAT_BANK_IBAN {self.bank_iban!r} is not a valid IBAN.")
        if self.environment == "production" and (
            self.bank_iban == EXAMPLE_IBAN or self.organisation_tax_id == EXAMPLE_TAX_ID
        ):
            # Invoices carry these: an example account on a real invoice loses real money.
            raise ValueError(
                "Set DIPLOMAT_BANK_IBAN, DIPLOMAT_BANK_BIC, DIPLOMAT_BANK_NAME and "
                "DIPLOMAT_ORGANISATION_TAX_ID before starting in production."
            )
        return self

    @property
    def https(self) -> bool:
        """Whether the public address is https (cookies then carry Secure)."""
        return self.base_url.startswith("https://")

    @property
    def files_dir(self) -> Path:
        """Where stored files (CVs, PDFs) live when no object storage is configured."""
        return self.var_dir / "files"

    @property
    def mail_dir(self) -> Path:
        """Where mail goes as .eml files while no SMTP server is configured."""
        return self.var_dir / "mail"

    @property
    def stripe_enabled(self) -> bool:
        """Card payments are offered only when both Stripe secrets are set."""
        return bool(self.stripe_secret_key and self.stripe_webhook_secret)


def iban_is_valid(iban: str) -> bool:
    """ISO 13616 check: country, check digits, and the mod-97 checksum."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    if not compact.isalnum():
        return False
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def _development_secret(var_dir: Path) -> str:
    """A secret generated once into var/ so development sessions survive restarts."""
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings."""
    return Settings()
