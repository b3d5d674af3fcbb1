"""Gap-free number sequences (invoices, credit notes, fee-waiver confirmations)."""

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from app.models import NumberSequence


def next_number(session: Session, *, series: str, year: int) -> int:
    """The next number of a series in a year, inside the caller's transaction.

    One atomic upsert increments the counter and holds its row lock (PostgreSQL) or the
    database write lock (SQLite) until the caller commits: concurrent callers queue, and a
    rolled-back caller gives its number back, so numbers have no gaps and never repeat.
    """
    table: Table = NumberSequence.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .values(series=series, year=year, last=1)
        .on_conflict_do_update(
            index_elements=[table.c.series, table.c.year], set_={"last": table.c.last + 1}
        )
        .returning(table.c.last)
    )
    number: int = session.execute(statement).scalar_one()
    return number


def format_number(prefix: str, year: int, number: int) -> str:
    """`2024-00001`, or with a prefix `W2024-00001`."""
    return f"{prefix}{year}-{number:05d}"
