"""Spanish invoice records (VERI*FACTU): one chained, fingerprinted record per issued document.

Real Decreto 1007/2023 and Orden HAC/1177/2024: at the moment an invoice, a corrective
invoice or an annulment is issued, the software writes a record with the fields of the AEAT's
schema, chained to the issuer's previous record by a SHA-256 fingerprint (*huella*), and never
changes it (the database refuses). The records are sent to the AEAT after the commit
(`verifactu_sender`).
"""

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pycountry
import segno
from lxml import etree
from sqlalchemy import text
from sqlmodel import Session, col, select

from app.config import Settings
from app.models import Invoice, InvoiceKind, TaxRecord, TaxRecordSubmission
from app.services.errors import DomainError
from app.services.registry.countries import parse_country

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "data" / "verifactu"
_BASE = "https://www2.agenciatributaria.gob.es/static_files/common/internet/dep/aplicaciones/es/aeat/tike/cont/ws/"
NS_LR = _BASE + "SuministroLR.xsd"
NS_SF = _BASE + "SuministroInformacion.xsd"
NAMESPACES = {"sum": NS_LR, "sum1": NS_SF}
# The time of the record is Spain's (peninsular) time with its offset, as the AEAT's examples.
SPANISH_TIME = ZoneInfo("Europe/Madrid")
ALTA = "alta"
ANULACION = "anulacion"
INVOICE = "F1"  # a complete invoice (art. 6 RD 1619/2012)
CORRECTIVE = "R1"  # corrective invoice, art. 80 Uno, Dos and Seis LIVA (refund on cancellation)
BY_DIFFERENCES = "I"
# The words the law puts beside the QR code, in Spanish whatever the invoice's language
# (Orden HAC/1177/2024, art. 20 and 21; the AEAT's description of the QR code).
QR_HEADING = "QR tributario:"
QR_LEGEND = "VERI*FACTU"
QR_VERIFIABLE = "Factura verificable en la sede electrónica de la AEAT"
SOFTWARE_NAME = "diplomat"
SOFTWARE_ID = "DP"
SOFTWARE_VERSION = "0.1.0"
# EU member states whose VAT numbers a foreign buyer's tax id is taken as (IDType 02).
EU_VAT_PREFIXES = {
    "AT": "AT", "BE": "BE", "BG": "BG", "CY": "CY", "CZ": "CZ", "DE": "DE", "DK": "DK",
    "EE": "EE", "GR": "EL", "FI": "FI", "FR": "FR", "HR": "HR", "HU": "HU", "IE": "IE",
    "IT": "IT", "LT": "LT", "LU": "LU", "LV": "LV", "MT": "MT", "NL": "NL", "PL": "PL",
    "PT": "PT", "RO": "RO", "SE": "SE", "SI": "SI", "SK": "SK",
}  # fmt: skip


class NotVoidable(DomainError):
    """An invoice that cannot be voided (it was paid, credited or voided already)."""


@dataclass(frozen=True)
class TaxRecordSettings:
    """What every record of this office carries, from settings (None: records are off)."""

    issuer_tax_id: str
    issuer_name: str
    installation_number: str
    qr_base_url: str
    sending: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> "TaxRecordSettings | None":
        """The office's record settings, or None for an office outside VERI*FACTU."""
        if not settings.verifactu_enabled:
            return None
        return cls(
            issuer_tax_id=settings.verifactu_issuer_nif,
            issuer_name=settings.organisation_name[:120],
            installation_number=settings.verifactu_installation_number,
            qr_base_url=settings.verifactu_qr_url,
            sending=settings.verifactu_sending,
        )

    def system(self) -> dict[str, str]:
        """SistemaInformatico: the software that makes the records (the office runs its own)."""
        return {
            "producer_name": self.issuer_name,
            "producer_tax_id": self.issuer_tax_id,
            "name": SOFTWARE_NAME,
            "id": SOFTWARE_ID,
            "version": SOFTWARE_VERSION,
            "installation_number": self.installation_number,
            # No signed records nor event log: the software works in VERI*FACTU mode only.
            "only_verifactu": "S",
            "multiple_taxpayers_possible": "N",
            "multiple_taxpayers": "N",
        }


