"""All tables, imported here so the metadata is complete for Alembic and tests."""

from app.models.applications import (
    ApplicantGroup,
    Application,
    ApplicationStatus,
    NumberSequence,
    OutboxMessage,
)
from app.models.audit import AuditEntry
from app.models.course import Course, CourseSession, Edition, GroupTier, Module, SessionKind
from app.models.registry import IncomeGroup, Organisation
from app.models.staff import LoginAttempt, Role, StaffUser

__all__ = [
    "ApplicantGroup",
    "Application",
    "ApplicationStatus",
    "AuditEntry",
    "Course",
    "CourseSession",
    "Edition",
    "GroupTier",
    "IncomeGroup",
    "LoginAttempt",
    "Module",
    "NumberSequence",
    "Organisation",
    "OutboxMessage",
    "Role",
    "SessionKind",
    "StaffUser",
]
