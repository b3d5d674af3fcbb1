"""Every kind of document the office issues is an EN 16931 e-invoice, in UBL and in CII."""

from datetime import datetime
from decimal import Decimal
from html import unescape
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree
from pydantic import ValidationError
from pypdf import PdfReader
from sqlmodel import Session, select

from app.models import Application, Edition, Invoice, OutboxMessage, StaffUser
from app.platform import mail
from app.platform.pdf import render_html
from app.platform.storage import LocalStorage
from app.services.billing import buyers, einvoices, invoice_files, payments
from app.services.billing import invoices as invoicing
from app.services.billing.einvoices import CAC, CBC
from app.services.billing.invoice_files import render_invoice_attachment
from app.services.editions.editions import EditionCreate
from app.services.errors import InvalidInput
from app.services.registrations import applications as applications_service
from app.services.registrations import cancellation_intake as cancellations
from app.services.registrations.cancellation_intake import CancellationOffice
from tests.en16931 import Rules
from tests.factories import (
    admit,
    edition_payload,
    make_organisation,
    office_today,
    open_edition,
    submit,
)
from tests.services.billing.test_invoicing import BASE, SECRET
from tests.services.billing.test_invoicing import SELLER as OLD_SELLER
from tests.services.registrations.test_cancellations import written

SELLER = invoicing.Seller(
    name="Metropolis",
    address="Avinyó, 15\n08002 Barcelona\nSpain",
    tax_id="G65318149",
    bank_name="Example Bank",
    iban="ES91 2100 0418 4502 0005 1332",
    bic="CAIXESBBXXX",
    due_days=14,
    street="Avinyó, 15",
    city="Barcelona",
    postcode="08002",
    country_code="ES",
    electronic_address="diploma@metropolis.org",
)
BARCELONA_COUNCIL = {
    "legal_name": "Ajuntament de Barcelona",
    "tax_id": "P0801900B",
    "address_line": "Plaça de Sant Jaume, 1",
    "city": "Barcelona",
    "postcode": "08002",
    "country": "ES",
    "purchase_order": "PO-2099-114",
    "dir3": {
        "accounting_office": "L01080193",
        "managing_body": "L01080193",
        "processing_unit": "LA0007456",
    },
    "wants_e_invoice": True,
}
MADRID = ZoneInfo("Europe/Madrid")
BEFORE_DEADLINE = datetime(2099, 10, 7, 0, 0, tzinfo=MADRID)
NS = {"cac": CAC, "cbc": CBC}


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def invoice_of(session: Session, application: Application) -> Invoice:
    return session.exec(
        select(Invoice)
        .join(invoicing.InvoiceLine)
        .where(invoicing.InvoiceLine.application_id == application.id)
        .order_by(Invoice.id)  # type: ignore[arg-type]
    ).first()  # type: ignore[return-value]


def assert_conforms(session: Session, rules: Rules, invoice: Invoice) -> bytes:
    ubl = einvoices.invoice_ubl(session, invoice)
    cii = einvoices.invoice_cii(session, invoice)
    assert rules.failures(ubl, syntax="ubl") == []
    assert rules.failures(cii, syntax="cii") == []
    return ubl


def group_of_three(session: Session, storage: LocalStorage, admin: StaffUser, edition: Edition):  # type: ignore[no-untyped-def]
    organisation = make_organisation(session, name="Ajuntament de Barcelona", country="ESP")
    group, _ = applications_service.create_group(
        session,
        edition_slug=edition.slug,
        organisation_id=organisation.id or 0,
        contact_email="relint@bcn.example",
        contact_name="Núria Soler",
        secret_key=SECRET,
        base_url=BASE,
    )
    for i in range(3):
        admit(
            session,
            storage,
            admin,
            submit(session, storage, edition, email=f"m{i}@bcn.example", group_code=group.code),
            seller=SELLER,
        )
    return group


