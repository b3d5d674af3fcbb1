"""Sending VERI*FACTU records to the AEAT: an outbox, drained after the commit.

Records are queued in the transaction that writes them (`TaxRecordSubmission`, pending). A
round claims one issuer's due records (at most 1000, the AEAT's limit), posts them in one
SOAP message over a connection signed with the office's certificate, and keeps the AEAT's
answer per record. A message that does not arrive is retried later; an accepted record is
never claimed again, and one sent again after a lost answer is recognised by the AEAT's
"duplicate" answer (3000) as accepted. Between two messages the round honours the waiting
time the AEAT asked for (TiempoEsperaEnvio), unless 1000 records are waiting.
"""

import logging
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from lxml import etree
from sqlalchemy import ColumnElement, Engine, func, or_, update
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.config import Settings
from app.db import writer_engine
from app.models import TaxRecord, TaxRecordSubmission
from app.services.billing import verifactu

log = logging.getLogger(__name__)

NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
BATCH_LIMIT = 1000
# The AEAT's default pause between two submissions when it names none (seconds).
DEFAULT_WAIT = 60
# A claim whose sender died is taken again after this long (its answer never came back).
STALE_CLAIM = timedelta(minutes=10)
# The AEAT's answer to a record it has already (error 3000: "Registro duplicado").
DUPLICATE = "3000"
# Our own code for a record kept out of a message because it breaks the schema.
SCHEMA_ERROR = "schema"
PENDING, SENDING = "pending", "sending"
ACCEPTED, ACCEPTED_WITH_ERRORS, REJECTED = "accepted", "accepted_with_errors", "rejected"
ANSWERS = {"Correcto": ACCEPTED, "AceptadoConErrores": ACCEPTED_WITH_ERRORS, "Incorrecto": REJECTED}

Transport = Callable[[str, bytes], tuple[int, bytes]]


@dataclass(frozen=True)
class SenderSettings:
    """Where records go and the office's certificate (from settings)."""

    url: str
    certificate_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "SenderSettings | None":
        """None unless records are kept and sending is on."""
        if not (settings.verifactu_enabled and settings.verifactu_sending):
            return None
        return cls(
            url=settings.verifactu_service_url,
            certificate_file=settings.verifactu_certificate_file,
            key_file=settings.verifactu_certificate_key_file,
        )


@dataclass
class SendRound:
    """What one round did: records answered by outcome, and those that did not arrive."""

    accepted: int = 0
    accepted_with_errors: int = 0
    rejected: int = 0
    not_arrived: int = 0
    waiting_until: datetime | None = None
    messages: int = 0
    problems: list[str] = field(default_factory=list)


class AnswerUnreadable(Exception):
    """The AEAT's answer could not be read: nothing is known to have arrived."""


def https_transport(settings: SenderSettings) -> Transport:
    """POST over TLS with the office's client certificate (the AEAT's only way in)."""
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if settings.certificate_file is not None:
        context.load_cert_chain(
            str(settings.certificate_file),
            str(settings.key_file) if settings.key_file else None,
        )

    def post(url: str, body: bytes) -> tuple[int, bytes]:
        request = urllib.request.Request(  # noqa: S310 - the AEAT's https address from settings
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": ""},
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=settings.timeout, context=context
            ) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            # A SOAP fault comes back as HTTP 500 with a body worth reading.
            return int(error.code), bytes(error.read())

    return post


def soap_envelope(document: etree._Element) -> bytes:
    """The SOAP 1.1 envelope around a submission."""
    envelope = etree.Element(f"{{{NS_SOAP}}}Envelope", nsmap={"soapenv": NS_SOAP})
    etree.SubElement(envelope, f"{{{NS_SOAP}}}Header")
    body = etree.SubElement(envelope, f"{{{NS_SOAP}}}Body")
    body.append(document)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


@dataclass(frozen=True)
class LineAnswer:
    """The AEAT's answer for one record of a submission."""

    number: str
    issue_date: str
    operation: str  # "Alta" or "Anulacion"
    status: str
    code: str
    text: str


@dataclass(frozen=True)
class Answer:
    """The AEAT's answer to a submission: its lines, the CSV, the pause it asks for."""

    csv: str
    wait_seconds: int
    lines: list[LineAnswer]
    fault_code: str = ""
    fault_text: str = ""


def _text(element: etree._Element | None, path: str) -> str:
    if element is None:
        return ""
    found = element.find(path)
    return (found.text or "").strip() if found is not None else ""


