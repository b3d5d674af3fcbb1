"""Bank statement import: parse a CSV, match lines to open invoices, record accepted ones once.

The confirmed import is a background job (`app.platform.jobs`) holding the statement's text,
its column mapping and the ticked lines; the worker that claims it stores what it did on the
job's row, which the result page reads. Each line maps onto a stable external id that a
payment carries under a unique constraint, so importing a statement again, or a worker
resuming an import whose first worker died, records each payment once.
"""

import csv
import hashlib
import io
import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.db import writer_engine
from app.models import BackgroundJob, Invoice, Payment, PaymentMethod
from app.money import ZERO
from app.platform import jobs
from app.platform.audit import record_change
from app.services.billing.bank_formats import parse_camt053, parse_norma43
from app.services.billing.money_overview import InvoiceRow, payable_rows
from app.services.billing.payments import DuplicatePayment, record_payment, recorded_by_hand
from app.services.billing.sepa_transfers import settle_sent_refunds
from app.services.billing.statement_lines import (
    MAX_STATEMENT_ROWS,
    StatementError,
    StatementLine,
    normal_text,
)
from app.services.errors import DomainError, NotFound

MAX_STATEMENT_BYTES = 2 * 1024 * 1024
SOURCE = "statement"
JOB_KIND = "statement_import"
# The formats a bank offers in its export, as the form names them.
DATE_FORMATS: dict[str, str] = {
    "YYYY-MM-DD": "%Y-%m-%d",
    "DD/MM/YYYY": "%d/%m/%Y",
    "DD.MM.YYYY": "%d.%m.%Y",
}
DELIMITERS = (";", ",", "\t", "|")
# Header words banks use, to suggest a mapping (English, Spanish, Catalan, French, German).
COLUMN_HINTS: dict[str, tuple[str, ...]] = {
    "date": ("value date", "valuta", "date", "fecha", "data", "datum", "booking"),
    "amount": ("amount", "importe", "import", "montant", "betrag", "credit", "sum"),
    "counterparty": (
        "counterparty",
        "ordenante",
        "payer",
        "remitter",
        "name",
        "nombre",
        "beneficiary",
        "auftraggeber",
        "tiers",
    ),
    "text": (
        "remittance",
        "concepto",
        "concept",
        "description",
        "details",
        "reference",
        "verwendungszweck",
        "libellé",
        "text",
        "memo",
    ),
}
# `2024-00012`, also typed as `2024 00012`, `2024/00012` or `INV202400012`; `CN2024-00003`
# names a credit note. Digits right before or after mean a longer number (an IBAN, an id).
NUMBER_PATTERN = re.compile(r"(?<![0-9])(CN)?[\s#:]*((?:19|20)\d{2})[\s\-/._]*(\d{5})(?![0-9])")
_SPACES = re.compile(r"\s+")
_AMOUNT_JUNK = re.compile(r"(?i)eur|€|\s|'|’")

MatchKind = Literal["number", "amount", "recorded", "unmatched", "ignored"]


@dataclass(frozen=True)
class Match:
    """What a statement line would pay, and why."""

    line: StatementLine
    kind: MatchKind
    invoice_number: str | None = None
    buyer: str = ""
    outstanding: Decimal | None = None
    note: str = ""

    @property
    def key(self) -> str:
        """The line's id in a form: its external id."""
        return self.line.external_id

    @property
    def can_record(self) -> bool:
        """Whether ticking this line would record a payment."""
        return self.kind in ("number", "amount")

    @property
    def preselected(self) -> bool:
        """Matches by invoice number are ticked; amount-only suggestions wait for a person."""
        return self.kind == "number"


@dataclass
class ImportResult:
    """What an import did, line by line."""

    recorded: list[Match] = field(default_factory=list)
    already_recorded: list[Match] = field(default_factory=list)
    skipped: list[tuple[Match, str]] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def counts(self) -> tuple[int, int, int]:
        """(recorded, already recorded, skipped)."""
        return len(self.recorded), len(self.already_recorded), len(self.skipped)


