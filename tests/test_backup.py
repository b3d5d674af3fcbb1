"""`diplomat db backup` and `diplomat db restore`: a backup restored into a new database is
the same office, a live SQLite database backs up consistently, and nothing is overwritten
by mistake."""

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, func
from sqlalchemy import select as select_rows
from sqlmodel import Session, select

from app.config import Settings
from app.db import make_engine
from app.models import Application, AuditEntry, Certificate, Invoice, Payment
from app.platform.storage import LocalStorage
from app.services.certificates import issuing as certificates
from app.services.certificates.issuing import CertificateOptions
from app.services.office.backups import BackupError, backup_database, has_office_data
from app.services.office.demo import load_demo
from app.services.office.staff import create_user
from tests.conftest import fresh_postgres_database, migrate
from tests.factories import make_eligible_participant, open_edition
from tests.test_cli import run_cli


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    """The database kind under test."""
    return str(request.param)


@pytest.fixture
def new_database(kind: str, tmp_path: Path) -> Iterator[Any]:
    """A factory of brand-new, empty databases of the kind under test (dropped afterwards)."""
    made: list[Any] = []
    counter = iter(range(100))

    def make() -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / f'db{next(counter)}.db'}"
        context = fresh_postgres_database()
        made.append(context)
        return context.__enter__()

    yield make
    for context in made:
        context.__exit__(None, None, None)


def build_office(url: str, files: Path, *, with_certificates: bool = False) -> None:
    """A migrated database with the demo, staff, two paid participants and a waived one;
    with certificates for the three, one of them revoked."""
    migrate(url)
    engine = make_engine(url)
    options = CertificateOptions.from_settings(
        Settings(environment="test", database_url=url, var_dir=files, secret_key="k" * 40)
    )
    storage = LocalStorage(files / "files")
    with Session(engine, expire_on_commit=False) as session:
        load_demo(session)
        create_user(session, email="admin@example.org", password="a-long-password", role="admin")
        edition = open_edition(session)
        people = [
            make_eligible_participant(session, edition, given_name="Ama"),
            make_eligible_participant(session, edition, given_name="Kofi"),
            make_eligible_participant(session, edition, given_name="Lina", waived=True),
        ]
        if with_certificates:
            issued = [
                certificates.issue_certificate(
                    session,
                    application_id=person.id or 0,
                    actor="admin@example.org",
                    storage=storage,
                    options=options,
                ).certificate
                for person in people
            ]
            certificates.revoke(
                session,
                number=issued[1].number,
                reason="Issued to the wrong person by mistake.",
                actor="admin@example.org",
                options=options,
            )
    engine.dispose()


def office_facts(url: str) -> dict[str, Any]:
    """What must survive a backup: every table's row count and the values that matter."""
    engine = make_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            counts = {
                name: connection.execute(select_rows(func.count()).select_from(table)).scalar_one()
                for name, table in metadata.tables.items()
            }
        with Session(engine) as session:
            facts: dict[str, Any] = {
                "counts": counts,
                "applications": sorted(
                    (a.reference, a.status, a.email, a.fee_waiver_number or "")
                    for a in session.exec(select(Application)).all()
                ),
                "invoices": sorted(
                    (i.number, i.kind, str(i.total), i.status)
                    for i in session.exec(select(Invoice)).all()
                ),
                "payments": sorted(
                    (str(p.amount), p.received_on.isoformat(), p.reference)
                    for p in session.exec(select(Payment)).all()
                ),
                "audit": sorted(
                    (e.actor, e.action, e.entity, e.entity_id)
                    for e in session.exec(select(AuditEntry)).all()
                ),
            }
            # What anyone verifying a certificate is told: valid or revoked, holder, course.
            facts["verification"] = sorted(
                (json.dumps(certificates.public_view(session, c), sort_keys=True))
                for c in session.exec(select(Certificate)).all()
            )
        return facts
    finally:
        engine.dispose()


def test_a_backup_restored_into_a_new_database_is_the_same_office(
    new_database: Any, tmp_path: Path
) -> None:
    source = new_database()
    build_office(source, tmp_path, with_certificates=True)
    facts = office_facts(source)
    assert facts["counts"]["application"] == 3
    assert len(facts["invoices"]) == 2 and len(facts["payments"]) == 2
    assert facts["counts"]["audit_entry"] > 0
    assert len(facts["verification"]) == 3
    assert sum('"revoked": true' in v for v in facts["verification"]) == 1

    path = tmp_path / "office.backup"
    made = run_cli("db", "backup", str(path), env={"DIPLOMAT_DATABASE_URL": source})
    assert made.returncode == 0, made.stderr
    assert f"to {path}" in made.stdout

    target = new_database()
    restored = run_cli("db", "restore", str(path), env={"DIPLOMAT_DATABASE_URL": target})
    assert restored.returncode == 0, restored.stderr
    assert office_facts(target) == facts


