"""All tables, imported here so the metadata is complete for Alembic and tests."""

from app.models.applications import (
    ApplicantGroup,
    Application,
    ApplicationStatus,
    NumberSequence,
    OutboxMessage,
)
from app.models.audit import AuditEntry
from app.models.cancellations import (
    Cancellation,
    CancellationChannel,
    OfferStatus,
    Refund,
    RefundMethod,
    RefundStatus,
    SeatOffer,
)
from app.models.course import Course, CourseSession, Edition, GroupTier, Module, SessionKind
from app.models.invoicing import Invoice, InvoiceKind, InvoiceLine, Payment, PaymentMethod
from app.models.registry import IncomeGroup, Organisation
from app.models.staff import LoginAttempt, Role, StaffUser
from app.models.stripe import CardCheckout, CheckoutStatus, StripeEvent

__all__ = [
    "ApplicantGroup",
    "Application",
    "ApplicationStatus",
    "AuditEntry",
    "Cancellation",
    "CancellationChannel",
    "CardCheckout",
    "CheckoutStatus",
    "Course",
    "CourseSession",
    "Edition",
    "GroupTier",
    "IncomeGroup",
    "Invoice",
    "InvoiceKind",
    "InvoiceLine",
    "LoginAttempt",
    "Module",
    "NumberSequence",
    "OfferStatus",
    "Organisation",
    "OutboxMessage",
    "Payment",
    "PaymentMethod",
    "Refund",
    "RefundMethod",
    "RefundStatus",
    "Role",
    "SeatOffer",
    "SessionKind",
    "StaffUser",
    "StripeEvent",
]
