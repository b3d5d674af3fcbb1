"""The migrations build exactly the schema the models describe, on both databases."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func
from sqlmodel import Session, SQLModel, select

import app.models  # noqa: F401 - every table on the metadata
from app.models import IncomeGroup


def test_upgrade_head_gives_the_models_schema(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_first_migration_loads_the_world_bank_income_groups(session: Session) -> None:
    low_income_fy2023 = session.exec(
        select(func.count())
        .select_from(IncomeGroup)
        .where(IncomeGroup.fiscal_year == 2023, IncomeGroup.group == "L")
    ).one()
    years = session.exec(select(IncomeGroup.fiscal_year).distinct()).all()
    assert low_income_fy2023 == 28
    assert sorted(years) == [2022, 2023, 2024, 2025, 2026]


def test_sqlite_runs_with_wal_and_a_busy_timeout(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