# --- the fingerprint (huella) -------------------------------------------------------------


def aeat_date(day: date) -> str:
    """A date as the AEAT writes it: dd-mm-yyyy."""
    return day.strftime("%d-%m-%Y")


def aeat_amount(amount: Decimal) -> str:
    """An amount as sent and fingerprinted: two decimals, a point, a minus when negative."""
    value = amount.quantize(Decimal("0.01"))
    return "0.00" if value == 0 else f"{value:.2f}"


def alta_fingerprint(
    *,
    issuer_tax_id: str,
    number: str,
    issue_date: str,
    invoice_type: str,
    tax_total: str,
    total: str,
    previous_hash: str,
    generated_at: str,
) -> str:
    """The AEAT's SHA-256 fingerprint of a *registro de alta*, upper-case hex."""
    return _sha256(
        ("IDEmisorFactura", issuer_tax_id),
        ("NumSerieFactura", number),
        ("FechaExpedicionFactura", issue_date),
        ("TipoFactura", invoice_type),
        ("CuotaTotal", tax_total),
        ("ImporteTotal", total),
        ("Huella", previous_hash),
        ("FechaHoraHusoGenRegistro", generated_at),
    )


def anulacion_fingerprint(
    *, issuer_tax_id: str, number: str, issue_date: str, previous_hash: str, generated_at: str
) -> str:
    """The AEAT's SHA-256 fingerprint of a *registro de anulación*, upper-case hex."""
    return _sha256(
        ("IDEmisorFacturaAnulada", issuer_tax_id),
        ("NumSerieFacturaAnulada", number),
        ("FechaExpedicionFacturaAnulada", issue_date),
        ("Huella", previous_hash),
        ("FechaHoraHusoGenRegistro", generated_at),
    )


def _sha256(*fields: tuple[str, str]) -> str:
    # The AEAT trims each value; the text is name=value pairs joined by '&', in UTF-8.
    joined = "&".join(f"{name}={value.strip()}" for name, value in fields)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest().upper()


def record_fingerprint(record: TaxRecord) -> str:
    """The fingerprint a stored record must have, recomputed from its fields."""
    if record.record_type == ANULACION:
        return anulacion_fingerprint(
            issuer_tax_id=record.issuer_tax_id,
            number=record.invoice_number,
            issue_date=aeat_date(record.issue_date),
            previous_hash=record.previous_hash,
            generated_at=record.generated_at,
        )
    assert record.tax_total is not None and record.total is not None
    return alta_fingerprint(
        issuer_tax_id=record.issuer_tax_id,
        number=record.invoice_number,
        issue_date=aeat_date(record.issue_date),
        invoice_type=record.invoice_type,
        tax_total=aeat_amount(record.tax_total),
        total=aeat_amount(record.total),
        previous_hash=record.previous_hash,
        generated_at=record.generated_at,
    )


# --- writing records in the issuing transaction --------------------------------------------


