"""The demo: the Diploma's 2nd edition, an example 3rd edition, and a registry with every case."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, select

from app.clock import utcnow
from app.models import Edition, Organisation
from app.services.editions.editions import (
    DIPLOMA_LESSONS,
    EditionCreate,
    FeesIn,
    GroupTierIn,
    ModuleIn,
    SessionIn,
    create_edition,
)
from app.services.registry.organisations import OrganisationIn, create_organisation

DEMO_ACTOR = "demo loader"
TIMEZONE = "Europe/Madrid"

# (name, country, member, dues paid through): one row per case the fee rules distinguish.
# CURRENT stands for the dues year of the example next edition, so "up to date" members are
# up to date for both demo editions; 2023 is exactly the 2nd edition's dues year.
CURRENT = 0
DEMO_ORGANISATIONS: tuple[tuple[str, str, bool, int | None], ...] = (
    ("Barcelona City Council", "ESP", True, CURRENT),
    ("Mexico City Government", "MEX", True, 2023),
    ("Berlin Senate Chancellery", "DEU", True, CURRENT),
    ("City of Montréal", "CAN", True, CURRENT),
    ("Seoul Metropolitan Government", "KOR", True, CURRENT),
    ("Bogotá District Mayor's Office", "COL", True, 2022),
    ("eThekwini Municipality", "ZAF", True, 2021),
    ("Lilongwe City Council", "MWI", True, CURRENT),
    ("Addis Ababa City Administration", "ETH", True, CURRENT),
    ("Lusaka City Council", "ZMB", True, CURRENT),
    ("Kampala Capital City Authority", "UGA", True, 2022),
    ("Bristol City Council", "GBR", False, None),
    ("Kinshasa City Hall", "COD", False, None),
    ("Greater Amman Municipality", "JOR", False, None),
)

# What each day of the week in Barcelona holds: (lesson, kind, title, start, end, place).
_WEEK: tuple[tuple[int, str, str, time, time, str], ...] = (
    (1, "knowledge", "Why cities go abroad", time(9, 30), time(11, 0), "Metropolis secretariat"),
    (
        1,
        "skills",
        "Mapping your city's partners",
        time(11, 30),
        time(13, 0),
        "Metropolis secretariat",
    ),
    (
        1,
        "site_visit",
        "International relations at City Hall",
        time(15, 0),
        time(17, 30),
        "Plaça de Sant Jaume",
    ),
    (
        2,
        "knowledge",
        "Writing an international strategy",
        time(9, 30),
        time(11, 0),
        "Metropolis secretariat",
    ),
    (
        2,
        "skills",
        "Strategy workshop in peer groups",
        time(11, 30),
        time(13, 0),
        "Metropolis secretariat",
    ),
    (
        3,
        "knowledge",
        "Investment, lenders and foundations",
        time(9, 30),
        time(11, 0),
        "Metropolis secretariat",
    ),
    (
        3,
        "site_visit",
        "Innovation district and economic promotion",
        time(12, 0),
        time(15, 0),
        "22@ district",
    ),
    (
        4,
        "knowledge",
        "Indicators for international action",
        time(9, 30),
        time(11, 0),
        "Metropolis secretariat",
    ),
    (
        4,
        "skills",
        "Building your results framework",
        time(11, 30),
        time(13, 0),
        "Metropolis secretariat",
    ),
    (
        5,
        "knowledge",
        "Narratives for local and global audiences",
        time(9, 30),
        time(11, 0),
        "Metropolis secretariat",
    ),
    (
        5,
        "skills",
        "Presenting your final work",
        time(11, 30),
        time(13, 30),
        "Metropolis secretariat",
    ),
)


def demo_modules(start: date) -> list[ModuleIn]:
    """The five lessons over five days from `start`, with sessions of every kind."""
    zone = ZoneInfo(TIMEZONE)
    modules = []
    for position, (title, description) in enumerate(DIPLOMA_LESSONS, start=1):
        day = start + timedelta(days=position - 1)
        sessions = [
            SessionIn(
                kind=kind,
                title=session_title,
                starts_at=datetime.combine(day, begins, tzinfo=zone),
                ends_at=datetime.combine(day, ends, tzinfo=zone),
                place=place,
            )
            for lesson, kind, session_title, begins, ends, place in _WEEK
            if lesson == position
        ]
        modules.append(ModuleIn(title=title, description=description, sessions=sessions))
    return modules


_DESCRIPTION = (
    "A week in Barcelona for public officials who lead or support their city's international "
    "work. Five lessons combine expert talks, hands-on skills sessions and visits to the "
    "people and places behind Barcelona's international action, and each participant leaves "
    "with a piece of applied policy work for their own city. Run by Metropolis with the "
    "support of Barcelona City Council and the University of Melbourne."
)


def _demo_fees() -> FeesIn:
    return FeesIn(
        standard=Decimal("1500.00"),
        member=Decimal("1000.00"),
        waiver_percent=Decimal("100"),
        group_tiers=[
            GroupTierIn(min_size=2, percent=Decimal("10")),
            GroupTierIn(min_size=4, percent=Decimal("15")),
        ],
        are_examples=True,
    )


def second_edition() -> EditionCreate:
    """The 2nd edition as the brochure gives it (fees are examples: the brochure has none)."""
    start = date(2024, 11, 18)
    return EditionCreate(
        slug="diploma-2024",
        title="Metropolis Diploma in Internationalization for Local Authorities",
        edition_label="2nd edition",
        place="Barcelona",
        venue_format="In person",
        description=_DESCRIPTION,
        start_date=start,
        end_date=date(2024, 11, 22),
        dates_to_be_confirmed=True,
        timezone=TIMEZONE,
        capacity=30,
        currency="EUR",
        dues_year=2023,
        income_fy=2023,
        applications_open=datetime(2024, 5, 1, 9, 0, tzinfo=ZoneInfo(TIMEZONE)),
        applications_close=datetime.combine(start, time(0), tzinfo=ZoneInfo(TIMEZONE)),
        fees=_demo_fees(),
        modules=demo_modules(start),
    )


def example_next_edition(now: datetime) -> EditionCreate:
    """An example 3rd edition with applications open now, so the demo can be tried end to end."""
    start = date(now.year + 1, 11, 15)
    while start.weekday() != 0:  # a Monday, like the 2nd edition
        start += timedelta(days=1)
    return EditionCreate(
        slug=f"diploma-{start.year}",
        title="Metropolis Diploma in Internationalization for Local Authorities",
        edition_label="3rd edition (example)",
        place="Barcelona",
        venue_format="In person",
        description=_DESCRIPTION,
        start_date=start,
        end_date=start + timedelta(days=4),
        dates_to_be_confirmed=True,
        timezone=TIMEZONE,
        capacity=30,
        currency="EUR",
        dues_year=start.year - 1,
        income_fy=2026,
        applications_open=now,
        applications_close=datetime.combine(
            start - timedelta(days=45), time(0), tzinfo=ZoneInfo(TIMEZONE)
        ),
        fees=_demo_fees(),
        modules=demo_modules(start),
    )


def database_is_empty(session: Session) -> bool:
    """No edition and no organisation yet."""
    editions = session.exec(select(func.count()).select_from(Edition)).one()
    organisations = session.exec(select(func.count()).select_from(Organisation)).one()
    return editions == 0 and organisations == 0


def load_demo(session: Session, *, now: datetime | None = None) -> list[str]:
    """Load the demo editions and registry; existing rows are kept. Returns what was added."""
    now = (now or utcnow()).astimezone(UTC)
    added = []
    next_edition = example_next_edition(now)
    for data in (second_edition(), next_edition):
        if session.exec(select(Edition.id).where(Edition.slug == data.slug)).first() is None:
            create_edition(session, data=data, actor=DEMO_ACTOR)
            added.append(f"edition {data.slug}")
    for name, country, is_member, dues in DEMO_ORGANISATIONS:
        exists = session.exec(
            select(Organisation.id).where(
                Organisation.name == name, Organisation.country == country
            )
        ).first()
        if exists is None:
            create_organisation(
                session,
                data=OrganisationIn(
                    name=name,
                    country=country,
                    is_member=is_member,
                    dues_paid_through=next_edition.dues_year if dues == CURRENT else dues,
                ),
                actor=DEMO_ACTOR,
            )
            added.append(f"organisation {name}")
    return added
