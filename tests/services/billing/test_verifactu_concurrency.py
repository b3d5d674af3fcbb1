"""The issuer's chain of records stays one line when many invoices are issued at once."""

import threading
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select

from app.db import writer_engine
from app.models import Application, TaxRecord
from app.platform.storage import LocalStorage
from app.services.billing import invoices as invoicing
from app.services.billing import verifactu
from app.services.billing.voiding import void_invoice
from tests.factories import open_edition, submit
from tests.services.billing.verifactu_helpers import ISSUER_NIF, SPANISH_SELLER, TAX_RECORDS

ISSUES = 50
VOIDS = 10
THREADS = 10


def _issue(engine: Engine, storage: LocalStorage, application_id: int) -> None:
    with Session(writer_engine(engine)) as session:
        application = session.get(Application, application_id)
        assert application is not None
        invoicing.issue_invoice(
            session, application=application, seller=SPANISH_SELLER, actor="t", storage=storage
        )
        session.commit()


def _void(engine: Engine, number: str) -> None:
    with Session(writer_engine(engine)) as session:
        invoice = invoicing.get_invoice(session, number)
        void_invoice(
            session, invoice=invoice, reason="Issued in error", actor="t", tax_records=TAX_RECORDS
        )
        session.commit()


def test_fifty_invoices_issued_at_once_give_one_unforked_chain(
    fresh_engine: Engine, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    with Session(fresh_engine) as session:
        edition = open_edition(session, slug="chain", capacity=ISSUES + VOIDS)
        ids = [
            submit(session, storage, edition, email=f"c{i}@x.org").id or 0
            for i in range(ISSUES + VOIDS)
        ]
    # Invoices voided while the fifty are issued: annulments take no invoice number, so only
    # the chain's own lock keeps them in line with the issues.
    for application_id in ids[ISSUES:]:
        _issue(fresh_engine, storage, application_id)
    with Session(fresh_engine) as session:
        to_void = [r.invoice_number for r in session.exec(select(TaxRecord)).all()]
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(chunk: list[int], voids: list[str]) -> None:
        start.wait()
        for application_id in chunk:
            try:
                _issue(fresh_engine, storage, application_id)
                if voids:
                    _void(fresh_engine, voids.pop())
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(ids[:ISSUES][i::THREADS], to_void[i::THREADS]))
        for i in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert errors == []
    with Session(fresh_engine) as session:
        records = list(session.exec(select(TaxRecord)).all())
    kinds = [r.record_type for r in records]
    assert (kinds.count("alta"), kinds.count("anulacion")) == (ISSUES + VOIDS, VOIDS)
    by_id = {r.id: r for r in records}
    firsts = [r for r in records if r.previous_id is None]
    predecessors = [r.previous_id for r in records if r.previous_id is not None]
    # One first record; every other points at exactly one record, and no two at the same one.
    assert len(firsts) == 1
    assert len(predecessors) == len(set(predecessors)) == len(records) - 1
    # Walking back from the only record nobody points at visits all fifty.
    (last,) = [r for r in records if r.id not in set(predecessors)]
    walked = 0
    record: TaxRecord | None = last
    while record is not None:
        assert record.issuer_tax_id == ISSUER_NIF
        assert record.hash == verifactu.record_fingerprint(record)
        previous = by_id.get(record.previous_id) if record.previous_id else None
        assert record.previous_hash == (previous.hash if previous else "")
        record = previous
        walked += 1
    assert walked == len(records)
    assert sorted(r.sequence for r in records) == list(range(1, len(records) + 1))