def _lock_chain(session: Session, issuer_tax_id: str) -> None:
    """Hold the issuer's chain head until the commit, so two records never share a predecessor.

    PostgreSQL: a transaction-scoped advisory lock on the issuer. SQLite: the writer already
    holds the database's write lock (BEGIN IMMEDIATE); should it not, the unique sequence
    refuses the second of two records after the same head.
    """
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(f"tax_record:{issuer_tax_id}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def chain_head(session: Session, issuer_tax_id: str) -> TaxRecord | None:
    """The issuer's latest record."""
    return session.exec(
        select(TaxRecord)
        .where(TaxRecord.issuer_tax_id == issuer_tax_id)
        .order_by(col(TaxRecord.sequence).desc())
        .limit(1)
    ).first()


def _append(
    session: Session, record: TaxRecord, config: TaxRecordSettings, now: datetime
) -> TaxRecord:
    """Chain a new record to the issuer's head, fingerprint it, and queue it for sending."""
    _lock_chain(session, config.issuer_tax_id)
    head = chain_head(session, config.issuer_tax_id)
    generated = now.astimezone(SPANISH_TIME).replace(microsecond=0)
    if head is not None:
        # Under contention the later record may carry an earlier clock reading; the chain's
        # times never go back.
        generated = max(generated, datetime.fromisoformat(head.generated_at)).astimezone(
            SPANISH_TIME
        )
        record.sequence = head.sequence + 1
        record.previous_id = head.id
        record.previous_number = head.invoice_number
        record.previous_issue_date = head.issue_date
        record.previous_hash = head.hash
    else:
        record.sequence = 1
    record.generated_at = generated.isoformat(timespec="seconds")
    record.issuer_tax_id = config.issuer_tax_id
    record.system = config.system()
    record.hash = record_fingerprint(record)
    session.add(record)
    session.flush()
    session.add(
        TaxRecordSubmission(
            record_id=record.id or 0, issuer_tax_id=record.issuer_tax_id, next_attempt_at=now
        )
    )
    return record


def _alpha_2(buyer: dict[str, Any]) -> str:
    code = str(buyer.get("country_code") or "").strip().upper()
    if len(code) == 2:
        return code
    try:
        iso3 = parse_country(code or str(buyer.get("country") or ""))
    except DomainError:
        return ""
    found = pycountry.countries.get(alpha_3=iso3)
    return str(found.alpha_2) if found is not None else ""


def recipients(buyer: dict[str, Any]) -> list[dict[str, str]]:
    """IDDestinatario of an invoice's buyer: a Spanish NIF, another country's id, or none."""
    tax_id = "".join(ch for ch in str(buyer.get("tax_id") or "") if ch.isalnum()).upper()
    if not tax_id:
        return []
    name = str(buyer.get("organisation") or buyer.get("name") or "").strip()[:120]
    country = _alpha_2(buyer)
    if country == "ES" or (not country and len(tax_id) == 11 and tax_id.startswith("ES")):
        nif = tax_id[2:] if len(tax_id) == 11 and tax_id.startswith("ES") else tax_id
        if len(nif) == 9:
            return [{"name": name, "nif": nif}]
    prefix = EU_VAT_PREFIXES.get(country)
    if prefix and not tax_id.startswith(prefix):
        tax_id = prefix + tax_id
    return [
        {
            "name": name,
            "country": country or "ES",
            # 02: an EU VAT number; 04: an official document of the buyer's country.
            "id_type": "02" if prefix else "04",
            "id": tax_id[:20],
        }
    ]


def breakdown(invoice: Invoice) -> list[dict[str, str]]:
    """DetalleDesglose: VAT, general regime, taxed at the invoice's rate or exempt at 0 %."""
    detail = {"tax": "01", "regime": "01", "base": aeat_amount(invoice.net_total)}
    if invoice.tax_rate > 0:
        detail.update(
            qualification="S1",
            rate=aeat_amount(invoice.tax_rate),
            tax_amount=aeat_amount(invoice.tax_total),
        )
    else:
        # Training by a non-profit body: exempt under art. 20.1.9 LIVA (docs/decisions.md).
        detail["exempt"] = "E1"
    return [detail]


def record_issue(
    session: Session,
    *,
    invoice: Invoice,
    refers_to: Invoice | None,
    config: TaxRecordSettings,
    now: datetime,
) -> TaxRecord:
    """The *registro de alta* of an invoice or credit note, in the transaction that issues it."""
    corrective = invoice.kind == InvoiceKind.credit_note.value
    if corrective and refers_to is None:
        raise DomainError(f"Credit note {invoice.number} names no invoice it corrects.")
    found = recipients(invoice.buyer)
    record = TaxRecord(
        invoice_id=invoice.id or 0,
        issuer_tax_id=config.issuer_tax_id,
        sequence=0,
        record_type=ALTA,
        issuer_name=config.issuer_name,
        invoice_number=invoice.number,
        issue_date=invoice.issue_date,
        invoice_type=CORRECTIVE if corrective else INVOICE,
        corrective_type=BY_DIFFERENCES if corrective else "",
        corrected=[
            {
                "issuer_tax_id": config.issuer_tax_id,
                "number": refers_to.number,
                "issue_date": aeat_date(refers_to.issue_date),
            }
        ]
        if corrective and refers_to is not None
        else [],
        description=(invoice.subject or invoice.purpose or "Invoice")[:500],
        recipients=found,
        without_recipient=not found,
        breakdown=breakdown(invoice),
        tax_total=invoice.tax_total,
        total=invoice.total,
        generated_at="",
        hash="",
    )
    record.qr_url = qr_url(record, base_url=config.qr_base_url)
    return _append(session, record, config, now)


def record_annulment(
    session: Session, *, invoice: Invoice, config: TaxRecordSettings, now: datetime
) -> TaxRecord:
    """The *registro de anulación* of a voided invoice, in the transaction that voids it."""
    record = TaxRecord(
        invoice_id=invoice.id or 0,
        issuer_tax_id=config.issuer_tax_id,
        sequence=0,
        record_type=ANULACION,
        issuer_name=config.issuer_name,
        invoice_number=invoice.number,
        issue_date=invoice.issue_date,
        generated_at="",
        hash="",
    )
    return _append(session, record, config, now)


@dataclass(frozen=True)
class ChainCheck:
    """The result of checking an issuer's chain: how many records, and what is wrong."""

    records: int
    problems: list[str]


def check_chain(session: Session, issuer_tax_id: str) -> ChainCheck:
    """Recompute every fingerprint of the issuer's chain and follow every link, oldest first."""
    problems: list[str] = []
    previous: TaxRecord | None = None
    count = 0
    for record in session.exec(
        select(TaxRecord)
        .where(TaxRecord.issuer_tax_id == issuer_tax_id)
        .order_by(col(TaxRecord.sequence))
    ):
        count += 1
        name = f"{record.record_type} record {record.sequence} ({record.invoice_number})"
        if record.sequence != count:
            problems.append(f"{name}: expected position {count} in the chain.")
        if record.hash != record_fingerprint(record):
            problems.append(f"{name}: its fingerprint does not match its fields.")
        expected = (
            (previous.id, previous.hash, previous.invoice_number, previous.issue_date)
            if previous is not None
            else (None, "", "", None)
        )
        found = (
            record.previous_id,
            record.previous_hash,
            record.previous_number,
            record.previous_issue_date,
        )
        if found != expected:
            problems.append(f"{name}: it does not point at the record before it.")
        previous = record
    return ChainCheck(records=count, problems=problems)


def records_of(session: Session, invoice: Invoice) -> list[TaxRecord]:
    """An invoice's records, oldest first (an alta, then an annulment if it was voided)."""
    return list(
        session.exec(
            select(TaxRecord)
            .where(TaxRecord.invoice_id == invoice.id)
            .order_by(col(TaxRecord.sequence))
        ).all()
    )


# --- the record XML -------------------------------------------------------------------------


def _sub(parent: etree._Element, name: str, value: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NS_SF}}}{name}")
    if value is not None:
        element.text = value
    return element


