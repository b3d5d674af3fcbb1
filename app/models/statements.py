"""Bank statements uploaded through the API: kept as sent, previewed, then confirmed once."""

from datetime import datetime

from sqlalchemy import Column, String, Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.models.types import UTCDateTime


class BankStatement(SQLModel, table=True):
    """A statement file as uploaded; its lines are read again from it when confirmed."""

    __tablename__ = "bank_statement"

    id: int | None = Field(default=None, primary_key=True)
    format: str = Field(sa_type=String(12))
    filename: str = Field(default="", sa_type=String(200))
    content: str = Field(sa_column=Column(Text, nullable=False))
    uploaded_by: str = Field(sa_type=String(254))
    uploaded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
