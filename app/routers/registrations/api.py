"""The JSON API for applications, groups and admission decisions."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from sqlmodel import Session

from app.models import Application, ApplicationStatus, Edition
from app.routers.teaching.api import application_attendance
from app.routers.teaching.final_work import api_eligibility, api_final_work
from app.services.billing import buyers
from app.services.billing.payments import participant_balance, participant_invoices
from app.services.billing.quotes import stored_quote_in_english
from app.services.billing.refunds import refund_summary, refunds_of
from app.services.certificates.issuing import summary as certificate_summary
from app.services.editions.editions import get_edition, local_time
from app.services.errors import NotFound
from app.services.registrations import applications as service
from app.services.registrations.review import ApplicationFilters, list_applications
from app.services.registry.countries import country_name
from app.web.dependencies import ApiAdmin, SellerDep, SessionDep, SettingsDep, StorageDep
from app.web.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["applications"])


class ApplicationCreated(BaseModel):
    """A stored application."""

    id: int
    reference: str
    status: str


class GroupIn(BaseModel):
    """A coordinator asks for a group code."""

    model_config = ConfigDict(extra="forbid")

    organisation_id: int
    contact_email: EmailStr = Field(max_length=254)
    contact_name: str = Field(default="", max_length=200)


class GroupCreated(BaseModel):
    """The code colleagues enter when they apply."""

    code: str


class DecisionIn(BaseModel):
    """An administrator's decision on an application."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["admit", "waitlist", "reject"]
    note: str = Field(default="", max_length=2000)
    version: int | None = Field(
        default=None, description="The version the decision was made on; a stale one is 409."
    )


class ApplicationSummary(BaseModel):
    """An application in a list."""

    id: int
    reference: str
    status: str
    version: int
    given_name: str
    family_name: str
    email: str
    organisation_id: int | None
    organisation_name: str
    country: str
    country_name: str
    group_id: int | None
    quoted_total: str
    submitted_at: datetime


class ApplicationList(BaseModel):
    """A page of applications."""

    items: list[ApplicationSummary]
    total: int
    page: int
    per_page: int


class ApplicationDetail(ApplicationSummary):
    """Everything about one application that the office handles."""

    edition: str
    job_title: str
    department: str
    years_in_international_affairs: int | None
    motivation: str
    has_cv: bool
    language: str
    quote: dict[str, Any]
    amount_due: str
    amount_paid: str
    decided_at: datetime | None
    decided_by: str | None
    decision_note: str
    fee_waiver_number: str | None
    invoices: list[dict[str, Any]]
    refunds: list[dict[str, Any]]
    attendance: dict[str, Any] | None
    final_work: dict[str, Any] | None
    certificate: dict[str, Any] | None
    eligibility: dict[str, Any] | None = None


def _summary(application: Application) -> dict[str, Any]:
    return {
        "id": application.id,
        "reference": application.reference,
        "status": application.status,
        "version": application.version,
        "given_name": application.given_name,
        "family_name": application.family_name,
        "email": application.email,
        "organisation_id": application.organisation_id,
        "organisation_name": application.organisation_name,
        "country": application.country,
        "country_name": country_name(application.country),
        "group_id": application.group_id,
        "quoted_total": f"{application.quoted_total:.2f}",
        "submitted_at": application.submitted_at,
    }


def application_detail(session: Session, application: Application) -> ApplicationDetail:
    """The full view of one application."""
    edition = get_edition_by_id(session, application.edition_id)
    balance = participant_balance(session, application.id or 0)
    return ApplicationDetail.model_validate(
        {
            **_summary(application),
            "submitted_at": local_time(edition, application.submitted_at),
            "edition": edition.slug,
            "job_title": application.job_title,
            "department": application.department,
            "years_in_international_affairs": application.years_in_international_affairs,
            "motivation": application.motivation,
            "has_cv": application.cv_key is not None,
            "language": application.language,
            "quote": stored_quote_in_english(application.quote),
            "amount_due": f"{balance.due:.2f}",
            "amount_paid": f"{balance.paid:.2f}",
            "decided_at": application.decided_at,
            "decided_by": application.decided_by,
            "decision_note": application.decision_note,
            "fee_waiver_number": application.fee_waiver_number,
            "invoices": [
                {
                    "number": invoice.number,
                    "kind": invoice.kind,
                    "purpose": invoice.purpose,
                    "issue_date": invoice.issue_date.isoformat(),
                    "due_date": invoice.due_date.isoformat(),
                    "total": f"{invoice.total:.2f}",
                    "status": invoice.status,
                }
                for invoice in participant_invoices(session, application.id or 0)
            ],
            "refunds": [refund_summary(r) for r in refunds_of(session, application.id or 0)],
            "attendance": application_attendance(session, application),
            "final_work": api_final_work(session, application),
            "eligibility": api_eligibility(session, application),
            "certificate": certificate_summary(session, application.id or 0),
        }
    )


