"""Cancelling a registration: the policy's answer, the books it balances, refunds, races."""

import itertools
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from app.db import writer_engine
from app.models import (
    Application,
    Cancellation,
    Edition,
    Invoice,
    OutboxMessage,
    Payment,
    Refund,
    StaffUser,
)
from app.platform.storage import LocalStorage
from app.services.billing import invoice_files, payments
from app.services.billing import invoices as invoicing
from app.services.billing import refunds as refund_service
from app.services.errors import Conflict, InvalidInput
from app.services.registrations import applications as applications_service
from app.services.registrations import cancellation_intake as service
from tests.factories import admit, make_organisation, open_edition, pay, submit
from tests.services.billing.test_invoicing import BASE, SECRET, SELLER

MADRID = ZoneInfo("Europe/Madrid")
OFFICE = "Metropolis Diploma <diploma@metropolis.org>"
# open_edition starts on 2099-11-16: the deadline is 2099-10-17 00:00 in Madrid (CEST).
DEADLINE = datetime(2099, 10, 17, 0, 0, tzinfo=MADRID)
BEFORE = DEADLINE - timedelta(days=10)
# The office pays a bank refund out a few days after the cancellation that made it owed.
PAID_OUT = BEFORE + timedelta(days=3)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def written(edition: Edition, application: Application, received_at: datetime, **overrides: Any):  # type: ignore[no-untyped-def]
    values: dict[str, Any] = {
        "received_at": received_at,
        "channel": "email",
        "course_name": edition.title,
        "full_name": application.full_name,
        "registration_date": application.submitted_at.date(),
        "contact": application.email,
    }
    values.update(overrides)
    return service.CancellationRequest(**values)


def office(storage: LocalStorage) -> service.CancellationOffice:
    return service.CancellationOffice(
        storage=storage,
        seller=SELLER,
        secret_key=SECRET,
        base_url=BASE,
        office_email=OFFICE,
        offer_days=5,
    )


def cancel(
    session: Session,
    storage: LocalStorage,
    application: Application,
    received_at: datetime = BEFORE,
    *,
    now: datetime | None = None,
    **overrides: Any,
) -> service.CancellationOutcome:
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    return service.cancel_registration(
        session,
        application_id=application.id or 0,
        request=written(edition, application, received_at, **overrides),
        actor="admin@example.org",
        office=office(storage),
        now=now or received_at,
    )


def admitted_with_invoice(
    session: Session, storage: LocalStorage, admin: StaffUser, **apply_overrides: Any
) -> tuple[Application, Invoice]:
    edition = session.exec(select(Edition).where(Edition.slug == "diploma-open")).first()
    if edition is None:
        edition = open_edition(session)
    application = admit(
        session, storage, admin, submit(session, storage, edition, **apply_overrides)
    )
    invoice = session.exec(
        select(Invoice)
        .join(invoicing.InvoiceLine, col(invoicing.InvoiceLine.invoice_id) == col(Invoice.id))
        .where(invoicing.InvoiceLine.application_id == application.id)
    ).one()
    return application, invoice


def mails(session: Session, kind: str) -> list[OutboxMessage]:
    return list(session.exec(select(OutboxMessage).where(OutboxMessage.kind == kind)).all())


# The policy's answer, at the boundary


