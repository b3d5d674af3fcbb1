"""Who an invoice is made out to: the structured buyer data an e-invoice needs."""

from datetime import datetime

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.models.types import UTCDateTime


class BuyerBilling(SQLModel, table=True):
    """The buyer the next invoice of an application or a group copies (one row per payer)."""

    __tablename__ = "buyer_billing"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int | None = Field(
        default=None, foreign_key="application.id", unique=True, nullable=True
    )
    group_id: int | None = Field(
        default=None, foreign_key="applicant_group.id", unique=True, nullable=True
    )
    legal_name: str = Field(sa_type=String(200))
    # As the buyer's country writes it, without a country prefix (e.g. a Spanish NIF).
    tax_id: str = Field(default="", sa_type=String(40))
    address_line: str = Field(sa_type=String(300))
    city: str = Field(sa_type=String(100))
    postcode: str = Field(default="", sa_type=String(20))
    country: str = Field(sa_type=String(3))  # ISO 3166-1 alpha-3, like every stored country
    buyer_reference: str = Field(default="", sa_type=String(100))
    purchase_order: str = Field(default="", sa_type=String(100))
    # The three DIR3 codes of a Spanish public body (FACe routes by them).
    dir3_accounting_office: str = Field(default="", sa_type=String(20))
    dir3_managing_body: str = Field(default="", sa_type=String(20))
    dir3_processing_unit: str = Field(default="", sa_type=String(20))
    leitweg_id: str = Field(default="", sa_type=String(50))
    # "scheme:identifier", e.g. "0208:0123456789" or "9920:ESP1234567A".
    peppol_id: str = Field(default="", sa_type=String(100))
    # The buyer asks for the UBL e-invoice with the invoice e-mail.
    wants_e_invoice: bool = False
    updated_by: str = Field(sa_type=String(254))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