def get_edition_by_id(session: Session, edition_id: int) -> Edition:
    """The edition an application belongs to (the foreign key guarantees it exists)."""
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise NotFound(f"There is no edition {edition_id}.")
    return edition


@router.post(
    "/editions/{slug}/applications",
    response_model=ApplicationCreated,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(409),
)
def submit(
    slug: str,
    data: service.ApplicationIn,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
) -> ApplicationCreated:
    """Apply to an edition (a CV can be added through the form); the same e-mail twice is 409."""
    application = service.submit_application(
        session,
        edition_slug=slug,
        data=data,
        cv=None,
        cv_filename=None,
        storage=storage,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
    ).application
    return ApplicationCreated(
        id=application.id or 0, reference=application.reference, status=application.status
    )


@router.post(
    "/editions/{slug}/groups", response_model=GroupCreated, status_code=status.HTTP_201_CREATED
)
def create_group(
    slug: str, data: GroupIn, session: SessionDep, settings: SettingsDep
) -> dict[str, str]:
    """A group code for colleagues from one organisation; the coordinator gets it by e-mail."""
    group, _ = service.create_group(
        session,
        edition_slug=slug,
        organisation_id=data.organisation_id,
        contact_email=str(data.contact_email),
        contact_name=data.contact_name,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
    )
    return {"code": group.code}


@router.get("/applications", response_model=ApplicationList, responses=error_responses(404))
def applications(
    session: SessionDep,
    admin: ApiAdmin,
    edition: Annotated[str | None, Query(max_length=80)] = None,
    status: Annotated[ApplicationStatus | None, Query()] = None,
    q: Annotated[str, Query(max_length=100)] = "",
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Applications, filtered by edition and status, oldest first."""
    edition_id = get_edition(session, edition).id if edition else None
    found = list_applications(
        session,
        ApplicationFilters(
            edition_id=edition_id,
            status=status.value if status else "",
            q=q,
            page=page,
            per_page=per_page,
        ),
    )
    return {
        "items": [_summary(a) for a in found.rows],
        "total": found.total,
        "page": found.page,
        "per_page": found.per_page,
    }


@router.get("/applications/{application_id}", response_model=ApplicationDetail)
def application(application_id: int, session: SessionDep, admin: ApiAdmin) -> ApplicationDetail:
    """One application with its quote and, as they come, invoices, attendance and certificate."""
    return application_detail(session, service.get_application(session, application_id))


@router.patch(
    "/applications/{application_id}/billing",
    response_model=buyers.BillingIn,
    responses=error_responses(404),
)
def set_billing(
    application_id: int, data: buyers.BillingIn, session: SessionDep, admin: ApiAdmin
) -> dict[str, Any]:
    """Who the application's next invoice is made out to; issued invoices keep their copy.
    A tax id that fails its country's check is refused (422, naming `tax_id`)."""
    row = buyers.save_application_billing(
        session,
        application=service.get_application(session, application_id),
        data=data,
        actor=admin.email,
    )
    return buyers.billing_values(row)


@router.post(
    "/applications/{application_id}/decision",
    response_model=ApplicationDetail,
    responses=error_responses(409),
)
def decide(
    application_id: int,
    data: DecisionIn,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    seller: SellerDep,
    admin: ApiAdmin,
) -> ApplicationDetail:
    """Admit, waitlist or reject; admitting invoices a paying participant (not in a group) and
    confirms a waived one at once."""
    decided = service.decide(
        session,
        application_id=application_id,
        decision=data.decision,
        actor=admin,
        note=data.note,
        expected_version=data.version,
        storage=storage,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
        seller=seller,
    )
    return application_detail(session, decided)
