"""VERI*FACTU records: the AEAT's fingerprint, one record per issued document, chained, kept."""

import io
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
import zxingcpp
from lxml import etree
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from app.clock import utcnow
from app.config import Settings
from app.models import Invoice, StaffUser, TaxRecord, TaxRecordSubmission
from app.platform.storage import LocalStorage
from app.services.billing import invoice_files, verifactu
from app.services.billing import invoices as invoicing
from app.services.billing.voiding import void_invoice
from tests.factories import admit, open_edition, pay, submit
from tests.services.billing.verifactu_helpers import (
    ISSUER_NIF,
    SPANISH_SELLER,
    TAX_RECORDS,
    admitted,
    cancel,
)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


@pytest.fixture
def admin(session: Session) -> StaffUser:
    from app.services.office.staff import create_user

    return create_user(session, email="office@example.org", password="x" * 16, role="admin")


def _chain(session: Session) -> list[TaxRecord]:
    return list(
        session.exec(
            select(TaxRecord)
            .where(TaxRecord.issuer_tax_id == ISSUER_NIF)
            .order_by(col(TaxRecord.sequence))
        ).all()
    )


def _valid(records: list[TaxRecord]) -> etree._Element:
    document = verifactu.submission_xml(records, issuer_name="Metropolis")
    schema = verifactu.schema()
    assert schema.validate(document), schema.error_log
    return document


def test_the_fingerprint_reproduces_the_aeats_first_published_example() -> None:
    assert (
        verifactu.alta_fingerprint(
            issuer_tax_id="89890001K",
            number="12345678/G33",
            issue_date="01-01-2024",
            invoice_type="F1",
            tax_total="12.35",
            total="123.45",
            previous_hash="",
            generated_at="2024-01-01T19:20:30+01:00",
        )
        == "3C464DAF61ACB827C65FDA19F352A4E3BDC2C640E9E9FC4CC058073F38F12F60"
    )


def test_the_fingerprint_reproduces_the_aeats_chained_example() -> None:
    assert (
        verifactu.alta_fingerprint(
            issuer_tax_id="89890001K",
            number="12345679/G34",
            issue_date="01-01-2024",
            invoice_type="F1",
            tax_total="12.35",
            total="123.45",
            previous_hash="3C464DAF61ACB827C65FDA19F352A4E3BDC2C640E9E9FC4CC058073F38F12F60",
            generated_at="2024-01-01T19:20:35+01:00",
        )
        == "F7B94CFD8924EDFF273501B01EE5153E4CE8F259766F88CF6ACB8935802A2B97"
    )


def test_issuing_an_invoice_writes_its_first_record_in_the_same_transaction(
    session: Session, storage: LocalStorage, admin: StaffUser
) -> None:
    edition = open_edition(session)
    _, invoice = admitted(session, storage, admin, edition)
    [record] = _chain(session)
    assert record.invoice_id == invoice.id
    assert (record.record_type, record.invoice_type, record.sequence) == ("alta", "F1", 1)
    assert record.invoice_number == invoice.number
    assert record.total == invoice.total and record.tax_total == invoice.tax_total
    assert record.previous_hash == "" and record.previous_id is None
    assert record.hash == verifactu.record_fingerprint(record)
    assert record.generated_at.endswith(("+01:00", "+02:00"))
    # A private participant without a tax id: a complete invoice without the buyer's id.
    assert record.without_recipient and record.recipients == []
    assert record.breakdown == [{"tax": "01", "regime": "01", "base": "1500.00", "exempt": "E1"}]
    submission = session.exec(
        select(TaxRecordSubmission).where(TaxRecordSubmission.record_id == record.id)
    ).one()
    assert submission.status == "pending"
    document = _valid([record])
    assert document.findtext(".//{*}PrimerRegistro") == "S"
    assert document.findtext(".//{*}FacturaSinIdentifDestinatarioArt61d") == "S"


def test_each_record_points_at_the_previous_one_by_its_fingerprint(
    session: Session, storage: LocalStorage, admin: StaffUser
) -> None:
    edition = open_edition(session)
    for n in range(3):
        admitted(session, storage, admin, edition, email=f"p{n}@example.org")
    first, second, third = _chain(session)
    assert (second.previous_id, third.previous_id) == (first.id, second.id)
    assert second.previous_hash == first.hash and third.previous_hash == second.hash
    assert second.previous_number == first.invoice_number
    assert second.previous_issue_date == first.issue_date
    assert [r.hash == verifactu.record_fingerprint(r) for r in (first, second, third)] == [True] * 3
    document = _valid([first, second, third])
    assert document.findall(".//{*}RegistroAnterior/{*}Huella")[1].text == second.hash


