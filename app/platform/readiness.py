"""Whether this process can serve: the database reachable, migrated to the code's head, and
the file store writable. Liveness (the process answers at all) is asked separately."""

import secrets
from functools import lru_cache

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from app.db import alembic_config
from app.platform.storage import Storage


@lru_cache
def code_heads() -> frozenset[str]:
    """The migration heads this code expects the database to be at."""
    return frozenset(ScriptDirectory.from_config(alembic_config(url="unused")).get_heads())


def check_database(engine: Engine) -> tuple[str, str]:
    """("up" and the database at the head), or what is wrong."""
    try:
        with engine.connect() as connection:
            found = {
                row[0]
                for row in connection.execute(text("SELECT version_num FROM alembic_version"))
            }
    except SQLAlchemyError:
        # Either unreachable, or reachable with no alembic_version table: tell them apart.
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return "down", "unknown"
        return "up", "not migrated"
    return "up", "at head" if found == code_heads() else "behind"


def check_storage(storage: Storage) -> str:
    """ "writable" once a small probe file was stored and removed, else "read-only"."""
    key = f"readiness/probe-{secrets.token_hex(6)}"
    try:
        storage.put(key, b"ok")
        storage.delete(key)
    except Exception:
        return "read-only"
    return "writable"


def readiness(engine: Engine, storage: Storage) -> tuple[bool, dict[str, str]]:
    """Whether to send traffic here, and each check's finding."""
    database, migrations = check_database(engine)
    files = check_storage(storage)
    ready = database == "up" and migrations == "at head" and files == "writable"
    return ready, {"database": database, "migrations": migrations, "storage": files}
