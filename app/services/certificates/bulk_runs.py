"""Bulk issuing in the background, with its progress in the database.

The run's row is the only state the pages read: any web process answers the progress bar's
polls, whichever process does the work. The work is a background job (`app.platform.jobs`):
started at once in a thread of the web process by default, or queued for the `diplomat
worker` processes, exactly one of which claims it. A run whose worker died stops counting as
running once its heartbeat is stale; another worker resumes it and issues only the
certificates still missing (each batch commits on its own, and issuing leaves alone anyone who
has a certificate). Where no worker resumes it, a person can start a new run, which does the
same.
"""

import logging
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.db import writer_engine
from app.models import CertificateRun, Edition
from app.platform import jobs
from app.platform.audit import record_change
from app.platform.storage import Storage
from app.platform.stored_messages import reasons_kept
from app.services.certificates.issuing import CertificateOptions, issue_for_edition
from app.services.errors import Conflict, NotFound

log = logging.getLogger("diplomat.certificates")

JOB_KIND = "certificate_run"
QUEUED = "queued"
RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
INTERRUPTED = "interrupted"
ACTIVE = (QUEUED, RUNNING)
# Longer than a claimant stays silent while it lives (it beats every few seconds).
STALE_AFTER = jobs.STALE_AFTER

# How a run starts when it is not left to the workers (kept here for the routers).
Work = jobs.Work
Launcher = jobs.Launcher
in_thread = jobs.in_thread


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


def _busy(edition: Edition, run: CertificateRun) -> Conflict:
    if run.status == QUEUED:
        return Conflict(
            f"Certificates of {edition.title} are being issued already (the run is queued "
            "for the next free worker); wait for that run to finish."
        )
    return Conflict(
        f"Certificates of {edition.title} are being issued already "
        f"({run.done} of {run.total} done); wait for that run to finish."
    )


def _retire(session: Session, run: CertificateRun, now: datetime) -> bool:
    """Close an interrupted run and cancel its job, so no worker resumes it beside a new one.

    False when its worker turns out to be alive (it beat after the run's row went quiet).
    """
    for job in jobs.open_jobs(session, JOB_KIND):
        if job.payload.get("run_id") == run.id and not jobs.cancel_stale(
            session, job.id or 0, now=now
        ):
            return False
    session.execute(
        update(CertificateRun)
        .where(col(CertificateRun.id) == run.id, col(CertificateRun.status) == RUNNING)
        .values(status=INTERRUPTED, finished_at=now)
    )
    return True


def start_run(
    session: Session,
    *,
    edition: Edition,
    actor: str,
    engine: Engine,
    storage: Storage,
    options: CertificateOptions,
    launch: jobs.Launcher | None = jobs.in_thread,
    now: datetime | None = None,
) -> CertificateRun:
    """Record a new run and queue it; a second run while one is going is refused (409).

    With `launch` the run starts at once in this process (a thread by default); without, it
    waits for a worker to claim it.
    """
    now = now or utcnow()
    # One start at a time per edition: two at once would both find no run going.
    session.exec(select(Edition.id).where(Edition.id == edition.id).with_for_update()).first()
    current = latest_run(session, edition)
    if current is not None:
        state = status_of(current, now=now)
        if state in ACTIVE:
            raise _busy(edition, current)
        if state == INTERRUPTED and not _retire(session, current, now):
            session.rollback()
            raise _busy(edition, current)
    run = CertificateRun(
        edition_id=edition.id or 0, status=QUEUED, started_by=actor, started_at=now
    )
    run.heartbeat_at = now
    session.add(run)
    session.flush()
    job = jobs.enqueue(
        session,
        kind=JOB_KIND,
        payload={"run_id": run.id, "edition_id": edition.id},
        actor=actor,
        now=now,
    )
    record_change(
        session,
        actor=actor,
        action="certificate.run_started",
        entity="edition",
        entity_id=edition.id or 0,
    )
    session.commit()
    session.refresh(run)
    if launch is not None:
        jobs.launch_job(
            launch,
            job.id or 0,
            jobs.JobContext(
                engine=engine,
                storage=storage,
                handlers={JOB_KIND: partial(run_job, options=options)},
            ),
        )
    return run