def decode_statement(raw: bytes) -> str:
    """The text of an uploaded statement: UTF-8, or the Windows-1252 many banks still export."""
    if len(raw) > MAX_STATEMENT_BYTES:
        raise StatementError(
            "The statement is too large.",
            fields={"file": "The file is larger than 2 MB: export a shorter period."},
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    if "\x00" in text:
        raise StatementError(
            "The file is not a CSV.", fields={"file": "The file is not a text CSV."}
        )
    return text


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _rows(csv_text: str) -> list[tuple[int, list[str]]]:
    """The file's non-empty rows with their line numbers (1 is the first line)."""
    text = csv_text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if len(text.encode("utf-8")) > MAX_STATEMENT_BYTES:
        raise StatementError(
            "The statement is too large.", fields={"file": "The CSV is larger than 2 MB."}
        )
    first = next((line for line in text.split("\n") if line.strip()), "")
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(first))
    rows: list[tuple[int, list[str]]] = []
    try:
        for values in reader:
            if any(value.strip() for value in values):
                rows.append((reader.line_num, [value.strip() for value in values]))
                if len(rows) > MAX_STATEMENT_ROWS + 1:
                    raise StatementError(
                        "The statement is too long.",
                        fields={"file": f"At most {MAX_STATEMENT_ROWS} lines: split the file."},
                    )
    except csv.Error as exc:
        raise StatementError(
            "The CSV cannot be read.",
            fields={"file": f"Line {reader.line_num}: {exc}."},
        ) from exc
    return rows


def statement_columns(csv_text: str) -> list[str]:
    """The header row's column names, for the mapping form."""
    rows = _rows(csv_text)
    if not rows:
        raise StatementError("The statement is empty.", fields={"file": "The file is empty."})
    header = list(rows[0][1])
    while header and not header[-1]:
        header.pop()
    if sum(1 for name in header if name) < 2:
        raise StatementError(
            "The statement has no header row.",
            fields={
                "file": "The first line must name the columns (date, amount, text, …); "
                "remove any lines above it."
            },
        )
    return header


def sample_rows(csv_text: str, count: int = 5) -> list[list[str]]:
    """The first rows under the header, to check a mapping against."""
    return [values for _, values in _rows(csv_text)[1 : count + 1]]


def guess_date_format(values: Iterable[str]) -> str:
    """The first date format that reads every one of these values (ISO if none does)."""
    values = [value for value in values if value]
    for name, pattern in DATE_FORMATS.items():
        try:
            for value in values:
                datetime.strptime(value, pattern)
        except ValueError:
            continue
        if values:
            return name
    return next(iter(DATE_FORMATS))


def guess_mapping(columns: Sequence[str]) -> dict[str, str]:
    """A suggested column for each role, from the header's words; empty where none fits."""
    guesses: dict[str, str] = {}
    taken: set[str] = set()
    for role, words in COLUMN_HINTS.items():
        for word in words:
            found = next(
                (c for c in columns if c not in taken and word in c.casefold()),
                None,
            )
            if found is not None:
                guesses[role] = found
                taken.add(found)
                break
        else:
            guesses[role] = ""
    return guesses


def parse_amount(value: str) -> Decimal:
    """An amount as banks write it: `1.234,56`, `1,234.56`, `1234,5`, `-80,00`, `80,00-`."""
    text = _AMOUNT_JUNK.sub("", value.replace("\u2212", "-"))
    negative = False
    if text.startswith("(") and text.endswith(")"):
        negative, text = True, text[1:-1]
    if text.endswith("-"):
        negative, text = not negative, text[:-1]
    if text.startswith(("-", "+")):
        negative, text = (not negative if text[0] == "-" else negative), text[1:]
    if not re.fullmatch(r"[0-9][0-9.,]*", text) or text[-1] in ".,":
        raise ValueError("not an amount")
    marks = [c for c in text if c in ".,"]
    decimal_mark = thousands_mark = ""
    if len(set(marks)) == 2:
        decimal_mark = marks[-1]
        thousands_mark = marks[0]
        if marks.count(decimal_mark) > 1 or marks.index(decimal_mark) != len(marks) - 1:
            raise ValueError("mixed separators")
    elif marks and marks.count(marks[0]) > 1:
        thousands_mark = marks[0]
    elif marks:
        # One mark: `1.500` is fifteen hundred (no bank writes three decimals), `15,5` is not.
        digits_after = len(text) - text.index(marks[0]) - 1
        if digits_after == 3:
            thousands_mark = marks[0]
        else:
            decimal_mark = marks[0]
    whole, cents = text.rsplit(decimal_mark, 1) if decimal_mark else (text, "")
    if decimal_mark and len(cents) > 2:
        raise ValueError("more than two decimals")
    groups = whole.split(thousands_mark) if thousands_mark else [whole]
    if len(groups) > 1 and (
        not 1 <= len(groups[0]) <= 3
        or groups[0].startswith("0")
        or any(len(group) != 3 for group in groups[1:])
    ):
        raise ValueError("thousands not in groups of three")
    amount = Decimal("".join(groups) + ("." + cents if cents else "")).quantize(Decimal("0.01"))
    return -amount if negative else amount


