"""All tables, imported here so the metadata is complete for Alembic and tests."""

from app.models.applications import (
    ApplicantGroup,
    Application,
    ApplicationStatus,
    NumberSequence,
    OutboxMessage,
)
from app.models.attendance import (
    AttendanceChange,
    AttendanceMark,
    AttendanceStatus,
    CheckInAttempt,
    CheckInCode,
    EligibilityOverride,
    FinalWork,
    FinalWorkStatus,
    MarkSource,
)
from app.models.audit import AuditEntry
from app.models.billing import BuyerBilling
from app.models.cancellations import (
    Cancellation,
    CancellationChannel,
    OfferStatus,
    PayeeKind,
    Refund,
    RefundMethod,
    RefundReason,
    RefundStatus,
    SeatOffer,
)
from app.models.certificates import (
    Certificate,
    CertificateRun,
    CertificateVersion,
    RateLimitWindow,
)
from app.models.course import Course, CourseSession, Edition, GroupTier, Module, SessionKind
from app.models.invoicing import Invoice, InvoiceKind, InvoiceLine, Payment, PaymentMethod
from app.models.jobs import BackgroundJob
from app.models.registry import IncomeGroup, Organisation
from app.models.staff import LoginAttempt, Role, StaffUser
from app.models.statements import BankStatement
from app.models.stripe import CardCheckout, CheckoutStatus, StripeEvent
from app.models.tax_records import TaxRecord, TaxRecordSubmission

__all__ = [
    "ApplicantGroup",
    "Application",
    "ApplicationStatus",
    "AttendanceChange",
    "AttendanceMark",
    "AttendanceStatus",
    "AuditEntry",
    "BackgroundJob",
    "BankStatement",
    "BuyerBilling",
    "Cancellation",
    "CancellationChannel",
    "CardCheckout",
    "Certificate",
    "CertificateRun",
    "CertificateVersion",
    "CheckInAttempt",
    "CheckInCode",
    "CheckoutStatus",
    "Course",
    "CourseSession",
    "Edition",
    "EligibilityOverride",
    "FinalWork",
    "FinalWorkStatus",
    "GroupTier",
    "IncomeGroup",
    "Invoice",
    "InvoiceKind",
    "InvoiceLine",
    "LoginAttempt",
    "MarkSource",
    "Module",
    "NumberSequence",
    "OfferStatus",
    "Organisation",
    "OutboxMessage",
    "PayeeKind",
    "Payment",
    "PaymentMethod",
    "RateLimitWindow",
    "Refund",
    "RefundMethod",
    "RefundReason",
    "RefundStatus",
    "Role",
    "SeatOffer",
    "SessionKind",
    "StaffUser",
    "StripeEvent",
    "TaxRecord",
    "TaxRecordSubmission",
]
