"""Issued invoices and credit notes as EN 16931 e-invoices: UBL 2.1, CII, and Factur-X PDFs.

Everything is written from the stored (frozen) invoice, never from live data. A credit note is
stored with negative amounts; its e-invoice states them as positive amounts of a credit note,
as EN 16931 asks (the document type carries the sign).
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from lxml import etree
from sqlmodel import Session

from app.models import Invoice, InvoiceKind, InvoiceLine
from app.platform.mail import Attachment
from app.platform.storage import Storage
from app.services.billing.invoices import invoice_lines
from app.services.errors import Conflict, InvalidInput
from app.services.registry.countries import alpha_2, parse_country

CUSTOMIZATION = "urn:cen.eu:en16931:2017"
UBL_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
UBL_CREDIT_NOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
# UNTDID 1001: a commercial invoice, a credit note.
INVOICE_TYPE = "380"
CREDIT_NOTE_TYPE = "381"
# UNTDID 4461: SEPA credit transfer (the office is paid by bank transfer to a SEPA account).
SEPA_CREDIT_TRANSFER = "58"
# EAS codes (CEF): a Leitweg-ID, an e-mail address.
LEITWEG_SCHEME = "0204"
EMAIL_SCHEME = "EM"
# Countries whose VAT numbers carry an EU prefix (Greece writes EL).
EU_VAT_PREFIX = {
    code: ("EL" if code == "GR" else code)
    for code in (
        *("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU"),
        *("IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"),
    )
}
UNIT_ONE = "C62"  # UN/ECE rec. 20: one (a fee)


class NotAnEInvoice(Conflict):
    """The stored invoice lacks data an e-invoice needs (issued before it was kept)."""


@dataclass(frozen=True)
class Party:
    """A seller or buyer as EN 16931 names them."""

    name: str
    street: str
    city: str
    postcode: str
    country_code: str
    vat_id: str  # with its country prefix (BT-31 / BT-48), or ""
    legal_id: str  # another registration id (BT-47) when the tax id is not a VAT number
    party_id: str  # BT-29 / BT-46
    endpoint: tuple[str, str] | None  # (scheme, address), BT-34 / BT-49
    email: str
    contact: str


@dataclass(frozen=True)
class VatBreakdown:
    """One VAT category and rate of an invoice, with its taxable base and tax (BG-23)."""

    category: str
    rate: Decimal
    base: Decimal
    tax: Decimal
    exemption_code: str
    exemption_reason: str


@dataclass(frozen=True)
class EInvoice:
    """The values both syntaxes write, signs already turned for credit notes."""

    number: str
    credit_note: bool
    issue_date: date
    due_date: date | None
    currency: str
    notes: list[str]
    buyer_reference: str
    purchase_order: str
    preceding: tuple[str, date] | None
    seller: Party
    buyer: Party
    iban: str
    bic: str
    bank: str
    payment_reference: str
    payment_terms: str
    lines: list[tuple[InvoiceLine, Decimal]]  # the line and its amount, sign turned
    breakdown: list[VatBreakdown]
    net_total: Decimal
    tax_total: Decimal
    total: Decimal


def _compact(tax_id: str) -> str:
    return "".join(ch for ch in tax_id.upper() if ch.isalnum())


def _vat_id(tax_id: str, country_code: str) -> str:
    """A VAT identifier with its EU country prefix, or "" outside the EU."""
    prefix = EU_VAT_PREFIX.get(country_code)
    compact = _compact(tax_id)
    if not prefix or not compact:
        return ""
    return compact if compact.startswith(prefix) else prefix + compact


def _country_code(copy: dict[str, Any]) -> str:
    code = str(copy.get("country_code") or "")
    if code:
        return code
    try:  # invoices issued before the code was copied name the country in words
        return alpha_2(parse_country(str(copy.get("country") or "")))
    except InvalidInput:
        return ""


def _seller(copy: dict[str, Any]) -> Party:
    address_lines = [ln.strip() for ln in str(copy.get("address", "")).splitlines() if ln.strip()]
    country = str(copy.get("country_code") or "")
    if not country:
        raise NotAnEInvoice(
            "This invoice was issued before the seller's country was kept on invoices; "
            "it has no e-invoice."
        )
    tax_id = str(copy.get("tax_id", ""))
    scheme = str(copy.get("electronic_address_scheme") or EMAIL_SCHEME)
    address = str(copy.get("electronic_address") or "")
    return Party(
        name=str(copy.get("name", "")),
        street=str(copy.get("street") or (address_lines[0] if address_lines else "")),
        city=str(copy.get("city", "")),
        postcode=str(copy.get("postcode", "")),
        country_code=country,
        vat_id=_vat_id(tax_id, country),
        legal_id="" if _vat_id(tax_id, country) else _compact(tax_id),
        party_id="",
        endpoint=(scheme, address) if address else None,
        email=address if scheme == EMAIL_SCHEME else "",
        contact="",
    )


def _buyer(copy: dict[str, Any]) -> Party:
    country = _country_code(copy)
    if not country:
        raise NotAnEInvoice(
            "The buyer's country on this invoice is not known; it has no e-invoice."
        )
    tax_id = str(copy.get("tax_id") or "")
    vat_id = _vat_id(tax_id, country)
    email = str(copy.get("email") or "")
    endpoint: tuple[str, str] | None = None
    peppol = str(copy.get("peppol_id") or "")
    if peppol:
        scheme, _, identifier = peppol.partition(":")
        endpoint = (scheme, identifier)
    elif copy.get("leitweg_id"):
        endpoint = (LEITWEG_SCHEME, str(copy["leitweg_id"]))
    elif email:
        endpoint = (EMAIL_SCHEME, email)
    dir3 = copy.get("dir3") or {}
    return Party(
        name=str(copy.get("legal_name") or copy.get("name") or ""),
        street=str(copy.get("street") or ""),
        city=str(copy.get("city") or ""),
        postcode=str(copy.get("postcode") or ""),
        country_code=country,
        vat_id=vat_id,
        legal_id="" if vat_id else _compact(tax_id),
        # FACe: the accounting office is the buyer's identifier (see docs/decisions.md).
        party_id=str(dir3.get("accounting_office") or ""),
        endpoint=endpoint,
        email=email,
        contact=str(copy.get("attention") or ""),
    )


def _breakdown(
    invoice: Invoice, lines: list[tuple[InvoiceLine, Decimal]], sign: Decimal
) -> list[VatBreakdown]:
    groups: dict[tuple[str, Decimal], list[InvoiceLine]] = {}
    for line, _amount in lines:
        groups.setdefault((line.vat_category, invoice.tax_rate), []).append(line)
    return [
        VatBreakdown(
            category=category,
            rate=rate,
            base=sign * sum((ln.net for ln in members), Decimal("0.00")),
            tax=sign * sum((ln.tax for ln in members), Decimal("0.00")),
            exemption_code=members[0].vat_exemption_code,
            exemption_reason=members[0].vat_exemption_reason,
        )
        for (category, rate), members in sorted(groups.items())
    ]


def _notes(
    invoice: Invoice, buyer: dict[str, Any], preceding: tuple[str, date] | None
) -> list[str]:
    notes = [invoice.subject] if invoice.subject else []
    if invoice.tax_note:
        notes.append(invoice.tax_note)
    dir3 = buyer.get("dir3") or {}
    if dir3:
        notes.append(
            "DIR3: oficina contable {accounting_office}, órgano gestor {managing_body}, "
            "unidad tramitadora {processing_unit}".format(**dir3)
        )
    if invoice.kind == InvoiceKind.invoice.value and preceding is not None:
        notes.append(f"Cancellation fee retained from invoice {preceding[0]}.")
    return notes


def e_invoice(session: Session, invoice: Invoice) -> EInvoice:
    """The values of a stored invoice or credit note that its e-invoices carry."""
    credit_note = invoice.kind == InvoiceKind.credit_note.value
    sign = Decimal(-1) if credit_note else Decimal(1)
    lines = [(line, sign * line.net) for line in invoice_lines(session, invoice)]
    refers_to = session.get(Invoice, invoice.refers_to_id) if invoice.refers_to_id else None
    preceding = (refers_to.number, refers_to.issue_date) if refers_to else None
    buyer = dict(invoice.buyer)
    instructions = dict(invoice.payment_instructions)
    dir3 = buyer.get("dir3") or {}
    reference = str(
        buyer.get("buyer_reference") or buyer.get("leitweg_id") or dir3.get("processing_unit") or ""
    )
    total = sign * invoice.total
    terms = ""
    if credit_note:
        terms = f"Credits invoice {preceding[0]}." if preceding else "Credit note."
    return EInvoice(
        number=invoice.number,
        credit_note=credit_note,
        issue_date=invoice.issue_date,
        due_date=None if credit_note else invoice.due_date,
        currency=invoice.currency,
        notes=_notes(invoice, buyer, preceding),
        buyer_reference=reference,
        purchase_order=str(buyer.get("po_number") or ""),
        preceding=preceding,
        seller=_seller(dict(invoice.seller)),
        buyer=_buyer(buyer),
        iban=_compact(str(instructions.get("iban") or "")),
        bic=str(instructions.get("bic") or ""),
        bank=str(instructions.get("bank") or ""),
        payment_reference=str(instructions.get("reference") or ""),
        payment_terms=terms,
        lines=lines,
        breakdown=_breakdown(invoice, lines, sign),
        net_total=sign * invoice.net_total,
        tax_total=sign * invoice.tax_total,
        total=total,
    )


def _money(amount: Decimal) -> str:
    # A credit note turns 0.00 into -0.00; the rules compare text as well as numbers.
    return f"{abs(amount) if amount == 0 else amount:.2f}"


def _percent(rate: Decimal) -> str:
    return f"{rate:.2f}"


class _Builder:
    """Appends namespaced children, skipping empty values."""

    def __init__(self, namespaces: dict[str, str]) -> None:
        self.namespaces = namespaces

    def __call__(
        self, parent: etree._Element, tag: str, text: str | None = None, **attributes: str
    ) -> etree._Element:
        prefix, name = tag.split(":")
        element = etree.SubElement(parent, f"{{{self.namespaces[prefix]}}}{name}", attributes)
        if text is not None:
            element.text = text
        return element

    def optional(
        self, parent: etree._Element, tag: str, text: str, **attributes: str
    ) -> etree._Element | None:
        return self(parent, tag, text, **attributes) if text else None


def _ubl_party(add: _Builder, parent: etree._Element, party: Party) -> None:
    node = add(parent, "cac:Party")
    if party.endpoint:
        add(node, "cbc:EndpointID", party.endpoint[1], schemeID=party.endpoint[0])
    if party.party_id:
        add(add(node, "cac:PartyIdentification"), "cbc:ID", party.party_id)
    address = add(node, "cac:PostalAddress")
    add.optional(address, "cbc:StreetName", party.street)
    add.optional(address, "cbc:CityName", party.city)
    add.optional(address, "cbc:PostalZone", party.postcode)
    add(add(address, "cac:Country"), "cbc:IdentificationCode", party.country_code)
    if party.vat_id:
        scheme = add(node, "cac:PartyTaxScheme")
        add(scheme, "cbc:CompanyID", party.vat_id)
        add(add(scheme, "cac:TaxScheme"), "cbc:ID", "VAT")
    legal = add(node, "cac:PartyLegalEntity")
    add(legal, "cbc:RegistrationName", party.name)
    add.optional(legal, "cbc:CompanyID", party.legal_id)
    if party.contact or party.email:
        contact = add(node, "cac:Contact")
        add.optional(contact, "cbc:Name", party.contact)
        add.optional(contact, "cbc:ElectronicMail", party.email)


def _ubl_tax_category(
    add: _Builder, parent: etree._Element, tag: str, category: str, rate: Decimal
) -> etree._Element:
    node = add(parent, tag)
    add(node, "cbc:ID", category)
    add(node, "cbc:Percent", _percent(rate))
    return node


def to_ubl(document: EInvoice) -> bytes:
    """The e-invoice as a UBL 2.1 Invoice or CreditNote (EN 16931 core)."""
    root_ns = UBL_CREDIT_NOTE if document.credit_note else UBL_INVOICE
    namespaces = {None: root_ns, "cac": CAC, "cbc": CBC}
    add = _Builder({"cac": CAC, "cbc": CBC})
    kind = "CreditNote" if document.credit_note else "Invoice"
    root = etree.Element(f"{{{root_ns}}}{kind}", nsmap=namespaces)
    currency = {"currencyID": document.currency}
    add(root, "cbc:CustomizationID", CUSTOMIZATION)
    add(root, "cbc:ID", document.number)
    add(root, "cbc:IssueDate", document.issue_date.isoformat())
    if document.due_date is not None:
        add(root, "cbc:DueDate", document.due_date.isoformat())
    if document.credit_note:
        add(root, "cbc:CreditNoteTypeCode", CREDIT_NOTE_TYPE)
    else:
        add(root, "cbc:InvoiceTypeCode", INVOICE_TYPE)
    for note in document.notes:
        add(root, "cbc:Note", note)
    add(root, "cbc:DocumentCurrencyCode", document.currency)
    add.optional(root, "cbc:BuyerReference", document.buyer_reference)
    if document.purchase_order:
        add(add(root, "cac:OrderReference"), "cbc:ID", document.purchase_order)
    if document.preceding:
        reference = add(add(root, "cac:BillingReference"), "cac:InvoiceDocumentReference")
        add(reference, "cbc:ID", document.preceding[0])
        add(reference, "cbc:IssueDate", document.preceding[1].isoformat())
    _ubl_party(add, add(root, "cac:AccountingSupplierParty"), document.seller)
    _ubl_party(add, add(root, "cac:AccountingCustomerParty"), document.buyer)
    if document.iban:
        means = add(root, "cac:PaymentMeans")
        add(means, "cbc:PaymentMeansCode", SEPA_CREDIT_TRANSFER)
        add.optional(means, "cbc:PaymentID", document.payment_reference)
        account = add(means, "cac:PayeeFinancialAccount")
        add(account, "cbc:ID", document.iban)
        add.optional(account, "cbc:Name", document.seller.name)
        if document.bic:
            add(add(account, "cac:FinancialInstitutionBranch"), "cbc:ID", document.bic)
    if document.payment_terms:
        add(add(root, "cac:PaymentTerms"), "cbc:Note", document.payment_terms)
    tax_total = add(root, "cac:TaxTotal")
    add(tax_total, "cbc:TaxAmount", _money(document.tax_total), **currency)
    for part in document.breakdown:
        subtotal = add(tax_total, "cac:TaxSubtotal")
        add(subtotal, "cbc:TaxableAmount", _money(part.base), **currency)
        add(subtotal, "cbc:TaxAmount", _money(part.tax), **currency)
        category = _ubl_tax_category(add, subtotal, "cac:TaxCategory", part.category, part.rate)
        add.optional(category, "cbc:TaxExemptionReasonCode", part.exemption_code)
        add.optional(category, "cbc:TaxExemptionReason", part.exemption_reason)
        add(add(category, "cac:TaxScheme"), "cbc:ID", "VAT")
    totals = add(root, "cac:LegalMonetaryTotal")
    add(totals, "cbc:LineExtensionAmount", _money(document.net_total), **currency)
    add(totals, "cbc:TaxExclusiveAmount", _money(document.net_total), **currency)
    add(totals, "cbc:TaxInclusiveAmount", _money(document.total), **currency)
    add(totals, "cbc:PayableAmount", _money(document.total), **currency)
    line_tag = "cac:CreditNoteLine" if document.credit_note else "cac:InvoiceLine"
    quantity_tag = "cbc:CreditedQuantity" if document.credit_note else "cbc:InvoicedQuantity"
    for line, amount in document.lines:
        node = add(root, line_tag)
        add(node, "cbc:ID", str(line.position))
        add(node, quantity_tag, "1", unitCode=UNIT_ONE)
        add(node, "cbc:LineExtensionAmount", _money(amount), **currency)
        item = add(node, "cac:Item")
        add.optional(item, "cbc:Description", _line_details(line))
        add(item, "cbc:Name", line.description[:200])
        category = _ubl_tax_category(
            add, item, "cac:ClassifiedTaxCategory", line.vat_category, _line_rate(document, line)
        )
        add(add(category, "cac:TaxScheme"), "cbc:ID", "VAT")
        add(add(node, "cac:Price"), "cbc:PriceAmount", _money(amount), **currency)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _line_rate(document: EInvoice, line: InvoiceLine) -> Decimal:
    return next(p.rate for p in document.breakdown if p.category == line.vat_category)


def _line_details(line: InvoiceLine) -> str:
    return "; ".join(
        f"{d.get('label', '')}: {d.get('amount', '')}" for d in line.details if d.get("label")
    )


def _cii_date(add: _Builder, parent: etree._Element, tag: str, day: date, qualified: bool) -> None:
    node = add(parent, tag)
    add(
        node,
        "qdt:DateTimeString" if qualified else "udt:DateTimeString",
        f"{day:%Y%m%d}",
        format="102",
    )


def _cii_party(add: _Builder, parent: etree._Element, tag: str, party: Party) -> None:
    node = add(parent, tag)
    add.optional(node, "ram:ID", party.party_id)
    add(node, "ram:Name", party.name)
    if party.legal_id:
        add(add(node, "ram:SpecifiedLegalOrganization"), "ram:ID", party.legal_id)
    if party.contact or party.email:
        contact = add(node, "ram:DefinedTradeContact")
        add.optional(contact, "ram:PersonName", party.contact)
        if party.email:
            add(add(contact, "ram:EmailURIUniversalCommunication"), "ram:URIID", party.email)
    address = add(node, "ram:PostalTradeAddress")
    add.optional(address, "ram:PostcodeCode", party.postcode)
    add.optional(address, "ram:LineOne", party.street)
    add.optional(address, "ram:CityName", party.city)
    add(address, "ram:CountryID", party.country_code)
    if party.endpoint:
        communication = add(node, "ram:URIUniversalCommunication")
        add(communication, "ram:URIID", party.endpoint[1], schemeID=party.endpoint[0])
    if party.vat_id:
        add(add(node, "ram:SpecifiedTaxRegistration"), "ram:ID", party.vat_id, schemeID="VA")


def to_cii(document: EInvoice) -> bytes:
    """The e-invoice as a UN/CEFACT Cross Industry Invoice (EN 16931; Factur-X's XML)."""
    add = _Builder({"rsm": RSM, "ram": RAM, "udt": UDT, "qdt": QDT})
    root = etree.Element(
        f"{{{RSM}}}CrossIndustryInvoice", nsmap={"rsm": RSM, "ram": RAM, "udt": UDT, "qdt": QDT}
    )
    context = add(root, "rsm:ExchangedDocumentContext")
    add(add(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", CUSTOMIZATION)
    header = add(root, "rsm:ExchangedDocument")
    add(header, "ram:ID", document.number)
    add(header, "ram:TypeCode", CREDIT_NOTE_TYPE if document.credit_note else INVOICE_TYPE)
    _cii_date(add, header, "ram:IssueDateTime", document.issue_date, qualified=False)
    for note in document.notes:
        add(add(header, "ram:IncludedNote"), "ram:Content", note)
    transaction = add(root, "rsm:SupplyChainTradeTransaction")
    for line, amount in document.lines:
        item = add(transaction, "ram:IncludedSupplyChainTradeLineItem")
        add(add(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", str(line.position))
        product = add(item, "ram:SpecifiedTradeProduct")
        add(product, "ram:Name", line.description[:200])
        add.optional(product, "ram:Description", _line_details(line))
        agreement = add(item, "ram:SpecifiedLineTradeAgreement")
        add(add(agreement, "ram:NetPriceProductTradePrice"), "ram:ChargeAmount", _money(amount))
        delivery = add(item, "ram:SpecifiedLineTradeDelivery")
        add(delivery, "ram:BilledQuantity", "1", unitCode=UNIT_ONE)
        settlement = add(item, "ram:SpecifiedLineTradeSettlement")
        tax = add(settlement, "ram:ApplicableTradeTax")
        add(tax, "ram:TypeCode", "VAT")
        add(tax, "ram:CategoryCode", line.vat_category)
        add(tax, "ram:RateApplicablePercent", _percent(_line_rate(document, line)))
        summation = add(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
        add(summation, "ram:LineTotalAmount", _money(amount))
    agreement = add(transaction, "ram:ApplicableHeaderTradeAgreement")
    add.optional(agreement, "ram:BuyerReference", document.buyer_reference)
    _cii_party(add, agreement, "ram:SellerTradeParty", document.seller)
    _cii_party(add, agreement, "ram:BuyerTradeParty", document.buyer)
    if document.purchase_order:
        order = add(agreement, "ram:BuyerOrderReferencedDocument")
        add(order, "ram:IssuerAssignedID", document.purchase_order)
    add(transaction, "ram:ApplicableHeaderTradeDelivery")
    settlement = add(transaction, "ram:ApplicableHeaderTradeSettlement")
    add.optional(settlement, "ram:PaymentReference", document.payment_reference)
    add(settlement, "ram:InvoiceCurrencyCode", document.currency)
    if document.iban:
        means = add(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
        add(means, "ram:TypeCode", SEPA_CREDIT_TRANSFER)
        account = add(means, "ram:PayeePartyCreditorFinancialAccount")
        add(account, "ram:IBANID", document.iban)
        add.optional(account, "ram:AccountName", document.seller.name)
        if document.bic:
            institution = add(means, "ram:PayeeSpecifiedCreditorFinancialInstitution")
            add(institution, "ram:BICID", document.bic)
    for part in document.breakdown:
        tax = add(settlement, "ram:ApplicableTradeTax")
        add(tax, "ram:CalculatedAmount", _money(part.tax))
        add(tax, "ram:TypeCode", "VAT")
        add.optional(tax, "ram:ExemptionReason", part.exemption_reason)
        add(tax, "ram:BasisAmount", _money(part.base))
        add(tax, "ram:CategoryCode", part.category)
        add.optional(tax, "ram:ExemptionReasonCode", part.exemption_code)
        add(tax, "ram:RateApplicablePercent", _percent(part.rate))
    if document.due_date is not None or document.payment_terms:
        terms = add(settlement, "ram:SpecifiedTradePaymentTerms")
        add.optional(terms, "ram:Description", document.payment_terms)
        if document.due_date is not None:
            _cii_date(add, terms, "ram:DueDateDateTime", document.due_date, qualified=False)
    totals = add(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    add(totals, "ram:LineTotalAmount", _money(document.net_total))
    add(totals, "ram:TaxBasisTotalAmount", _money(document.net_total))
    add(totals, "ram:TaxTotalAmount", _money(document.tax_total), currencyID=document.currency)
    add(totals, "ram:GrandTotalAmount", _money(document.total))
    add(totals, "ram:DuePayableAmount", _money(document.total))
    if document.preceding:
        reference = add(settlement, "ram:InvoiceReferencedDocument")
        add(reference, "ram:IssuerAssignedID", document.preceding[0])
        _cii_date(
            add, reference, "ram:FormattedIssueDateTime", document.preceding[1], qualified=True
        )
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def invoice_ubl(session: Session, invoice: Invoice) -> bytes:
    """A stored invoice or credit note as a UBL 2.1 EN 16931 document."""
    return to_ubl(e_invoice(session, invoice))


def invoice_cii(session: Session, invoice: Invoice) -> bytes:
    """A stored invoice or credit note as a CII EN 16931 document."""
    return to_cii(e_invoice(session, invoice))


def factur_x(pdf: bytes, cii: bytes, *, language: str) -> bytes:
    """A PDF/A-3 with the CII XML embedded as factur-x.xml: a Factur-X EN 16931 invoice."""
    from facturx import generate_from_binary

    result: bytes = generate_from_binary(
        pdf, cii, flavor="factur-x", level="en16931", check_xsd=True, lang=language
    )
    return result


def ubl_filename(invoice: Invoice) -> str:
    """The download name of an invoice's UBL document."""
    return f"{invoice.kind}-{invoice.number}.xml"


def ubl_key(invoice: Invoice) -> str:
    """Where an invoice's UBL document is kept once an e-mail attaches it."""
    return f"invoices/{invoice.kind}-{invoice.number}.xml"


def ensure_invoice_ubl(session: Session, invoice: Invoice, storage: Storage) -> bytes:
    """The stored UBL document of an invoice, written from the frozen copy the first time."""
    key = ubl_key(invoice)
    if storage.exists(key):
        return storage.get(key)
    document = invoice_ubl(session, invoice)
    storage.put(key, document)
    return document


def ubl_attachments(invoice: Invoice | None) -> list[Attachment]:
    """The UBL e-invoice to attach to an invoice's e-mail, when its buyer asked for it."""
    if invoice is None or not invoice.buyer.get("wants_e_invoice"):
        return []
    return [
        Attachment(
            ubl_filename(invoice),
            ubl_key(invoice),
            content_type="application/xml",
            invoice_number=invoice.number,
        )
    ]
