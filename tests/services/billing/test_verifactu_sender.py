"""Sending records to the AEAT (a local fake of its service): answers kept, pauses honoured,
nothing lost in an outage and nothing registered twice."""

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.config import Settings
from app.db import writer_engine
from app.models import Edition, TaxRecord, TaxRecordSubmission
from app.platform.storage import LocalStorage
from app.services.billing import invoices as invoicing
from app.services.billing import verifactu
from app.services.billing.verifactu_sender import SenderSettings, send_due, unaccepted
from tests.aeat_fake import FakeAeat, make_tls_files, running_fake_aeat
from tests.factories import open_edition, submit
from tests.services.billing.verifactu_helpers import SPANISH_SELLER, TAX_RECORDS


@pytest.fixture
def aeat() -> Iterator[FakeAeat]:
    with running_fake_aeat() as fake:
        yield fake


@pytest.fixture
def issue(fresh_engine: Engine, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Issue invoices for new applicants, committed; returns their numbers."""
    storage = LocalStorage(tmp_path)
    with Session(fresh_engine) as session:
        edition = open_edition(session, slug="sending", capacity=100)
        edition_id = edition.id
    issued: list[str] = []

    def _issue(count: int) -> list[str]:
        numbers = []
        for _ in range(count):
            with Session(writer_engine(fresh_engine)) as session:
                edition = session.get(Edition, edition_id)
                email = f"p{len(issued)}@example.org"
                application = submit(session, storage, edition, email=email)
                invoice = invoicing.issue_invoice(
                    session,
                    application=application,
                    seller=SPANISH_SELLER,
                    actor="t",
                    storage=storage,
                )
                numbers.append(invoice.number)
                issued.append(invoice.number)
                session.commit()
        return numbers

    return _issue


def _states(engine: Engine) -> dict[str, tuple[str, str, str]]:
    with Session(engine) as session:
        rows = session.exec(
            select(TaxRecord.invoice_number, TaxRecordSubmission).join(
                TaxRecordSubmission, col(TaxRecordSubmission.record_id) == col(TaxRecord.id)
            )
        ).all()
        return {n: (s.status, s.error_code, s.error_text) for n, s in rows}


def test_a_batch_is_accepted_and_its_answer_kept(
    fresh_engine: Engine, aeat: FakeAeat, issue
) -> None:  # type: ignore[no-untyped-def]
    numbers = issue(3)
    done = send_due(fresh_engine, settings=SenderSettings(url=aeat.url))
    assert (done.messages, done.accepted, done.not_arrived) == (1, 3, 0)
    assert aeat.messages == [numbers] and aeat.faults == []
    assert _states(fresh_engine) == dict.fromkeys(numbers, ("accepted", "", ""))
    with Session(fresh_engine) as session:
        submissions = session.exec(select(TaxRecordSubmission)).all()
        assert {s.csv for s in submissions} == {"A-FAKE0000000001"}
        assert all(s.wait_until is not None and s.sent_at is not None for s in submissions)
    # Nothing is sent again.
    later = utcnow() + timedelta(hours=2)
    assert send_due(fresh_engine, settings=SenderSettings(url=aeat.url), now=later).messages == 0
    assert len(aeat.messages) == 1


def test_the_next_message_waits_the_time_the_aeat_asked_for(
    fresh_engine: Engine, aeat: FakeAeat, issue
) -> None:  # type: ignore[no-untyped-def]
    aeat.wait_seconds = 120
    config = SenderSettings(url=aeat.url)
    issue(1)
    now = utcnow()
    send_due(fresh_engine, settings=config, now=now)
    [second] = issue(1)
    early = send_due(fresh_engine, settings=config, now=now + timedelta(seconds=119))
    assert early.messages == 0 and early.waiting_until is not None
    assert _states(fresh_engine)[second][0] == "pending"
    done = send_due(fresh_engine, settings=config, now=now + timedelta(seconds=121))
    assert done.accepted == 1 and aeat.messages[-1] == [second]


def test_a_rejected_record_keeps_the_aeats_code_and_reason_and_is_not_resent(
    fresh_engine: Engine, aeat: FakeAeat, issue
) -> None:  # type: ignore[no-untyped-def]
    first, bad, third = issue(3)
    aeat.refuse[bad] = ("1100", "Valor o tipo incorrecto del campo: NumSerieFactura")
    done = send_due(fresh_engine, settings=SenderSettings(url=aeat.url))
    assert (done.accepted, done.rejected) == (2, 1)
    states = _states(fresh_engine)
    assert states[bad] == ("rejected", "1100", "Valor o tipo incorrecto del campo: NumSerieFactura")
    assert states[first][0] == states[third][0] == "accepted"
    with Session(fresh_engine) as session:
        waiting = unaccepted(session)
    assert [(r.invoice_number, s.error_code) for r, s in waiting] == [(bad, "1100")]
    send_due(fresh_engine, settings=SenderSettings(url=aeat.url), now=utcnow() + timedelta(hours=1))
    assert len(aeat.messages) == 1


def test_an_outage_loses_nothing_and_sends_each_record_once(
    fresh_engine: Engine, aeat: FakeAeat, issue
) -> None:  # type: ignore[no-untyped-def]
    numbers = issue(2)
    config = SenderSettings(url=aeat.url)
    aeat.away = True
    now = utcnow()
    down = send_due(fresh_engine, settings=config, now=now)
    assert (down.not_arrived, down.accepted) == (2, 0) and "503" in down.problems[0]
    assert {s[0] for s in _states(fresh_engine).values()} == {"pending"}
    aeat.away = False
    # Not before the back-off: the next try is a minute later.
    assert send_due(fresh_engine, settings=config, now=now + timedelta(seconds=30)).messages == 0
    back = send_due(fresh_engine, settings=config, now=now + timedelta(seconds=61))
    assert back.accepted == 2
    assert aeat.messages == [numbers]
    assert len(aeat.registered) == 2


def test_a_lost_answer_is_recognised_as_a_duplicate_and_kept_as_accepted(
    fresh_engine: Engine, aeat: FakeAeat, issue
) -> None:  # type: ignore[no-untyped-def]
    [number] = issue(1)
    config = SenderSettings(url=aeat.url)
    aeat.lose_next_answer = True
    now = utcnow()
    lost = send_due(fresh_engine, settings=config, now=now)
    assert lost.not_arrived == 1
    again = send_due(fresh_engine, settings=config, now=now + timedelta(minutes=5))
    assert again.accepted == 1
    assert _states(fresh_engine)[number] == (
        "accepted",
        "3000",
        "Registro de facturación duplicado.",
    )
    # The AEAT holds the record once.
    assert len(aeat.registered) == 1


def test_a_record_that_breaks_the_schema_is_kept_out_of_the_message_with_the_reason(
    fresh_engine: Engine, aeat: FakeAeat, issue
) -> None:  # type: ignore[no-untyped-def]
    [number] = issue(1)
    with Session(writer_engine(fresh_engine)) as session:
        invoice = invoicing.get_invoice(session, number)
        # A corrected invoice named with a date in the wrong format (the schema wants dd-mm-yyyy).
        broken = TaxRecord(
            invoice_id=invoice.id or 0,
            issuer_tax_id=TAX_RECORDS.issuer_tax_id,
            sequence=0,
            record_type="alta",
            issuer_name="Metropolis",
            invoice_number="CN-BROKEN",
            issue_date=invoice.issue_date,
            invoice_type="R1",
            corrective_type="I",
            corrected=[{"issuer_tax_id": "G08012346", "number": number, "issue_date": "2026-1-1"}],
            description="Broken",
            without_recipient=True,
            breakdown=verifactu.breakdown(invoice),
            tax_total=invoice.tax_total,
            total=-invoice.total,
            generated_at="",
            hash="",
        )
        verifactu._append(session, broken, replace(TAX_RECORDS), utcnow())
        session.commit()
    done = send_due(fresh_engine, settings=SenderSettings(url=aeat.url))
    # The broken record stays out of the message, which would be refused whole for it.
    assert (done.accepted, done.rejected) == (1, 1)
    assert aeat.messages == [[number]] and aeat.faults == []
    status, code, text = _states(fresh_engine)["CN-BROKEN"]
    assert (status, code) == ("rejected", "schema")
    assert "FechaExpedicionFactura" in text


def test_a_message_the_aeat_refuses_whole_is_shown_and_tried_again(
    fresh_engine: Engine, aeat: FakeAeat, issue
) -> None:  # type: ignore[no-untyped-def]
    [number] = issue(1)
    aeat.fault = "Codigo[103].El NIF del certificado no corresponde al del obligado."
    config = SenderSettings(url=aeat.url)
    now = utcnow()
    refused = send_due(fresh_engine, settings=config, now=now)
    assert refused.not_arrived == 1 and "Codigo[103]" in refused.problems[0]
    with Session(fresh_engine) as session:
        [(record, submission)] = unaccepted(session)
    assert record.invoice_number == number and submission.status == "pending"
    assert "(103)" in submission.last_problem
    aeat.fault = ""
    assert send_due(fresh_engine, settings=config, now=now + timedelta(minutes=2)).accepted == 1
    assert _states(fresh_engine)[number][0] == "accepted"


def test_the_office_chores_send_the_records_when_sending_is_on(
    fresh_engine: Engine, aeat: FakeAeat, issue, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    from app.main import run_chores

    [number] = issue(1)
    spanish = settings.model_copy(
        update={"verifactu_enabled": True, "organisation_tax_id": "ESG08012346"}
    )
    run_chores(fresh_engine, spanish.model_copy(update={"verifactu_sending": False}))
    assert aeat.messages == []
    run_chores(fresh_engine, spanish.model_copy(update={"verifactu_endpoint": aeat.url}))
    assert aeat.messages == [[number]]
    assert _states(fresh_engine)[number][0] == "accepted"


def test_records_go_over_tls_with_the_offices_certificate_and_not_without_it(
    fresh_engine: Engine, issue, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    tls = make_tls_files(tmp_path)
    with running_fake_aeat(tls) as aeat:
        [number] = issue(1)
        anonymous = SenderSettings(url=aeat.url, ca_file=tls.ca)
        refused = send_due(fresh_engine, settings=anonymous)
        assert refused.not_arrived == 1 and aeat.messages == []
        signed = SenderSettings(url=aeat.url, certificate_file=tls.client, ca_file=tls.ca)
        done = send_due(fresh_engine, settings=signed, now=utcnow() + timedelta(minutes=2))
        assert done.accepted == 1
        assert aeat.clients == ["G08012346 Metropolis"] and aeat.messages == [[number]]


def test_records_claimed_by_a_sender_that_died_are_sent_by_the_next_one_once(
    fresh_engine: Engine, aeat: FakeAeat, issue
) -> None:  # type: ignore[no-untyped-def]
    from app.services.billing.verifactu_sender import STALE_CLAIM, _claim

    [number] = issue(1)
    now = utcnow()
    # A sender claims the record, delivers it, and dies before keeping the answer.
    [claimed] = _claim(fresh_engine, TAX_RECORDS.issuer_tax_id, now)
    assert aeat.answer(_envelope([claimed]))[0] == 200
    config = SenderSettings(url=aeat.url)
    assert send_due(fresh_engine, settings=config, now=now + timedelta(minutes=1)).messages == 0
    later = send_due(fresh_engine, settings=config, now=now + STALE_CLAIM + timedelta(seconds=1))
    assert later.accepted == 1
    assert _states(fresh_engine)[number][:2] == ("accepted", "3000")
    assert len(aeat.registered) == 1


def _envelope(records: list[TaxRecord]) -> bytes:
    from app.services.billing.verifactu_sender import soap_envelope

    return soap_envelope(verifactu.submission_xml(records, issuer_name="Metropolis"))
