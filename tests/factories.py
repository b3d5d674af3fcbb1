"""Small builders for test data."""

from datetime import date
from typing import Any

from sqlmodel import Session

from app.models import Edition, Organisation
from app.services.editions import EditionCreate, create_edition
from app.services.registry import OrganisationIn, create_organisation


def edition_payload(**overrides: Any) -> dict[str, Any]:
    """A valid body for POST /api/v1/editions."""
    body: dict[str, Any] = {
        "slug": "diploma-test",
        "title": "Diploma in Internationalization",
        "place": "Barcelona",
        "start_date": "2024-11-18",
        "end_date": "2024-11-22",
        "timezone": "Europe/Madrid",
        "capacity": 30,
        "currency": "EUR",
        "dues_year": 2023,
        "income_fy": 2023,
        "fees": {
            "standard": "1500.00",
            "member": "1000.00",
            "group_tiers": [{"min_size": 2, "percent": "10"}],
        },
    }
    body.update(overrides)
    return body


def make_edition(session: Session, **overrides: Any) -> Edition:
    """An edition stored through the service."""
    return create_edition(
        session, data=EditionCreate.model_validate(edition_payload(**overrides)), actor="test"
    )


def make_organisation(
    session: Session,
    name: str = "Lilongwe City Council",
    country: str = "MWI",
    is_member: bool = True,
    dues_paid_through: int | None = 2023,
) -> Organisation:
    """An organisation stored through the service."""
    return create_organisation(
        session,
        data=OrganisationIn(
            name=name, country=country, is_member=is_member, dues_paid_through=dues_paid_through
        ),
        actor="test",
    )


START = date(2024, 11, 18)


def application_payload(**overrides: Any) -> dict[str, Any]:
    """A valid body for POST /api/v1/editions/{slug}/applications (needs an open edition)."""
    body: dict[str, Any] = {
        "given_name": "Ama",
        "family_name": "Banda",
        "email": "ama.banda@lilongwe.example",
        "country": "MWI",
        "organisation_name": "Lilongwe City Council",
        "job_title": "International relations officer",
        "department": "Mayor's office",
        "years_in_international_affairs": 4,
        "motivation": "I coordinate our city's partnerships and want to build a strategy. " * 2,
        "consent": True,
    }
    body.update(overrides)
    return body


def open_edition(session: Session, **overrides: Any) -> Edition:
    """An edition in the future whose applications are open now."""
    values: dict[str, Any] = {
        "slug": "diploma-open",
        "start_date": "2099-11-16",
        "end_date": "2099-11-20",
        "applications_open": "2020-01-01T00:00:00+00:00",
    }
    values.update(overrides)
    return make_edition(session, **values)