def _chain(parent: etree._Element, record: TaxRecord) -> None:
    chain = _sub(parent, "Encadenamiento")
    if record.previous_hash:
        previous = _sub(chain, "RegistroAnterior")
        _sub(previous, "IDEmisorFactura", record.issuer_tax_id)
        _sub(previous, "NumSerieFactura", record.previous_number)
        assert record.previous_issue_date is not None
        _sub(previous, "FechaExpedicionFactura", aeat_date(record.previous_issue_date))
        _sub(previous, "Huella", record.previous_hash)
    else:
        _sub(chain, "PrimerRegistro", "S")


def _system(parent: etree._Element, system: dict[str, Any]) -> None:
    element = _sub(parent, "SistemaInformatico")
    _sub(element, "NombreRazon", system["producer_name"])
    _sub(element, "NIF", system["producer_tax_id"])
    _sub(element, "NombreSistemaInformatico", system["name"])
    _sub(element, "IdSistemaInformatico", system["id"])
    _sub(element, "Version", system["version"])
    _sub(element, "NumeroInstalacion", system["installation_number"])
    _sub(element, "TipoUsoPosibleSoloVerifactu", system["only_verifactu"])
    _sub(element, "TipoUsoPosibleMultiOT", system["multiple_taxpayers_possible"])
    _sub(element, "IndicadorMultiplesOT", system["multiple_taxpayers"])