def read_answer(status: int, body: bytes) -> Answer:
    """The AEAT's SOAP answer (RespuestaRegFactuSistemaFacturacion, or a fault)."""
    try:
        root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as error:
        raise AnswerUnreadable(f"HTTP {status}: not XML ({error})") from error
    fault = root.find(".//{*}Fault")
    if fault is not None:
        text = _text(fault, "faultstring")
        code = text.split("Codigo[", 1)[-1].split("]", 1)[0] if "Codigo[" in text else "fault"
        return Answer(csv="", wait_seconds=DEFAULT_WAIT, lines=[], fault_code=code, fault_text=text)
    answer = root.find(".//{*}RespuestaRegFactuSistemaFacturacion")
    if answer is None or status >= 300:
        raise AnswerUnreadable(f"HTTP {status}: no answer to a submission")
    wait = _text(answer, "{*}TiempoEsperaEnvio")
    lines = [
        LineAnswer(
            number=_text(line, "{*}IDFactura/{*}NumSerieFactura"),
            issue_date=_text(line, "{*}IDFactura/{*}FechaExpedicionFactura"),
            operation=_text(line, "{*}Operacion/{*}TipoOperacion"),
            status=_text(line, "{*}EstadoRegistro"),
            code=_text(line, "{*}CodigoErrorRegistro"),
            text=_text(line, "{*}DescripcionErrorRegistro"),
        )
        for line in answer.findall("{*}RespuestaLinea")
    ]
    return Answer(
        csv=_text(answer, "{*}CSV"),
        wait_seconds=int(wait) if wait.isdigit() else DEFAULT_WAIT,
        lines=lines,
    )


def backoff(attempts: int) -> timedelta:
    """Wait before sending again what did not arrive: 1 min, 2 min ... at most 1 hour."""
    return timedelta(seconds=min(60 * 2 ** max(attempts - 1, 0), 3600))


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        (col(TaxRecordSubmission.status) == PENDING)
        & (col(TaxRecordSubmission.next_attempt_at) <= now),
        (col(TaxRecordSubmission.status) == SENDING)
        & (col(TaxRecordSubmission.next_attempt_at) <= now - STALE_CLAIM),
    )


def _claim(engine: Engine, issuer: str, now: datetime) -> list[TaxRecord]:
    """Take up to 1000 due records of one issuer, in chain order; of several senders, one."""
    with Session(writer_engine(engine), expire_on_commit=False) as session:
        ids = session.exec(
            select(TaxRecordSubmission.id)
            .join(TaxRecord, col(TaxRecord.id) == col(TaxRecordSubmission.record_id))
            .where(TaxRecordSubmission.issuer_tax_id == issuer, _due(now))
            .order_by(col(TaxRecord.sequence))
            .limit(BATCH_LIMIT)
        ).all()
        if not ids:
            return []
        claimed = session.exec(
            update(TaxRecordSubmission)
            .where(col(TaxRecordSubmission.id).in_(ids), _due(now))
            .values(status=SENDING, next_attempt_at=now)
            .returning(col(TaxRecordSubmission.record_id))
        ).all()
        record_ids = [row[0] for row in claimed]
        records = list(
            session.exec(
                select(TaxRecord)
                .where(col(TaxRecord.id).in_(record_ids))
                .order_by(col(TaxRecord.sequence))
            ).all()
        )
        session.commit()
        return records


def _waiting_until(session: Session, issuer: str) -> datetime | None:
    waited: datetime | None = session.exec(
        select(func.max(TaxRecordSubmission.wait_until)).where(
            TaxRecordSubmission.issuer_tax_id == issuer
        )
    ).one()
    return waited


def send_due(
    engine: Engine,
    *,
    settings: SenderSettings,
    now: datetime | None = None,
    transport: Transport | None = None,
) -> SendRound:
    """One round: each issuer's due records in one message, unless the AEAT asked to wait."""
    now = now or utcnow()
    post = transport or https_transport(settings)
    result = SendRound()
    with Session(engine) as reader:
        issuers = reader.exec(
            select(TaxRecordSubmission.issuer_tax_id).where(_due(now)).distinct()
        ).all()
        waits = {issuer: _waiting_until(reader, issuer) for issuer in issuers}
        backlog = {
            issuer: reader.exec(
                select(func.count())
                .select_from(TaxRecordSubmission)
                .where(TaxRecordSubmission.issuer_tax_id == issuer, _due(now))
            ).one()
            for issuer in issuers
        }
    for issuer in issuers:
        wait_until = waits[issuer]
        # The AEAT's pause applies unless a full message of 1000 records is waiting.
        if wait_until is not None and wait_until > now and backlog[issuer] < BATCH_LIMIT:
            result.waiting_until = wait_until
            continue
        records = _claim(engine, issuer, now)
        if records:
            _send(engine, records, post=post, settings=settings, now=now, result=result)
    return result


