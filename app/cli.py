"""The `diplomat` command line."""

import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from alembic import command
from sqlmodel import Session

from app.config import get_settings
from app.db import alembic_config, get_engine
from app.platform.logs import log_config
from app.services.errors import DomainError
from app.services.office.demo import database_is_empty, load_demo
from app.services.office.staff import (
    any_admin_exists,
    change_password,
    create_user,
    deactivate_user,
)

cli = typer.Typer(
    help="diplomat: the course office for city-network training.", no_args_is_help=True
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
demo_cli = typer.Typer(help="Demo data.", no_args_is_help=True)
users_cli = typer.Typer(help="Staff accounts.", no_args_is_help=True)
mail_cli = typer.Typer(help="The mail outbox.", no_args_is_help=True)
privacy_cli = typer.Typer(help="Personal data kept only as long as needed.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(demo_cli, name="demo")
cli.add_typer(users_cli, name="users")
cli.add_typer(mail_cli, name="mail")
cli.add_typer(privacy_cli, name="privacy")

if TYPE_CHECKING:
    from app.platform import jobs

DEFAULT_ADMIN_EMAIL = "admin@example.org"


@db_cli.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Bring the database schema up to date (creates the SQLite file if needed)."""
    command.upgrade(alembic_config(), revision)
    typer.echo(f"Database at {revision}.")


@db_cli.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="The backup file to write.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Back up the database to PATH (SQLite: online backup; PostgreSQL: pg_dump)."""
    from app.services.office.backups import BackupError, backup_database

    try:
        result = backup_database(get_settings().database_url, path, overwrite=force)
    except BackupError as exc:
        typer.echo(f"Backup not made: {exc.message}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"Backed up the {result.kind} database to {result.path} ({result.size} bytes).")


@db_cli.command("restore")
def db_restore(
    path: Annotated[Path, typer.Argument(help="A file written by `diplomat db backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a database that already holds data.")
    ] = False,
) -> None:
    """Restore the database from PATH; a database that holds data needs --force."""
    from app.services.office.backups import BackupError, restore_database

    try:
        kind = restore_database(get_settings().database_url, path, force=force)
    except BackupError as exc:
        typer.echo(f"Nothing restored: {exc.message}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"Restored the {kind} database from {path}. Run `diplomat db upgrade` next.")


@demo_cli.command("load")
def demo_load(
    only_if_empty: Annotated[
        bool, typer.Option(help="Do nothing when the database already holds data.")
    ] = False,
) -> None:
    """Load the Diploma's demo editions and member registry."""
    with Session(get_engine()) as session:
        if only_if_empty and not database_is_empty(session):
            typer.echo("Database already has data; demo not loaded.")
            return
        added = load_demo(session)
    typer.echo(f"Demo loaded: {len(added)} records added." if added else "Demo already loaded.")


@demo_cli.command("season")
def demo_season() -> None:
    """Fill the past demo edition with a season of applicants, money, attendance and work."""
    from sqlmodel import func, select

    from app.models import Application, Edition, StaffUser
    from app.platform.storage import make_storage
    from app.services.office.demo_season import OfficeSettings, fill_demo_week
    from app.web.dependencies import seller_from

    settings = get_settings()
    with Session(get_engine(), expire_on_commit=False) as session:
        edition = session.exec(select(Edition).where(Edition.slug == "diploma-2024")).first()
        admin = session.exec(select(StaffUser).where(StaffUser.role == "admin")).first()
        if edition is None or admin is None:
            typer.echo("Load the demo and create an administrator first (`diplomat init`).")
            raise typer.Exit(code=1)
        held = session.exec(
            select(func.count())
            .select_from(Application)
            .where(Application.edition_id == edition.id)
        ).one()
        if held:
            typer.echo(f"The demo season is there already ({held} applications); nothing added.")
            return
        people = fill_demo_week(
            session,
            edition,
            storage=make_storage(settings),
            admin=admin,
            settings=OfficeSettings(
                seller=seller_from(settings),
                secret_key=settings.secret_key,
                base_url=settings.base_url,
                office_email=settings.mail_from,
            ),
        )
    typer.echo(f"Filled the season of {edition.slug}: {len(people)} applicants.")


@users_cli.command("create")
def users_create(
    email: str,
    role: Annotated[str, typer.Option(help="admin or tutor")] = "admin",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    full_name: Annotated[str, typer.Option(help="The person's name.")] = "",
) -> None:
    """Create a staff account; without --password-stdin a password is generated and printed."""
    generated = not password_stdin
    password = secrets.token_urlsafe(15) if generated else sys.stdin.readline().rstrip("\n")
    with Session(get_engine()) as session:
        try:
            user = create_user(
                session, email=email, password=password, role=role, full_name=full_name
            )
        except DomainError as exc:
            details = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
            typer.echo(f"Not created: {exc.message} {details}".strip(), err=True)
            raise typer.Exit(code=1) from exc
    typer.echo(f"Created {user.role} {user.email}.")
    if generated:
        typer.echo(f"Password (shown once): {password}")


@users_cli.command("set-password")
def users_set_password(email: str) -> None:
    """Give an account a new password (read from standard input); its sessions and tokens end."""
    password = sys.stdin.readline().rstrip("\n")
    with Session(get_engine()) as session:
        try:
            change_password(session, email=email, password=password)
        except DomainError as exc:
            typer.echo(f"Not changed: {exc.message}", err=True)
            raise typer.Exit(code=1) from exc
    typer.echo(f"New password set for {email}; its sessions and tokens have ended.")


@users_cli.command("deactivate")
def users_deactivate(email: str) -> None:
    """Close an account: no more logins, and its sessions and tokens end now."""
    with Session(get_engine()) as session:
        try:
            deactivate_user(session, email=email)
        except DomainError as exc:
            typer.echo(f"Not deactivated: {exc.message}", err=True)
            raise typer.Exit(code=1) from exc
    typer.echo(f"Deactivated {email}.")


@mail_cli.command("send")
def mail_send() -> None:
    """Send every queued e-mail that is due now (retries wait for their back-off)."""
    from app.main import mail_settings
    from app.platform.mail import deliver_due
    from app.platform.storage import make_storage

    settings = get_settings()
    total_sent = total_failed = 0
    while True:
        sent, failed = deliver_due(
            get_engine(), settings=mail_settings(settings), storage=make_storage(settings)
        )
        total_sent += sent
        total_failed += failed
        if sent + failed == 0:
            break
    typer.echo(f"Sent {total_sent}, failed {total_failed} (failures are retried later).")


@privacy_cli.command("erase-visa-details")
def erase_visa_details(
    edition: Annotated[str, typer.Option(help="Only this edition (it must have ended).")] = "",
) -> None:
    """Erase passport numbers, birth dates, nationalities and letters of ended editions."""
    from app.platform.storage import make_storage
    from app.services.editions.editions import get_edition
    from app.services.teaching.logistics import erase_visa_details as erase

    settings = get_settings()
    with Session(get_engine()) as session:
        try:
            edition_id = get_edition(session, edition).id if edition else None
            count = erase(
                session,
                storage=make_storage(settings),
                edition_id=edition_id,
                actor="diplomat privacy erase-visa-details",
            )
        except DomainError as exc:
            typer.echo(exc.message, err=True)
            raise typer.Exit(code=1) from exc
    typer.echo(f"Visa details erased for {count} participants.")


@cli.command("init")
def init() -> None:
    """Migrate, load the demo into an empty database, and create the first administrator."""
    db_upgrade()
    demo_load(only_if_empty=True)
    with Session(get_engine()) as session:
        if any_admin_exists(session):
            return
        password = secrets.token_urlsafe(15)
        create_user(
            session,
            email=DEFAULT_ADMIN_EMAIL,
            password=password,
            role="admin",
            full_name="Course administrator",
        )
    bar = "=" * 64
    typer.echo(
        f"\n{bar}\n  First administrator created (the password is shown only now):\n"
        f"    e-mail:   {DEFAULT_ADMIN_EMAIL}\n    password: {password}\n{bar}\n"
    )


@cli.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    reload: Annotated[
        bool, typer.Option(help="Restart on changes to the code and the templates.")
    ] = False,
) -> None:
    """Serve the application with uvicorn."""
    import uvicorn

    typer.echo(f"Serving on http://{host}:{port}")
    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        # Templates are read once per process; a changed one restarts the server.
        reload_includes=["*.html", "*.txt", "*.svg"] if reload else None,
        # Forwarded headers are believed only from DIPLOMAT_FORWARDED_ALLOW_IPS, by the app
        # (app.main): uvicorn's own default would trust whatever 127.0.0.1 sends.
        proxy_headers=False,
        log_level="info",
        log_config=log_config(json_lines=get_settings().log_format == "json"),
    )


@cli.command("worker")
def worker(
    poll: Annotated[float, typer.Option(help="Seconds between rounds when idle.")] = 2.0,
    until_idle: Annotated[
        bool,
        typer.Option(
            help="Stop once nothing is left to do: no mail due, no job queued or running."
        ),
    ] = False,
) -> None:
    """Do the background work beside the web workers: mail, seat offers, card refunds, and the
    jobs people start (bulk certificate runs, statement imports).

    Any number of workers can share one database: each message, refund and job is claimed by
    one of them, and a job whose worker died is resumed by another. Run the web processes with
    DIPLOMAT_MAIL_WORKER_IN_PROCESS=false and DIPLOMAT_JOBS_IN_PROCESS=false.
    """
    import os
    import time

    from app.main import mail_settings, run_chores
    from app.platform import jobs
    from app.platform.mail import deliver_due
    from app.platform.storage import make_storage
    from app.services.certificates.issuing import CertificateOptions
    from app.worker import job_context

    settings = get_settings()
    engine = get_engine()
    storage = make_storage(settings)
    context = job_context(
        engine,
        storage,
        CertificateOptions.from_settings(settings, cpu_count=os.cpu_count()),
    )
    name = jobs.worker_name()
    last_chores = 0.0
    while True:
        sent, failed = deliver_due(engine, settings=mail_settings(settings), storage=storage)
        if time.monotonic() - last_chores >= settings.chores_poll_seconds or until_idle:
            run_chores(engine, settings)
            last_chores = time.monotonic()
        if sent + failed:
            typer.echo(f"Sent {sent}, failed {failed}.")
        done = jobs.work_once(engine, context, worker=name)
        if done is not None:
            typer.echo(_job_line(done))
        if sent + failed or done is not None:
            continue
        # Jobs other workers hold count too: one of them may die and leave its job to us.
        if until_idle and not jobs.unfinished_count(engine):
            return
        time.sleep(poll)


def _job_line(done: "jobs.Round") -> str:
    """One line on a job this worker did, with the counts of its result."""
    head = f"Job {done.job_id} ({done.kind})"
    if done.result is None:
        return f"{head} did not finish here."
    facts = [
        f"{name} {len(value) if isinstance(value, list) else value}"
        for name, value in done.result.items()
        if name not in ("run_id", "status")
    ]
    return f"{head} done: {', '.join(facts)}."


def main() -> None:
    """Entry point of the `diplomat` command."""
    cli()