def test_a_taxed_invoice_to_a_spanish_company_names_its_nif_and_the_vat(
    session: Session, storage: LocalStorage, admin: StaffUser
) -> None:
    edition = open_edition(session)
    edition.tax_rate = Decimal("21.00")
    session.add(edition)
    session.commit()
    application = submit(session, storage, edition)
    invoice = invoicing.issue_document(
        session,
        edition=edition,
        buyer={
            "name": "Ajuntament",
            "organisation": "Ajuntament de Sabadell",
            "country": "Spain",
            "tax_id": "ES P0818700I",
        },
        lines=[(application, "Registration fee", Decimal("1000.00"), [])],
        seller=SPANISH_SELLER,
        actor="test",
        now=utcnow(),
        storage=storage,
    )
    [record] = _chain(session)
    assert record.recipients == [{"name": "Ajuntament de Sabadell", "nif": "P0818700I"}]
    assert record.breakdown == [
        {"tax": "01", "regime": "01", "base": "1000.00", "qualification": "S1",
         "rate": "21.00", "tax_amount": "210.00"}
    ]  # fmt: skip
    assert (record.tax_total, record.total) == (invoice.tax_total, Decimal("1210.00"))
    document = _valid([record])
    assert document.findtext(".//{*}IDDestinatario/{*}NIF") == "P0818700I"


def test_a_foreign_buyer_is_named_by_country_and_vat_number() -> None:
    assert verifactu.recipients(
        {"organisation": "Stadt Köln", "country": "Germany", "tax_id": "DE 123456789"}
    ) == [{"name": "Stadt Köln", "country": "DE", "id_type": "02", "id": "DE123456789"}]
    assert verifactu.recipients(
        {"name": "City of Quito", "country": "Ecuador", "tax_id": "1760003410001"}
    ) == [{"name": "City of Quito", "country": "EC", "id_type": "04", "id": "1760003410001"}]


def test_a_cancellation_records_its_credit_note_as_corrective_and_its_fee_as_an_invoice(
    session: Session, storage: LocalStorage, admin: StaffUser
) -> None:
    edition = open_edition(session)
    application, invoice = admitted(session, storage, admin, edition)
    pay(session, invoice.number, str(invoice.total))
    outcome = cancel(session, storage, application)
    assert outcome.credit_note is not None and outcome.fee_invoice is not None
    original, credit, fee = _chain(session)
    assert credit.invoice_id == outcome.credit_note.id
    assert (credit.invoice_type, credit.corrective_type) == ("R1", "I")
    assert credit.corrected == [
        {
            "issuer_tax_id": ISSUER_NIF,
            "number": invoice.number,
            "issue_date": verifactu.aeat_date(invoice.issue_date),
        }
    ]
    assert credit.total == -invoice.total
    assert fee.invoice_id == outcome.fee_invoice.id
    assert (fee.invoice_type, fee.corrective_type, fee.corrected) == ("F1", "", [])
    assert fee.total == outcome.fee_invoice.total
    assert (credit.previous_hash, fee.previous_hash) == (original.hash, credit.hash)
    document = _valid([original, credit, fee])
    assert document.findtext(".//{*}FacturasRectificadas//{*}NumSerieFactura") == invoice.number
    assert document.findtext(".//{*}TipoRectificativa") == "I"


def test_voiding_an_unpaid_invoice_writes_an_annulment_record(
    session: Session, storage: LocalStorage, admin: StaffUser
) -> None:
    edition = open_edition(session)
    _, invoice = admitted(session, storage, admin, edition)
    void_invoice(
        session, invoice=invoice, reason="Issued twice", actor="admin", tax_records=TAX_RECORDS
    )
    alta, annulment = _chain(session)
    assert invoice.status == "voided"
    assert annulment.record_type == "anulacion" and annulment.invoice_id == invoice.id
    assert annulment.previous_hash == alta.hash
    assert annulment.hash == verifactu.anulacion_fingerprint(
        issuer_tax_id=ISSUER_NIF,
        number=invoice.number,
        issue_date=verifactu.aeat_date(invoice.issue_date),
        previous_hash=alta.hash,
        generated_at=annulment.generated_at,
    )
    document = _valid([alta, annulment])
    assert document.findtext(".//{*}NumSerieFacturaAnulada") == invoice.number