def _alta(parent: etree._Element, record: TaxRecord) -> None:
    alta = _sub(parent, "RegistroAlta")
    _sub(alta, "IDVersion", "1.0")
    ident = _sub(alta, "IDFactura")
    _sub(ident, "IDEmisorFactura", record.issuer_tax_id)
    _sub(ident, "NumSerieFactura", record.invoice_number)
    _sub(ident, "FechaExpedicionFactura", aeat_date(record.issue_date))
    _sub(alta, "NombreRazonEmisor", record.issuer_name)
    _sub(alta, "TipoFactura", record.invoice_type)
    if record.corrective_type:
        _sub(alta, "TipoRectificativa", record.corrective_type)
    if record.corrected:
        corrected = _sub(alta, "FacturasRectificadas")
        for invoice in record.corrected:
            entry = _sub(corrected, "IDFacturaRectificada")
            _sub(entry, "IDEmisorFactura", invoice["issuer_tax_id"])
            _sub(entry, "NumSerieFactura", invoice["number"])
            _sub(entry, "FechaExpedicionFactura", invoice["issue_date"])
    _sub(alta, "DescripcionOperacion", record.description)
    if record.without_recipient:
        _sub(alta, "FacturaSinIdentifDestinatarioArt61d", "S")
    if record.recipients:
        recipients_element = _sub(alta, "Destinatarios")
        for recipient in record.recipients:
            entry = _sub(recipients_element, "IDDestinatario")
            _sub(entry, "NombreRazon", recipient["name"])
            if "nif" in recipient:
                _sub(entry, "NIF", recipient["nif"])
            else:
                other = _sub(entry, "IDOtro")
                _sub(other, "CodigoPais", recipient["country"])
                _sub(other, "IDType", recipient["id_type"])
                _sub(other, "ID", recipient["id"])
    desglose = _sub(alta, "Desglose")
    for detail in record.breakdown:
        entry = _sub(desglose, "DetalleDesglose")
        _sub(entry, "Impuesto", detail["tax"])
        _sub(entry, "ClaveRegimen", detail["regime"])
        if "exempt" in detail:
            _sub(entry, "OperacionExenta", detail["exempt"])
        else:
            _sub(entry, "CalificacionOperacion", detail["qualification"])
            _sub(entry, "TipoImpositivo", detail["rate"])
        _sub(entry, "BaseImponibleOimporteNoSujeto", detail["base"])
        if "tax_amount" in detail:
            _sub(entry, "CuotaRepercutida", detail["tax_amount"])
    assert record.tax_total is not None and record.total is not None
    _sub(alta, "CuotaTotal", aeat_amount(record.tax_total))
    _sub(alta, "ImporteTotal", aeat_amount(record.total))
    _chain(alta, record)
    _system(alta, record.system)
    _sub(alta, "FechaHoraHusoGenRegistro", record.generated_at)
    _sub(alta, "TipoHuella", "01")
    _sub(alta, "Huella", record.hash)


