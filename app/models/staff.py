"""Staff accounts and the record of login attempts."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.models.types import UTCDateTime


class Role(StrEnum):
    """What a staff member may do."""

    admin = "admin"
    tutor = "tutor"


class StaffUser(SQLModel, table=True):
    """A course administrator or tutor who logs in with e-mail and password."""

    __tablename__ = "staff_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_type=String(254), unique=True)
    full_name: str = Field(default="", sa_type=String(200))
    password_hash: str = Field(sa_type=String(200))
    role: str = Field(sa_type=String(16))
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Carried in each staff session's cookie; logging out moves it on, so a copy of any of
    # the member's cookies made before stops working.
    session_generation: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class LoginAttempt(SQLModel, table=True):
    """One login attempt, kept to throttle guessing across every worker."""

    __tablename__ = "login_attempt"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_type=String(254), index=True)
    address: str = Field(sa_type=String(64), index=True)
    succeeded: bool
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
