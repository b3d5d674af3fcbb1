"""Whoever paid is whoever gets money back: a group's organisation, or the person."""

from decimal import Decimal
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.config import iban_in_sepa, iban_is_valid
from app.models import Application, Invoice, Refund, StaffUser
from app.platform.storage import LocalStorage
from app.services.billing import invoices as invoicing
from app.services.billing import refunds as refund_service
from app.services.errors import Conflict, InvalidInput
from app.services.registrations import applications as applications_service
from tests.factories import admit, make_organisation, open_edition, pay, submit
from tests.routers.billing.test_stripe import portal_of
from tests.services.billing.test_invoicing import BASE, SECRET, SELLER
from tests.services.registrations.test_cancellations import cancel


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def group_of_three(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> tuple[list[Application], Invoice]:
    edition = open_edition(session)
    org = make_organisation(session, name="Ciudad de México", country="MEX")
    group, _ = applications_service.create_group(
        session,
        edition_slug=edition.slug,
        organisation_id=org.id or 0,
        contact_email="lead@ciudad.example",
        secret_key=SECRET,
        base_url=BASE,
    )
    members = [
        admit(
            session,
            storage,
            admin_user,
            submit(session, storage, edition, email=f"m{i}@ciudad.example", group_code=group.code),
        )
        for i in range(3)
    ]
    invoice = invoicing.issue_group_invoice(
        session, edition=edition, code=group.code, seller=SELLER, actor="t", storage=storage
    )
    session.commit()
    return members, invoice


def test_a_group_members_refund_goes_to_the_organisation_that_paid(
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
) -> None:
    members, invoice = group_of_three(session, storage, admin_user)
    pay(session, invoice.number, "2700.00")
    outcome = cancel(session, storage, members[0])
    assert outcome.refund is not None
    assert (outcome.refund.payee_kind, outcome.refund.payee_name) == (
        "organisation",
        "Ciudad de México",
    )
    # The member is not asked for an account: the money goes back to the city.
    with pytest.raises(Conflict):
        refund_service.give_bank_details(
            session,
            application=members[0],
            account_holder="A Member",
            iban="ES91 2100 0418 4502 0005 1332",
            bic="",
        )
    refund = refund_service.office_bank_details(
        session,
        refund_id=outcome.refund.id or 0,
        account_holder="Ciudad de México, tesorería",
        iban="ES91 2100 0418 4502 0005 1332",
        bic="",
        actor="admin@example.org",
    )
    assert refund.iban == "ES9121000418450200051332"


def test_a_group_invoice_overpaid_is_owed_back_to_its_organisation(
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
) -> None:
    _, invoice = group_of_three(session, storage, admin_user)
    pay(session, invoice.number, "2800.00")
    [refund] = refund_service_refunds(session, invoice)
    assert (refund.reason, refund.amount, refund.application_id) == (
        "overpayment",
        Decimal("100.00"),
        None,
    )
    assert (refund.payee_kind, refund.payee_name) == ("organisation", "Ciudad de México")
    kept = refund_service.keep_refund(
        session, refund_id=refund.id or 0, reason="The city asked us to keep it", actor="a"
    )
    assert kept.status == "kept"
    with pytest.raises(Conflict):
        refund_service.keep_refund(session, refund_id=refund.id or 0, reason="again", actor="a")


def refund_service_refunds(session: Session, invoice: Invoice) -> list[Refund]:
    return list(session.exec(select(Refund).where(Refund.invoice_id == invoice.id)).all())


@pytest.mark.parametrize(
    "iban",
    ["ES712100041801020005", "ES162100ABCD010200051332", "XX57123456789012345"],
)
def test_ibans_of_the_wrong_length_structure_or_country_are_refused(iban: str) -> None:
    assert not iban_is_valid(iban)


@pytest.mark.parametrize(
    "iban",
    [
        "GI75 NWBK 0000 0000 7099 453",  # Gibraltar
        "GB82 WEST 1234 5698 7654 32",  # the Crown Dependencies bank with GB IBANs
        "FI21 1234 5600 0007 85",  # Åland uses Finnish IBANs
    ],
)
def test_sepa_payers_outside_the_eu_need_no_bic(iban: str) -> None:
    assert iban_is_valid(iban)
    assert iban_in_sepa(iban)


def test_a_bank_outside_sepa_is_asked_for_its_bic(
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
) -> None:
    _, invoice = group_of_three(session, storage, admin_user)
    pay(session, invoice.number, "2800.00")
    [refund] = refund_service_refunds(session, invoice)
    with pytest.raises(InvalidInput) as refused:
        refund_service.office_bank_details(
            session,
            refund_id=refund.id or 0,
            account_holder="Ciudad",
            iban="BR15 0000 0000 0000 1093 2840 814P 2",
            bic="",
            actor="a",
        )
    assert "bic" in refused.value.fields


def test_the_portal_tells_a_group_member_their_share_goes_back_to_the_organisation(
    client: TestClient,
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
) -> None:
    members, invoice = group_of_three(session, storage, admin_user)
    pay(session, invoice.number, "2700.00")
    cancel(session, storage, members[0])
    portal = client.get(portal_of(session, members[0])).text
    assert "goes back to Ciudad de México, which paid the group" in unescape(portal)
    assert "refund-details-form" not in portal  # no account asked of the member
