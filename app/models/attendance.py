"""Attendance marks per session, self check-in codes, final work, and eligibility overrides."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.clock import utcnow
from app.models.types import UTCDateTime


class AttendanceStatus(StrEnum):
    """A tutor's mark for one participant at one session."""

    present = "present"
    absent = "absent"
    excused = "excused"


class MarkSource(StrEnum):
    """Where a mark came from."""

    sheet = "sheet"
    check_in = "check_in"
    api = "api"
    undo = "undo"


class AttendanceMark(SQLModel, table=True):
    """The current mark of one participant at one session (last write wins)."""

    __tablename__ = "attendance_mark"
    __table_args__ = (UniqueConstraint("course_session_id", "application_id"),)

    id: int | None = Field(default=None, primary_key=True)
    course_session_id: int = Field(foreign_key="course_session.id", index=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    status: str = Field(sa_type=String(12))
    source: str = Field(default=MarkSource.sheet.value, sa_type=String(12))
    marked_by: str = Field(sa_type=String(254))
    marked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AttendanceChange(SQLModel, table=True):
    """Every change of a mark, in order: who marked what when, and what undo goes back to."""

    __tablename__ = "attendance_change"

    id: int | None = Field(default=None, primary_key=True)
    course_session_id: int = Field(foreign_key="course_session.id", index=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    # None when the change cleared the mark (an undo back to "not marked").
    status: str | None = Field(default=None, sa_type=String(12))
    previous_status: str | None = Field(default=None, sa_type=String(12))
    source: str = Field(default=MarkSource.sheet.value, sa_type=String(12))
    marked_by: str = Field(sa_type=String(254))
    marked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class CheckInCode(SQLModel, table=True):
    """A short code a tutor shows during a session so participants can mark themselves present."""

    __tablename__ = "check_in_code"

    id: int | None = Field(default=None, primary_key=True)
    course_session_id: int = Field(foreign_key="course_session.id", unique=True)
    code: str = Field(sa_type=String(12))
    created_by: str = Field(sa_type=String(254))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CheckInAttempt(SQLModel, table=True):
    """One code entered in a portal: counted when wrong, and used to throttle guessing."""

    __tablename__ = "check_in_attempt"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    course_session_id: int | None = Field(default=None, foreign_key="course_session.id")
    code_tried: str = Field(sa_type=String(40))
    succeeded: bool
    reason: str = Field(default="", sa_type=String(200))
    attempted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class FinalWorkStatus(StrEnum):
    """Where a participant's final work stands."""

    submitted = "submitted"
    presented = "presented"
    accepted = "accepted"
    rejected = "rejected"


class FinalWork(SQLModel, table=True):
    """A participant's final work (a PDF) and the tutor's assessment of it."""

    __tablename__ = "final_work"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", unique=True)
    file_key: str | None = Field(default=None, sa_type=String(200))
    filename: str | None = Field(default=None, sa_type=String(200))
    size_bytes: int | None = None
    uploaded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(default=FinalWorkStatus.submitted.value, sa_type=String(12))
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    assessed_by: str | None = Field(default=None, sa_type=String(254))
    assessed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    version: int = 1


class EligibilityOverride(SQLModel, table=True):
    """An administrator's written decision that a participant is eligible despite the rules."""

    __tablename__ = "eligibility_override"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", unique=True)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    granted_by: str = Field(sa_type=String(254))
    granted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
