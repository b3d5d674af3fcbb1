"""Background jobs in the database: queued, claimed by exactly one worker, kept alive by a beat.

A job is a row of `background_job`. A worker claims the oldest claimable one in a short
writer transaction: on PostgreSQL `SELECT ... FOR UPDATE SKIP LOCKED`, so workers polling
at once each take a different row without waiting on each other; on SQLite a conditional
UPDATE inside `BEGIN IMMEDIATE`, where writers queue for the one lock anyway. While it works,
the claimant bumps the row's heartbeat; a running job whose heartbeat is stale has lost its
worker and is claimed again by another, which does what is left (the work itself is written
so that doing it again finishes it without doing anything twice).

By default (`jobs_in_process`) the web process that queues a job also starts it at once in a
thread, claiming that very row; otherwise `diplomat worker` processes claim it.
"""

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, func, or_, update
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.db import writer_engine
from app.models import BackgroundJob
from app.platform.logs import request_id
from app.platform.storage import Storage

log = logging.getLogger("diplomat.jobs")

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
# A claimant beats this often; one silent for STALE_AFTER has died (or lost the database).
HEARTBEAT_SECONDS = 15.0
STALE_AFTER = timedelta(minutes=2)
# A job that took its worker down this many times is not offered again.
MAX_ATTEMPTS = 5

# A launcher starts a job's work; the work takes the session to use, or None for its own.
Work = Callable[[Session | None], None]
Launcher = Callable[[Work], None]


class ClaimLost(Exception):
    """Another worker took the job over (this one was silent too long): stop, touch nothing."""


class JobFailed(Exception):
    """The job's work ended in an error it has already recorded where people see it."""


@dataclass
class Claim:
    """A job this worker holds, and whether it still holds it."""

    job_id: int
    kind: str
    payload: dict[str, Any]
    created_by: str
    worker: str
    attempts: int
    lost: threading.Event = field(default_factory=threading.Event)
    # Called with a writer session at each beat, for rows that show the job's progress.
    beats: list[Callable[[Session, datetime], None]] = field(default_factory=list)
    # Whether the input is dropped from the row once the job is over (personal data).
    forget_input: bool = False

    @property
    def resumed(self) -> bool:
        """Whether an earlier claimant started this job and died."""
        return self.attempts > 1

    def check(self) -> None:
        """Raise ClaimLost once another worker has taken the job over."""
        if self.lost.is_set():
            raise ClaimLost(f"job {self.job_id} was taken over by another worker")


Handler = Callable[[Claim, "JobContext", Session | None], dict[str, Any] | None]


@dataclass(frozen=True)
class JobContext:
    """What the work of a job needs from the process that runs it: the database, the files,
    and the handler of each kind of job this process can do (the table is `app.worker`'s)."""

    engine: Engine
    storage: Storage
    handlers: Mapping[str, Handler] = field(default_factory=dict)


def worker_name() -> str:
    """A name for this process among the workers: host, process id and a random tag."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(3)}"


def in_thread(work: Work) -> None:
    """Run `work` in a daemon thread with its own sessions (the in-process default)."""
    threading.Thread(target=work, args=(None,), name="background-job", daemon=True).start()


def enqueue(
    session: Session,
    *,
    kind: str,
    payload: dict[str, Any],
    actor: str,
    now: datetime | None = None,
) -> BackgroundJob:
    """Add a queued job to the session (the caller commits, with the change that asked for it)."""
    now = now or utcnow()
    # The request that asked for it: the job's log lines carry its id too.
    payload = {**payload, "request_id": request_id.get()}
    job = BackgroundJob(kind=kind, payload=payload, created_by=actor, created_at=now)
    job.heartbeat_at = now
    session.add(job)
    session.flush()
    return job


def is_stale(job: BackgroundJob, *, now: datetime | None = None) -> bool:
    """Whether a running job's claimant has been silent too long."""
    return job.status == RUNNING and (now or utcnow()) - job.heartbeat_at > STALE_AFTER


def _claimable(now: datetime) -> ColumnElement[bool]:
    return and_(
        or_(
            col(BackgroundJob.status) == QUEUED,
            (col(BackgroundJob.status) == RUNNING)
            & (col(BackgroundJob.heartbeat_at) < now - STALE_AFTER),
        ),
        col(BackgroundJob.attempts) < MAX_ATTEMPTS,
    )