def _anulacion(parent: etree._Element, record: TaxRecord) -> None:
    annulment = _sub(parent, "RegistroAnulacion")
    _sub(annulment, "IDVersion", "1.0")
    ident = _sub(annulment, "IDFactura")
    _sub(ident, "IDEmisorFacturaAnulada", record.issuer_tax_id)
    _sub(ident, "NumSerieFacturaAnulada", record.invoice_number)
    _sub(ident, "FechaExpedicionFacturaAnulada", aeat_date(record.issue_date))
    _chain(annulment, record)
    _system(annulment, record.system)
    _sub(annulment, "FechaHoraHusoGenRegistro", record.generated_at)
    _sub(annulment, "TipoHuella", "01")
    _sub(annulment, "Huella", record.hash)


def submission_xml(records: list[TaxRecord], *, issuer_name: str) -> etree._Element:
    """RegFactuSistemaFacturacion: one issuer's records (at most 1000) in one submission."""
    if not records or len(records) > 1000:
        raise ValueError("a submission holds 1 to 1000 records")
    root = etree.Element(f"{{{NS_LR}}}RegFactuSistemaFacturacion", nsmap=NAMESPACES)
    header = etree.SubElement(root, f"{{{NS_LR}}}Cabecera")
    obliged = _sub(header, "ObligadoEmision")
    _sub(obliged, "NombreRazon", issuer_name[:120])
    _sub(obliged, "NIF", records[0].issuer_tax_id)
    for record in records:
        entry = etree.SubElement(root, f"{{{NS_LR}}}RegistroFactura")
        (_anulacion if record.record_type == ANULACION else _alta)(entry, record)
    return root


def record_xml(record: TaxRecord) -> bytes:
    """One record as a submission document of its own (what the office downloads)."""
    document = submission_xml([record], issuer_name=record.issuer_name)
    return bytes(etree.tostring(document, xml_declaration=True, encoding="UTF-8"))


@lru_cache
def schema() -> etree.XMLSchema:
    """The AEAT's schema of a submission (SuministroLR.xsd, shipped in app/data/verifactu)."""
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "SuministroLR.xsd")))


# --- the tax QR code -------------------------------------------------------------------------


def qr_url(record: TaxRecord, *, base_url: str) -> str:
    """The AEAT's checking address for an invoice: nif, numserie, fecha and importe."""
    assert record.total is not None
    query = urlencode(
        {
            "nif": record.issuer_tax_id,
            "numserie": record.invoice_number,
            "fecha": aeat_date(record.issue_date),
            "importe": aeat_amount(record.total),
        }
    )
    return f"{base_url}?{query}"


def qr_data_uri(url: str) -> str:
    """The tax QR code (ISO/IEC 18004, error correction M) as an SVG data: URL."""
    code = segno.make(url, error="m", micro=False, boost_error=False)
    uri: str = code.svg_data_uri(border=0, dark="#000000")
    return uri


def qr_svg(url: str) -> str:
    """The tax QR code as inline SVG for the office's pages."""
    svg: str = segno.make(url, error="m", micro=False, boost_error=False).svg_inline(
        scale=3, border=2, title="QR tributario", svgclass="tax-qr"
    )
    return svg


def issue_record(records: list[TaxRecord]) -> TaxRecord | None:
    """The *registro de alta* among an invoice's records (what its QR code shows)."""
    return next((r for r in records if r.record_type == ALTA), None)


def submission_of(session: Session, record: TaxRecord) -> TaxRecordSubmission | None:
    """Where a record stands with the AEAT."""
    return session.exec(
        select(TaxRecordSubmission).where(TaxRecordSubmission.record_id == record.id)
    ).first()
