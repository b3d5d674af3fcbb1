"""Applicants' personal data: the access-request export, erasure on request, and retention."""

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from app.config import Settings
from app.models import (
    ApplicantGroup,
    Application,
    AttendanceMark,
    AuditEntry,
    Cancellation,
    Certificate,
    CheckInAttempt,
    Edition,
    EligibilityOverride,
    FinalWork,
    Invoice,
    InvoiceLine,
    OutboxMessage,
    Refund,
)
from app.platform.audit import record_change
from app.platform.mail import queue_email
from app.platform.storage import LocalStorage
from app.services.billing.invoices import Seller
from app.services.certificates import issuing as certificates
from app.services.errors import InvalidInput
from app.services.office import personal_data as service
from app.services.registrations import applications as applications_service
from tests.factories import (
    FACTORY_SECRET,
    _submitted,
    application_payload,
    make_edition,
    make_eligible_participant,
    open_edition,
    pdf_bytes,
)

NOW = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
IBAN = "ES7921000813610123456789"
PASSPORT = "MA1234567"
SELLER = Seller(
    name="Metropolis",
    address="Avinyó, 15\n08002 Barcelona",
    tax_id="ESG00000000",
    bank_name="Example Bank",
    iban="ES91 2100 0418 4502 0005 1332",
    bic="CAIXESBBXXX",
    due_days=14,
)
MOTIVATION = "I coordinate the partnerships of Lilongwe and want a strategy for them."


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


@dataclass
class Person:
    """A participant with every kind of personal data the office holds, and their files."""

    application: Application
    invoice: Invoice
    refund: Refund
    cancellation: Cancellation
    keys: dict[str, str]


def held_data(session: Session, storage: LocalStorage, application: Application) -> Person:
    """Give a completed participant a CV, visa details, needs, refund, files and messages."""
    application_id = application.id or 0
    keys = {
        "cv": f"cv/{secrets.token_hex(8)}.pdf",
        "visa_letter": f"visa-letters/{secrets.token_hex(8)}.pdf",
        "fee_waiver": f"fee-waivers/{secrets.token_hex(8)}.pdf",
        "final_work": f"final-works/{secrets.token_hex(8)}.pdf",
        "cancellation_email": f"cancellation-emails/{secrets.token_hex(8)}.eml",
    }
    for key in keys.values():
        storage.put(key, pdf_bytes())
    application.cv_key = keys["cv"]
    application.cv_filename = "ama-banda-cv.pdf"
    application.motivation = MOTIVATION
    application.staff_notes = "Called her on 3 May; very motivated."
    application.dietary = "Vegetarian, no nuts"
    application.accessibility = "Step-free access"
    application.arrival_date = date(2024, 11, 17)
    application.visa_letter_needed = True
    application.nationality = "MWI"
    application.passport_number = PASSPORT
    application.date_of_birth = date(1985, 4, 23)
    application.visa_letter_key = keys["visa_letter"]
    application.fee_waiver_key = keys["fee_waiver"]
    session.add(application)
    work = session.exec(select(FinalWork).where(FinalWork.application_id == application_id)).one()
    work.file_key = keys["final_work"]
    work.filename = "banda-strategy.pdf"
    session.add(work)
    invoice = session.exec(
        select(Invoice)
        .join(InvoiceLine, col(InvoiceLine.invoice_id) == col(Invoice.id))
        .where(InvoiceLine.application_id == application_id)
    ).one()
    cancellation = Cancellation(
        application_id=application_id,
        received_at=NOW - timedelta(days=200),
        channel="email",
        course_name="Diploma",
        full_name="Ama Banda",
        registration_date=date(2024, 6, 1),
        contact="ama.private@example.net",
        accepted=False,
        reason="Received after the deadline.",
        deadline=NOW - timedelta(days=220),
        paid=Decimal("0"),
        refund_amount=Decimal("0"),
        retained=Decimal("0"),
        email_key=keys["cancellation_email"],
        email_filename="ama-cancel.eml",
        recorded_by="admin@example.org",
    )
    session.add(cancellation)
    session.flush()
    refund = Refund(
        application_id=application_id,
        cancellation_id=cancellation.id or 0,
        invoice_id=invoice.id or 0,
        amount=Decimal("100.00"),
        currency="EUR",
        due_by=date(2024, 12, 1),
        method="bank_transfer",
        status="completed",
        completed_on=date(2024, 11, 30),
        completed_by="admin@example.org",
        reference="REFUND-1",
        account_holder="Ama Banda",
        iban=IBAN,
        bic="CAIXESBBXXX",
    )
    session.add(refund)
    session.add(
        CheckInAttempt(
            application_id=application_id, code_tried="WRONG1", succeeded=False, reason="wrong"
        )
    )
    session.add(
        EligibilityOverride(
            application_id=application_id,
            reason="Missed a session through illness (doctor's note).",
            granted_by="admin@example.org",
        )
    )
    queue_email(
        session,
        kind="portal_link",
        to=application.email,
        subject="Your link to application " + application.reference,
        context={
            "application": application,
            "edition": {"title": "Diploma"},
            "portal_url": "http://testserver/portal/x",
        },
        application_id=application_id,
    )
    record_change(
        session,
        actor=application.email,
        action="application.logistics_saved",
        entity="application",
        entity_id=application_id,
        before={"passport_number": None},
        after={"passport_number": PASSPORT, "status": application.status},
    )
    session.commit()
    session.refresh(application)
    return Person(application, invoice, refund, cancellation, keys)


