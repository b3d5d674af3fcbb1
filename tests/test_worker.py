"""`diplomat worker` processes share one database: every mail, certificate and payment once."""

import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, update
from sqlmodel import Session, col, create_engine, func, select

from app.clock import utcnow
from app.config import Settings
from app.db import make_engine, writer_engine
from app.models import (
    Application,
    AttendanceMark,
    BackgroundJob,
    Certificate,
    CertificateRun,
    CertificateVersion,
    Edition,
    FinalWork,
    Invoice,
    OutboxMessage,
    Payment,
)
from app.platform import jobs
from app.platform.mail import queue_email
from app.platform.storage import LocalStorage
from app.services.billing import invoices as invoicing
from app.services.billing import statements
from app.services.certificates import bulk_runs as certificate_runs
from app.services.certificates import document as certificate_pdf
from app.services.certificates import issuing as certificates
from app.services.editions.editions import EditionCreate, create_edition
from app.services.errors import Conflict
from app.services.office.staff import create_user
from app.worker import job_context
from tests.conftest import fresh_postgres_database, migrate
from tests.factories import open_edition
from tests.platform.test_mail import Inbox, free_port
from tests.services.billing.test_statements import ISO, invoiced, line, statement

MESSAGES = 60


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "postgresql":
        with fresh_postgres_database() as url:
            yield url
    else:
        with tempfile.TemporaryDirectory(prefix="diplomat-worker-") as folder:
            yield f"sqlite:///{Path(folder) / 'worker.db'}"


def cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_three_workers_send_every_queued_mail_exactly_once(
    database_url: str, tmp_path: Path
) -> None:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        env = {
            **os.environ,
            "DIPLOMAT_DATABASE_URL": database_url,
            "DIPLOMAT_VAR_DIR": str(tmp_path),
            "DIPLOMAT_SMTP_HOST": "127.0.0.1",
            "DIPLOMAT_SMTP_PORT": str(controller.port),
            "DIPLOMAT_SMTP_STARTTLS": "false",
        }
        upgrade = cli(["db", "upgrade"], env)
        output, _ = upgrade.communicate(timeout=120)
        assert upgrade.returncode == 0, output
        engine = create_engine(database_url)
        with Session(engine) as session:
            for i in range(MESSAGES):
                queue_email(
                    session,
                    kind="portal_link",
                    to=f"person{i}@example.org",
                    subject=f"Your link {i}",
                    context={
                        "application": {
                            "given_name": "Ama",
                            "family_name": "Banda",
                            "reference": f"MD99-{i:06d}",
                        },
                        "edition": {"title": "Diploma"},
                        "portal_url": f"http://127.0.0.1/portal/{i}",
                    },
                )
            session.commit()
        workers = [cli(["worker", "--until-idle", "--poll", "0.1"], env) for _ in range(3)]
        outputs = []
        for process in workers:
            output, _ = process.communicate(timeout=240)
            assert process.returncode == 0, output
            outputs.append(output)
        subjects = Counter(str(message["Subject"]) for message in handler.messages)
        assert len(subjects) == MESSAGES, outputs
        assert set(subjects.values()) == {1}, [s for s, n in subjects.items() if n > 1]
        with Session(engine) as session:
            statuses = Counter(m.status for m in session.exec(select(OutboxMessage)).all())
        assert statuses == {"sent": MESSAGES}
        # The work was shared, not done by one worker while the others idled (usually).
        assert sum(1 for out in outputs if "Sent" in out) >= 1
        engine.dispose()
    finally:
        controller.stop()


# Jobs: bulk certificate runs and statement imports

PARTICIPANTS = 60


def ended_edition(session: Session, participants: int) -> Edition:
    """An edition that ended last month, every participant present throughout with a passed work."""
    start = date.today() - timedelta(days=40)
    edition = create_edition(
        session,
        data=EditionCreate.model_validate(
            {
                "slug": "diploma-ended",
                "title": "Diploma in Internationalization for Local Authorities",
                "edition_label": "Worker edition",
                "place": "Barcelona",
                "start_date": start.isoformat(),
                "end_date": (start + timedelta(days=4)).isoformat(),
                "timezone": "Europe/Madrid",
                "capacity": participants,
                "currency": "EUR",
                "dues_year": 2023,
                "income_fy": 2023,
                "fees": {"standard": "1500.00", "member": "1000.00", "group_tiers": []},
                "applications_open": (datetime.now(UTC) - timedelta(days=90)).isoformat(),
            }
        ),
        actor="test",
    )
    course_sessions = [s for module in edition.modules for s in module.sessions]
    now = utcnow()
    for index in range(participants):
        application = Application(
            edition_id=edition.id or 0,
            reference=f"WK-{index:06d}",
            status="confirmed",
            given_name="Ama",
            family_name=f"Banda {index:02d}",
            email=f"participant{index}@example.org",
            organisation_name="Example City Council",
            country="ESP",
            job_title="International relations officer",
            motivation="A participant of the worker test.",
            consent_at=now,
            quoted_total=Decimal("0.00"),
            confirmed_at=now,
        )
        session.add(application)
        session.flush()
        for course_session in course_sessions:
            session.add(
                AttendanceMark(
                    course_session_id=course_session.id or 0,
                    application_id=application.id or 0,
                    status="present",
                    marked_by="test",
                )
            )
        session.add(
            FinalWork(
                application_id=application.id or 0,
                file_key="test/final-work.pdf",
                filename="final-work.pdf",
                status="accepted",
                assessed_by="test",
                assessed_at=now,
            )
        )
    session.commit()
    return edition


