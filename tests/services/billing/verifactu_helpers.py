"""Builders for the VERI*FACTU tests: a Spanish seller, admitted participants, cancellations."""

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from app.models import Application, Edition, Invoice, InvoiceLine, StaffUser
from app.platform.storage import LocalStorage
from app.services.billing.invoices import Seller
from app.services.billing.verifactu import TaxRecordSettings
from app.services.registrations import cancellation_intake as cancellations
from app.services.registrations.cancellation_intake import CancellationOffice
from tests.factories import admit, submit
from tests.services.billing.test_invoicing import BASE, SECRET, SELLER
from tests.services.registrations.test_cancellations import BEFORE, OFFICE, written

ISSUER_NIF = "G08012346"
TAX_RECORDS = TaxRecordSettings(
    issuer_tax_id=ISSUER_NIF,
    issuer_name="Metropolis",
    installation_number="1",
    qr_base_url="https://prewww2.aeat.es/wlpl/TIKE-CONT/ValidarQR",
    sending=True,
)
SPANISH_SELLER: Seller = replace(SELLER, tax_id=f"ES{ISSUER_NIF}", tax_records=TAX_RECORDS)


def admitted(
    session: Session,
    storage: LocalStorage,
    admin: StaffUser,
    edition: Edition,
    **overrides: Any,
) -> tuple[Application, Invoice]:
    """An admitted participant and the invoice their admission issued (Spanish seller)."""
    application = submit(session, storage, edition, **overrides)
    from app.services.registrations import applications as service

    application = service.decide(
        session,
        application_id=application.id or 0,
        decision="admit",
        actor=admin,
        storage=storage,
        secret_key=SECRET,
        base_url=BASE,
        seller=SPANISH_SELLER,
    )
    invoice = session.exec(
        select(Invoice)
        .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)  # type: ignore[arg-type]
        .where(InvoiceLine.application_id == application.id)
    ).one()
    return application, invoice


def cancel(
    session: Session,
    storage: LocalStorage,
    application: Application,
    received_at: datetime = BEFORE,
) -> cancellations.CancellationOutcome:
    """A written cancellation in time, carried out with the Spanish seller."""
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return cancellations.cancel_registration(
        session,
        application_id=application.id or 0,
        request=written(edition, application, received_at),
        office=CancellationOffice(
            storage=storage,
            seller=SPANISH_SELLER,
            secret_key=SECRET,
            base_url=BASE,
            office_email=OFFICE,
            offer_days=5,
        ),
        actor="admin@example.org",
        now=received_at,
    )


__all__ = ["ISSUER_NIF", "SPANISH_SELLER", "TAX_RECORDS", "admit", "admitted", "cancel"]