def issue(
    session: Session, storage: LocalStorage, settings: Settings, app: Application
) -> Certificate:
    return certificates.issue_certificate(
        session,
        application_id=app.id or 0,
        actor="admin@example.org",
        storage=storage,
        options=certificates.CertificateOptions.from_settings(settings),
    ).certificate


@pytest.fixture
def ended(session: Session) -> Edition:
    """The 2024 edition (18-22 November 2024), long over."""
    return make_edition(session, slug="diploma-2024")


@pytest.fixture
def ama(session: Session, storage: LocalStorage, ended: Edition) -> Person:
    application = make_eligible_participant(
        session, ended, given_name="Ama", family_name="Banda", email="ama.banda@example.org"
    )
    return held_data(session, storage, application)


@pytest.fixture
def vera(session: Session, ended: Edition) -> Application:
    return make_eligible_participant(
        session, ended, given_name="Vera", family_name="Victimova", email="vera@example.org"
    )


# Export


def test_export_holds_everything_about_the_applicant_across_editions(
    session: Session, storage: LocalStorage, ama: Person, vera: Application
) -> None:
    later = open_edition(session, slug="diploma-2099")
    again = _submitted(session, later, application_payload(email="AMA.BANDA@example.org"), storage)
    data = service.export_personal_data(
        session,
        application_id=ama.application.id or 0,
        storage=storage,
        actor="admin@example.org",
        format="json",
        now=NOW,
    )
    text = str(data)
    assert data["subject"]["applications"] == [ama.application.reference, again.reference]
    first = data["applications"][0]
    assert first["application"]["passport_number"] == PASSPORT
    assert first["application"]["motivation"] == MOTIVATION
    assert first["application"]["dietary"] == "Vegetarian, no nuts"
    assert first["refunds"][0]["iban"] == IBAN
    assert first["cancellations"][0]["contact"] == "ama.private@example.net"
    assert first["invoices"][0]["number"] == ama.invoice.number
    assert first["invoices"][0]["payments"], "the payments on their invoice"
    assert len(first["attendance"]) == len(
        session.exec(
            select(AttendanceMark).where(AttendanceMark.application_id == ama.application.id)
        ).all()
    )
    assert first["check_in_attempts"][0]["code_tried"] == "WRONG1"
    assert first["final_work"]["filename"] == "banda-strategy.pdf"
    assert "illness" in first["eligibility_override"]["reason"]
    assert any(m["subject"].startswith("Your link") for m in first["messages"])
    assert any(e["action"] == "application.logistics_saved" for e in first["audit"])
    files = {f["kind"]: f for f in first["files"]}
    assert files["cv"] == {
        "kind": "cv",
        "filename": "ama-banda-cv.pdf",
        "stored": True,
        "size_bytes": len(pdf_bytes()),
    }
    assert {"visa_letter", "fee_waiver", "final_work", "cancellation_email"} <= set(files)
    for key in ama.keys.values():
        assert key not in text, "internal storage keys are not part of the export"
    for other in ("vera@example.org", "Victimova", vera.reference):
        assert other not in text
    entry = session.exec(
        select(AuditEntry).where(AuditEntry.action == "application.personal_data_exported")
    ).one()
    assert (entry.actor, entry.entity_id, entry.after) == (
        "admin@example.org",
        str(ama.application.id),
        {"format": "json", "reference": [ama.application.reference, again.reference]},
    )


