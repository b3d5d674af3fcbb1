"""Settings, read once from the environment (prefix DIPLOMAT_) or a `.env` file."""

import contextlib
import os
import re
import secrets
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAR_DIR = PROJECT_ROOT / "var"
EXAMPLE_IBAN = "ES91 2100 0418 4502 0005 1332"
EXAMPLE_TAX_ID = "ESG00000000 (example)"
INSECURE_SECRET = "change-me"  # noqa: S105 - the value a production secret must not keep
SPANISH_NIF = re.compile(r"[0-9A-Z]{9}")
# The AEAT's addresses (Orden HAC/1177/2024; the AEAT's technical descriptions of the web
# service and of the QR code): test services on prewww, real ones on www.
VERIFACTU_SERVICE = {
    "test": "https://prewww1.aeat.es/wlpl/TIKE-CONT/ws/SistemaFacturacion/VerifactuSOAP",
    "production": (
        "https://www1.agenciatributaria.gob.es/wlpl/TIKE-CONT/ws/SistemaFacturacion/VerifactuSOAP"
    ),
}
VERIFACTU_QR = {
    "test": "https://prewww2.aeat.es/wlpl/TIKE-CONT/ValidarQR",
    "production": "https://www2.agenciatributaria.gob.es/wlpl/TIKE-CONT/ValidarQR",
}
S3_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class Signatory(BaseModel):
    """A person who signs the certificates: name, title, and a signature image (SVG/PNG/JPEG)."""

    name: str = Field(min_length=1, max_length=120)
    title: str = Field(default="", max_length=160)
    signature: Path | None = None


# Fictional people with drawn signatures, so the demo's certificates look finished; production
# refuses to start with them (see below).
DEMO_SIGNATORIES = (
    Signatory(
        name="Marta Vidal Soler",
        title="Director of the Diploma",
        signature=PROJECT_ROOT / "app/static/img/signatures/demo-signature-1.svg",
    ),
    Signatory(
        name="Jordi Puig Serra",
        title="Secretary General, Metropolis",
        signature=PROJECT_ROOT / "app/static/img/signatures/demo-signature-2.svg",
    ),
)


