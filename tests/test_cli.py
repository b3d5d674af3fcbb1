"""The command line: first start, demo, staff accounts."""

import os
import subprocess
import sys
from pathlib import Path

from sqlmodel import Session, select

from app.clock import utcnow
from app.db import make_engine
from app.models import Edition, Organisation, StaffUser
from app.services.office.demo import example_next_edition


def run_cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `diplomat ARGS` in a child process."""
    return subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_init_migrates_loads_the_demo_and_prints_the_admin_password_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {"DIPLOMAT_DATABASE_URL": url, "DIPLOMAT_VAR_DIR": str(tmp_path)}
    first = run_cli("init", env=env)
    assert first.returncode == 0, first.stderr
    assert "admin@example.org" in first.stdout
    assert "password:" in first.stdout
    second = run_cli("init", env=env)
    assert second.returncode == 0, second.stderr
    assert "password:" not in second.stdout
    engine = make_engine(url)
    with Session(engine) as session:
        slugs = session.exec(select(Edition.slug)).all()
        assert sorted(slugs)[0] == "diploma-2024"
        assert len(session.exec(select(Organisation)).all()) >= 12
        assert len(session.exec(select(StaffUser)).all()) == 1
    engine.dispose()


def test_users_create_reads_the_password_from_stdin(tmp_path: Path) -> None:
    env = {"DIPLOMAT_DATABASE_URL": f"sqlite:///{tmp_path / 'u.db'}"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    created = run_cli(
        "users",
        "create",
        "tutor@example.org",
        "--role",
        "tutor",
        "--password-stdin",
        env=env,
        stdin="a-long-enough-password\n",
    )
    assert created.returncode == 0, created.stderr
    assert "Created tutor tutor@example.org" in created.stdout
    again = run_cli(
        "users", "create", "tutor@example.org", "--password-stdin", env=env, stdin="x" * 20
    )
    assert again.returncode == 1
    assert "exists already" in again.stderr
    short = run_cli("users", "create", "b@example.org", "--password-stdin", env=env, stdin="short")
    assert short.returncode == 1
    assert "12 characters" in short.stderr


def test_demo_load_twice_adds_nothing(tmp_path: Path) -> None:
    env = {"DIPLOMAT_DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    assert "records added" in run_cli("demo", "load", env=env).stdout
    assert "Demo already loaded." in run_cli("demo", "load", env=env).stdout
    erased = run_cli("privacy", "erase-visa-details", env=env)
    assert "Visa details erased for 0 participants." in erased.stdout
    upcoming = example_next_edition(utcnow()).slug
    future = run_cli("privacy", "erase-visa-details", "--edition", upcoming, env=env)
    assert future.returncode == 1
    assert "visa details are kept until it is over" in future.stderr
    assert run_cli("mail", "send", env=env).stdout.startswith("Sent 0, failed 0")


def test_production_refuses_a_missing_secret_key(tmp_path: Path) -> None:
    env = {
        "DIPLOMAT_ENVIRONMENT": "production",
        "DIPLOMAT_SECRET_KEY": "",
        "DIPLOMAT_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
    }
    result = run_cli("db", "upgrade", env=env)
    assert result.returncode != 0
    assert "DIPLOMAT_SECRET_KEY" in result.stderr


def test_production_refuses_the_example_bank_account(tmp_path: Path) -> None:
    env = {
        "DIPLOMAT_ENVIRONMENT": "production",
        "DIPLOMAT_SECRET_KEY": "k" * 40,
        "DIPLOMAT_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
    }
    result = run_cli("db", "upgrade", env=env)
    assert result.returncode != 0
    assert "DIPLOMAT_BANK_IBAN" in result.stderr


def test_demo_season_fills_the_past_edition_once(tmp_path: Path) -> None:
    from sqlalchemy import func

    from app.models import Application, Invoice, Payment

    url = f"sqlite:///{tmp_path / 'season.db'}"
    env = {"DIPLOMAT_DATABASE_URL": url, "DIPLOMAT_VAR_DIR": str(tmp_path)}
    refused = run_cli("demo", "season", env=env)
    assert refused.returncode != 0  # nothing to fill before `init`
    assert run_cli("init", env=env).returncode == 0
    first = run_cli("demo", "season", env=env)
    assert first.returncode == 0, first.stderr
    assert "38 applicants" in first.stdout
    second = run_cli("demo", "season", env=env)
    assert second.returncode == 0 and "nothing added" in second.stdout
    engine = make_engine(url)
    with Session(engine) as session:
        counts = [
            session.exec(select(func.count()).select_from(model)).one()
            for model in (Application, Invoice, Payment)
        ]
    engine.dispose()
    assert counts[0] == 38 and counts[1] > 0 and counts[2] > 0