def test_a_group_invoice_shows_only_the_applicants_own_line(
    session: Session, storage: LocalStorage, ama: Person, vera: Application
) -> None:
    vera_line = InvoiceLine(
        invoice_id=ama.invoice.id or 0,
        position=9,
        application_id=vera.id,
        description="Registration: Vera Victimova",
        net=Decimal("1.00"),
        tax=Decimal("0.00"),
        gross=Decimal("1.00"),
    )
    group = ApplicantGroup(
        edition_id=ama.application.edition_id,
        organisation_id=_organisation_id(session),
        code="G-TEST",
        contact_email="vera@example.org",
        contact_name="Vera Victimova",
    )
    session.add_all([vera_line, group])
    session.flush()
    ama.invoice.group_id = group.id
    ama.application.group_id = group.id
    session.add_all([ama.invoice, ama.application])
    session.commit()
    data = service.personal_data(
        session, application_id=ama.application.id or 0, storage=storage, actor="a", now=NOW
    )
    invoice = data["applications"][0]["invoices"][0]
    assert invoice["billed_to_group"] is True
    assert [line["application_id"] for line in invoice["lines"]] == [ama.application.id]
    assert "payments" not in invoice
    assert data["applications"][0]["group"]["is_group_contact"] is False
    assert "Vera" not in str(data) and "vera@example.org" not in str(data)


def _organisation_id(session: Session) -> int:
    from tests.factories import make_organisation

    return make_organisation(session, name=f"Org {secrets.token_hex(3)}").id or 0


def test_the_export_document_has_a_section_for_every_kind_of_data(
    session: Session, storage: LocalStorage, ama: Person
) -> None:
    data = service.personal_data(
        session, application_id=ama.application.id or 0, storage=storage, actor="a", now=NOW
    )
    document = service.export_document(data)
    titles = [s.title for s in document["parts"][0].sections]
    assert titles == list(service.SECTION_TITLES.values())
    refunds = next(s for s in document["parts"][0].sections if s.title == "Refunds")
    assert ("Iban", IBAN) in refunds.records[0]


# Erasure on request


