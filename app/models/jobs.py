"""Background jobs: work a person started (a bulk certificate run, a statement import).

One row per job, claimed by exactly one worker at a time; its heartbeat tells the other
workers whether the claimant is still alive.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.models.types import UTCDateTime


class BackgroundJob(SQLModel, table=True):
    """A unit of background work with its input, its claimant and its outcome."""

    __tablename__ = "background_job"
    # Workers look for the oldest claimable job by status.
    __table_args__ = (Index("ix_background_job_status_id", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_type=String(40))
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    # queued -> running -> done | failed; `cancelled` when a person started the work anew.
    status: str = Field(default="queued", sa_type=String(12))
    created_by: str = Field(sa_type=String(254))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    claimed_by: str | None = Field(default=None, sa_type=String(120))
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Bumped by the claimant while it works: a running job silent for long has lost its worker.
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    attempts: int = 0
    result: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