def parse_statement(
    csv_text: str,
    *,
    date_column: str,
    amount_column: str,
    counterparty_column: str,
    text_column: str,
    date_format: str,
) -> list[StatementLine]:
    """Every line of a statement, or a StatementError naming each bad line; none is half read.

    Outgoing (negative) and zero lines are kept, marked `outgoing`, so the preview can say
    they are ignored.
    """
    if date_format not in DATE_FORMATS:
        raise StatementError(
            "Unknown date format.",
            fields={"date_format": "Choose one of " + ", ".join(DATE_FORMATS) + "."},
        )
    rows = _rows(csv_text)
    if not rows:
        raise StatementError("The statement is empty.", fields={"file": "The file is empty."})
    header = rows[0][1]
    wanted = {
        "date_column": date_column,
        "amount_column": amount_column,
        "counterparty_column": counterparty_column,
        "text_column": text_column,
    }
    faults: dict[str, str] = {}
    positions: dict[str, int | None] = {}
    for name, column in wanted.items():
        if not column and name == "counterparty_column":
            positions[name] = None
        elif not column or column not in header:
            faults[name] = "Choose a column of the file's header."
        else:
            positions[name] = header.index(column)
    if faults:
        raise StatementError("Choose the columns.", fields=faults)
    pattern = DATE_FORMATS[date_format]
    parsed: list[tuple[int, date, Decimal, str, str]] = []
    for number, values in rows[1:]:

        def cell(name: str, values: list[str] = values) -> str:
            position = positions[name]
            return values[position] if position is not None and position < len(values) else ""

        problems = []
        raw_date, raw_amount = cell("date_column"), cell("amount_column")
        booked_on: date | None = None
        amount: Decimal | None = None
        try:
            booked_on = datetime.strptime(raw_date, pattern).date()
        except ValueError:
            shown = f"“{raw_date[:30]}”" if raw_date else "empty"
            problems.append(f"the date is {shown}, not {date_format}")
        try:
            amount = parse_amount(raw_amount)
        except ValueError:
            shown = f"“{raw_amount[:30]}”" if raw_amount else "empty"
            problems.append(f"the amount is {shown}, not a number like 1500.00 or 1.500,00")
        if problems or booked_on is None or amount is None:
            faults[f"line {number}"] = f"Line {number}: " + "; ".join(problems) + "."
            continue
        parsed.append(
            (number, booked_on, amount, cell("counterparty_column")[:200], cell("text_column"))
        )
    if faults:
        raise StatementError(
            f"{len(faults)} line{'s' if len(faults) != 1 else ''} of the statement cannot be read.",
            fields=faults,
        )
    seen: Counter[tuple[date, Decimal, str, str]] = Counter()
    lines = []
    for number, booked_on, amount, counterparty, text in parsed:
        identity = (booked_on, amount, normal_text(counterparty), normal_text(text))
        lines.append(
            StatementLine(
                line=number,
                booked_on=booked_on,
                amount=amount,
                counterparty=counterparty,
                text=text,
                occurrence=seen[identity],
            )
        )
        seen[identity] += 1
    return lines


BANK_FORMATS = ("camt053", "norma43")


def lines_of(text: str, mapping: dict[str, str]) -> list[StatementLine]:
    """A statement's lines: a bank's own file by its format, a CSV by its column mapping."""
    kind = mapping.get("format", "")
    if kind == "camt053":
        return parse_camt053(text)
    if kind == "norma43":
        return parse_norma43(text)
    return parse_statement(text, **{k: v for k, v in mapping.items() if k != "format"})


def invoice_numbers_in(text: str) -> list[tuple[str, bool]]:
    """Invoice numbers named in a remittance text, each with whether it is a credit note's."""
    from app.services.billing.payment_codes import creditor_references_in

    # A structured creditor reference (RF..) names its invoice for certain: it comes first.
    found = [(number, False) for number in creditor_references_in(text)]
    for match in NUMBER_PATTERN.finditer(text.upper()):
        number = f"{match.group(2)}-{match.group(3)}"
        found.append(("CN" + number if match.group(1) else number, bool(match.group(1))))
    return list(dict.fromkeys(found))