def test_a_paid_invoice_is_corrected_not_voided(
    session: Session, storage: LocalStorage, admin: StaffUser
) -> None:
    edition = open_edition(session)
    _, invoice = admitted(session, storage, admin, edition)
    pay(session, invoice.number, "100.00")
    with pytest.raises(verifactu.NotVoidable, match="credit note"):
        void_invoice(
            session, invoice=invoice, reason="Wrong", actor="admin", tax_records=TAX_RECORDS
        )
    assert len(_chain(session)) == 1


def test_the_database_refuses_to_change_or_delete_a_record(
    session: Session, storage: LocalStorage, admin: StaffUser
) -> None:
    edition = open_edition(session)
    admitted(session, storage, admin, edition)
    [record] = _chain(session)
    for statement in (
        "UPDATE tax_record SET total = 0 WHERE id = :id",
        "UPDATE tax_record SET hash = 'X' WHERE id = :id",
        "DELETE FROM tax_record WHERE id = :id",
    ):
        savepoint = session.begin_nested()
        with pytest.raises(DBAPIError, match="never changed or deleted"):
            session.execute(text(statement), {"id": record.id})
        savepoint.rollback()
    session.expire_all()
    [kept] = _chain(session)
    assert (kept.hash, kept.total) == (record.hash, record.total)


def test_an_office_outside_spain_records_nothing(
    session: Session, storage: LocalStorage, admin: StaffUser
) -> None:
    edition = open_edition(session)
    admit(session, storage, admin, submit(session, storage, edition))
    assert session.exec(select(Invoice).where(Invoice.edition_id == edition.id)).first()
    assert session.exec(select(TaxRecord)).first() is None


def test_the_qr_code_points_at_the_aeat_with_the_four_parameters() -> None:
    record = TaxRecord(
        invoice_id=1,
        issuer_tax_id="89890001K",
        sequence=1,
        record_type="alta",
        issuer_name="X",
        invoice_number="CN2026-0001",
        issue_date=verifactu.date(2026, 1, 2),
        invoice_type="R1",
        tax_total=Decimal("0.00"),
        total=Decimal("-1500.00"),
        generated_at="2026-01-02T10:00:00+01:00",
        hash="H",
    )
    assert verifactu.qr_url(record, base_url=TAX_RECORDS.qr_base_url) == (
        "https://prewww2.aeat.es/wlpl/TIKE-CONT/ValidarQR"
        "?nif=89890001K&numserie=CN2026-0001&fecha=02-01-2026&importe=-1500.00"
    )


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is missing")
def test_the_invoice_and_its_credit_note_print_the_tax_qr_code_and_legend(
    session: Session, storage: LocalStorage, admin: StaffUser, tmp_path: Path
) -> None:
    edition = open_edition(session)
    application, invoice = admitted(session, storage, admin, edition)
    outcome = cancel(session, storage, application)
    assert outcome.credit_note is not None
    for document in (invoice, outcome.credit_note):
        pdf = invoice_files.render_invoice_pdf(session, document)
        (tmp_path / "i.pdf").write_bytes(pdf)
        subprocess.run(
            [
                "pdftoppm",
                "-png",
                "-r",
                "150",
                "-f",
                "1",
                "-singlefile",
                str(tmp_path / "i.pdf"),
                str(tmp_path / "i"),
            ],
            check=True,
        )
        # The tax QR code; an invoice also carries the bank transfer's EPC code ("BCD ...").
        found = [
            r.text
            for r in zxingcpp.read_barcodes(Image.open(tmp_path / "i.png"))
            if r.text.startswith("https://")
        ]
        record = verifactu.issue_record(verifactu.records_of(session, document))
        assert record is not None
        assert found == [
            "https://prewww2.aeat.es/wlpl/TIKE-CONT/ValidarQR?nif=G08012346"
            f"&numserie={document.number}&fecha={verifactu.aeat_date(document.issue_date)}"
            f"&importe={document.total:.2f}"
        ]
        text = " ".join(
            " ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages
        )
        assert "VERI*FACTU" in text
        assert "Factura verificable en la sede electrónica de la AEAT" in text


