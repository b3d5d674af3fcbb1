"""The JSON API for attendance: one mark per participant and session, and the matrix."""

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlmodel import Session

from app.models import Application, AttendanceMark, AttendanceStatus, Edition, MarkSource
from app.services.editions.editions import get_edition, local_time
from app.services.teaching import attendance as service
from app.web.dependencies import ApiStaff, SessionDep, SettingsDep
from app.web.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["attendance"])


class MarkIn(BaseModel):
    """A tutor's mark."""

    model_config = ConfigDict(extra="forbid")

    status: AttendanceStatus


class MarkOut(BaseModel):
    """The current mark after the call; `changed` is false when it already said that."""

    session_id: int
    application_id: int
    status: str
    previous_status: str | None
    changed: bool
    source: str
    marked_by: str
    marked_at: datetime


class SessionMarkOut(BaseModel):
    """One cell of the matrix: a participant's mark at one session (null: not marked)."""

    session_id: int
    status: str | None
    marked_by: str | None
    marked_at: datetime | None


class ModuleStateOut(BaseModel):
    """A participant's progress in one module."""

    module_id: int
    position: int
    state: str
    present: int
    missed: int
    unmarked: int
    total: int
    required: int


class ParticipantRowOut(BaseModel):
    """One participant's row of the matrix."""

    application_id: int
    reference: str
    name: str
    organisation: str
    attended: int
    total: int
    complete: bool
    at_risk: bool
    sessions: list[SessionMarkOut]
    modules: list[ModuleStateOut]


class MatrixSessionOut(BaseModel):
    """A session, a column of the matrix."""

    id: int
    kind: str
    title: str
    starts_at: datetime
    ends_at: datetime


class MatrixModuleOut(BaseModel):
    """A module with its sessions."""

    id: int
    position: int
    title: str
    sessions: list[MatrixSessionOut]


class MatrixOut(BaseModel):
    """Participants x sessions, and per module; `attendance_min_percent` is the rule."""

    edition: str
    attendance_min_percent: int
    modules: list[MatrixModuleOut]
    participants: list[ParticipantRowOut]


def _module_state(m: service.ModuleProgress) -> dict[str, Any]:
    return {
        "module_id": m.module_id,
        "position": m.position,
        "state": m.state,
        "present": m.present,
        "missed": m.missed,
        "unmarked": m.unmarked,
        "total": m.total,
        "required": m.required,
    }


def application_attendance(session: Session, application: Application) -> dict[str, Any] | None:
    """One application's attendance for `GET /applications/{id}`; None before confirmation."""
    progress = service.participant_progress(session, application)
    if application.status not in service.SHEET_STATUSES and not progress.marks:
        return None
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return {
        "attended": progress.attended,
        "total": progress.total,
        "complete": progress.complete,
        "at_risk": progress.at_risk,
        "modules": [_module_state(m) for m in progress.modules],
        "sessions": [
            _mark_cell(edition, session_id, mark)
            for session_id, mark in sorted(progress.marks.items())
        ],
    }


def _mark_cell(edition: Edition, session_id: int, mark: AttendanceMark | None) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "status": mark.status if mark else None,
        "marked_by": mark.marked_by if mark else None,
        "marked_at": local_time(edition, mark.marked_at) if mark else None,
    }


@router.put(
    "/sessions/{session_id}/attendance/{application_id}",
    response_model=MarkOut,
    responses=error_responses(409),
)
def put_mark(
    session_id: int,
    application_id: int,
    data: MarkIn,
    session: SessionDep,
    settings: SettingsDep,
    user: ApiStaff,
) -> dict[str, Any]:
    """Mark a confirmed participant present, absent or excused at a session (last write wins)."""
    outcome = service.mark_attendance(
        session,
        course_session_id=session_id,
        application_id=application_id,
        status=data.status.value,
        actor=user.email,
        source=MarkSource.api,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
    )
    edition = service.edition_of(session, service.get_course_session(session, session_id))
    mark = outcome.mark
    return {
        "session_id": session_id,
        "application_id": application_id,
        "status": mark.status,
        "previous_status": outcome.previous_status,
        "changed": outcome.change is not None,
        "source": mark.source,
        "marked_by": mark.marked_by,
        "marked_at": local_time(edition, mark.marked_at),
    }


@router.get("/editions/{slug}/attendance", response_model=MatrixOut)
def matrix(slug: str, session: SessionDep, user: ApiStaff) -> dict[str, Any]:
    """Every confirmed participant's marks per session and progress per module."""
    edition = get_edition(session, slug)
    found = service.attendance_matrix(session, edition)
    sessions = found.sessions
    return {
        "edition": edition.slug,
        "attendance_min_percent": edition.attendance_min_percent,
        "modules": [
            {
                "id": module.id,
                "position": module.position,
                "title": module.title,
                "sessions": [
                    {
                        "id": s.id,
                        "kind": s.kind,
                        "title": s.title,
                        "starts_at": local_time(edition, s.starts_at),
                        "ends_at": local_time(edition, s.ends_at),
                    }
                    for s in found.sessions_by_module.get(module.id or 0, [])
                ],
            }
            for module in found.modules
        ],
        "participants": [
            {
                "application_id": row.application.id,
                "reference": row.application.reference,
                "name": row.application.full_name,
                "organisation": row.application.organisation_name,
                "attended": row.attended,
                "total": row.total,
                "complete": row.complete,
                "at_risk": row.at_risk,
                "sessions": [
                    _mark_cell(edition, s.id or 0, row.marks.get(s.id or 0)) for s in sessions
                ],
                "modules": [_module_state(m) for m in row.modules],
            }
            for row in found.rows
        ],
    }