def _why_not_open(row: InvoiceRow | None, number: str) -> str:
    if row is None:
        return f"{number} is not an invoice of ours"
    if not row.is_invoice:
        return f"{number} is a credit note"
    if row.invoice.status != "issued":
        return f"{number} was cancelled by a credit note"
    return f"{number} is paid in full"


def match_lines(session: Session, lines: Iterable[StatementLine]) -> list[Match]:
    """Each line with the invoice it pays: by number in its text, else by a unique amount.

    A bounded number of queries whatever the statement's length: lines recorded before, then
    the open invoices and those named in the texts, with their payments and credit notes.
    """
    lines = list(lines)
    recorded = dict(
        session.exec(
            select(Payment.external_id, Invoice.number)
            .join(Invoice, col(Invoice.id) == col(Payment.invoice_id))
            .where(col(Payment.external_id).in_([line.external_id for line in lines]))
        ).all()
    )
    named = {number for line in lines for number, _ in invoice_numbers_in(line.text)}
    rows = payable_rows(session, numbers=named, today=date.today())
    open_rows = {number: row for number, row in rows.items() if row.is_open}
    by_amount: dict[Decimal, list[InvoiceRow]] = {}
    for row in open_rows.values():
        by_amount.setdefault(row.outstanding, []).append(row)
    matches = [_match(line, recorded, rows, open_rows, by_amount) for line in lines]
    return _with_running_notes(matches)


def _found(line: StatementLine, kind: MatchKind, row: InvoiceRow, note: str = "") -> Match:
    return Match(line, kind, row.invoice.number, row.buyer, row.outstanding, note)


def _match(
    line: StatementLine,
    recorded: dict[str | None, str],
    rows: dict[str, InvoiceRow],
    open_rows: dict[str, InvoiceRow],
    by_amount: dict[Decimal, list[InvoiceRow]],
) -> Match:
    if line.external_id in recorded:
        number = recorded[line.external_id]
        return Match(line, "recorded", number, note=f"Recorded before on {number}.")
    if line.outgoing:
        note = "Outgoing payment: ignored." if line.amount < ZERO else "Zero amount: ignored."
        return Match(line, "ignored", note=note)
    named = [number for number, _ in invoice_numbers_in(line.text)]
    named_open = [open_rows[n] for n in named if n in open_rows]
    reasons = [_why_not_open(rows.get(n), n) for n in named if n not in open_rows]
    if len(named_open) == 1:
        return _found(line, "number", named_open[0])
    if len(named_open) > 1:
        listed = ", ".join(row.invoice.number for row in named_open)
        return Match(
            line, "unmatched", note=f"Names several open invoices ({listed}): record it by hand."
        )
    same_amount = by_amount.get(line.amount, [])
    because = ("; ".join(reasons) + ". ") if reasons else ""
    if len(same_amount) == 1:
        note = because + "Only the amount matches: check before ticking."
        return _found(line, "amount", same_amount[0], note)
    if len(same_amount) > 1:
        return Match(
            line,
            "unmatched",
            note=because + f"{len(same_amount)} open invoices have this amount outstanding.",
        )
    return Match(line, "unmatched", note=because + "No open invoice has this number or amount.")


def _with_running_notes(matches: list[Match]) -> list[Match]:
    """Say where lines of one statement together would pay more than is outstanding."""
    remaining: dict[str, Decimal] = {}
    suggested = Counter(m.invoice_number for m in matches if m.kind == "amount")
    noted = []
    for match in matches:
        if not match.can_record or match.invoice_number is None or match.outstanding is None:
            noted.append(match)
            continue
        left = remaining.get(match.invoice_number, match.outstanding)
        extra = []
        if match.line.amount > left:
            extra.append(f"More than the {left:.2f} outstanding: the excess is flagged for refund.")
        elif match.line.amount < left:
            extra.append(f"Part payment: {left - match.line.amount:.2f} would still be due.")
        if match.kind == "amount" and suggested[match.invoice_number] > 1:
            extra.append("Other lines are suggested for the same invoice.")
        remaining[match.invoice_number] = left - match.line.amount
        note = " ".join(part for part in (match.note, *extra) if part)
        noted.append(
            Match(
                match.line,
                match.kind,
                match.invoice_number,
                match.buyer,
                match.outstanding,
                note,
            )
        )
    return noted


