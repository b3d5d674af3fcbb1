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