def test_one_second_before_the_deadline_is_accepted_and_at_the_deadline_refused(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    early, _ = admitted_with_invoice(session, storage, admin_user, email="a@x.org")
    late, _ = admitted_with_invoice(session, storage, admin_user, email="b@x.org")
    accepted = cancel(session, storage, early, DEADLINE - timedelta(seconds=1))
    refused = cancel(session, storage, late, DEADLINE.astimezone(UTC))
    assert accepted.cancellation.accepted
    assert not refused.cancellation.accepted
    session.refresh(early)
    session.refresh(late)
    assert (early.status, late.status) == ("cancelled", "admitted")
    assert refused.refund is None and refused.credit_note is None
    assert "Cancellations are accepted only before 17 October 2099, 00:00" in (
        refused.cancellation.reason
    )


def test_a_refused_cancellation_is_recorded_and_both_sides_are_told_why(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    pay(session, invoice.number, "1500.00")
    outcome = cancel(session, storage, application, DEADLINE + timedelta(days=3))
    session.refresh(application)
    assert application.status == "confirmed"
    assert session.exec(select(Cancellation)).one().accepted is False
    to_participant = mails(session, "cancellation_refused")
    to_office = mails(session, "cancellation_office_note")
    assert [m.to_address for m in to_participant] == [application.email]
    assert [m.to_address for m in to_office] == [OFFICE]
    assert outcome.cancellation.reason in to_participant[0].body_text
    assert "stays registered" in to_office[0].body_text
    assert invoicing.amount_paid(session, invoice) == Decimal("1500.00")
    assert invoice.status == "issued"


# The money


def test_refund_is_75_percent_of_amount_paid_due_30_days_after_receipt(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    pay(session, invoice.number, "1500.00")
    received = datetime(2099, 9, 30, 23, 30, tzinfo=UTC)  # 1 October in Madrid
    outcome = cancel(session, storage, application, received)
    assert outcome.refund is not None
    assert outcome.refund.amount == Decimal("1125.00")
    assert outcome.refund.due_by == date(2099, 10, 31)
    assert outcome.refund.method == "bank_transfer"
    assert outcome.cancellation.retained == Decimal("375.00")


def test_credit_note_and_fee_invoice_add_up_to_the_retained_amount(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    pay(session, invoice.number, "1500.00")
    outcome = cancel(session, storage, application)
    credit, fee = outcome.credit_note, outcome.fee_invoice
    assert credit is not None and fee is not None
    assert credit.kind == "credit_note" and credit.refers_to_id == invoice.id
    assert fee.purpose == "cancellation_fee" and fee.refers_to_id == invoice.id
    assert invoice.total + credit.total + fee.total == outcome.cancellation.retained
    assert credit.total == -invoice.total
    session.refresh(invoice)
    assert invoice.status == "credited"
    # The retained money moved over: the fee invoice is paid, the refund still sits on the
    # original until it is paid out.
    assert invoicing.amount_paid(session, fee) == Decimal("375.00")
    assert invoicing.amount_paid(session, invoice) == Decimal("1125.00")
    transfers = session.exec(select(Payment).where(Payment.source == "transfer")).all()
    assert sorted(p.amount for p in transfers) == [Decimal("-375.00"), Decimal("375.00")]
    assert {p.method for p in transfers} == {"other"}
    assert invoice_files.ensure_invoice_pdf(session, fee, storage).startswith(b"%PDF")
    mail = mails(session, "cancellation_accepted")[0]
    assert {a["filename"] for a in mail.attachments} == {
        f"credit-note-{credit.number}.pdf",
        f"invoice-{fee.number}.pdf",
    }


def test_a_fee_invoice_with_tax_still_totals_exactly_the_retained_amount(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session, tax_rate="21", tax_note="Example tax note.")
    application = admit(session, storage, admin_user, submit(session, storage, edition))
    invoice = session.exec(select(Invoice)).one()
    pay(session, invoice.number, "0.12")  # 25 % is 0.03: no net + 21 % tax makes exactly 0.03
    outcome = cancel(session, storage, application)
    assert outcome.fee_invoice is not None
    assert outcome.fee_invoice.total == outcome.cancellation.retained == Decimal("0.03")
    assert outcome.credit_note is not None
    assert outcome.credit_note.total == -invoice.total == Decimal("-1815.00")


def test_the_credit_note_mirrors_the_invoice_even_if_the_tax_rate_changed_since(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session, tax_rate="21", tax_note="Example tax note.")
    application = admit(session, storage, admin_user, submit(session, storage, edition))
    invoice = session.exec(select(Invoice)).one()
    pay(session, invoice.number, "1815.00")
    edition.tax_rate = Decimal("10.00")
    session.add(edition)
    session.commit()
    outcome = cancel(session, storage, application)
    assert outcome.credit_note is not None and outcome.fee_invoice is not None
    assert outcome.credit_note.total == Decimal("-1815.00")
    assert outcome.credit_note.tax_rate == Decimal("21.00")
    assert outcome.fee_invoice.tax_rate == Decimal("10.00")  # a new invoice: today's rate
    assert outcome.fee_invoice.total == Decimal("453.75")
    session.refresh(edition)
    assert edition.tax_rate == Decimal("10.00")


@pytest.mark.parametrize(
    ("paid", "refund", "retained"),
    [
        ("333.34", "250.01", "83.33"),  # 250.005 rounds half-up
        ("100.02", "75.02", "25.00"),  # 75.015 rounds half-up
        ("0.02", "0.02", "0.00"),  # 0.015 rounds half-up: nothing left to retain
    ],
)
def test_partial_payments_are_refunded_to_the_cent_rounding_half_up(
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    paid: str,
    refund: str,
    retained: str,
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    pay(session, invoice.number, paid)
    outcome = cancel(session, storage, application)
    assert outcome.refund is not None
    assert (outcome.refund.amount, outcome.cancellation.retained) == (
        Decimal(refund),
        Decimal(retained),
    )
    assert outcome.cancellation.paid == outcome.refund.amount + outcome.cancellation.retained
    if Decimal(retained) == 0:
        assert outcome.fee_invoice is None


def test_nothing_paid_nothing_refunded_the_invoice_credited_and_the_seat_freed(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    outcome = cancel(session, storage, application)
    assert outcome.cancellation.accepted
    assert outcome.refund is None and outcome.fee_invoice is None
    assert outcome.credit_note is not None
    assert "Nothing was paid, so nothing is refunded." in outcome.cancellation.reason
    session.refresh(application)
    session.refresh(invoice)
    assert (application.status, invoice.status) == ("cancelled", "credited")
    assert session.exec(select(Refund)).all() == []


def test_a_waived_participant_cancels_without_any_invoice(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    member = make_organisation(session)  # Lilongwe: member, low income -> waived
    application = admit(
        session, storage, admin_user, submit(session, storage, edition, organisation_id=member.id)
    )
    assert application.status == "confirmed" and application.fee_waiver_number
    outcome = cancel(session, storage, application)
    session.refresh(application)
    assert application.status == "cancelled"
    assert outcome.credit_note is None and outcome.fee_invoice is None and outcome.refund is None
    assert session.exec(select(Invoice)).all() == []
    assert applications_service.capacity(session, edition).confirmed == 0


def test_a_card_payer_is_refunded_to_the_card(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    pay(session, invoice.number, "1500.00", method="card")
    outcome = cancel(session, storage, application)
    assert outcome.refund is not None and outcome.refund.method == "card"
    with pytest.raises(Conflict, match="through Stripe"):
        refund_service.complete_refund(
            session,
            refund_id=outcome.refund.id or 0,
            completed_on=PAID_OUT.date(),
            now=PAID_OUT,
            reference="x",
            actor="admin@example.org",
        )
    refund = refund_service.refund_by_card(
        session, refund_id=outcome.refund.id or 0, completed_on=date.today(), reference="re_1"
    )
    assert refund.status == "completed"
    assert invoicing.amount_paid(session, invoice) == Decimal("0.00")


def test_an_overpayment_is_refunded_in_full_on_top_of_the_75_percent(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    pay(session, invoice.number, "1600.00")
    outcome = cancel(session, storage, application)
    assert outcome.refund is not None
    assert outcome.refund.amount == Decimal("1125.00")
    assert outcome.cancellation.retained == Decimal("375.00")
    # The 100 overpaid was owed back from the moment it was recorded, as a refund of its own.
    owed = refund_service.refunds_of(session, application.id or 0)
    assert sorted((r.reason, r.amount) for r in owed) == [
        ("cancellation", Decimal("1125.00")),
        ("overpayment", Decimal("100.00")),
    ]


# Groups


def test_a_group_member_cancelling_credits_only_their_line_and_leaves_the_others_alone(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    org = make_organisation(session, name="Ciudad X", country="MEX")
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
    pay(session, invoice.number, "1800.00")  # two thirds of 2700: 600 each
    before = {m.id: refund_service.paid_share(session, invoice, m.id or 0) for m in members}
    assert set(before.values()) == {Decimal("600.00")}
    leaving = members[0]
    outcome = cancel(session, storage, leaving)
    credit = outcome.credit_note
    assert credit is not None
    credit_lines = invoicing.invoice_lines(session, credit)
    assert [(line.application_id, line.gross) for line in credit_lines] == [
        (leaving.id, Decimal("-900.00"))
    ]
    assert outcome.refund is not None
    assert (outcome.refund.amount, outcome.cancellation.retained) == (
        Decimal("450.00"),
        Decimal("150.00"),
    )
    session.refresh(invoice)
    assert invoice.status == "issued"  # two lines are still billed
    assert refund_service.open_total(session, invoice) == Decimal("1800.00")
    for member in members[1:]:
        assert refund_service.paid_share(session, invoice, member.id or 0) == before[member.id]
        assert [line.gross for line in invoicing.invoice_lines(session, invoice)] == [
            Decimal("900.00")
        ] * 3
    # Paying the refund out changes nobody else's share either.
    refund_service.complete_refund(
        session,
        refund_id=outcome.refund.id or 0,
        completed_on=PAID_OUT.date(),
        now=PAID_OUT,
        reference="TRF-1",
        actor="admin@example.org",
    )
    for member in members[1:]:
        assert refund_service.paid_share(session, invoice, member.id or 0) == before[member.id]
    assert refund_service.paid_share(session, invoice, leaving.id or 0) == Decimal("0.00")


def test_after_a_member_cancels_the_group_owes_what_remains_billed_less_its_own_money(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    org = make_organisation(session, name="Ciudad Y", country="MEX")
    group, _ = applications_service.create_group(
        session,
        edition_slug=edition.slug,
        organisation_id=org.id or 0,
        contact_email="lead@ciudad-y.example",
        secret_key=SECRET,
        base_url=BASE,
    )
    members = [
        admit(
            session,
            storage,
            admin_user,
            submit(session, storage, edition, email=f"y{i}@ciudad.example", group_code=group.code),
        )
        for i in range(3)
    ]
    invoice = invoicing.issue_group_invoice(
        session, edition=edition, code=group.code, seller=SELLER, actor="t", storage=storage
    )
    session.commit()
    pay(session, invoice.number, "1800.00")  # 600 of 900 for each of the three
    assert invoicing.outstanding(session, invoice) == Decimal("900.00")
    outcome = cancel(session, storage, members[0])
    assert outcome.refund is not None
    # Still billed: 2 x 900. Held for them: 2 x 600; the leaver's 600 is refunded or retained.
    assert invoicing.outstanding(session, invoice) == Decimal("600.00")
    refund_service.complete_refund(
        session,
        refund_id=outcome.refund.id or 0,
        completed_on=PAID_OUT.date(),
        now=PAID_OUT,
        reference="TRF-2",
        actor="admin@example.org",
    )
    assert invoicing.outstanding(session, invoice) == Decimal("600.00")
    # Paying exactly what remains settles the invoice and confirms the two who stayed.
    result = payments.record_payment(
        session,
        invoice_number=invoice.number,
        amount=Decimal("600.00"),
        received_on=date.today(),
        method="bank_transfer",
        reference=invoice.number,
        actor="admin@example.org",
    )
    assert result.payment.flagged is False
    assert invoicing.outstanding(session, invoice) == Decimal("0.00")
    assert sorted(result.confirmed) == sorted(m.reference for m in members[1:])


# Twice, and at once


def test_cancelling_twice_does_nothing_the_second_time(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    pay(session, invoice.number, "1500.00")
    cancel(session, storage, application)
    with pytest.raises(service.AlreadyCancelled, match="already cancelled on 7 October 2099"):
        cancel(session, storage, application)
    assert len(session.exec(select(Refund)).all()) == 1
    assert len(session.exec(select(Invoice).where(Invoice.kind == "credit_note")).all()) == 1


def test_a_request_missing_items_is_refused_naming_each(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application, _ = admitted_with_invoice(session, storage, admin_user)
    with pytest.raises(InvalidInput) as raised:
        cancel(
            session,
            storage,
            application,
            course_name="",
            full_name=None,
            registration_date=None,
            contact="  ",
        )
    assert raised.value.fields == {
        "course_name": "The cancellation does not give the name of the course.",
        "full_name": "The cancellation does not give the student's name and surname.",
        "registration_date": "The cancellation does not give the date of registration.",
        "contact": "The cancellation does not give contact information.",
    }
    assert raised.value.message == (
        "The cancellation cannot be recorded: it does not give the name of the course, the "
        "student's name and surname, the date of registration and contact information."
    )
    session.refresh(application)
    assert application.status == "admitted"
    assert session.exec(select(Cancellation)).all() == []


def test_only_admitted_or_confirmed_participants_can_cancel(
    session: Session, storage: LocalStorage
) -> None:
    edition = open_edition(session)
    application = submit(session, storage, edition)
    with pytest.raises(service.NotCancellable, match="You can withdraw it instead"):
        cancel(session, storage, application)


def test_the_attached_email_is_kept_and_must_be_an_eml_of_at_most_2_mb(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application, _ = admitted_with_invoice(session, storage, admin_user)
    edition = session.get(Edition, application.edition_id)
    assert edition is not None
    base = {
        "application_id": application.id or 0,
        "actor": "admin@example.org",
        "office": office(storage),
        "now": BEFORE,
    }
    for data, name in ((b"not an e-mail", "x.eml"), (b"From: a@b\r\n\r\nhi" * 200000, "x.eml")):
        with pytest.raises(InvalidInput) as raised:
            request = written(edition, application, BEFORE, email_file=data, email_filename=name)
            service.cancel_registration(session, request=request, **base)
        assert "email_file" in raised.value.fields
    eml = b"From: Ama Banda <ama@x.org>\r\nSubject: Cancel\r\n\r\nPlease cancel my place.\r\n"
    request = written(edition, application, BEFORE, email_file=eml, email_filename="c.eml")
    outcome = service.cancel_registration(session, request=request, **base)
    assert storage.get(outcome.cancellation.email_key or "") == eml


def test_a_payment_after_an_accepted_cancellation_is_flagged_for_a_full_refund(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    cancel(session, storage, application)
    result = payments.record_payment(
        session,
        invoice_number=invoice.number,
        amount=Decimal("1500.00"),
        received_on=date.today(),
        method="bank_transfer",
        reference="late",
        actor="admin@example.org",
    )
    assert result.payment.flagged
    assert result.payment.flag_reason == (
        f"Received after {invoice.number} was cancelled: refund it in full."
    )
    session.refresh(application)
    assert application.status == "cancelled"


# Refunds


def test_a_bank_refund_is_completed_once_with_a_negative_payment(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    pay(session, invoice.number, "1000.00")
    outcome = cancel(session, storage, application)
    assert outcome.refund is not None
    refund = refund_service.complete_refund(
        session,
        refund_id=outcome.refund.id or 0,
        completed_on=PAID_OUT.date(),
        now=PAID_OUT,
        reference="TRF-42",
        actor="admin@example.org",
    )
    assert refund.status == "completed" and refund.completed_by == "admin@example.org"
    out = session.exec(select(Payment).where(Payment.source == "refund")).one()
    assert (out.amount, out.invoice_id, out.reference) == (
        Decimal("-750.00"),
        invoice.id,
        "TRF-42",
    )
    assert invoicing.amount_paid(session, invoice) == Decimal("0.00")
    with pytest.raises(refund_service.RefundAlreadyCompleted):
        refund_service.complete_refund(
            session,
            refund_id=refund.id or 0,
            completed_on=PAID_OUT.date(),
            now=PAID_OUT,
            reference="TRF-43",
            actor="admin@example.org",
        )
    assert len(session.exec(select(Payment).where(Payment.source == "refund")).all()) == 1
    assert mails(session, "cancellation_refund_paid")


def test_a_refund_cannot_be_paid_before_the_cancellation_that_made_it_owed(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    pay(session, invoice.number, "1000.00")
    outcome = cancel(session, storage, application)
    assert outcome.refund is not None
    # Owed from 7 October 2099 at 00:00 in Madrid, the office's clock (6 October in UTC):
    # 6 October is a day too early, 7 October is the day itself.
    for day in (date(2098, 10, 7), BEFORE.date() - timedelta(days=1)):
        with pytest.raises(InvalidInput) as refused:
            refund_service.complete_refund(
                session,
                refund_id=outcome.refund.id or 0,
                completed_on=day,
                now=PAID_OUT,
                reference="TRF-7",
                actor="admin@example.org",
            )
        assert "before the cancellation" in refused.value.fields["completed_on"]
    assert session.exec(select(Payment).where(Payment.source == "refund")).all() == []
    refund = refund_service.complete_refund(
        session,
        refund_id=outcome.refund.id or 0,
        completed_on=BEFORE.date(),
        now=PAID_OUT,
        reference="TRF-7",
        actor="admin@example.org",
    )
    assert refund.status == "completed" and refund.completed_on == BEFORE.date()


@pytest.mark.parametrize(
    ("holder", "iban", "bic", "field"),
    [
        ("", "ES91 2100 0418 4502 0005 1332", "", "account_holder"),
        ("Ama Banda", "ES91 2100 0418 4502 0005 1333", "", "iban"),
        ("Ama Banda", "MW52 0000 1000 4000 0000 0000 1", "", "iban"),
        ("Ama Banda", "ES91 2100 0418 4502 0005 1332", "NOT A BIC", "bic"),
        ("Ama Banda", "BR15 0000 0000 0000 1093 2840 814P 2", "", "bic"),
    ],
)
def test_bank_details_are_checked(
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    holder: str,
    iban: str,
    bic: str,
    field: str,
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    pay(session, invoice.number, "1500.00")
    cancel(session, storage, application)
    with pytest.raises(InvalidInput) as raised:
        refund_service.give_bank_details(
            session, application=application, account_holder=holder, iban=iban, bic=bic
        )
    assert field in raised.value.fields


def test_bank_details_are_stored_compact_and_a_bic_is_optional_in_sepa(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    application, invoice = admitted_with_invoice(session, storage, admin_user)
    pay(session, invoice.number, "1500.00")
    cancel(session, storage, application)
    refund = refund_service.give_bank_details(
        session,
        application=application,
        account_holder=" Ama  Banda ",
        iban="es91 2100 0418 4502 0005 1332",
        bic="",
    )
    assert (refund.account_holder, refund.iban, refund.bic) == (
        "Ama Banda",
        "ES9121000418450200051332",
        "",
    )
    brazil = refund_service.give_bank_details(
        session,
        application=application,
        account_holder="Ama Banda",
        iban="BR15 0000 0000 0000 1093 2840 814P 2",
        bic="bbdebrsp",
    )
    assert brazil.bic == "BBDEBRSP"


def test_refunds_due_are_sorted_into_overdue_this_week_and_later(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    refunds = []
    for i, received in enumerate(
        (datetime(2099, 8, 1, 12, tzinfo=UTC), datetime(2099, 8, 25, 12, tzinfo=UTC), BEFORE)
    ):
        application, invoice = admitted_with_invoice(
            session, storage, admin_user, email=f"r{i}@x.org"
        )
        pay(session, invoice.number, "100.00")
        outcome = cancel(session, storage, application, received)
        assert outcome.refund is not None
        refunds.append(outcome.refund.id)
    due = refund_service.refunds_due(session, now=datetime(2099, 9, 20, 10, tzinfo=UTC))
    assert [r.refund.id for r in due.overdue] == [refunds[0]]  # due 31 August
    assert [r.refund.id for r in due.this_week] == [refunds[1]]  # due 24 September
    assert [r.refund.id for r in due.later] == [refunds[2]]


# Races


_INVOICES = "SELECT id FROM invoice WHERE edition_id = :e"
_APPLICATIONS = "SELECT id FROM application WHERE edition_id = :e"
_AS_TEXT = "SELECT CAST(id AS VARCHAR(20)) FROM"
_CLEANUP = (
    # The audit trail of what these tests made, so no other test finds it.
    f"DELETE FROM audit_entry WHERE entity = 'refund' AND entity_id IN ({_AS_TEXT} refund "
    f"WHERE application_id IN ({_APPLICATIONS}))",
    f"DELETE FROM audit_entry WHERE entity = 'application' AND entity_id IN ({_AS_TEXT} "
    "application WHERE edition_id = :e)",
    "DELETE FROM audit_entry WHERE entity = 'invoice' AND entity_id IN "
    "(SELECT number FROM invoice WHERE edition_id = :e)",
    "DELETE FROM audit_entry WHERE entity = 'edition' AND entity_id IN "
    "(SELECT slug FROM edition WHERE id = :e)",
    f"DELETE FROM refund WHERE application_id IN ({_APPLICATIONS})",
    f"DELETE FROM cancellation WHERE application_id IN ({_APPLICATIONS})",
    "DELETE FROM seat_offer WHERE edition_id = :e",
    f"DELETE FROM payment WHERE invoice_id IN ({_INVOICES})",
    f"DELETE FROM invoice_line WHERE invoice_id IN ({_INVOICES})",
    "DELETE FROM invoice WHERE edition_id = :e",
    f"DELETE FROM outbox_message WHERE application_id IN ({_APPLICATIONS})",
    "DELETE FROM application WHERE edition_id = :e",
    "DELETE FROM course_session WHERE module_id IN (SELECT id FROM module WHERE edition_id = :e)",
    "DELETE FROM module WHERE edition_id = :e",
    "DELETE FROM group_tier WHERE edition_id = :e",
    "DELETE FROM edition WHERE id = :e",
)


def _cleanup(engine: Engine, edition_id: int) -> None:
    """These tests commit for real (several connections): remove what they made."""
    with engine.begin() as connection:
        for statement in _CLEANUP:
            connection.execute(text(statement), {"e": edition_id})


def test_concurrent_cancellations_of_one_place_give_one_refund(
    engine: Engine, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path)
    with Session(engine, expire_on_commit=False) as session:
        edition = open_edition(session, slug="cancel-race")
        admin = StaffUser(email="race@example.org", password_hash="x", role="admin")
        application = submit(session, storage, edition, email="race@x.org")
        application = applications_service.decide(
            session,
            application_id=application.id or 0,
            decision="admit",
            actor=admin,
            storage=storage,
            secret_key=SECRET,
            base_url=BASE,
            seller=SELLER,
        )
        number = session.exec(select(Invoice.number).where(Invoice.edition_id == edition.id)).one()
        pay(session, number, "1500.00")
        edition_id, application_id = edition.id or 0, application.id or 0
    outcomes: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        try:
            with Session(writer_engine(engine), expire_on_commit=False) as session:
                application = session.get(Application, application_id)
                assert application is not None
                cancel(session, storage, application)
                outcomes.append("cancelled")
        except service.AlreadyCancelled:
            outcomes.append("already")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert sorted(outcomes) == ["already", "already", "already", "cancelled"]
        with Session(engine) as session:
            refunds = session.exec(
                select(Refund).where(Refund.application_id == application_id)
            ).all()
            credit_notes = session.exec(
                select(Invoice).where(
                    Invoice.edition_id == edition_id, Invoice.kind == "credit_note"
                )
            ).all()
        assert [r.amount for r in refunds] == [Decimal("1125.00")]
        assert len(credit_notes) == 1
    finally:
        _cleanup(engine, edition_id)


# The books always balance


_emails = itertools.count()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    paid_cents=st.lists(st.integers(min_value=1, max_value=60000), min_size=1, max_size=4),
    refunded_first=st.integers(min_value=0, max_value=100),
    complete=st.booleans(),
    by_card=st.booleans(),
)
def test_money_always_adds_up_after_any_payments_refunds_and_a_cancellation(
    session: Session,
    storage: LocalStorage,
    admin_user: StaffUser,
    paid_cents: list[int],
    refunded_first: int,
    complete: bool,
    by_card: bool,
) -> None:
    application, invoice = admitted_with_invoice(
        session, storage, admin_user, email=f"p{next(_emails)}@x.org"
    )
    for cents in paid_cents:
        pay(session, invoice.number, f"{Decimal(cents) / 100:.2f}", "card" if by_card else "other")
    received = sum(Decimal(c) for c in paid_cents) / 100
    # A refund made before the cancellation (an overpayment returned, say): a share of it.
    early_refund = (received * refunded_first / 100).quantize(Decimal("0.01"))
    if early_refund:
        session.add(
            Payment(
                invoice_id=invoice.id or 0,
                amount=-early_refund,
                received_on=date.today(),
                method="card" if by_card else "bank_transfer",
                source="refund",
                recorded_by="test",
            )
        )
        session.commit()
    outcome = cancel(session, storage, application)
    c = outcome.cancellation
    refunded = outcome.refund.amount if outcome.refund else Decimal("0.00")
    assert c.paid == received - early_refund
    assert c.paid == refunded + c.retained
    fee_total = outcome.fee_invoice.total if outcome.fee_invoice else Decimal("0.00")
    assert outcome.credit_note is not None
    assert invoice.total + outcome.credit_note.total + fee_total == c.retained
    if outcome.fee_invoice:
        assert invoicing.amount_paid(session, outcome.fee_invoice) == c.retained
    assert invoicing.amount_paid(session, invoice) == refunded
    if complete and outcome.refund:
        if outcome.refund.method == "card":
            refund_service.refund_by_card(
                session, refund_id=outcome.refund.id or 0, completed_on=date.today(), reference="r"
            )
        else:
            refund_service.complete_refund(
                session,
                refund_id=outcome.refund.id or 0,
                completed_on=PAID_OUT.date(),
                now=PAID_OUT,
                reference="r",
                actor="test",
            )
        assert invoicing.amount_paid(session, invoice) == Decimal("0.00")