class Settings(BaseSettings):
    """Every setting of the service; production refuses insecure defaults."""

    model_config = SettingsConfigDict(env_prefix="DIPLOMAT_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    var_dir: Path = DEFAULT_VAR_DIR
    database_url: str = ""
    secret_key: str = INSECURE_SECRET
    base_url: str = "http://127.0.0.1:8000"

    # Login throttling: after this many failures in the window for one account from one
    # address, that address waits `login_delay_seconds`, doubling with each further failure
    # (at most the window); four times as many from one address across accounts -> 429.
    # Never a lock on the account: its owner elsewhere still logs in, and is told by e-mail.
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    login_delay_seconds: int = Field(default=30, ge=1)
    # The proxies whose X-Forwarded-For / -Proto are believed (addresses or networks,
    # comma-separated, e.g. `10.0.0.0/8`); empty (the default): none, the peer is the client.
    forwarded_allow_ips: str = ""
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
    # Bulk certificate runs and statement imports start in a thread of the web process that
    # starts them; false: they are queued for the `diplomat worker` processes to claim.
    jobs_in_process: bool = True
    # How often a web process (with jobs_in_process and the mail sender in it) looks for a job
    # whose process died (kill -9, a crash) and resumes it, so nobody has to start it again.
    jobs_poll_seconds: float = Field(default=30.0, gt=0)
    # A request body must have arrived in full within this many seconds, else 408: slow
    # senders cannot hold connections open indefinitely.
    request_body_timeout_seconds: float = Field(default=30.0, gt=0)
    # `json`: one JSON object per log line (the image's default), for a log collector.
    log_format: Literal["text", "json"] = "text"

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
    # The registered address and electronic address an e-invoice (EN 16931) names the seller by;
    # the country is ISO 3166-1 alpha-2, the address scheme an EAS code ("EM": e-mail,
    # "9920": Spanish VAT number, "0088": GLN, ...).
    organisation_street: str = "Avinyó, 15"
    organisation_city: str = "Barcelona"
    organisation_postcode: str = "08002"
    organisation_country: str = Field(default="ES", pattern=r"^[A-Z]{2}$")
    organisation_electronic_address: str = "diploma@metropolis.org"
    organisation_electronic_address_scheme: str = Field(default="EM", pattern=r"^(EM|[0-9]{4})$")
    bank_name: str = "Example Bank, Barcelona"
    bank_iban: str = EXAMPLE_IBAN
    bank_bic: str = "CAIXESBBXXX"
    invoice_due_days: int = Field(default=14, ge=0, le=365)
    # Spanish invoice records (VERI*FACTU, Real Decreto 1007/2023): for an issuer in Spain
    # only. Off, nothing of it is recorded, printed or sent.
    verifactu_enabled: bool = False
    # The AEAT's test services ("test") or the real ones ("production").
    verifactu_environment: Literal["test", "production"] = "test"
    # Whether records are sent to the AEAT (VERI*FACTU mode); false keeps them queued.
    verifactu_sending: bool = True
    # Another address for the AEAT's web service (tests point it at a local fake).
    verifactu_endpoint: str = ""
    # The office's electronic certificate in PEM (its key in the same file or the next one).
    verifactu_certificate_file: Path | None = None
    verifactu_certificate_key_file: Path | None = None
    # Which installation of the software this is (NumeroInstalacion in every record).
    verifactu_installation_number: str = Field(default="1", min_length=1, max_length=100)
    # Days a waitlisted applicant has to accept a freed seat before it goes to the next one.
    waitlist_offer_days: int = Field(default=5, ge=1, le=60)

    # Certificates: who signs them, how LinkedIn names the issuer, the Open Badges key.
    certificate_signatories: list[Signatory] = Field(
        default_factory=lambda: [s.model_copy() for s in DEMO_SIGNATORIES], max_length=3
    )
    certificate_issuer_line: str = "Metropolis · World Association of the Major Metropolises"
    linkedin_organization_id: str = Field(default="", pattern=r"^\d*$")
    linkedin_organization_name: str = "Metropolis"
    # An Ed25519 private key in PEM; development and tests generate one into var/.
    open_badges_private_key: str = ""
    # An RSA private key in PEM (2048 bits or more): RS256, the Open Badges 3.0 baseline for
    # the JWT form. Development and tests generate one into var/ as well.
    open_badges_rsa_private_key: str = ""
    # Public keys (PEM) of signing keys replaced earlier: still published, so credentials
    # signed with them keep verifying after a key rotation.
    open_badges_past_public_keys: list[str] = Field(default_factory=list)
    # Public verification: this many look-ups per address in the window, then 429.
    certificate_verify_limit: int = Field(default=30, ge=1)
    certificate_verify_window_seconds: int = Field(default=60, ge=1)
    # Processes that render a bulk run's PDFs; 0 picks one per core, at most 4.
    certificate_render_processes: int = Field(default=0, ge=0, le=16)

    # Stored files (CVs, final works, PDFs): a folder under var/ ("local"), or an S3-compatible
    # bucket ("s3": AWS S3, MinIO, Ceph, ...) that app servers on several machines share.
    storage_backend: Literal["local", "s3"] = "local"
    s3_bucket: str = ""
    # Objects are named `<prefix>/<key>`, so one bucket can hold several installations.
    s3_prefix: str = ""
    # Empty: AWS's own endpoint for the region; else e.g. `https://minio.internal:9000`.
    s3_endpoint_url: str = ""
    s3_region: str = ""
    # Both empty: boto3's usual chain (AWS_* variables, ~/.aws, the machine's role).
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    # "path" for servers without a name per bucket (MinIO and Ceph usually).
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"

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
        self._check_certificate_settings()
        self._check_storage_settings()
        self._check_verifactu_settings()
        self._check_seller_settings()
        return self

    def _check_seller_settings(self) -> None:
        """Every invoice names the seller: a wrong tax id or address stops the start, not an
        e-invoice a public buyer rejects later."""
        import pycountry
        from stdnum.exceptions import ValidationError as TaxIdError
        from stdnum.util import get_cc_module

        if pycountry.countries.get(alpha_2=self.organisation_country) is None:
            raise ValueError(
                f"DIPLOMAT_ORGANISATION_COUNTRY {self.organisation_country!r} is not an ISO "
                "3166-1 alpha-2 country code (e.g. ES)."
            )
        missing = [
            name
            for name in ("organisation_street", "organisation_city", "organisation_postcode")
            if not getattr(self, name).strip()
        ]
        if missing:
            raise ValueError(
                f"Set {', '.join('DIPLOMAT_' + m.upper() for m in missing)}: every invoice "
                "names the seller's registered address."
            )
        if self.organisation_tax_id == EXAMPLE_TAX_ID:
            return  # refused in production above; development invoices show the example
        module = get_cc_module(self.organisation_country.lower(), "vat")
        if module is None:
            return
        try:
            module.validate(self.organisation_tax_id)
        except TaxIdError as error:
            raise ValueError(
                f"DIPLOMAT_ORGANISATION_TAX_ID {self.organisation_tax_id!r} is not a valid tax "
                f"id in {self.organisation_country} ({str(error).rstrip('.')})."
            ) from None

    def _check_storage_settings(self) -> None:
        """An S3 storage must name its bucket; a wrong setting stops the start, not an upload."""
        self.s3_prefix = self.s3_prefix.strip("/")
        if self.storage_backend != "s3":
            return
        if not self.s3_bucket:
            raise ValueError(
                "DIPLOMAT_S3_BUCKET is missing: name the bucket that holds the stored files "
                "when DIPLOMAT_STORAGE_BACKEND=s3."
            )
        if not S3_BUCKET_NAME.fullmatch(self.s3_bucket):
            raise ValueError(
                f"DIPLOMAT_S3_BUCKET {self.s3_bucket!r} is not a bucket name: 3 to 63 "
                "lower-case letters, digits, dots and hyphens, starting and ending with a "
                "letter or digit."
            )
        if self.s3_prefix and any(
            part in ("", ".", "..") or "\\" in part for part in self.s3_prefix.split("/")
        ):
            raise ValueError(
                f"DIPLOMAT_S3_PREFIX {self.s3_prefix!r} must be plain names separated by '/'."
            )
        if self.s3_endpoint_url and not self.s3_endpoint_url.startswith(("https://", "http://")):
            raise ValueError(
                "DIPLOMAT_S3_ENDPOINT_URL must start with https:// (or http:// on a private "
                "network), e.g. https://minio.internal:9000."
            )
        if bool(self.s3_access_key_id) != bool(self.s3_secret_access_key):
            raise ValueError(
                "Set both DIPLOMAT_S3_ACCESS_KEY_ID and DIPLOMAT_S3_SECRET_ACCESS_KEY, or "
                "neither (then the usual AWS credentials of the machine are used)."
            )

    def _check_verifactu_settings(self) -> None:
        """A Spanish issuer's records need its NIF and, to be sent for real, its certificate."""
        if not self.verifactu_enabled:
            return
        if not SPANISH_NIF.fullmatch(self.verifactu_issuer_nif):
            raise ValueError(
                f"DIPLOMAT_ORGANISATION_TAX_ID {self.organisation_tax_id!r} is not a Spanish "
                "NIF (9 letters and digits, optionally after ES): VERI*FACTU records need it."
            )
        if self.verifactu_sending and self.environment == "production":
            for path in (self.verifactu_certificate_file, self.verifactu_certificate_key_file):
                if path is not None and not path.is_file():
                    raise ValueError(f"The VERI*FACTU certificate file {path} does not exist.")
            if self.verifactu_certificate_file is None:
                raise ValueError(
                    "DIPLOMAT_VERIFACTU_CERTIFICATE_FILE is missing: the AEAT accepts records "
                    "only over a connection signed with the office's certificate."
                )

    def _check_certificate_settings(self) -> None:
        """Certificates carry a signature key and signatories: production needs real ones."""
        if not self.open_badges_private_key.strip():
            if self.environment == "production":
                raise ValueError(
                    "DIPLOMAT_OPEN_BADGES_PRIVATE_KEY is missing: set it to an Ed25519 private "
                    "key in PEM (`openssl genpkey -algorithm ed25519`) before starting in "
                    "production; it signs every Open Badges credential."
                )
            self.open_badges_private_key = _development_badge_key(self.var_dir)
        if not ed25519_key_is_valid(self.open_badges_private_key):
            raise ValueError(
                "DIPLOMAT_OPEN_BADGES_PRIVATE_KEY is not an Ed25519 private key in PEM."
            )
        if not self.open_badges_rsa_private_key.strip():
            if self.environment == "production":
                raise ValueError(
                    "DIPLOMAT_OPEN_BADGES_RSA_PRIVATE_KEY is missing: set it to an RSA private "
                    "key in PEM (`openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:3072`);"
                    " it signs the JWT form of every Open Badges credential (RS256)."
                )
            self.open_badges_rsa_private_key = _development_badge_key(
                self.var_dir, name="open_badges_rsa.pem", generate=_new_rsa_pem
            )
        if not rsa_key_is_valid(self.open_badges_rsa_private_key):
            raise ValueError(
                "DIPLOMAT_OPEN_BADGES_RSA_PRIVATE_KEY is not an RSA private key of 2048 bits or "
                "more in PEM."
            )
        for position, pem in enumerate(self.open_badges_past_public_keys, start=1):
            if not public_key_is_valid(pem):
                raise ValueError(
                    f"DIPLOMAT_OPEN_BADGES_PAST_PUBLIC_KEYS: key {position} is not an Ed25519 or "
                    "RSA public key in PEM."
                )
        demo_names = {s.name for s in DEMO_SIGNATORIES}
        if self.environment == "production" and any(
            s.name in demo_names for s in self.certificate_signatories
        ):
            raise ValueError(
                "Set DIPLOMAT_CERTIFICATE_SIGNATORIES (a JSON list of {name, title, signature}) "
                "before starting in production: the demo signatories are fictional."
            )

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
    def verifactu_issuer_nif(self) -> str:
        """The office's Spanish NIF: its tax id without the ES prefix and separators."""
        compact = re.sub(r"[\s.-]", "", self.organisation_tax_id).upper()
        return compact[2:] if compact.startswith("ES") and len(compact) == 11 else compact

    @property
    def verifactu_service_url(self) -> str:
        """The AEAT's web service that takes the records (VERI*FACTU, certificate login)."""
        if self.verifactu_endpoint:
            return self.verifactu_endpoint
        return VERIFACTU_SERVICE[self.verifactu_environment]

    @property
    def verifactu_qr_url(self) -> str:
        """The AEAT's checking service that the tax QR code points at."""
        return VERIFACTU_QR[self.verifactu_environment]

    @property
    def stripe_enabled(self) -> bool:
        """Card payments are offered only when both Stripe secrets are set."""
        return bool(self.stripe_secret_key and self.stripe_webhook_secret)


def iban_is_valid(iban: str) -> bool:
    """ISO 13616 as each country's registry entry says: length, structure, bank code, checksum."""
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    try:
        IBAN(iban.replace(" ", "").upper())
    except SchwiftyException:
        return False
    return True


def iban_in_sepa(iban: str) -> bool:
    """Whether a valid IBAN's bank is in the SEPA scheme (Gibraltar, the Crown Dependencies
    and Åland included), where a transfer needs no BIC."""
    from schwifty import IBAN

    return bool(IBAN(iban.replace(" ", "").upper()).in_sepa_zone)


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


def ed25519_key_is_valid(pem: str) -> bool:
    """Whether `pem` holds an Ed25519 private key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError):
        return False
    return isinstance(key, Ed25519PrivateKey)


def rsa_key_is_valid(pem: str) -> bool:
    """Whether `pem` holds an RSA private key of at least 2048 bits."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError):
        return False
    return isinstance(key, RSAPrivateKey) and key.key_size >= 2048


def public_key_is_valid(pem: str) -> bool:
    """Whether `pem` holds an Ed25519 or RSA public key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError):
        return False
    return isinstance(key, Ed25519PublicKey | RSAPublicKey)


def _new_ed25519_pem() -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode()
    )


def _new_rsa_pem() -> str:
    from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    return (
        generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode()
    )


def _development_badge_key(
    var_dir: Path,
    *,
    name: str = "open_badges_ed25519.pem",
    generate: Callable[[], str] = _new_ed25519_pem,
) -> str:
    """A key generated once into var/, so badges issued in development stay valid."""
    path = var_dir / name
    if path.exists():
        return path.read_text()
    var_dir.mkdir(parents=True, exist_ok=True)
    pem = generate()
    temporary = path.with_name(f"{path.name}.{secrets.token_hex(4)}.part")
    temporary.write_text(pem)
    temporary.chmod(0o600)
    # Two processes starting at once: the first file in place wins, both then read it.
    with contextlib.suppress(FileExistsError):
        os.link(temporary, path)
    temporary.unlink(missing_ok=True)
    return path.read_text()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings."""
    return Settings()
