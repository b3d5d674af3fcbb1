"""The row writer: new rows built without the ORM's per-field events, and several rows
written in one statement."""

from collections.abc import Callable
from decimal import Decimal
from types import NoneType
from typing import Any, TypeVar, cast

from sqlalchemy import JSON, bindparam, func, insert, select, true
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.base import manager_of_class
from sqlmodel import Session, SQLModel

_ROW_INSERTS: dict[Any, Any] = {}
_RESERVATIONS: dict[Any, Any] = {}
_NULL_COLUMNS: dict[Any, tuple[list[str], frozenset[str]]] = {}
_ROW_DEFAULTS: dict[type, tuple[dict[str, Any], dict[str, Callable[[], Any]]]] = {}


Row = TypeVar("Row", bound=SQLModel)


def _defaults(model: type[SQLModel]) -> tuple[dict[str, Any], dict[str, Callable[[], Any]]]:
    """The model's plain defaults and default factories by field, looked up once per model."""
    found = _ROW_DEFAULTS.get(model)
    if found is None:
        plain: dict[str, Any] = {}
        factories: dict[str, Callable[[], Any]] = {}
        for name, info in model.model_fields.items():
            if info.default_factory is not None:
                if info.default_factory_takes_validated_data:
                    raise TypeError(f"{model.__name__}.{name}: a factory of validated data")
                factories[name] = cast(Callable[[], Any], info.default_factory)
            elif not info.is_required():
                if not isinstance(info.default, str | int | bool | Decimal | NoneType):
                    raise TypeError(f"{model.__name__}.{name}: a mutable default")
                plain[name] = info.default
        found = _ROW_DEFAULTS[model] = (plain, factories)
    return found


def new_row(model: type[Row], **values: Any) -> Row:
    """A new `model` row, not stored yet: `insert_rows` stores it.

    The object is built as the ORM builds one it loads: its fields written straight into
    it, the model's defaults filled in. The constructor of a table model sets each field
    through two layers of attribute events (a few hundred microseconds for an application);
    nothing listens to them on a row that is stored the moment it is made. An `id` may be
    given (one reserved from the table's sequence); without one the database assigns it.
    """
    fields = model.model_fields
    unknown = values.keys() - fields.keys()
    if unknown:
        raise TypeError(f"{model.__name__} has no field {', '.join(sorted(unknown))}")
    plain, factories = _defaults(model)
    row_values = {**plain, **values}
    for name, factory in factories.items():
        if name not in values:
            row_values[name] = factory()
    row = manager_of_class(model).new_instance()
    row.__dict__.update(row_values)
    object.__setattr__(row, "__pydantic_fields_set__", set(values))
    return row


def _insert_statement(shape: tuple[tuple[Any, tuple[str, ...]], ...]) -> Any:
    """The prepared statement that inserts one row into each table of `shape` (a table and
    the columns given) and returns the rows' ids.

    On PostgreSQL several rows go in one statement, each insert a common table expression:
    one trip to the database. Foreign keys are checked at the end of the statement, so a
    row may refer to another inserted with it (by an id reserved beforehand).
    """
    statement = _ROW_INSERTS.get(shape)
    if statement is None:
        if len(shape) == 1:
            table = shape[0][0]
            statement = insert(table).returning(table.c.id)
        else:
            inserted = [
                insert(table)
                .values({key: bindparam(f"r{n}_{key}", type_=table.c[key].type) for key in keys})
                .returning(table.c.id)
                .cte(f"inserted_{n}")
                for n, (table, keys) in enumerate(shape)
            ]
            joined: Any = inserted[0]
            for cte in inserted[1:]:
                joined = joined.join(cte, true())
            statement = select(*(cte.c.id for cte in inserted)).select_from(joined)
        _ROW_INSERTS[shape] = statement
    return statement


def _null_columns(table: Any) -> tuple[list[str], frozenset[str]]:
    """A table's column keys, and those whose None must be sent rather than left out: JSON
    (None is the JSON value null there) and columns with a server default."""
    found = _NULL_COLUMNS.get(table)
    if found is None:
        found = _NULL_COLUMNS[table] = (
            [column.key for column in table.columns],
            frozenset(
                column.key
                for column in table.columns
                if isinstance(column.type, JSON) or column.server_default is not None
            ),
        )
    return found


def insert_rows(session: Session, *rows: SQLModel) -> None:
    """Store new rows (from `new_row`) at once, in this order, and keep them in the session
    as stored, with their ids.

    One prepared `INSERT ... RETURNING id` per row instead of the unit of work's flush: the
    hot write paths (an application, its receipt e-mail, its audit entry) do less work per
    row. A column whose value is None is left out (it is NULL either way), so the statement
    carries only the values given. On PostgreSQL all the rows go in one statement. A
    constraint refuses them here, as a flush would; then none of them is stored.
    """
    if not rows:
        return
    values = []
    for row in rows:
        keys, keep_none = _null_columns(row.__table__)  # type: ignore[attr-defined]
        fields = row.__dict__
        values.append(
            {
                key: fields.get(key)
                for key in keys
                if fields.get(key) is not None or key in keep_none
            }
        )
    together = len(rows) > 1 and session.get_bind().dialect.name == "postgresql"
    groups = [list(range(len(rows)))] if together else [[n] for n in range(len(rows))]
    for group in groups:
        shape = tuple((rows[n].__table__, tuple(values[n])) for n in group)  # type: ignore[attr-defined]
        statement = _insert_statement(shape)
        if len(group) == 1:
            ids = [session.execute(statement, values[group[0]]).scalar_one()]
        else:
            params = {
                f"r{position}_{key}": value
                for position, n in enumerate(group)
                for key, value in values[n].items()
            }
            ids = list(session.execute(statement, params).one())
        for n, new_id in zip(group, ids, strict=True):
            rows[n].__dict__["id"] = new_id
    for row in rows:
        make_transient_to_detached(row)
        session.add(row)


def has_sequences(session: Session) -> bool:
    """Whether the session's database gives ids from sequences (PostgreSQL), so an id can
    be reserved before its row is written."""
    return session.get_bind().dialect.name == "postgresql"


def next_id(model: type[SQLModel]) -> Any:
    """The expression that takes the next id of `model`'s table from its sequence
    (PostgreSQL), to read along with other values (`reserve_id`)."""
    table = model.__table__  # type: ignore[attr-defined]
    return func.nextval(func.pg_get_serial_sequence(table.name, "id"))


def reserve_id(
    session: Session, model: type[SQLModel], *also: Any, params: dict[str, Any] | None = None
) -> tuple[Any, ...]:
    """An id for a new `model` row, then the values of the scalar expressions `also` (built
    once, with `params` bound), in one trip to the database.

    PostgreSQL takes the id from the table's sequence, so the rows that refer to the new
    one can be written in the same statement (`insert_rows`). Where there is no sequence
    (SQLite) the id is None, and comes with the insert.
    """
    sequence = has_sequences(session)
    key = (model, also, sequence)
    statement = _RESERVATIONS.get(key)
    if statement is None:
        columns = [next_id(model), *also] if sequence else list(also)
        statement = _RESERVATIONS[key] = select(*columns) if columns else None
    if statement is None:
        return (None,)
    found = tuple(session.execute(statement, params or {}).one())
    return found if sequence else (None, *found)
