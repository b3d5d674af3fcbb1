"""Owed bank refunds paid in a SEPA credit transfer file the bank accepts, settled by statement."""

from datetime import date
from decimal import Decimal
from pathlib import Path

import sepaxml
import xmlschema
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Invoice, Refund
from app.services.billing import bank_files, refunds
from tests.routers.billing.test_money_back import api_pay, participant, storage  # noqa: F401

# The ISO 20022 schema of the customer credit transfer initiation, as the library ships it.
PAIN_001_XSD = Path(sepaxml.__file__).parent / "schemas" / "pain.001.001.03.xsd"

DEBIT_ENTRY = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt>
<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt><AcctSvcrRef>OUT-1</AcctSvcrRef>
<NtryDtls><TxDtls><Refs><EndToEndId>DIPLOMAT-REFUND-{id}</EndToEndId></Refs></TxDtls></NtryDtls>
</Ntry></Stmt></BkToCstmrStmt></Document>"""


def test_owed_bank_refunds_are_paid_in_a_valid_pain001_and_settled_by_the_statement(
    client: TestClient,
    admin_headers: dict[str, str],
    session: Session,
    participant: tuple[object, Invoice],  # noqa: F811
) -> None:
    _, invoice = participant
    api_pay(client, admin_headers, invoice.number, "1600.00")
    refund = session.exec(select(Refund)).one()
    nothing = client.get("/api/v1/refunds/sepa-credit-transfer", headers=admin_headers)
    assert nothing.status_code == 409  # no account given yet
    given = client.put(
        f"/api/v1/refunds/{refund.id}/bank-details",
        json={"account_holder": "Ama Banda", "iban": "DE89 3704 0044 0532 0130 00"},
        headers=admin_headers,
    )
    assert given.status_code == 200, given.text
    made = client.get("/api/v1/refunds/sepa-credit-transfer", headers=admin_headers)
    assert made.status_code == 200, made.text
    assert made.headers["content-type"].startswith("application/xml")
    xmlschema.XMLSchema(PAIN_001_XSD).validate(made.content)
    document = made.text
    assert '<InstdAmt Ccy="EUR">100.00</InstdAmt>' in document
    assert "DE89370400440532013000" in document
    assert f"DIPLOMAT-REFUND-{refund.id}" in document
    session.refresh(refund)
    assert refund.sent_at is not None
    # Sent once: the next file has nothing to pay.
    assert (
        client.get("/api/v1/refunds/sepa-credit-transfer", headers=admin_headers).status_code == 409
    )
    statement = DEBIT_ENTRY.format(amount="100.00", day=date.today().isoformat(), id=refund.id)
    preview = bank_files.upload_statement(
        session, raw=statement.encode(), filename="s.xml", actor="admin"
    )
    bank_files.confirm_statement(session, statement_id=preview.statement.id or 0, actor="admin")
    session.refresh(refund)
    assert refund.status == "completed"
    assert refunds.owed_refunds(session, invoice.id or 0) == Decimal("0.00")
