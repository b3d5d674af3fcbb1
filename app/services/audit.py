"""Writing the audit log inside the same transaction as the change it records."""

from typing import Any

from sqlmodel import Session

from app.db import insert_new
from app.models import AuditEntry


def record_change(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write an audit entry in the session's transaction; the caller's commit makes it durable
    with the change, and a rollback takes it away with the change."""
    return insert_new(
        session,
        AuditEntry,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        before=before,
        after=after,
    )