def _send(
    engine: Engine,
    records: list[TaxRecord],
    *,
    post: Transport,
    settings: SenderSettings,
    now: datetime,
    result: SendRound,
) -> None:
    """Post one message and keep the answer per record; what did not arrive goes back."""
    records = _refuse_invalid(engine, records, now=now, result=result)
    if not records:
        return
    document = verifactu.submission_xml(records, issuer_name=records[0].issuer_name)
    result.messages += 1
    try:
        status, body = post(settings.url, soap_envelope(document))
        answer = read_answer(status, body)
    except (OSError, AnswerUnreadable) as problem:
        log.warning("VERI*FACTU records did not arrive, retrying later: %s", problem)
        result.problems.append(str(problem))
        _not_arrived(engine, records, problem=str(problem), now=now)
        result.not_arrived += len(records)
        return
    if answer.fault_code:
        # The AEAT refused the message as a whole (its certificate, its form): nothing was
        # registered. Shown to the office and tried again, as it may be fixed on our side.
        refusal = f"The AEAT refused the message ({answer.fault_code}): {answer.fault_text}"
        log.error("VERI*FACTU %s", refusal)
        result.problems.append(refusal)
        _not_arrived(engine, records, problem=refusal, now=now)
        result.not_arrived += len(records)
        return
    _keep_answer(engine, records, answer, now=now, result=result)


def _refuse_invalid(
    engine: Engine, records: list[TaxRecord], *, now: datetime, result: SendRound
) -> list[TaxRecord]:
    """Keep out of the message any record that breaks the AEAT's schema (the AEAT would refuse
    the whole message for it); it is marked rejected with the schema's words."""
    schema = verifactu.schema()
    if schema.validate(verifactu.submission_xml(records, issuer_name=records[0].issuer_name)):
        return records
    valid = []
    with Session(writer_engine(engine)) as session:
        by_record = {s.record_id: s for s in _submissions(session, records)}
        for record in records:
            single = verifactu.submission_xml([record], issuer_name=record.issuer_name)
            if schema.validate(single):
                valid.append(record)
                continue
            submission = by_record[record.id or 0]
            submission.status = REJECTED
            submission.error_code = SCHEMA_ERROR
            submission.error_text = (
                f"Not sent: the record breaks the AEAT's schema: {schema.error_log.last_error}"
            )
            session.add(submission)
            result.rejected += 1
        session.commit()
    return valid


def _not_arrived(engine: Engine, records: list[TaxRecord], *, problem: str, now: datetime) -> None:
    with Session(writer_engine(engine)) as session:
        for submission in _submissions(session, records):
            submission.attempts += 1
            submission.status = PENDING
            submission.next_attempt_at = now + backoff(submission.attempts)
            submission.last_problem = problem[:2000]
            session.add(submission)
        session.commit()


def _submissions(session: Session, records: list[TaxRecord]) -> list[TaxRecordSubmission]:
    return list(
        session.exec(
            select(TaxRecordSubmission).where(
                col(TaxRecordSubmission.record_id).in_([r.id for r in records])
            )
        ).all()
    )


def _keep_answer(
    engine: Engine, records: list[TaxRecord], answer: Answer, *, now: datetime, result: SendRound
) -> None:
    lines = {(line.number, line.issue_date, line.operation.lower()): line for line in answer.lines}
    wait_until = now + timedelta(seconds=answer.wait_seconds)
    with Session(writer_engine(engine)) as session:
        by_record = {s.record_id: s for s in _submissions(session, records)}
        for record in records:
            submission = by_record[record.id or 0]
            submission.attempts += 1
            submission.sent_at = now
            submission.wait_until = wait_until
            submission.last_problem = ""
            operation = "anulacion" if record.record_type == verifactu.ANULACION else "alta"
            line = lines.get(
                (record.invoice_number, verifactu.aeat_date(record.issue_date), operation)
            )
            if line is None:
                # The AEAT said nothing about it: it is sent again with the next message.
                submission.status = PENDING
                submission.next_attempt_at = now + backoff(submission.attempts)
                submission.last_problem = "The AEAT's answer did not mention this record."
                result.not_arrived += 1
                session.add(submission)
                continue
            elif line.status == "Incorrecto" and line.code == DUPLICATE:
                # Sent again after an answer that was lost: the AEAT has it already.
                submission.status = ACCEPTED
                submission.error_code, submission.error_text = line.code, line.text
            else:
                submission.status = ANSWERS.get(line.status, REJECTED)
                submission.error_code, submission.error_text = line.code[:20], line.text
            if submission.status in (ACCEPTED, ACCEPTED_WITH_ERRORS):
                submission.csv = answer.csv[:100]
            setattr(result, submission.status, getattr(result, submission.status) + 1)
            session.add(submission)
        session.commit()


def unaccepted(session: Session) -> list[tuple[TaxRecord, TaxRecordSubmission]]:
    """Records the AEAT has not accepted yet (queued, not arrived, or rejected), oldest first."""
    rows = session.exec(
        select(TaxRecord, TaxRecordSubmission)
        .join(TaxRecordSubmission, col(TaxRecordSubmission.record_id) == col(TaxRecord.id))
        .where(col(TaxRecordSubmission.status).not_in([ACCEPTED, ACCEPTED_WITH_ERRORS]))
        .order_by(col(TaxRecord.sequence))
    ).all()
    return [(record, submission) for record, submission in rows]


def run_sender(engine: Engine, settings: Settings) -> SendRound | None:
    """One round of sending, for the office's background loop; None when sending is off."""
    config = SenderSettings.from_settings(settings)
    if config is None:
        return None
    return send_due(engine, settings=config)
