"""The bank's own files: camt.053 and Norma 43 statements read into statement lines, and the
ISO 11649 creditor reference (`RF..`) an invoice carries so that statements bring it back.

CSV statements keep their mapping form in `statements`; these formats say what each field is,
so they need none. Every line keeps the bank's own id for the transaction, so a file imported
twice records nothing twice.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from app.clock import utcnow
from app.models import BankStatement, PaymentMethod
from app.platform.audit import record_change
from app.services.billing.bank_formats import detect_format, parse_camt053, parse_norma43
from app.services.billing.payment_codes import (
    creditor_reference,
    creditor_references_in,
    invoice_number_of,
)
from app.services.billing.payments import PaymentResult, record_payment
from app.services.billing.sepa_transfers import settle_sent_refunds
from app.services.billing.statement_lines import StatementError, StatementLine
from app.services.billing.statements import (
    ImportResult,
    Match,
    decode_statement,
    guess_date_format,
    guess_mapping,
    import_matches,
    match_lines,
    parse_statement,
    sample_rows,
    statement_columns,
)
from app.services.errors import Conflict, NotFound

__all__ = ["creditor_reference", "creditor_references_in", "invoice_number_of"]


# Statements through the API: a preview kept as uploaded, confirmed once


def read_lines(text: str, kind: str) -> list[StatementLine]:
    """The lines of a statement of a known format; a CSV's columns are guessed from its header."""
    if kind == "camt053":
        return parse_camt053(text)
    if kind == "norma43":
        return parse_norma43(text)
    columns = statement_columns(text)
    mapping = guess_mapping(columns)
    if not mapping["date"] or not mapping["amount"] or not mapping["text"]:
        raise StatementError(
            "The CSV's columns cannot be told apart.",
            fields={"file": "Name the columns date, amount and text (or use the office's form)."},
        )
    dates = [row[columns.index(mapping["date"])] for row in sample_rows(text, 20)]
    return parse_statement(
        text,
        date_column=mapping["date"],
        amount_column=mapping["amount"],
        counterparty_column=mapping["counterparty"],
        text_column=mapping["text"],
        date_format=guess_date_format(dates),
    )


@dataclass(frozen=True)
class StatementPreview:
    """What a statement would record: each line with its invoice and status."""

    statement: BankStatement
    matches: list[Match]

    def count(self, *statuses: str) -> int:
        """How many lines have one of these statuses."""
        return sum(1 for m in self.matches if line_status(m) in statuses)


def line_status(match: Match) -> str:
    """`matched` (recorded on confirming), `suggested` (amount only: by hand), `duplicate`
    (recorded before), `unmatched`, or `ignored` (outgoing money)."""
    return {
        "number": "matched",
        "amount": "suggested",
        "recorded": "duplicate",
        "unmatched": "unmatched",
        "ignored": "ignored",
    }[match.kind]


def upload_statement(
    session: Session, *, raw: bytes, filename: str, actor: str
) -> StatementPreview:
    """Keep a statement as uploaded and say what it would record; nothing is recorded yet."""
    text = decode_statement(raw)
    kind = detect_format(text)
    lines = read_lines(text, kind)
    statement = BankStatement(format=kind, filename=filename[:200], content=text, uploaded_by=actor)
    session.add(statement)
    session.commit()
    return StatementPreview(statement, match_lines(session, lines))


def get_statement(session: Session, statement_id: int) -> BankStatement:
    """The uploaded statement with this id, or NotFound."""
    statement = session.get(BankStatement, statement_id)
    if statement is None:
        raise NotFound(f"There is no statement {statement_id}.")
    return statement


def confirm_statement(
    session: Session, *, statement_id: int, actor: str, now: datetime | None = None
) -> ImportResult:
    """Record the statement's lines matched by invoice number or creditor reference, once."""
    statement = get_statement(session, statement_id)
    lines = read_lines(statement.content, statement.format)
    ticked = [m.key for m in match_lines(session, lines) if m.kind == "number"]
    result = import_matches(session, lines=lines, accepted_ids=ticked, actor=actor)
    settle_sent_refunds(session, lines, actor=actor)
    if statement.confirmed_at is None:
        statement.confirmed_at = now or utcnow()
        session.add(statement)
        session.commit()
    return result


def assign_line(
    session: Session, *, statement_id: int, line: int, invoice_number: str, actor: str
) -> PaymentResult:
    """Record a line that matched nothing on the invoice an administrator names; audited."""
    statement = get_statement(session, statement_id)
    found = [s for s in read_lines(statement.content, statement.format) if s.line == line]
    if not found:
        raise NotFound(f"Statement {statement_id} has no line {line}.")
    chosen = found[0]
    if chosen.outgoing:
        raise Conflict(f"Line {line} is money that left the account: it pays no invoice.")
    result = record_payment(
        session,
        invoice_number=invoice_number,
        amount=chosen.amount,
        received_on=chosen.booked_on,
        method=PaymentMethod.bank_transfer.value,
        reference=" · ".join(p for p in (chosen.counterparty, chosen.text) if p)[:200],
        actor=actor,
        source="statement",
        external_id=chosen.external_id,
        payer=chosen.counterparty,
    )
    if result.duplicate:
        raise Conflict(f"Line {line} is recorded already (payment {result.payment.id}).")
    record_change(
        session,
        actor=actor,
        action="statement.line_assigned",
        entity="statement",
        entity_id=statement_id,
        after={"line": line, "invoice": invoice_number, "payment": result.payment.id},
    )
    session.commit()
    return result
