"""PostgreSQL restarted under load: 503 while it is away (never 500), and the service
recovers by itself when it is back."""

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import require_in_ci
from tests.faults.server import Server, free_port

MOTIVATION = "I plan our city's international work and want to learn how to do it well."
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


@dataclass
class Cluster:
    """A PostgreSQL cluster of our own, so stopping it disturbs nobody else's tests."""

    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        assert PG_BIN is not None
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                *args,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._pg_ctl("-o", options, "-l", str(self.folder / "pg.log"), "-w", "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "immediate", "-w", "stop")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if PG_BIN is None or os.geteuid() != 0 or shutil.which("runuser") is None:
        require_in_ci("a private PostgreSQL cluster needs the server binaries and root")
    folder = Path(tempfile.mkdtemp(prefix="diplomat-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    os.chmod(folder, 0o700)
    assert PG_BIN is not None
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(PG_BIN / "initdb"),
            "-D",
            str(folder / "data"),
            "-A",
            "trust",
            "-U",
            "postgres",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    running = Cluster(folder, free_port())
    running.start()
    try:
        yield running
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(folder / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)


def test_the_service_answers_503_while_the_database_is_away_and_recovers_alone(
    cluster: Cluster, tmp_path: Path
) -> None:
    server = Server(cluster.url, tmp_path)
    server.init()
    server.start(workers=2)
    try:
        slug = server.open_edition()
        seen: list[tuple[float, str, str]] = []
        stop = threading.Event()

        def load(worker: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    if i % 2:
                        answer = httpx.get(f"{server.url}/api/v1/editions/{slug}", timeout=10)
                        kind = "read"
                    else:
                        answer = httpx.post(
                            f"{server.url}/api/v1/editions/{slug}/applications",
                            json={
                                "given_name": "Load",
                                "family_name": f"{worker}-{i}",
                                "email": f"load{worker}.{i}@city.example",
                                "organisation_name": "Ciudad",
                                "country": "MEX",
                                "job_title": "Officer",
                                "motivation": MOTIVATION,
                                "consent": True,
                            },
                            timeout=10,
                        )
                        kind = "write"
                    seen.append((time.monotonic(), kind, str(answer.status_code)))
                except httpx.TransportError as exc:
                    seen.append((time.monotonic(), "error", type(exc).__name__))
                time.sleep(0.02)

        threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        cluster.stop()
        down_at = time.monotonic()
        time.sleep(3)
        health = httpx.get(f"{server.url}/readyz", timeout=10)
        starting_at = time.monotonic()
        cluster.start()
        up_at = time.monotonic()
        time.sleep(4)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

        statuses = Counter(status for _, _, status in seen)
        assert health.status_code == 503
        assert "500" not in statuses, statuses
        assert statuses["503"] > 0, statuses
        during = Counter(status for at, _, status in seen if down_at + 0.5 < at < starting_at)
        assert set(during) <= {"503"}, during
        recovered = [at for at, _, status in seen if at > up_at and status in ("200", "201")]
        assert recovered, "no successful answer after the database came back"
        assert min(recovered) - up_at < 4
        late = Counter(status for at, _, status in seen if at > min(recovered) + 0.5)
        assert set(late) <= {"200", "201"}, late
        first = min(recovered) - up_at
        print(f"\nanswers {dict(statuses)}; first success {first:.2f} s after the restart")
    finally:
        server.stop()
