"""The audit log: who changed what, when, from what to what."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.models.types import UTCDateTime


class AuditEntry(SQLModel, table=True):
    """One state change, with the values before and after."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor: str = Field(sa_type=String(254))
    action: str = Field(sa_type=String(80))
    entity: str = Field(sa_type=String(40))
    entity_id: str = Field(sa_type=String(80), index=True)
    before: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    after: dict[str, Any] | None = Field(default=None, sa_type=JSON)