def queue_certificate_run(session: Session, engine: Engine, edition: Edition, folder: Path) -> int:
    """A bulk run recorded as queued, as a web process without in-process jobs leaves it."""
    settings = Settings(environment="test", var_dir=folder, database_url=str(engine.url))
    run = certificate_runs.start_run(
        session,
        edition=edition,
        actor="admin@example.org",
        engine=engine,
        storage=LocalStorage(folder / "files"),
        options=certificates.CertificateOptions.from_settings(settings),
        launch=None,
    )
    assert run.status == "queued"
    session.commit()  # as the request that started it ends
    return run.id or 0


def queue_statement_twice(session: Session, folder: Path) -> list[Invoice]:
    """Two open invoices and one statement paying both, queued for import twice."""
    storage = LocalStorage(folder / "files")
    admin = create_user(session, email="office@example.org", password="x" * 16, role="admin")
    edition = open_edition(session)
    invoices = [
        invoiced(session, storage, admin, edition, f"payer{i}@example.org")[1] for i in (1, 2)
    ]
    text = statement(
        *(line(f"{invoice.total}", f"Invoice {invoice.number}") for invoice in invoices),
        line("99.00", "Donation", payer="Somebody"),
    )
    lines = statements.parse_statement(text, **ISO)
    ticked = [m.key for m in statements.match_lines(session, lines) if m.preselected]
    assert len(ticked) == 2
    for _ in range(2):
        statements.queue_import(
            session,
            csv_text=text,
            mapping=ISO,
            lines=lines,
            accepted_ids=ticked,
            actor="office@example.org",
        )
    return invoices


def rendered_by(outputs: list[str]) -> list[int]:
    """What each worker reported rendering for the certificate run, one entry per job line."""
    return [
        int(count)
        for output in outputs
        for count in re.findall(r"\(certificate_run\) done: rendered (\d+)", output)
    ]


def test_workers_issue_every_certificate_once_and_import_each_payment_once(
    database_url: str, tmp_path: Path
) -> None:
    # Three workers on PostgreSQL; SQLite is the embedded database of one process: one worker.
    workers = 3 if database_url.startswith("postgresql") else 1
    migrate(database_url)
    engine = make_engine(database_url)
    with Session(engine, expire_on_commit=False) as session:
        edition = ended_edition(session, PARTICIPANTS)
        run_id = queue_certificate_run(session, engine, edition, tmp_path)
        invoices = queue_statement_twice(session, tmp_path)
    env = {
        **os.environ,
        "DIPLOMAT_DATABASE_URL": database_url,
        "DIPLOMAT_VAR_DIR": str(tmp_path),
        "DIPLOMAT_CERTIFICATE_RENDER_PROCESSES": "1",
    }
    processes = [cli(["worker", "--until-idle", "--poll", "0.2"], env) for _ in range(workers)]
    outputs = []
    for process in processes:
        output, _ = process.communicate(timeout=240)
        assert process.returncode == 0, output
        outputs.append(output)

    # One worker claimed the run and rendered each certificate once: the renders the workers
    # report add up to the participants, and each participant has one certificate in one
    # version with one stored PDF.
    assert rendered_by(outputs) == [PARTICIPANTS], outputs
    with Session(engine) as session:
        run = session.get(CertificateRun, run_id)
        assert run is not None
        assert (run.status, run.total, run.done, run.issued) == ("finished", 60, 60, 60)
        issued = session.exec(select(Certificate).where(Certificate.edition_id == edition.id)).all()
        assert len({c.application_id for c in issued}) == len(issued) == PARTICIPANTS
        versions = session.exec(select(func.count()).select_from(CertificateVersion)).one()
        assert versions == PARTICIPANTS
        stored = list((tmp_path / "files" / "certificates").rglob("*.pdf"))
        assert len(stored) == PARTICIPANTS
        assert {p.name for p in stored} == {Path(c.pdf_key or "").name for c in issued}
        run_jobs = session.exec(
            select(BackgroundJob).where(BackgroundJob.kind == certificate_runs.JOB_KIND)
        ).all()
        assert [(j.status, j.attempts) for j in run_jobs] == [("done", 1)]

        # The statement was queued twice; its two payments are recorded once each.
        paid = session.exec(select(Payment).where(Payment.source == statements.SOURCE)).all()
        assert len(paid) == 2
        for invoice in invoices:
            assert invoicing.amount_paid(session, invoice) == invoice.total
        imports = session.exec(
            select(BackgroundJob)
            .where(BackgroundJob.kind == statements.JOB_KIND)
            .order_by(col(BackgroundJob.id))
        ).all()
        assert [j.status for j in imports] == ["done", "done"]
        summaries = [statements.get_import(session, j.id or 0).summary for j in imports]
        counts = [s.counts for s in summaries if s is not None]
        assert len(counts) == 2
        # Each import accounts for both payments (recorded by it or before it) and skips the
        # donation; run one after the other that is (2, 0, 1) and (0, 2, 1), run at once by
        # two workers it can be (1, 1, 1) twice. Together they record each payment once.
        assert all(recorded + before == 2 and skipped == 1 for recorded, before, skipped in counts)
        assert sum(recorded for recorded, _, _ in counts) == 2
        # Once done, the statement's text is not kept on the job.
        assert all("csv_text" not in j.payload for j in imports)
    engine.dispose()