def _reference(line: StatementLine) -> str:
    parts = [normal_text(line.counterparty), normal_text(line.text)]
    return " · ".join(part for part in parts if part)[:200]


def _typed_by_hand(session: Session, line: StatementLine) -> bool:
    """The line repeats a payment typed by hand on an invoice it names (and so closed)."""
    return any(
        recorded_by_hand(
            session, invoice_number=number, amount=line.amount, received_on=line.booked_on
        )
        is not None
        for number, _ in invoice_numbers_in(line.text)
    )


def _recorded_meanwhile(session: Session, key: str) -> bool:
    return session.exec(select(Payment.id).where(Payment.external_id == key)).first() is not None


def import_matches(
    session: Session,
    *,
    lines: Sequence[StatementLine],
    accepted_ids: Collection[str],
    actor: str,
) -> ImportResult:
    """Record the accepted lines that still match, each once; the rest are counted as skipped.

    Lines are matched again here, so a tampered or stale form can only pick among lines
    that pay an open invoice now. Each payment commits on its own: an interrupted import
    is finished by importing the same file again.
    """
    result = ImportResult()
    accepted = set(accepted_ids)
    for match in match_lines(session, lines):
        if match.kind == "recorded":
            result.already_recorded.append(match)
            continue
        if not match.can_record or match.invoice_number is None:
            if _recorded_meanwhile(session, match.key) or _typed_by_hand(session, match.line):
                # Another import recorded the line between the matcher's look-ups, and so
                # closed its invoice: it is recorded, not unmatched.
                result.already_recorded.append(match)
                continue
            result.skipped.append((match, match.note or "Not matched to an open invoice."))
            continue
        if match.key not in accepted:
            result.skipped.append((match, "Not ticked."))
            continue
        try:
            payment = record_payment(
                session,
                invoice_number=match.invoice_number,
                amount=match.line.amount,
                received_on=match.line.booked_on,
                method=PaymentMethod.bank_transfer.value,
                reference=_reference(match.line),
                actor=actor,
                source=SOURCE,
                external_id=match.key,
                payer=match.line.counterparty,
            )
        except IntegrityError:
            # Someone imported the same line at the same moment; theirs stands.
            session.rollback()
            result.already_recorded.append(match)
            continue
        except DuplicatePayment:
            # An administrator typed this transfer in by hand already.
            session.rollback()
            result.already_recorded.append(match)
            continue
        except DomainError as exc:
            # Refused before anything was written (a future value date, a credit note).
            result.skipped.append((match, " ".join([exc.message, *exc.fields.values()])))
            continue
        if payment.duplicate:
            result.already_recorded.append(match)
            continue
        result.recorded.append(match)
        result.confirmed.extend(payment.confirmed)
        if payment.payment.flagged:
            result.flags.append(f"{match.invoice_number}: {payment.payment.flag_reason}")
    recorded, already, skipped = result.counts
    if recorded:
        record_change(
            session,
            actor=actor,
            action="statement.imported",
            entity="statement",
            entity_id=hashlib.sha256(
                "\n".join(line.external_id for line in lines).encode()
            ).hexdigest()[:16],
            after={"recorded": recorded, "already_recorded": already, "skipped": skipped},
        )
        session.commit()
    return result


# The import as a background job


@dataclass(frozen=True)
class ImportedLine:
    """One line of an import's outcome, as stored on its job."""

    line: int
    booked_on: date
    amount: Decimal
    counterparty: str
    text: str
    kind: str
    invoice_number: str | None
    why: str = ""


@dataclass(frozen=True)
class ImportSummary:
    """What an import did: recorded, recorded before (duplicates), and skipped lines."""

    recorded: list[ImportedLine]
    already_recorded: list[ImportedLine]
    skipped: list[ImportedLine]
    confirmed: list[str]
    flags: list[str]

    @property
    def counts(self) -> tuple[int, int, int]:
        """(recorded, already recorded, skipped)."""
        return len(self.recorded), len(self.already_recorded), len(self.skipped)

    @property
    def unmatched(self) -> int:
        """Skipped lines that pay no open invoice."""
        return sum(1 for line in self.skipped if line.kind == "unmatched")

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> "ImportSummary":
        """The summary a worker stored on the job."""

        def lines(name: str) -> list[ImportedLine]:
            return [
                ImportedLine(
                    line=int(item["line"]),
                    booked_on=date.fromisoformat(item["booked_on"]),
                    amount=Decimal(item["amount"]),
                    counterparty=str(item["counterparty"]),
                    text=str(item["text"]),
                    kind=str(item["kind"]),
                    invoice_number=item.get("invoice_number"),
                    why=str(item.get("why", "")),
                )
                for item in stored.get(name, [])
            ]

        return cls(
            recorded=lines("recorded"),
            already_recorded=lines("already_recorded"),
            skipped=lines("skipped"),
            confirmed=[str(r) for r in stored.get("confirmed", [])],
            flags=[str(f) for f in stored.get("flags", [])],
        )