def test_erasure_removes_personal_data_and_keeps_what_invoices_and_verification_need(
    session: Session, storage: LocalStorage, settings: Settings, ama: Person, vera: Application
) -> None:
    certificate = issue(session, storage, settings, ama.application)
    application_id = ama.application.id or 0
    invoice_before = (ama.invoice.number, ama.invoice.total, ama.invoice.issue_date)
    buyer_before = dict(ama.invoice.buyer)
    storage.put(ama.invoice.pdf_key or "", pdf_bytes())
    token = applications_service.portal_token(
        ama.application,
        session.get(Edition, ama.application.edition_id),  # type: ignore[arg-type]
        secret_key=FACTORY_SECRET,
    )

    outcome = service.erase_application(
        session,
        application_id=application_id,
        actor="admin@example.org",
        reason="E-mail request of 1 March 2025",
        storage=storage,
        now=NOW,
    )

    a = session.get(Application, application_id)
    assert a is not None
    assert (a.given_name, a.family_name, a.full_name) == ("Erased", "applicant", "Erased applicant")
    assert a.email == f"erased-{application_id}@erased.invalid"
    for name in (
        "job_title",
        "department",
        "motivation",
        "staff_notes",
        "dietary",
        "accessibility",
    ):
        assert getattr(a, name) == "", name
    for name in (
        "cv_key",
        "cv_filename",
        "passport_number",
        "nationality",
        "date_of_birth",
        "visa_letter_key",
        "fee_waiver_key",
        "arrival_date",
        "years_in_international_affairs",
    ):
        assert getattr(a, name) is None, name
    assert a.visa_letter_needed is False
    assert a.erased_at == NOW
    assert outcome.files_deleted == 5
    for key in ama.keys.values():
        assert not storage.exists(key), key
    # The portal link no longer opens anything.
    with pytest.raises(Exception, match="not valid"):
        applications_service.application_for_token(session, token, secret_key=FACTORY_SECRET)
    refund = session.get(Refund, ama.refund.id)
    assert refund is not None
    assert (refund.iban, refund.bic, refund.account_holder) == ("", "", "")
    assert (refund.amount, refund.reference) == (Decimal("100.00"), "REFUND-1")
    cancellation = session.get(Cancellation, ama.cancellation.id)
    assert cancellation is not None
    assert (cancellation.full_name, cancellation.contact, cancellation.email_key) == (
        "Erased applicant",
        "",
        None,
    )
    assert not session.exec(
        select(CheckInAttempt).where(CheckInAttempt.application_id == application_id)
    ).all()
    work = session.exec(select(FinalWork).where(FinalWork.application_id == application_id)).one()
    assert (work.file_key, work.filename, work.status) == (None, None, "accepted")
    override = session.exec(
        select(EligibilityOverride).where(EligibilityOverride.application_id == application_id)
    ).one()
    assert "illness" not in override.reason
    messages = session.exec(
        select(OutboxMessage).where(OutboxMessage.application_id == application_id)
    ).all()
    assert messages
    for message in messages:
        assert message.to_address == a.email
        assert (message.body_text, message.body_html, message.subject) == ("", "", "[erased]")
        assert message.status in ("sent", "cancelled", "sending")
    # What the law and verifiers need stays.
    invoice = session.get(Invoice, ama.invoice.id)
    assert invoice is not None
    assert (invoice.number, invoice.total, invoice.issue_date) == invoice_before
    assert invoice.buyer == {k: v for k, v in buyer_before.items() if k != "email"}
    assert invoice.buyer["name"] == "Ama Banda"
    assert storage.exists(invoice.pdf_key or "")
    kept = session.get(Certificate, certificate.id)
    assert kept is not None
    assert (kept.holder_name, kept.number, kept.version) == ("Ama Banda", certificate.number, 1)
    view = certificates.public_view(session, kept)
    assert view["holder"] == "Ama Banda" and view["valid"] is True
    # The audit keeps who erased and why, and nothing personal from before.
    erased = session.exec(select(AuditEntry).where(AuditEntry.action == "application.erased")).one()
    assert erased.actor == "admin@example.org"
    assert erased.after is not None and erased.after["reason"] == "E-mail request of 1 March 2025"
    about = session.exec(
        select(AuditEntry).where(
            AuditEntry.entity == "application", AuditEntry.entity_id == str(application_id)
        )
    ).all()
    text = str([(e.actor, e.before, e.after) for e in about])
    for secret in (PASSPORT, "ama.banda@example.org", "banda-strategy.pdf", "illness"):
        assert secret not in text, secret
    # The other participant is untouched.
    session.refresh(vera)
    assert (vera.given_name, vera.email) == ("Vera", "vera@example.org")


def test_erasing_twice_says_it_is_already_erased(
    session: Session, storage: LocalStorage, ama: Person
) -> None:
    arguments = {
        "application_id": ama.application.id or 0,
        "actor": "admin@example.org",
        "reason": "Request by e-mail, 1 March",
        "storage": storage,
        "now": NOW,
    }
    service.erase_application(session, **arguments)  # type: ignore[arg-type]
    with pytest.raises(service.AlreadyErased, match="already erased on 2025-03-01"):
        service.erase_application(session, **arguments)  # type: ignore[arg-type]
    assert (
        len(session.exec(select(AuditEntry).where(AuditEntry.action == "application.erased")).all())
        == 1
    )


