"""How much one certificate costs: the bulk path against one document per certificate.

Run: `.venv/bin/python bench/certificates.py [--participants 500]`

Builds an edition of N eligible participants (names in Latin with accents, Cyrillic,
Arabic, Chinese, and some very long ones) in a SQLite database in a temporary folder, then
prints the cost per certificate of

  (a) the product's bulk path: `issue_for_edition`, with eligibility, numbers, rendering in
      batches (one document per batch, in one process per core), splitting, storing every
      PDF, the database rows, e-mails and audit entries;
  (a1) the same bulk path held to a single process;
  (b) rendering each certificate as its own WeasyPrint document;
  (c) rendering all N as one WeasyPrint document (the floor for one process);

and the ratios the issue asks for: (a) <= 1.5 x (c) and (b) / (a) >= 5.
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NAMES = [
    ("Zoë", "Ñúñez-Østergård"),
    ("Ama", "Banda"),
    ("Дмитрий", "Ковалёв"),
    ("محمد", "بن راشد"),
    ("小明", "王"),
    ("François-Xavier", "Çelik"),
    ("Nguyễn", "Thị Minh Khai"),
    ("María Fernanda de los Ángeles", "Rodríguez-Villanueva y Castellanos de la Santísima"),
    ("Siobhán", "Ó Súilleabháin"),
    ("Kwame", "Mensah-Bonsu"),
]


def _prepare(folder: Path) -> None:
    os.environ.update(
        DIPLOMAT_ENVIRONMENT="development",
        DIPLOMAT_VAR_DIR=str(folder / "var"),
        DIPLOMAT_DATABASE_URL=f"sqlite:///{folder / 'bench.db'}",
        DIPLOMAT_MAIL_WORKER_IN_PROCESS="false",
    )


def _edition(session, slug: str, participants: int):  # type: ignore[no-untyped-def]
    """An edition that ended last month with `participants` eligible participants."""
    from app.clock import utcnow
    from app.models import Application, AttendanceMark, FinalWork
    from app.services.editions.editions import EditionCreate, create_edition

    start = date.today() - timedelta(days=40)
    edition = create_edition(
        session,
        data=EditionCreate.model_validate(
            {
                "slug": slug,
                "title": "Metropolis Diploma in Internationalization for Local Authorities",
                "edition_label": "Benchmark edition",
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
        actor="bench",
    )
    sessions = [s for module in edition.modules for s in module.sessions]
    now = utcnow()
    for index in range(participants):
        given, family = NAMES[index % len(NAMES)]
        application = Application(
            edition_id=edition.id or 0,
            reference=f"B{slug[-1]}-{index:06d}",
            status="confirmed",
            given_name=given,
            family_name=family,
            email=f"participant{index}@{slug}.example",
            organisation_name="Example City Council",
            country="ESP",
            job_title="International relations officer",
            motivation="Benchmark participant.",
            consent_at=now,
            quoted_total=Decimal("0.00"),
            confirmed_at=now,
        )
        session.add(application)
        session.flush()
        for course_session in sessions:
            session.add(
                AttendanceMark(
                    course_session_id=course_session.id or 0,
                    application_id=application.id or 0,
                    status="present",
                    marked_by="bench",
                )
            )
        session.add(
            FinalWork(
                application_id=application.id or 0,
                file_key="bench/final-work.pdf",
                filename="final-work.pdf",
                status="accepted",
                assessed_by="bench",
                assessed_at=now,
            )
        )
    session.commit()
    return edition


def main() -> None:
    """Build the data, time the four ways, print the figures and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--participants", type=int, default=500)
    arguments = parser.parse_args()
    count: int = arguments.participants

    with tempfile.TemporaryDirectory(prefix="diplomat-bench-") as name:
        folder = Path(name)
        _prepare(folder)
        from alembic import command
        from sqlmodel import Session

        from app.config import Settings
        from app.db import alembic_config, make_engine
        from app.platform.pdf import render_pdf
        from app.platform.storage import LocalStorage
        from app.services.certificates import issuing as service
        from app.services.certificates.document import TEMPLATE, page_context

        settings = Settings()
        command.upgrade(alembic_config(settings.database_url), "head")
        engine = make_engine(settings.database_url)
        storage = LocalStorage(folder / "files")
        options = service.CertificateOptions.from_settings(settings, cpu_count=os.cpu_count())
        single = service.CertificateOptions.from_settings(settings, cpu_count=1)
        with Session(engine) as session:
            print(f"Building two editions of {count} eligible participants ...", flush=True)
            bulk_edition = _edition(session, "bench-a", count)
            single_edition = _edition(session, "bench-b", count)
            modules = tuple(m.title for m in bulk_edition.modules)
            contexts = [
                page_context(
                    service._page(
                        number=f"MD26-BNCH-{i:04d}-0000-0",
                        holder=" ".join(NAMES[i % len(NAMES)]),
                        version=1,
                        issued_on=date.today(),
                        edition=bulk_edition,
                        modules=modules,
                        options=options,
                    )
                )
                for i in range(count)
            ]
            # Warm up WeasyPrint, fontconfig and the templates so no figure pays for them.
            render_pdf(TEMPLATE, {"certificates": contexts[:2]})

            started = time.perf_counter()
            floor = render_pdf(TEMPLATE, {"certificates": contexts})
            c = (time.perf_counter() - started) / count
            print(
                f"(c) all {count} as one document:     {1000 * c:7.1f} ms per certificate "
                f"({len(floor) // 1024} KB)",
                flush=True,
            )

            started = time.perf_counter()
            result = service.issue_for_edition(
                session, edition=bulk_edition, actor="bench", storage=storage, options=options
            )
            a = (time.perf_counter() - started) / count
            assert len(result.issued) == count, (len(result.issued), result.skipped[:3])
            print(
                f"(a) the product's bulk path:        {1000 * a:7.1f} ms per certificate "
                f"({options.render_processes} processes, batches of 50)",
                flush=True,
            )

            started = time.perf_counter()
            for context in contexts:
                render_pdf(TEMPLATE, {"certificates": [context]})
            b = (time.perf_counter() - started) / count
            print(
                f"(b) one document per certificate:   {1000 * b:7.1f} ms per certificate",
                flush=True,
            )

            started = time.perf_counter()
            result = service.issue_for_edition(
                session, edition=single_edition, actor="bench", storage=storage, options=single
            )
            a1 = (time.perf_counter() - started) / count
            assert len(result.issued) == count
            print(
                f"(a1) bulk path in one process:      {1000 * a1:7.1f} ms per certificate",
                flush=True,
            )
        engine.dispose()

    print()
    print(f"(a) / (c)  = {a / c:5.2f}   (goal: at most 1.5)")
    print(f"(b) / (a)  = {b / a:5.2f}   (goal: at least 5)")
    print(f"(a1) / (c) = {a1 / c:5.2f}   (b) / (a1) = {b / a1:5.2f}   (one process)")


if __name__ == "__main__":
    main()