def test_an_office_outside_spain_prints_no_tax_qr_code(
    session: Session, storage: LocalStorage, admin: StaffUser
) -> None:
    edition = open_edition(session)
    application = admit(session, storage, admin, submit(session, storage, edition))
    invoice = session.exec(select(Invoice).where(Invoice.edition_id == edition.id)).one()
    assert application.id is not None
    assert invoicing.invoice_document(session, invoice)["tax_qr"] is None
    pdf = invoice_files.render_invoice_pdf(session, invoice)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "VERI*FACTU" not in text


def test_a_spanish_office_needs_its_nif_and_in_production_its_certificate(tmp_path: Path) -> None:
    spanish = {"verifactu_enabled": True, "environment": "test"}
    settings = Settings(**spanish, organisation_tax_id="ES G08012346")
    assert settings.verifactu_issuer_nif == "G08012346"
    assert settings.verifactu_qr_url == "https://prewww2.aeat.es/wlpl/TIKE-CONT/ValidarQR"
    assert settings.verifactu_service_url.startswith("https://prewww1.aeat.es/")
    with pytest.raises(ValueError, match="DIPLOMAT_ORGANISATION_TAX_ID"):
        Settings(**spanish, organisation_tax_id="ES G0801")
    production = {
        "verifactu_enabled": True,
        "environment": "production",
        "secret_key": "s" * 40,
        "bank_iban": "DE89 3704 0044 0532 0130 00",
        "organisation_tax_id": "ESG08012346",
        "open_badges_private_key": Settings().open_badges_private_key,
        "open_badges_rsa_private_key": Settings().open_badges_rsa_private_key,
        "certificate_signatories": [{"name": "Real Person", "title": "Director"}],
        "verifactu_environment": "production",
    }
    with pytest.raises(ValueError, match="DIPLOMAT_VERIFACTU_CERTIFICATE_FILE"):
        Settings(**production)
    certificate = tmp_path / "office.pem"
    certificate.write_text("-----BEGIN CERTIFICATE-----")
    real = Settings(**production, verifactu_certificate_file=certificate)
    assert real.verifactu_qr_url == (
        "https://www2.agenciatributaria.gob.es/wlpl/TIKE-CONT/ValidarQR"
    )
    assert Settings(**{**production, "verifactu_sending": False}).verifactu_enabled


def test_records_are_off_unless_the_office_switches_them_on() -> None:
    assert Settings(environment="test").verifactu_enabled is False
    assert verifactu.TaxRecordSettings.from_settings(Settings(environment="test")) is None


def test_the_chain_check_finds_a_record_whose_fields_or_link_were_altered(
    session: Session, storage: LocalStorage, admin: StaffUser
) -> None:
    edition = open_edition(session)
    for n in range(3):
        admitted(session, storage, admin, edition, email=f"p{n}@example.org")
    assert verifactu.check_chain(session, ISSUER_NIF) == verifactu.ChainCheck(3, [])
    first, second, _ = _chain(session)
    # Altered in memory only (the database refuses any change): as if someone had.
    with session.no_autoflush:
        first.total = Decimal("1.00")
        second.previous_hash = "0" * 64
        problems = verifactu.check_chain(session, ISSUER_NIF).problems
    session.expunge_all()
    assert problems == [
        f"alta record 1 ({first.invoice_number}): its fingerprint does not match its fields.",
        f"alta record 2 ({second.invoice_number}): its fingerprint does not match its fields.",
        f"alta record 2 ({second.invoice_number}): it does not point at the record before it.",
    ]


def test_an_issue_rolled_back_leaves_no_record_behind(
    session: Session, storage: LocalStorage, admin: StaffUser
) -> None:
    edition = open_edition(session)
    application = submit(session, storage, edition)
    attempt = session.begin_nested()
    invoice = invoicing.issue_invoice(
        session, application=application, seller=SPANISH_SELLER, actor="t", storage=storage
    )
    assert [r.invoice_number for r in _chain(session)] == [invoice.number]
    attempt.rollback()
    assert _chain(session) == []
    assert session.exec(select(TaxRecordSubmission)).first() is None