def test_erasure_needs_a_written_reason(
    session: Session, storage: LocalStorage, ama: Person
) -> None:
    with pytest.raises(InvalidInput) as refused:
        service.erase_application(
            session,
            application_id=ama.application.id or 0,
            actor="admin@example.org",
            reason="  asked ",
            storage=storage,
        )
    assert "reason" in refused.value.fields
    session.refresh(ama.application)
    assert ama.application.erased_at is None


def test_erasure_is_refused_while_a_refund_is_owed_or_money_is_due(
    session: Session, storage: LocalStorage, ama: Person
) -> None:
    ama.refund.status = "owed"
    session.add(ama.refund)
    upcoming = open_edition(session, slug="diploma-2099")
    debtor = applications_service.decide(
        session,
        application_id=_submitted(
            session, upcoming, application_payload(email="debtor@example.org"), storage
        ).id
        or 0,
        decision="admit",
        actor=_admin(session),
        storage=storage,
        secret_key=FACTORY_SECRET,
        base_url="http://testserver",
        seller=SELLER,
    )
    session.commit()
    with pytest.raises(service.ErasureRefused) as owed:
        service.erase_application(
            session,
            application_id=ama.application.id or 0,
            actor="admin@example.org",
            reason="E-mail request of 1 March",
            storage=storage,
            now=NOW,
        )
    assert any(r.startswith("A refund of 100.00 EUR") and "IBAN" in r for r in owed.value.reasons)
    with pytest.raises(service.ErasureRefused) as due:
        service.erase_application(
            session,
            application_id=debtor.id or 0,
            actor="admin@example.org",
            reason="E-mail request of 1 March",
            storage=storage,
            now=NOW,
        )
    invoice_number = session.exec(
        select(Invoice.number)
        .join(InvoiceLine, col(InvoiceLine.invoice_id) == col(Invoice.id))
        .where(InvoiceLine.application_id == debtor.id)
    ).one()
    assert any(invoice_number in r and "to pay" in r for r in due.value.reasons)
    assert any("has not ended" in r for r in due.value.reasons)
    for application in (ama.application, debtor):
        session.refresh(application)
        assert application.erased_at is None
    assert storage.exists(ama.keys["cv"])
    assert session.get(Refund, ama.refund.id).iban == IBAN  # type: ignore[union-attr]


def _admin(session: Session):  # type: ignore[no-untyped-def]
    from tests.factories import _factory_admin

    return _factory_admin(session)


def test_erasing_an_applicant_still_in_the_running_withdraws_the_application(
    session: Session, storage: LocalStorage
) -> None:
    upcoming = open_edition(session, slug="diploma-2099")
    waiting = _submitted(session, upcoming, application_payload(email="w@example.org"), storage)
    outcome = service.erase_application(
        session,
        application_id=waiting.id or 0,
        actor="admin@example.org",
        reason="Asked in writing on 1 March",
        storage=storage,
    )
    session.refresh(waiting)
    assert outcome.withdrawn is True
    assert waiting.status == "withdrawn"
    pending = session.exec(
        select(OutboxMessage).where(OutboxMessage.application_id == waiting.id)
    ).all()
    assert pending and all(m.status == "cancelled" for m in pending)


# Retention


def _rejected(session: Session, edition: Edition, storage: LocalStorage, email: str) -> Application:
    application = _submitted(session, edition, application_payload(email=email), storage)
    key = f"cv/{secrets.token_hex(8)}.pdf"
    storage.put(key, pdf_bytes())
    application.cv_key = key
    application.cv_filename = "cv.pdf"
    application.status = "rejected"
    session.add(application)
    session.commit()
    return application


