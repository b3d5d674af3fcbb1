"""The applicant's portal as one set of values: what each panel holds at each stage."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session

from app.config import Settings
from app.models import Application, StaffUser
from app.platform.storage import LocalStorage
from app.services.certificates.issuing import CertificateOptions
from app.services.registrations.portal import PortalView, portal_view
from tests.factories import open_edition, pay, submit
from tests.services.registrations.test_cancellations import admitted_with_invoice, cancel

NOW = datetime(2099, 9, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def view_of(session: Session, application: Application, settings: Settings) -> PortalView:
    session.refresh(application)
    return portal_view(
        session,
        application=application,
        now=NOW,
        certificate_options=CertificateOptions.from_settings(settings),
        card_payments=False,
    )


def test_a_submitted_applicant_may_withdraw_and_sees_no_programme_or_invoice(
    session: Session, storage: LocalStorage, settings: Settings
) -> None:
    application = submit(session, storage, open_edition(session))
    view = view_of(session, application, settings)
    assert view.can_withdraw
    assert view.invoices == ()
    assert not view.attendance.show and not view.final_work.show
    assert not view.logistics.show
    assert not view.cancellation.can_cancel
    assert view.certificate.certificate is None


def test_an_admitted_participant_sees_the_invoice_open_and_can_cancel_and_give_logistics(
    session: Session, storage: LocalStorage, settings: Settings, admin_user: StaffUser
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    view = view_of(session, application, settings)
    assert not view.can_withdraw
    assert [(line.invoice.number, line.open_amount) for line in view.invoices] == [
        (invoice.number, Decimal("1500.00"))
    ]
    assert view.balance.due == Decimal("1500.00")
    assert view.cancellation.can_cancel
    assert view.logistics.show and view.logistics.travel_window is not None
    # Admitted, not yet confirmed: the programme is shown, attendance and check-in are not.
    assert view.attendance.show and not view.attendance.participant
    assert not view.remembers_check_in
    assert view.final_work.show and view.final_work.can_upload


def test_a_cancelled_participant_sees_the_refund_owed_and_that_bank_details_are_needed(
    session: Session, storage: LocalStorage, settings: Settings, admin_user: StaffUser
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    pay(session, invoice.number, "1500.00")
    cancel(session, storage, application)
    view = view_of(session, application, settings)
    panel = view.cancellation
    assert panel.cancellation is not None and panel.cancelled_on is not None
    assert not panel.can_cancel
    assert [(r.refund.amount, r.needs_details) for r in panel.refunds] == [
        (Decimal("1125.00"), True)
    ]
    assert not view.attendance.show and not view.logistics.show
