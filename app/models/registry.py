"""The member registry and the World Bank income classification."""

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.models.types import UTCDateTime


class Organisation(SQLModel, table=True):
    """A city or metropolitan government, member of the network or not."""

    __table_args__ = (UniqueConstraint("name", "country"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(200), index=True)
    country: str = Field(sa_type=String(3), index=True)  # ISO 3166-1 alpha-3 (World Bank codes)
    is_member: bool = False
    dues_paid_through: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IncomeGroup(SQLModel, table=True):
    """A country's World Bank income group in one fiscal year (L, LM, UM, H)."""

    __tablename__ = "income_group"

    fiscal_year: int = Field(primary_key=True)
    iso3: str = Field(sa_type=String(3), primary_key=True)
    name: str = Field(sa_type=String(120))
    group: str = Field(sa_type=String(2))