def _take(session: Session, job_id: int, worker: str, now: datetime) -> Claim | None:
    """Claim one job by a conditional update (the caller's transaction); None if it is taken."""
    result = session.execute(
        update(BackgroundJob)
        .where(col(BackgroundJob.id) == job_id, _claimable(now))
        .values(
            status=RUNNING,
            claimed_by=worker,
            claimed_at=now,
            heartbeat_at=now,
            attempts=BackgroundJob.attempts + 1,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        return None
    job = session.exec(
        select(BackgroundJob)
        .where(col(BackgroundJob.id) == job_id)
        .execution_options(populate_existing=True)
    ).one()
    claim = Claim(
        job_id=job_id,
        kind=job.kind,
        payload=dict(job.payload),
        created_by=job.created_by,
        worker=worker,
        attempts=job.attempts,
    )
    session.commit()
    return claim


def claim(
    session: Session, job_id: int, *, worker: str, now: datetime | None = None
) -> Claim | None:
    """Claim this job if nobody holds it (the web process starting what it just queued)."""
    return _take(session, job_id, worker, now or utcnow())


def _give_up_on_the_unlucky(session: Session, now: datetime) -> None:
    """Jobs that lost their worker MAX_ATTEMPTS times stop being offered: they fail, visibly."""
    session.execute(
        update(BackgroundJob)
        .where(
            col(BackgroundJob.status) == RUNNING,
            col(BackgroundJob.heartbeat_at) < now - STALE_AFTER,
            col(BackgroundJob.attempts) >= MAX_ATTEMPTS,
        )
        .values(
            status=FAILED,
            error=f"Stopped: its worker died {MAX_ATTEMPTS} times while doing it.",
            finished_at=now,
        )
    )


def claim_next(engine: Engine, *, worker: str, now: datetime | None = None) -> Claim | None:
    """Claim the oldest queued job, or a running one whose worker died; None if there is none."""
    now = now or utcnow()
    with Session(writer_engine(engine), expire_on_commit=False) as session:
        _give_up_on_the_unlucky(session, now)
        query = (
            select(BackgroundJob.id).where(_claimable(now)).order_by(col(BackgroundJob.id)).limit(1)
        )
        if engine.dialect.name == "postgresql":
            # Rows another worker is claiming right now are skipped, not waited for.
            query = query.with_for_update(skip_locked=True)
        job_id = session.exec(query).first()
        if job_id is None:
            session.commit()
            return None
        return _take(session, job_id, worker, now)


def beat(session: Session, held: Claim, *, now: datetime | None = None) -> bool:
    """Bump the heartbeat of a job this worker holds; False once another worker took it."""
    now = now or utcnow()
    result = session.execute(
        update(BackgroundJob)
        .where(
            col(BackgroundJob.id) == held.job_id,
            col(BackgroundJob.claimed_by) == held.worker,
            col(BackgroundJob.status) == RUNNING,
        )
        .values(heartbeat_at=now)
    )
    kept = bool(result.rowcount)  # type: ignore[attr-defined]
    if kept:
        for also in held.beats:
            also(session, now)
    session.commit()
    return kept


def holds(held: Claim) -> ColumnElement[bool]:
    """A condition true while this worker still holds the job (for updates of its results)."""
    return (
        select(BackgroundJob.id)
        .where(
            col(BackgroundJob.id) == held.job_id,
            col(BackgroundJob.claimed_by) == held.worker,
            col(BackgroundJob.status) == RUNNING,
        )
        .exists()
    )


def _settle(
    session: Session, held: Claim, *, status: str, result: dict[str, Any] | None, error: str
) -> bool:
    now = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "result": result,
        "error": error,
        "heartbeat_at": now,
        "finished_at": now,
    }
    if held.forget_input:
        values["payload"] = {}
    outcome = session.execute(
        update(BackgroundJob)
        .where(
            col(BackgroundJob.id) == held.job_id,
            col(BackgroundJob.claimed_by) == held.worker,
            col(BackgroundJob.status) == RUNNING,
        )
        .values(**values)
    )
    session.commit()
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


def cancel_stale(session: Session, job_id: int, *, now: datetime | None = None) -> bool:
    """Cancel a job whose worker died, so nobody resumes it (the caller commits); False if alive."""
    now = now or utcnow()
    result = session.execute(
        update(BackgroundJob)
        .where(
            col(BackgroundJob.id) == job_id,
            or_(
                col(BackgroundJob.status) != RUNNING,
                col(BackgroundJob.heartbeat_at) < now - STALE_AFTER,
            ),
            col(BackgroundJob.status).in_([QUEUED, RUNNING]),
        )
        .values(status=CANCELLED, finished_at=now, error="Started anew by a person.")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def open_jobs(session: Session, kind: str) -> list[BackgroundJob]:
    """Jobs of this kind that are queued or running."""
    return list(
        session.exec(
            select(BackgroundJob).where(
                BackgroundJob.kind == kind, col(BackgroundJob.status).in_([QUEUED, RUNNING])
            )
        ).all()
    )


def unfinished_count(engine: Engine) -> int:
    """Jobs queued or being worked on (by any worker)."""
    with Session(engine) as session:
        return session.exec(
            select(func.count())
            .select_from(BackgroundJob)
            .where(col(BackgroundJob.status).in_([QUEUED, RUNNING]))
        ).one()


class _Heartbeat:
    """A thread that keeps a claim alive while the work runs, and notices when it is lost."""

    def __init__(self, engine: Engine, held: Claim, every: float) -> None:
        self._engine = engine
        self._held = held
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"job-{held.job_id}-heartbeat", daemon=True
        )

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                with Session(writer_engine(self._engine)) as session:
                    if not beat(session, self._held):
                        self._held.lost.set()
                        return
            except Exception:
                # The database may be away for a moment; the next beat tries again.
                log.exception("job %s: heartbeat failed", self._held.job_id)


def run_claimed(
    held: Claim,
    context: JobContext,
    *,
    session: Session | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> dict[str, Any] | None:
    """Do a claimed job and record its outcome; the result, or None if it failed or was lost.

    With a session given everything happens in it (and no heartbeat runs beside it).
    """
    # The job's log lines carry the id of the request that queued it (and only its own).
    token = request_id.set(str(held.payload.get("request_id", "-")))
    try:
        return _run_claimed(held, context, session=session, heartbeat_seconds=heartbeat_seconds)
    finally:
        request_id.reset(token)


def _run_claimed(
    held: Claim, context: JobContext, *, session: Session | None, heartbeat_seconds: float
) -> dict[str, Any] | None:
    handler = context.handlers.get(held.kind)
    result: dict[str, Any] | None = None
    error = ""
    log.info("job %s (%s) started by %s", held.job_id, held.kind, held.worker)
    try:
        if handler is None:
            raise JobFailed(f"Unknown kind of job: {held.kind}.")
        if session is None:
            with _Heartbeat(context.engine, held, heartbeat_seconds):
                result = handler(held, context, None)
        else:
            result = handler(held, context, session)
    except ClaimLost:
        log.warning("job %s (%s) was taken over by another worker", held.job_id, held.kind)
        return None
    except Exception as exc:
        if not isinstance(exc, JobFailed):
            log.exception("job %s (%s) failed", held.job_id, held.kind)
        error = str(exc)[:1000] or exc.__class__.__name__
    if session is not None:
        if error:
            session.rollback()
        settled = _settle(
            session, held, status=FAILED if error else DONE, result=result, error=error
        )
    else:
        with Session(writer_engine(context.engine)) as own:
            settled = _settle(
                own, held, status=FAILED if error else DONE, result=result, error=error
            )
    if not settled:
        log.warning("job %s (%s) finished after another worker took it", held.job_id, held.kind)
        return None
    return None if error else (result or {})


def start_in_process(job_id: int, context: JobContext, session: Session | None = None) -> None:
    """Claim the job just queued and do it here (the in-process default's thread)."""
    worker = worker_name()
    if session is not None:
        held = claim(session, job_id, worker=worker)
    else:
        with Session(writer_engine(context.engine), expire_on_commit=False) as own:
            held = claim(own, job_id, worker=worker)
    if held is None:
        # A worker process was quicker: it does the job.
        return
    run_claimed(held, context, session=session)


def launch_job(launch: Launcher, job_id: int, context: JobContext) -> None:
    """Start a queued job now with `launch` (in a thread of this process, or in place)."""
    launch(lambda session: start_in_process(job_id, context, session))


@dataclass
class Round:
    """What one worker round did."""

    kind: str
    job_id: int
    result: dict[str, Any] | None


def work_once(engine: Engine, context: JobContext, *, worker: str) -> Round | None:
    """Claim one job and do it; None when there was nothing to claim."""
    held = claim_next(engine, worker=worker)
    if held is None:
        return None
    return Round(held.kind, held.job_id, run_claimed(held, context))