def _stored_line(match: Match, why: str = "") -> dict[str, Any]:
    return {
        "line": match.line.line,
        "booked_on": match.line.booked_on.isoformat(),
        "amount": f"{match.line.amount:.2f}",
        "counterparty": match.line.counterparty,
        "text": match.line.text,
        "kind": match.kind,
        "invoice_number": match.invoice_number,
        "why": why,
    }


def stored_summary(result: ImportResult) -> dict[str, Any]:
    """An import's outcome as plain JSON for the job's row."""
    return {
        "recorded": [_stored_line(m) for m in result.recorded],
        "already_recorded": [_stored_line(m) for m in result.already_recorded],
        "skipped": [_stored_line(m, why) for m, why in result.skipped],
        "confirmed": list(result.confirmed),
        "flags": list(result.flags),
    }


@dataclass(frozen=True)
class ImportJob:
    """A queued or finished import, as its page shows it."""

    id: int
    state: str
    lines: int
    created_by: str
    error: str
    summary: ImportSummary | None

    @property
    def working(self) -> bool:
        """Whether the page should ask again (the import is queued or under way)."""
        return self.state in (jobs.QUEUED, jobs.RUNNING)


def queue_import(
    session: Session,
    *,
    csv_text: str,
    mapping: dict[str, str],
    lines: Sequence[StatementLine],
    accepted_ids: Collection[str],
    actor: str,
) -> BackgroundJob:
    """Queue the import of a statement that reads (`lines`, parsed from it) and commit.

    Only ticks of lines the statement has are kept; the worker reads the statement again and
    records the ticked lines that still match then.
    """
    known = {line.external_id for line in lines}
    job = jobs.enqueue(
        session,
        kind=JOB_KIND,
        payload={
            "csv_text": csv_text,
            "mapping": dict(mapping),
            "accepted": sorted(set(accepted_ids) & known),
            "lines": len(lines),
        },
        actor=actor,
    )
    session.commit()
    return job


def run_job(held: jobs.Claim, context: jobs.JobContext, session: Session | None) -> dict[str, Any]:
    """The work of a claimed import: read the statement again and record its ticked lines."""
    held.forget_input = True
    payload = held.payload
    mapping = {str(k): str(v) for k, v in dict(payload.get("mapping", {})).items()}
    try:
        lines = lines_of(str(payload.get("csv_text", "")), mapping)
    except (StatementError, TypeError) as exc:
        raise jobs.JobFailed(f"The statement cannot be read any more: {exc}") from exc
    own = session is None
    work = session or Session(writer_engine(context.engine), expire_on_commit=False)
    try:
        result = import_matches(
            work,
            lines=lines,
            accepted_ids=[str(key) for key in payload.get("accepted", [])],
            actor=held.created_by,
        )
        settle_sent_refunds(work, lines, actor=held.created_by)
        work.commit()
    finally:
        if own:
            work.close()
    return stored_summary(result)


def get_import(session: Session, job_id: int) -> ImportJob:
    """A statement import by its job's id, or NotFound."""
    job = session.get(BackgroundJob, job_id)
    if job is None or job.kind != JOB_KIND:
        raise NotFound(f"There is no statement import {job_id}.")
    state = "interrupted" if jobs.is_stale(job) else job.status
    summary = (
        ImportSummary.from_stored(job.result) if job.status == jobs.DONE and job.result else None
    )
    lines = job.payload.get("lines") if job.payload else None
    return ImportJob(
        id=job.id or 0,
        state=state,
        lines=int(lines) if isinstance(lines, int) else (summary_lines(summary) if summary else 0),
        created_by=job.created_by,
        error=job.error,
        summary=summary,
    )


def summary_lines(summary: ImportSummary) -> int:
    """How many lines an import went through."""
    return sum(summary.counts)