class WorkerDied(BaseException):
    """The process stopped in the middle of the work (not an error the work can catch)."""


class CountingStorage(LocalStorage):
    """Storage that counts the certificate PDFs written, and can stop dead before one."""

    def __init__(self, root: Path, *, die_before: int | None = None) -> None:
        super().__init__(root)
        self.writes = 0
        self.die_before = die_before

    def put(self, key: str, data: bytes) -> None:
        if self.die_before is not None and self.writes + 1 == self.die_before:
            raise WorkerDied
        self.writes += 1
        super().put(key, data)


def test_a_run_whose_worker_died_is_resumed_by_another_that_renders_only_the_rest(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of two, so the first worker finishes one batch before it dies in the second.
    monkeypatch.setattr(certificates, "batches", lambda items: certificate_pdf.batches(items, 2))
    migrate(database_url)
    engine = make_engine(database_url)
    with Session(engine, expire_on_commit=False) as session:
        edition = ended_edition(session, 6)
        run_id = queue_certificate_run(session, engine, edition, tmp_path)
    settings = Settings(environment="test", var_dir=tmp_path, database_url=database_url)
    options = certificates.CertificateOptions.from_settings(settings)

    def context(storage: LocalStorage) -> jobs.JobContext:
        return job_context(engine, storage, options)

    dying = CountingStorage(tmp_path / "files", die_before=3)
    with pytest.raises(WorkerDied):
        jobs.work_once(engine, context(dying), worker="first")
    assert dying.writes == 2
    # Nobody else takes a job whose worker still beats.
    assert jobs.claim_next(engine, worker="second") is None
    with Session(engine) as session:
        run = session.get(CertificateRun, run_id)
        assert run is not None and (run.status, run.done, run.issued) == ("running", 2, 2)
        # Its worker has been silent for longer than a live one ever is.
        silent = utcnow() - jobs.STALE_AFTER - timedelta(seconds=1)
        session.execute(update(BackgroundJob).values(heartbeat_at=silent))
        session.execute(update(CertificateRun).values(heartbeat_at=silent))
        session.commit()
        session.refresh(run)
        assert certificate_runs.status_of(run) == "interrupted"

    resuming = CountingStorage(tmp_path / "files")
    done = jobs.work_once(engine, context(resuming), worker="second")
    assert done is not None and done.result is not None
    assert resuming.writes == done.result["rendered"] == 4
    with Session(engine) as session:
        run = session.get(CertificateRun, run_id)
        assert run is not None
        assert (run.status, run.done, run.total, run.issued) == ("finished", 6, 6, 6)
        job = session.exec(select(BackgroundJob)).one()
        assert (job.status, job.claimed_by, job.attempts) == ("done", "second", 2)
        issued = session.exec(select(Certificate)).all()
        assert len({c.application_id for c in issued}) == len(issued) == 6
        assert session.exec(select(func.count()).select_from(CertificateVersion)).one() == 6
    # The first worker, had it lived on, could no longer write to the run.
    assert jobs.claim_next(engine, worker="third") is None
    engine.dispose()


def test_a_new_run_closes_an_interrupted_one_so_no_worker_resumes_it_beside(
    database_url: str, tmp_path: Path
) -> None:
    migrate(database_url)
    engine = make_engine(database_url)
    # As a web request that writes: its transactions begin as writers (SQLite: IMMEDIATE).
    with Session(writer_engine(engine), expire_on_commit=False) as session:
        edition = ended_edition(session, 1)
        first = queue_certificate_run(session, engine, edition, tmp_path)
        held = jobs.claim_next(engine, worker="gone")
        assert held is not None
        with pytest.raises(Conflict, match="being issued already"):
            queue_certificate_run(session, engine, edition, tmp_path)
        session.rollback()
        silent = utcnow() - jobs.STALE_AFTER - timedelta(seconds=1)
        session.execute(update(CertificateRun).values(status="running", heartbeat_at=silent))
        session.execute(update(BackgroundJob).values(heartbeat_at=silent))
        session.commit()
        second = queue_certificate_run(session, engine, edition, tmp_path)
        statuses = dict(session.exec(select(CertificateRun.id, CertificateRun.status)).all())
        assert statuses == {first: "interrupted", second: "queued"}
        session.commit()
        claimed = jobs.claim_next(engine, worker="next")
        assert claimed is not None and claimed.payload["run_id"] == second
        assert jobs.claim_next(engine, worker="another") is None
    engine.dispose()