def test_after_the_period_never_admitted_applicants_are_erased_and_participants_stripped(
    session: Session, storage: LocalStorage, ended: Edition, ama: Person
) -> None:
    rejected = _rejected(session, ended, storage, "rejected@example.org")
    rejected_cv = rejected.cv_key or ""
    waitlisted = _submitted(session, ended, application_payload(email="wait@example.org"), storage)
    waitlisted.status = "waitlisted"
    session.add(waitlisted)
    session.commit()
    after = datetime(2025, 11, 23, 9, 0, tzinfo=UTC)  # 22 November 2024 + 365 days, Madrid

    outcome = service.erase_expired(session.get_bind(), storage=storage, now=after)  # type: ignore[arg-type]

    assert sorted(outcome.erased) == sorted([rejected.reference, waitlisted.reference])
    assert outcome.stripped == [ama.application.reference]
    for application in (rejected, waitlisted):
        session.refresh(application)
        assert application.full_name == "Erased applicant"
        assert application.erased_at == after
    assert not storage.exists(rejected_cv)
    a = ama.application
    session.refresh(a)
    assert a.erased_at is None and a.optional_data_erased_at == after
    assert (a.given_name, a.family_name, a.email) == ("Ama", "Banda", "ama.banda@example.org")
    assert (a.cv_key, a.passport_number, a.nationality, a.date_of_birth) == (None,) * 4
    assert (a.dietary, a.accessibility) == ("", "")
    assert not storage.exists(ama.keys["cv"]) and not storage.exists(ama.keys["visa_letter"])
    # What the certificate and the invoices need stays.
    assert storage.exists(ama.keys["final_work"])
    assert session.get(Refund, ama.refund.id).iban == IBAN  # type: ignore[union-attr]
    assert session.get(Invoice, ama.invoice.id).buyer["name"] == "Ama Banda"  # type: ignore[union-attr]
    # A second round (another worker, or the next one) finds nothing left to do.
    again = service.erase_expired(session.get_bind(), storage=storage, now=after)  # type: ignore[arg-type]
    assert (again.erased, again.stripped) == ([], [])
    actions = session.exec(
        select(AuditEntry.action).where(
            col(AuditEntry.action).in_(["application.erased", "application.optional_data_erased"])
        )
    ).all()
    assert sorted(actions) == [
        "application.erased",
        "application.erased",
        "application.optional_data_erased",
    ]


def test_before_the_period_is_over_nothing_changes(
    session: Session, storage: LocalStorage, ended: Edition, ama: Person
) -> None:
    rejected = _rejected(session, ended, storage, "rejected@example.org")
    before = datetime(2025, 11, 21, 22, 0, tzinfo=UTC)  # still 21 November 2025 in Madrid
    outcome = service.erase_expired(session.get_bind(), storage=storage, now=before)  # type: ignore[arg-type]
    assert (outcome.erased, outcome.stripped) == ([], [])
    session.refresh(rejected)
    session.refresh(ama.application)
    assert rejected.email == "rejected@example.org" and storage.exists(rejected.cv_key or "")
    assert ama.application.passport_number == PASSPORT
    assert ama.application.optional_data_erased_at is None


def test_the_period_follows_the_editions_setting(
    session: Session, storage: LocalStorage, ended: Edition
) -> None:
    rejected = _rejected(session, ended, storage, "rejected@example.org")
    ended.retention_days = 30
    session.add(ended)
    session.commit()
    assert service.retention_ends(ended) == date(2024, 12, 22)
    counts = service.retention_counts(session, ended)
    assert (counts.to_erase, counts.erased) == (1, 0)
    outcome = service.erase_expired(
        session.get_bind(),  # type: ignore[arg-type]
        storage=storage,
        now=datetime(2024, 12, 22, 12, tzinfo=UTC),
    )
    assert outcome.erased == [rejected.reference]
    assert service.retention_counts(session, ended).erased == 1


def test_a_lost_claim_leaves_the_row_to_the_worker_that_won(
    session: Session, storage: LocalStorage, ended: Edition
) -> None:
    rejected = _rejected(session, ended, storage, "rejected@example.org")
    column = col(Application.erased_at)
    assert service._claim(session, rejected.id or 0, column, NOW) is True
    assert service._claim(session, rejected.id or 0, column, NOW) is False
