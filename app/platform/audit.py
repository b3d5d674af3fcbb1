"""Writing the audit log inside the same transaction as the change it records."""

from typing import Any

from sqlmodel import Session

from app.models import AuditEntry
from app.platform.rows import insert_rows, new_row


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
    entry = audit_entry(
        actor=actor, action=action, entity=entity, entity_id=entity_id, before=before, after=after
    )
    insert_rows(session, entry)
    return entry


def audit_entry(
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """The audit entry `record_change` writes, not stored yet: `insert_rows` stores it in
    the same statement as the change it records, where the database allows."""
    return new_row(
        AuditEntry,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        before=before,
        after=after,
    )