def test_the_official_rules_catch_a_broken_document(
    session: Session, storage: LocalStorage, admin_user: StaffUser, en16931: Rules
) -> None:
    edition = open_edition(session)
    application = admit(
        session, storage, admin_user, submit(session, storage, edition), seller=SELLER
    )
    ubl = etree.fromstring(einvoices.invoice_ubl(session, invoice_of(session, application)))
    for reason in ubl.iterfind(".//cac:TaxCategory/cbc:TaxExemptionReason", NS):
        reason.getparent().remove(reason)
    for code in ubl.iterfind(".//cac:TaxCategory/cbc:TaxExemptionReasonCode", NS):
        code.getparent().remove(code)
    failures = en16931.failures(etree.tostring(ubl), syntax="ubl")
    assert any(f.startswith("BR-E-10") for f in failures)


def test_a_single_invoice_at_the_standard_rate_conforms(
    session: Session, storage: LocalStorage, admin_user: StaffUser, en16931: Rules
) -> None:
    edition = open_edition(session, tax_rate="21")
    application = admit(
        session, storage, admin_user, submit(session, storage, edition), seller=SELLER
    )
    invoice = invoice_of(session, application)
    ubl = etree.fromstring(assert_conforms(session, en16931, invoice))
    assert ubl.findtext("cbc:InvoiceTypeCode", namespaces=NS) == "380"
    assert ubl.findtext(".//cac:TaxSubtotal/cac:TaxCategory/cbc:ID", namespaces=NS) == "S"
    assert ubl.findtext(".//cac:TaxTotal/cbc:TaxAmount", namespaces=NS) == "315.00"
    assert ubl.findtext(".//cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=NS) == "1815.00"
    supplier = ubl.find("cac:AccountingSupplierParty/cac:Party", NS)
    assert supplier.findtext("cac:PartyTaxScheme/cbc:CompanyID", namespaces=NS) == "ESG65318149"
    buyer = ubl.find("cac:AccountingCustomerParty/cac:Party", NS)
    assert (
        buyer.findtext("cac:PostalAddress/cac:Country/cbc:IdentificationCode", namespaces=NS)
        == "MW"
    )


def test_an_exempt_training_fee_says_why_in_words_and_code(
    session: Session, storage: LocalStorage, admin_user: StaffUser, en16931: Rules
) -> None:
    edition = open_edition(session)  # 0 %: the edition's exemption is training, art. 20.1.9
    application = submit(session, storage, edition)
    buyers.save_application_billing(
        session,
        application=application,
        data=buyers.billing_in(
            {
                "legal_name": "Lilongwe City Council",
                "tax_id": "",
                "address_line": "Civic Offices, Glyn Jones Road",
                "city": "Lilongwe",
                "country": "MWI",
                "buyer_reference": "LCC/IR/2099/7",
            }
        ),
        actor="admin@example.org",
    )
    admit(session, storage, admin_user, application, seller=SELLER)
    invoice = invoice_of(session, application)
    ubl = etree.fromstring(assert_conforms(session, en16931, invoice))
    category = ubl.find(".//cac:TaxSubtotal/cac:TaxCategory", NS)
    assert category.findtext("cbc:ID", namespaces=NS) == "E"
    assert category.findtext("cbc:TaxExemptionReasonCode", namespaces=NS) == "VATEX-EU-132-1I"
    assert "art. 20.1.9 Ley 37/1992" in category.findtext("cbc:TaxExemptionReason", namespaces=NS)
    assert ubl.findtext("cbc:BuyerReference", namespaces=NS) == "LCC/IR/2099/7"
    shown = invoicing.invoice_document(session, invoice)
    assert shown["buyer"]["name"] == "Lilongwe City Council"
    assert shown["buyer"]["attention"] == "Ama Banda"
    assert any("art. 20.1.9" in words for words in shown["exemptions"])


def test_a_group_of_three_for_a_public_body_carries_its_order_and_dir3_codes(
    session: Session, storage: LocalStorage, admin_user: StaffUser, en16931: Rules
) -> None:
    edition = open_edition(session)
    group = group_of_three(session, storage, admin_user, edition)
    buyers.save_group_billing(
        session, group=group, data=buyers.billing_in(BARCELONA_COUNCIL), actor="admin@example.org"
    )
    invoice = invoicing.issue_group_invoice(
        session, edition=edition, code=group.code, seller=SELLER, actor="t", storage=storage
    )
    ubl = etree.fromstring(assert_conforms(session, en16931, invoice))
    assert len(ubl.findall("cac:InvoiceLine", NS)) == 3
    assert ubl.findtext("cac:OrderReference/cbc:ID", namespaces=NS) == "PO-2099-114"
    assert ubl.findtext("cbc:BuyerReference", namespaces=NS) == "LA0007456"
    buyer = ubl.find("cac:AccountingCustomerParty/cac:Party", NS)
    assert buyer.findtext("cac:PartyIdentification/cbc:ID", namespaces=NS) == "L01080193"
    assert buyer.findtext("cac:PartyTaxScheme/cbc:CompanyID", namespaces=NS) == "ESP0801900B"
    assert buyer.findtext("cac:PostalAddress/cbc:PostalZone", namespaces=NS) == "08002"
    notes = " ".join(n.text for n in ubl.findall("cbc:Note", NS))
    assert "unidad tramitadora LA0007456" in notes


def test_a_credit_note_and_a_cancellation_fee_invoice_conform(
    session: Session, storage: LocalStorage, admin_user: StaffUser, en16931: Rules
) -> None:
    edition = open_edition(session, tax_rate="21")
    application = admit(
        session, storage, admin_user, submit(session, storage, edition), seller=SELLER
    )
    invoice = invoice_of(session, application)
    payments.record_payment(
        session,
        invoice_number=invoice.number,
        amount=Decimal("1815.00"),
        received_on=office_today(),
        method="bank_transfer",
        reference="",
        actor="admin@example.org",
    )
    outcome = cancellations.cancel_registration(
        session,
        application_id=application.id or 0,
        request=written(edition, application, BEFORE_DEADLINE),
        office=CancellationOffice(
            storage=storage,
            seller=SELLER,
            secret_key=SECRET,
            base_url=BASE,
            office_email="office@example.org",
            offer_days=5,
        ),
        actor="admin@example.org",
        now=BEFORE_DEADLINE,
    )
    assert outcome.credit_note is not None and outcome.fee_invoice is not None
    credit = etree.fromstring(assert_conforms(session, en16931, outcome.credit_note))
    assert etree.QName(credit).localname == "CreditNote"
    assert credit.findtext("cbc:CreditNoteTypeCode", namespaces=NS) == "381"
    assert (
        credit.findtext("cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID", namespaces=NS)
        == invoice.number
    )
    # Stored negative, stated positive: the document type carries the sign.
    assert (
        credit.findtext(".//cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=NS) == "1815.00"
    )
    fee = etree.fromstring(assert_conforms(session, en16931, outcome.fee_invoice))
    assert fee.findtext(".//cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=NS) == str(
        outcome.cancellation.retained
    )


def test_a_wrong_check_digit_in_a_buyer_tax_id_names_the_field() -> None:
    data = buyers.billing_in(dict(BARCELONA_COUNCIL, tax_id="P0801900C"))
    with pytest.raises(InvalidInput) as refused:
        buyers.checked_tax_id(data.tax_id, "ESP")
    assert "tax_id" in refused.value.fields
    assert buyers.checked_tax_id("ES-P0801900B", "ESP") == "P0801900B"
    assert buyers.checked_tax_id("DE 136 695 976", "DEU") == "136695976"


def test_dir3_codes_come_in_threes_of_nine_characters() -> None:
    with pytest.raises(InvalidInput) as refused:
        buyers.billing_in(dict(BARCELONA_COUNCIL, dir3={"accounting_office": "L01080193"}))
    assert set(refused.value.fields) == {"dir3.managing_body", "dir3.processing_unit"}


def test_the_pdf_is_a_factur_x_invoice_with_the_cii_embedded(
    session: Session, storage: LocalStorage, admin_user: StaffUser, en16931: Rules
) -> None:
    from facturx import get_level, get_xml_from_pdf

    edition = open_edition(session)
    application = admit(
        session, storage, admin_user, submit(session, storage, edition), seller=SELLER
    )
    invoice = invoice_of(session, application)
    pdf = invoice_files.ensure_invoice_pdf(session, invoice, storage)
    filename, xml = get_xml_from_pdf(pdf, check_xsd=True)
    assert filename == "factur-x.xml"
    assert get_level(etree.fromstring(xml)) == "en16931"
    assert en16931.failures(xml, syntax="cii") == []
    metadata = PdfReader(BytesIO(pdf)).trailer["/Root"]["/Metadata"].get_object().get_data()
    assert b"<pdfaid:part>3</pdfaid:part>" in metadata
    assert b"<pdfaid:conformance>B</pdfaid:conformance>" in metadata


def test_a_buyer_who_asks_for_it_gets_the_ubl_with_the_invoice_email(
    session: Session, storage: LocalStorage, admin_user: StaffUser, en16931: Rules
) -> None:
    edition = open_edition(session)
    asking, silent = (
        submit(session, storage, edition, email=email)
        for email in ("asks@bcn.example", "silent@bcn.example")
    )
    for application, wants in ((asking, True), (silent, False)):
        buyers.save_application_billing(
            session,
            application=application,
            data=buyers.billing_in(dict(BARCELONA_COUNCIL, wants_e_invoice=wants)),
            actor="admin@example.org",
        )
        admit(session, storage, admin_user, application, seller=SELLER)
    messages = {
        m.to_address: m
        for m in session.exec(select(OutboxMessage).where(OutboxMessage.kind == "decision_admit"))
    }
    assert [a["content_type"] for a in messages["silent@bcn.example"].attachments] == [
        "application/pdf"
    ]
    outbox = messages["asks@bcn.example"]
    invoice = invoice_of(session, asking)
    for attachment in outbox.attachments:
        render_invoice_attachment(session, attachment, storage)
    built = mail.build_message(outbox, sender="office@example.org", storage=storage)
    files = {part.get_filename(): part.get_content() for part in built.iter_attachments()}
    assert set(files) == {f"invoice-{invoice.number}.pdf", f"invoice-{invoice.number}.xml"}
    ubl = files[f"invoice-{invoice.number}.xml"]
    assert etree.fromstring(ubl).findtext("cbc:ID", namespaces=NS) == invoice.number
    assert en16931.failures(ubl, syntax="ubl") == []


def test_the_edition_says_which_exemption_applies_and_refuses_an_unknown_one(
    session: Session, storage: LocalStorage, admin_user: StaffUser, en16931: Rules
) -> None:
    with pytest.raises(ValidationError, match="vat_exemption"):
        EditionCreate.model_validate(edition_payload(vat_exemption="VATEX-EU-999"))
    edition = open_edition(session, vat_exemption="vatex-eu-132-1n")
    application = admit(
        session, storage, admin_user, submit(session, storage, edition), seller=SELLER
    )
    invoice = invoice_of(session, application)
    (line,) = invoicing.invoice_lines(session, invoice)
    assert (line.vat_category, line.vat_exemption_code) == ("E", "VATEX-EU-132-1N")
    assert "art. 20.1.14 Ley 37/1992" in line.vat_exemption_reason
    assert_conforms(session, en16931, invoice)


def test_the_invoice_shows_the_buyers_tax_id_address_and_the_exemption_wording(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    group = group_of_three(session, storage, admin_user, edition)
    buyers.save_group_billing(
        session, group=group, data=buyers.billing_in(BARCELONA_COUNCIL), actor="admin@example.org"
    )
    invoice = invoicing.issue_group_invoice(
        session, edition=edition, code=group.code, seller=SELLER, actor="t", storage=storage
    )
    html = unescape(render_html("invoice.html", invoicing.invoice_document(session, invoice)))
    assert "Tax ID: P0801900B" in html
    assert "Plaça de Sant Jaume, 1\n08002 Barcelona\nSpain" in html
    assert "processing unit LA0007456" in html
    assert "Exempt from VAT: vocational training (art. 20.1.9 Ley 37/1992" in html
    text = "".join(
        page.extract_text()
        for page in PdfReader(BytesIO(invoice_files.render_invoice_pdf(session, invoice))).pages
    )
    assert "P0801900B" in text and "20.1.9" in text


def test_a_credit_note_keeps_the_exemption_of_the_lines_it_cancels(
    session: Session, storage: LocalStorage, admin_user: StaffUser, en16931: Rules
) -> None:
    edition = open_edition(session)
    application = admit(
        session, storage, admin_user, submit(session, storage, edition), seller=SELLER
    )
    invoice = invoice_of(session, application)
    (issued,) = invoicing.invoice_lines(session, invoice)
    assert issued.vat_exemption_code == "VATEX-EU-132-1I"
    payments.record_payment(
        session,
        invoice_number=invoice.number,
        amount=invoice.total,
        received_on=office_today(),
        method="bank_transfer",
        reference="",
        actor="admin@example.org",
    )
    edition.vat_exemption = "VATEX-EU-132-1N"  # changed after the invoice was issued
    session.add(edition)
    outcome = cancellations.cancel_registration(
        session,
        application_id=application.id or 0,
        request=written(edition, application, BEFORE_DEADLINE),
        office=CancellationOffice(
            storage=storage,
            seller=SELLER,
            secret_key=SECRET,
            base_url=BASE,
            office_email="office@example.org",
            offer_days=5,
        ),
        actor="admin@example.org",
        now=BEFORE_DEADLINE,
    )
    assert outcome.credit_note is not None
    (line,) = invoicing.invoice_lines(session, outcome.credit_note)
    assert (line.vat_category, line.vat_exemption_code) == ("E", "VATEX-EU-132-1I")
    assert_conforms(session, en16931, outcome.credit_note)
    assert outcome.fee_invoice is not None
    (fee_line,) = invoicing.invoice_lines(session, outcome.fee_invoice)
    # The fee is a new supply: it follows the edition as it is now.
    assert fee_line.vat_exemption_code == "VATEX-EU-132-1N"
    assert_conforms(session, en16931, outcome.fee_invoice)


@pytest.mark.parametrize(
    ("buyer", "endpoint", "vat_id", "legal_id"),
    [
        (
            {
                "legal_name": "Stadt Köln",
                "tax_id": "DE 136 695 976",
                "address_line": "Willy-Brandt-Platz 2",
                "city": "Köln",
                "postcode": "50679",
                "country": "DE",
                "leitweg_id": "05315000-12345-06",
            },
            ("0204", "05315000-12345-06"),
            "DE136695976",
            None,
        ),
        (
            {
                "legal_name": "Gobierno de la Ciudad de México",
                "tax_id": "GDF9712054NA",
                "address_line": "Plaza de la Constitución s/n",
                "city": "Ciudad de México",
                "postcode": "06000",
                "country": "MEX",
                "peppol_id": "0088:7300010000001",
            },
            ("0088", "7300010000001"),
            None,
            "GDF9712054NA",
        ),
    ],
    ids=["german-leitweg", "mexican-peppol"],
)
def test_buyers_routed_by_leitweg_id_or_peppol_id_conform(
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    en16931: Rules,
    buyer: dict[str, str],
    endpoint: tuple[str, str],
    vat_id: str | None,
    legal_id: str | None,
) -> None:
    edition = open_edition(session, tax_rate="21")
    application = submit(session, storage, edition)
    buyers.save_application_billing(
        session, application=application, data=buyers.billing_in(buyer), actor="t"
    )
    admit(session, storage, admin_user, application, seller=SELLER)
    ubl = etree.fromstring(assert_conforms(session, en16931, invoice_of(session, application)))
    party = ubl.find("cac:AccountingCustomerParty/cac:Party", NS)
    found = party.find("cbc:EndpointID", NS)
    assert (found.get("schemeID"), found.text) == endpoint
    assert party.findtext("cac:PartyTaxScheme/cbc:CompanyID", namespaces=NS) == vat_id
    assert party.findtext("cac:PartyLegalEntity/cbc:CompanyID", namespaces=NS) == legal_id


def test_an_invoice_issued_without_the_sellers_address_has_no_e_invoice_but_a_pdf(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    from facturx import get_xml_from_pdf

    edition = open_edition(session)
    application = submit(session, storage, edition)
    applications_service.decide(
        session,
        application_id=application.id or 0,
        decision="admit",
        actor=admin_user,
        storage=storage,
        secret_key=SECRET,
        base_url=BASE,
        seller=OLD_SELLER,  # as invoices were issued before the registered address was kept
    )
    invoice = invoice_of(session, application)
    with pytest.raises(einvoices.NotAnEInvoice):
        einvoices.invoice_ubl(session, invoice)
    pdf = invoice_files.render_invoice_pdf(session, invoice)
    assert pdf.startswith(b"%PDF")
    assert get_xml_from_pdf(pdf, check_xsd=False) == (False, False)
