"""Bulk issuing in the background, with its progress in the database.

The run's row is the only state: any worker can answer the progress bar's polls, whichever
worker runs the thread. A run whose thread died (the process was stopped) stops counting as
running once its heartbeat is stale, so a new run can start; certificates it issued stay
issued, and the new run issues only the rest.
"""

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from app.db import utcnow, writer_engine
from app.models import CertificateRun, Edition
from app.services.audit import record_change
from app.services.certificates import CertificateOptions, issue_for_edition
from app.services.errors import Conflict, NotFound
from app.services.storage import Storage

log = logging.getLogger("diplomat.certificates")

RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
INTERRUPTED = "interrupted"
# Longer than the slowest batch takes; a run silent for longer has lost its thread.
STALE_AFTER = timedelta(minutes=5)

# A launcher starts a run's work; the work takes the session to use, or None for its own.
Work = Callable[[Session | None], None]
Launcher = Callable[[Work], None]


def in_thread(work: Work) -> None:
    """Run `work` in a daemon thread with its own session (the default way a run starts)."""
    threading.Thread(target=work, args=(None,), name="certificate-run", daemon=True).start()


def status_of(run: CertificateRun, *, now: datetime | None = None) -> str:
    """The run's status, where a silent `running` run counts as interrupted."""
    now = now or utcnow()
    if run.status == RUNNING and now - run.heartbeat_at > STALE_AFTER:
        return INTERRUPTED
    return run.status


def latest_run(session: Session, edition: Edition) -> CertificateRun | None:
    """The edition's most recent run."""
    return session.exec(
        select(CertificateRun)
        .where(CertificateRun.edition_id == edition.id)
        .order_by(col(CertificateRun.id).desc())
        .limit(1)
    ).first()


def get_run(session: Session, run_id: int, edition: Edition) -> CertificateRun:
    """A run of this edition, or NotFound."""
    run = session.get(CertificateRun, run_id)
    if run is None or run.edition_id != edition.id:
        raise NotFound(f"There is no certificate run {run_id} for this edition.")
    return run


def start_run(
    session: Session,
    *,
    edition: Edition,
    actor: str,
    engine: Engine,
    storage: Storage,
    options: CertificateOptions,
    launch: Launcher = in_thread,
    now: datetime | None = None,
) -> CertificateRun:
    """Record a new run and start it; a second run while one is going is refused (409)."""
    now = now or utcnow()
    current = latest_run(session, edition)
    if current is not None and status_of(current, now=now) == RUNNING:
        raise Conflict(
            f"Certificates of {edition.title} are being issued already "
            f"({current.done} of {current.total} done); wait for that run to finish."
        )
    run = CertificateRun(edition_id=edition.id or 0, started_by=actor, started_at=now)
    run.heartbeat_at = now
    session.add(run)
    record_change(
        session,
        actor=actor,
        action="certificate.run_started",
        entity="edition",
        entity_id=edition.id or 0,
    )
    session.commit()
    session.refresh(run)
    run_id, edition_id = run.id or 0, edition.id or 0
    launch(
        lambda own_session: execute_run(
            engine,
            run_id=run_id,
            edition_id=edition_id,
            storage=storage,
            options=options,
            actor=actor,
            session=own_session,
        )
    )
    return run


def _update(session: Session, run_id: int, **values: object) -> None:
    session.execute(update(CertificateRun).where(col(CertificateRun.id) == run_id).values(**values))
    session.commit()


def execute_run(
    engine: Engine | None,
    *,
    run_id: int,
    edition_id: int,
    storage: Storage,
    options: CertificateOptions,
    actor: str,
    session: Session | None = None,
) -> None:
    """Issue the edition's certificates, writing progress to the run's row as batches finish.

    It works in its own session (or the one given); every batch commits before its progress
    is written, so pages polling the row see each step while the run goes on.
    """
    own = session is None
    if session is None:
        assert engine is not None
        # A writer from the start (SQLite: BEGIN IMMEDIATE): a deferred transaction that
        # reads, then writes after another writer committed, fails at once instead of waiting.
        session = Session(writer_engine(engine))
    work = session

    def progress(done: int, total: int, issued: int) -> None:
        _update(work, run_id, done=done, total=total, issued=issued, heartbeat_at=utcnow())

    try:
        edition = work.get(Edition, edition_id)
        if edition is None:
            raise NotFound(f"There is no edition {edition_id}.")
        result = issue_for_edition(
            work, edition=edition, actor=actor, storage=storage, options=options, progress=progress
        )
        record_change(
            work,
            actor=actor,
            action="certificate.run_finished",
            entity="edition",
            entity_id=edition_id,
            after={"issued": len(result.issued), "skipped": len(result.skipped)},
        )
        finished = utcnow()
        _update(
            work,
            run_id,
            status=FINISHED,
            issued=len(result.issued),
            already_issued=result.already_issued,
            skipped=result.skipped,
            heartbeat_at=finished,
            finished_at=finished,
        )
    except Exception as exc:
        log.exception("certificate run %s failed", run_id)
        work.rollback()
        _update(
            work,
            run_id,
            status=FAILED,
            error=str(exc)[:1000] or exc.__class__.__name__,
            finished_at=utcnow(),
        )
    finally:
        if own:
            work.close()