def run_job(
    held: jobs.Claim,
    context: jobs.JobContext,
    session: Session | None,
    *,
    options: CertificateOptions,
) -> dict[str, Any]:
    """The work of a claimed run's job, printed with `options`."""
    outcome = execute_run(
        context.engine,
        run_id=int(held.payload["run_id"]),
        edition_id=int(held.payload["edition_id"]),
        storage=context.storage,
        options=options,
        actor=held.created_by,
        session=session,
        claim=held,
    )
    if outcome["status"] == FAILED:
        raise jobs.JobFailed(str(outcome.get("error", "")))
    return outcome


def execute_run(
    engine: Engine | None,
    *,
    run_id: int,
    edition_id: int,
    storage: Storage,
    options: CertificateOptions,
    actor: str,
    session: Session | None = None,
    claim: jobs.Claim | None = None,
) -> dict[str, Any]:
    """Issue the edition's certificates, writing progress to the run's row as batches finish.

    It works in its own session (or the one given); every batch commits before its progress
    is written, so pages polling the row see each step while the run goes on. With a claim,
    every write to the row is conditional on still holding the job: a worker that was taken
    over stops (ClaimLost) without touching what its successor writes. Returns the outcome,
    with `rendered`: the certificates this call rendered.
    """
    own = session is None
    if session is None:
        assert engine is not None
        # A writer from the start (SQLite: BEGIN IMMEDIATE): a deferred transaction that
        # reads, then writes after another writer committed, fails at once instead of waiting.
        session = Session(writer_engine(engine))
    work = session

    def write(**values: object) -> None:
        statement = update(CertificateRun).where(col(CertificateRun.id) == run_id)
        if claim is not None:
            statement = statement.where(jobs.holds(claim))
        result = work.execute(statement.values(**values))
        if claim is not None and not result.rowcount:  # type: ignore[attr-defined]
            work.rollback()
            raise jobs.ClaimLost(f"certificate run {run_id} was taken over")
        work.commit()

    rendered = 0
    try:
        run = work.exec(
            select(CertificateRun)
            .where(col(CertificateRun.id) == run_id)
            .execution_options(populate_existing=True)
        ).first()
        if run is None or run.status not in ACTIVE:
            # Finished, or closed by a person who started a new run: nothing left to do.
            return {"run_id": run_id, "status": run.status if run else "missing", "rendered": 0}
        # A resumed run counts on from what its first worker wrote.
        base_done, base_issued = (run.done, run.issued) if run.status == RUNNING else (0, 0)
        write(status=RUNNING, heartbeat_at=utcnow())
        if claim is not None:

            def keep_alive(beat_session: Session, now: datetime) -> None:
                beat_session.execute(
                    update(CertificateRun)
                    .where(col(CertificateRun.id) == run_id, col(CertificateRun.status) == RUNNING)
                    .values(heartbeat_at=now)
                )

            claim.beats.append(keep_alive)

        def progress(done: int, total: int, issued: int) -> None:
            nonlocal rendered
            rendered = done
            if claim is not None:
                claim.check()
            write(
                done=base_done + done,
                total=base_done + total,
                issued=base_issued + issued,
                heartbeat_at=utcnow(),
            )

        edition = work.get(Edition, edition_id)
        if edition is None:
            raise NotFound(f"There is no edition {edition_id}.")
        result = issue_for_edition(
            work, edition=edition, actor=actor, storage=storage, options=options, progress=progress
        )
        issued = base_issued + len(result.issued)
        record_change(
            work,
            actor=actor,
            action="certificate.run_finished",
            entity="edition",
            entity_id=edition_id,
            after={"issued": issued, "skipped": len(result.skipped)},
        )
        finished = utcnow()
        write(
            status=FINISHED,
            issued=issued,
            already_issued=max(result.already_issued - base_issued, 0),
            skipped=[reasons_kept(entry) for entry in result.skipped],
            heartbeat_at=finished,
            finished_at=finished,
        )
        log.info("certificate run %s: rendered %s, issued %s", run_id, rendered, issued)
        return {"run_id": run_id, "status": FINISHED, "rendered": rendered, "issued": issued}
    except jobs.ClaimLost:
        work.rollback()
        raise
    except Exception as exc:
        log.exception("certificate run %s failed", run_id)
        work.rollback()
        error = str(exc)[:1000] or exc.__class__.__name__
        write(status=FAILED, error=error, finished_at=utcnow())
        return {"run_id": run_id, "status": FAILED, "rendered": rendered, "error": error}
    finally:
        if own:
            work.close()
