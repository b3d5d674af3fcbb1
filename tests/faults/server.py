"""A diplomat server in a child process that the fault tests can kill and start again."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx2 as httpx


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cli(args: list[str], env: dict[str, str]) -> str:
    """Run `diplomat ARGS` and return what it printed; fail on a non-zero exit."""
    result = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class Server:
    """`uvicorn app.main:app` on one database, with the first administrator's password."""

    database_url: str
    folder: Path
    port: int = field(default_factory=free_port)
    password: str = ""
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DIPLOMAT_DATABASE_URL": self.database_url,
            "DIPLOMAT_VAR_DIR": str(self.folder),
            "DIPLOMAT_BASE_URL": self.url,
            "DIPLOMAT_MAIL_WORKER_IN_PROCESS": "false",
        }

    def init(self) -> None:
        """Migrate, load the demo and create the administrator."""
        found = re.search(r"password: (\S+)", cli(["init"], self.env))
        assert found
        self.password = found.group(1)

    def start(self, *, workers: int = 1) -> None:
        """Start the server and wait until it answers."""
        if self.log is None:
            self.log = (self.folder / "server.log").open("ab")
        log = self.log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:app",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError((self.folder / "server.log").read_text())
            time.sleep(0.2)

    def kill(self) -> None:
        """kill -9 the server and every process it started."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Stop the server politely if it runs, and close its log."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def token(self) -> str:
        """A bearer token for the administrator."""
        answer = httpx.post(
            f"{self.url}/api/v1/auth/token",
            data={"username": "admin@example.org", "password": self.password},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    def open_edition(self) -> str:
        """The slug of the demo edition that takes applications now."""
        editions = httpx.get(f"{self.url}/api/v1/editions", timeout=30).json()
        slug: str = next(e["slug"] for e in editions if e["applications_are_open"])
        return slug
