"""The banks' own statement files: ISO 20022 camt.053 and the Spanish banks' Norma 43 (AEB 43)."""

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

from lxml import etree

from app.services.billing.statement_lines import MAX_STATEMENT_ROWS, StatementError, StatementLine

StatementFormat = Literal["csv", "camt053", "norma43"]


def detect_format(text: str) -> StatementFormat:
    """camt.053 (ISO 20022 XML), Norma 43 (80-character records from 11 to 88), else CSV."""
    head = text.lstrip("\ufeff \r\n\t")[:2000]
    if head.startswith("<") and "camt.053" in head:
        return "camt053"
    first = head.split("\n", 1)[0].rstrip("\r")
    if first.startswith("11") and len(first) == 80:
        return "norma43"
    return "csv"


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _child(element: etree._Element | None, *path: str) -> etree._Element | None:
    for name in path:
        if element is None:
            return None
        element = next((c for c in element if _local(c.tag) == name), None)
    return element


def _text(element: etree._Element | None, *path: str) -> str:
    found = _child(element, *path)
    return " ".join((found.text or "").split()) if found is not None else ""


def _day(element: etree._Element | None) -> date | None:
    value = _text(element, "Dt") or _text(element, "DtTm")[:10]
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse_camt053(text: str) -> list[StatementLine]:
    """Each entry (or each transaction of a batched entry) of a camt.053 statement."""
    try:
        root = etree.fromstring(
            text.encode("utf-8"),
            parser=etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False),
        )
    except etree.XMLSyntaxError as exc:
        raise StatementError(
            "The camt.053 file cannot be read.", fields={"file": f"Not valid XML: {exc}."}
        ) from exc
    lines: list[StatementLine] = []
    faults: dict[str, str] = {}
    entries = [e for e in root.iter() if _local(e.tag) == "Ntry"]
    if len(entries) > MAX_STATEMENT_ROWS:
        raise StatementError(
            "The statement is too long.",
            fields={"file": f"At most {MAX_STATEMENT_ROWS} lines: split the file."},
        )
    for position, entry in enumerate(entries, start=1):
        sign = -1 if _text(entry, "CdtDbtInd") == "DBIT" else 1
        booked = _day(_child(entry, "ValDt")) or _day(_child(entry, "BookgDt"))
        entry_id = _text(entry, "AcctSvcrRef") or _text(entry, "NtryRef")
        details = [t for t in entry.iter() if _local(t.tag) == "TxDtls"] or [entry]
        for index, detail in enumerate(details):
            amount_text = _text(detail, "Amt") or _text(detail, "AmtDtls", "TxAmt", "Amt")
            if detail is not entry and len(details) == 1:
                amount_text = _text(entry, "Amt") or amount_text
            try:
                amount = Decimal(amount_text).quantize(Decimal("0.01")) * sign
            except InvalidOperation:
                faults[f"entry {position}"] = f"Entry {position}: the amount is not a number."
                continue
            if booked is None:
                faults[f"entry {position}"] = f"Entry {position}: no value or booking date."
                continue
            parties = _child(detail, "RltdPties")
            payer = (
                _text(parties, "Dbtr", "Nm")
                or _text(parties, "Dbtr", "Pty", "Nm")
                or _text(parties, "UltmtDbtr", "Nm")
            )
            remittance = _child(detail, "RmtInf")
            words = [
                _text(remittance, "Ustrd"),
                " ".join(
                    " ".join((r.text or "").split())
                    for r in (remittance.iter() if remittance is not None else [])
                    if _local(r.tag) == "Ref"
                ),
                _text(entry, "AddtlNtryInf"),
                # Our own transfers come back with the end-to-end id we gave them.
                end_to_end
                if (end_to_end := _text(detail, "Refs", "EndToEndId")) != "NOTPROVIDED"
                else "",
            ]
            bank_id = (
                _text(detail, "Refs", "AcctSvcrRef")
                or (f"{entry_id}/{index}" if entry_id else "")
                or _text(detail, "Refs", "EndToEndId")
            )
            lines.append(
                StatementLine(
                    line=position,
                    booked_on=booked,
                    amount=amount,
                    counterparty=payer[:200],
                    text=" ".join(w for w in words if w),
                    bank_id=f"camt:{bank_id}" if bank_id else "",
                )
            )
    if faults:
        raise StatementError("Some entries of the statement cannot be read.", fields=faults)
    return lines


def _n43_day(value: str) -> date:
    return datetime.strptime(value, "%y%m%d").date()


def parse_norma43(text: str) -> list[StatementLine]:
    """Each movement (record 22, with its record 23 concepts) of a Norma 43 file.

    Fixed positions, as the AEB's Serie 43 defines them: record 11 opens an account (bank,
    branch, account number), 22 is a movement (value date at 17-22, 1 debit or 2 credit at
    28, the amount in cents at 29-42, document number and two references), 23 adds concept
    text, 33 closes the account and 88 the file.
    """
    lines: list[StatementLine] = []
    faults: dict[str, str] = {}
    account = ""
    rows = [row.rstrip("\r") for row in text.lstrip("\ufeff").split("\n") if row.strip()]
    if len(rows) > MAX_STATEMENT_ROWS * 6:
        raise StatementError(
            "The statement is too long.",
            fields={"file": f"At most {MAX_STATEMENT_ROWS} lines: split the file."},
        )
    pending: dict[str, object] | None = None
    seen: dict[str, int] = {}

    def close() -> None:
        if pending is None:
            return
        key = str(pending["key"])
        seen[key] = seen.get(key, 0) + 1
        lines.append(
            StatementLine(
                line=int(str(pending["line"])),
                booked_on=pending["day"],  # type: ignore[arg-type]
                amount=pending["amount"],  # type: ignore[arg-type]
                counterparty=str(pending["payer"])[:200],
                text=" ".join(str(pending["text"]).split()),
                bank_id=f"n43:{key}:{seen[key]}",
            )
        )

    for number, row in enumerate(rows, start=1):
        kind = row[:2]
        if kind == "11":
            account = row[2:20]
        elif kind == "22":
            close()
            pending = None
            try:
                day = _n43_day(row[16:22])
                cents = int(row[28:42])
            except ValueError:
                faults[f"line {number}"] = f"Line {number}: the date or amount is not readable."
                continue
            sign = -1 if row[27:28] == "1" else 1
            document, first, second = row[42:52].strip(), row[52:64].strip(), row[64:80].strip()
            pending = {
                "line": number,
                "day": day,
                "amount": Decimal(cents * sign) / 100,
                "payer": "",
                "text": " ".join(x for x in (first, second) if x),
                "key": "|".join((account, row[10:16], row[16:22], row[27:42], document, first)),
            }
        elif kind == "23" and pending is not None:
            concept = " ".join((row[4:42] + " " + row[42:80]).split())
            if row[2:4] == "01" and not pending["payer"]:
                # Spanish banks put the ordering party's name in the first concept record.
                pending["payer"] = concept
            pending["text"] = f"{pending['text']} {concept}"
        elif kind in ("33", "88"):
            close()
            pending = None
    close()
    if faults:
        raise StatementError("Some lines of the statement cannot be read.", fields=faults)
    return lines