def test_restore_refuses_a_database_that_holds_data_unless_forced(
    new_database: Any, tmp_path: Path
) -> None:
    source = new_database()
    build_office(source, tmp_path)
    path = tmp_path / "office.backup"
    assert run_cli("db", "backup", str(path), env={"DIPLOMAT_DATABASE_URL": source}).returncode == 0

    other = new_database()
    migrate(other)
    engine = make_engine(other)
    with Session(engine) as session:
        create_user(session, email="other@example.org", password="a-long-password", role="admin")
    engine.dispose()
    env = {"DIPLOMAT_DATABASE_URL": other}
    refused = run_cli("db", "restore", str(path), env=env)
    assert refused.returncode == 1
    assert "already holds data" in refused.stderr
    assert office_facts(other)["counts"]["staff_user"] == 1
    assert office_facts(other)["counts"]["application"] == 0

    forced = run_cli("db", "restore", str(path), "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert office_facts(other) == office_facts(source)


def test_an_empty_migrated_database_counts_as_empty(new_database: Any) -> None:
    url = new_database()
    assert not has_office_data(url)
    migrate(url)
    assert not has_office_data(url)


def test_a_file_that_is_not_a_backup_is_refused(new_database: Any, tmp_path: Path) -> None:
    url = new_database()
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a database")
    result = run_cli("db", "restore", str(bogus), env={"DIPLOMAT_DATABASE_URL": url})
    assert result.returncode == 1
    assert "is not a" in result.stderr


def test_a_backup_never_overwrites_a_file_unless_forced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'office.db'}"
    migrate(url)
    path = tmp_path / "office.backup"
    path.write_bytes(b"yesterday's backup")
    with pytest.raises(BackupError, match="exists already"):
        backup_database(url, path)
    assert path.read_bytes() == b"yesterday's backup"
    backup_database(url, path, overwrite=True)
    assert path.read_bytes().startswith(b"SQLite format 3")
    assert not path.with_name(path.name + ".partial").exists()


def test_without_pg_dump_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("app.services.office.backups.shutil.which", lambda _: None)
    with pytest.raises(BackupError, match="postgresql-client"):
        backup_database("postgresql+psycopg://u@127.0.0.1:5432/none", tmp_path / "x.dump")
    assert not (tmp_path / "x.dump").exists()


def _writer(engine: Engine, stop: threading.Event, written: list[int]) -> None:
    """Commit pairs of audit rows until told to stop: a copy must hold both or neither."""
    pair = 0
    while not stop.is_set():
        with Session(engine) as session:
            for side in ("a", "b"):
                session.add(
                    AuditEntry(
                        actor="writer", action=f"pair.{side}", entity="t", entity_id=str(pair)
                    )
                )
            session.commit()
        written.append(pair)
        pair += 1


def test_a_sqlite_backup_taken_while_another_thread_writes_is_consistent(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    build_office(url, tmp_path)
    engine = make_engine(url)
    stop = threading.Event()
    written: list[int] = []
    thread = threading.Thread(target=_writer, args=(engine, stop, written))
    thread.start()
    try:
        while len(written) < 20:
            time.sleep(0.01)
        copies = [backup_database(url, tmp_path / f"live-{n}.backup") for n in range(3)]
        during = len(written)
    finally:
        stop.set()
        thread.join(timeout=30)
    try:
        assert during > 20, "the writer kept going while the backups were taken"
        for copy in copies:
            with closing(sqlite3.connect(copy.path)) as connection:
                assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                # A self-contained file: no write-ahead log beside it to forget.
                assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
                rows = connection.execute(
                    "SELECT entity_id, count(*) FROM audit_entry WHERE actor = 'writer' "
                    "GROUP BY entity_id"
                ).fetchall()
            assert rows, "the copy holds some of the writer's pairs"
            assert {count for _, count in rows} == {2}, "a pair was split by the backup"
            assert len(rows) <= len(written)
    finally:
        engine.dispose()
