"""Three `diplomat worker` processes share one database: every queued e-mail goes out once."""

import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session, create_engine, select

from app.models import OutboxMessage
from app.services.mail import queue_email
from tests.conftest import fresh_postgres_database
from tests.services.test_mail import Inbox, free_port

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
