"""Certificate eligibility: payment, attendance by module, final work, and overrides."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from app.models import (
    Application,
    AttendanceMark,
    AuditEntry,
    CourseSession,
    Edition,
    FinalWork,
    Invoice,
    InvoiceLine,
    Module,
    StaffUser,
)
from app.platform.storage import LocalStorage
from app.services.billing import invoices as invoicing
from app.services.billing import payments
from app.services.certificates import eligibility
from app.services.errors import Conflict, InvalidInput
from app.services.registrations import applications as applications_service
from app.services.teaching import final_work
from tests.factories import (
    FACTORY_BASE_URL,
    FACTORY_SECRET,
    _factory_admin,
    _submitted,
    admit,
    application_payload,
    make_edition,
    make_eligible_participant,
    make_organisation,
    open_edition,
    pdf_bytes,
    submit,
)
from tests.services.billing.test_invoicing import SELLER

NOW = datetime(2024, 12, 1, 12, 0, tzinfo=UTC)


def _session(kind: str, day: int, start: str, end: str, title: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "title": title,
        "starts_at": f"2024-11-{day}T{start}:00+01:00",
        "ends_at": f"2024-11-{day}T{end}:00+01:00",
    }


def schedule_payload() -> list[dict[str, Any]]:
    """Five lessons on 18-22 November 2024: a knowledge and a skills session each, and a
    site visit in Lesson 3."""
    modules = []
    for number in range(1, 6):
        day = 17 + number
        sessions = [
            _session("knowledge", day, "09:30", "12:30", f"Lesson {number} lecture"),
            _session("skills", day, "14:00", "16:00", f"Lesson {number} workshop"),
        ]
        if number == 3:
            sessions.append(_session("site_visit", day, "16:30", "18:30", "Port visit"))
        modules.append({"title": f"Module {number}", "sessions": sessions})
    return modules


@pytest.fixture
def edition(session: Session) -> Edition:
    """The 2nd edition, over, with a known schedule."""
    return make_edition(session, slug="diploma-2024-eligibility", modules=schedule_payload())


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def session_of(session: Session, edition: Edition, lesson: int, kind: str) -> CourseSession:
    return session.exec(
        select(CourseSession)
        .join(Module, Module.id == CourseSession.module_id)  # type: ignore[arg-type]
        .where(Module.edition_id == edition.id, Module.position == lesson)
        .where(CourseSession.kind == kind)
    ).one()


def mark(
    session: Session, application: Application, course_session: CourseSession, status: str | None
) -> None:
    row = session.exec(
        select(AttendanceMark).where(
            AttendanceMark.application_id == application.id,
            AttendanceMark.course_session_id == course_session.id,
        )
    ).one()
    if status is None:
        session.delete(row)
    else:
        row.status = status
        session.add(row)
    session.commit()


def work_of(session: Session, application: Application) -> FinalWork:
    return session.exec(select(FinalWork).where(FinalWork.application_id == application.id)).one()


def assess(session: Session, application: Application, status: str, note: str = "") -> None:
    final_work.assess_final_work(
        session,
        application_id=application.id or 0,
        status=status,
        note=note,
        actor="tutor@example.org",
        secret_key=FACTORY_SECRET,
        base_url=FACTORY_BASE_URL,
    )


def owing(
    session: Session, storage: LocalStorage, edition: Edition, paid: str, **overrides: Any
) -> tuple[Application, Invoice]:
    """An admitted participant who paid part of the invoice, attended and was accepted."""
    application = _submitted(session, edition, application_payload(**overrides), storage)
    application = applications_service.decide(
        session,
        application_id=application.id or 0,
        decision="admit",
        actor=_factory_admin(session),
        storage=storage,
        secret_key=FACTORY_SECRET,
        base_url=FACTORY_BASE_URL,
        seller=SELLER,
    )
    invoice = session.exec(
        select(Invoice)
        .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)  # type: ignore[arg-type]
        .where(InvoiceLine.application_id == application.id)
    ).one()
    payments.record_payment(
        session,
        invoice_number=invoice.number,
        amount=Decimal(paid),
        received_on=date(2024, 11, 1),
        method="bank_transfer",
        reference=invoice.number,
        actor="admin@example.org",
    )
    for module in edition.modules:
        for course_session in module.sessions:
            session.add(
                AttendanceMark(
                    course_session_id=course_session.id or 0,
                    application_id=application.id or 0,
                    status="present",
                    marked_by="tutor@example.org",
                )
            )
    session.commit()
    final_work.upload_final_work(
        session, application=application, data=pdf_bytes(), filename="w.pdf", storage=storage
    )
    assess(session, application, "accepted")
    session.refresh(application)
    return application, invoice


# The cases of the issue


def test_a_participant_present_at_every_session_paid_and_accepted_is_eligible(
    session: Session, edition: Edition
) -> None:
    application = make_eligible_participant(session, edition)
    assert eligibility.evaluate(session, application, now=NOW) == eligibility.Eligibility(
        eligible=True, reasons=[], overridden=False, override_reason=None
    )


def test_one_absence_is_named_by_lesson_kind_and_local_date(
    session: Session, edition: Edition
) -> None:
    application = make_eligible_participant(session, edition)
    mark(session, application, session_of(session, edition, 3, "site_visit"), "absent")
    result = eligibility.evaluate(session, application, now=NOW)
    assert not result.eligible
    assert result.reasons == ["absent from Lesson 3, site visit on 20 Nov"]


def test_an_excused_absence_is_not_attendance(session: Session, edition: Edition) -> None:
    application = make_eligible_participant(session, edition)
    mark(session, application, session_of(session, edition, 2, "skills"), "excused")
    result = eligibility.evaluate(session, application, now=NOW)
    assert not result.eligible
    assert result.reasons == ["excused from Lesson 2, skills session on 19 Nov"]


def test_a_rejected_final_work_gives_the_tutors_note(session: Session, edition: Edition) -> None:
    application = make_eligible_participant(session, edition)
    final_work_row = work_of(session, application)
    # Acceptance locks the file; the tutor may still change the assessment.
    assess(session, application, "rejected", "The indicators are missing.")
    session.refresh(final_work_row)
    result = eligibility.evaluate(session, application, now=NOW)
    assert result.reasons == ["final work was rejected: The indicators are missing."]
    assert not result.eligible


def test_final_work_not_uploaded_and_not_yet_assessed_are_reasons(
    session: Session, edition: Edition, storage: LocalStorage
) -> None:
    application = make_eligible_participant(session, edition)
    work = work_of(session, application)
    session.delete(work)
    session.commit()
    assert eligibility.evaluate(session, application, now=NOW).reasons == ["no final work uploaded"]
    final_work.upload_final_work(
        session, application=application, data=pdf_bytes(), filename="w.pdf", storage=storage
    )
    assert eligibility.evaluate(session, application, now=NOW).reasons == [
        "final work not yet assessed"
    ]
    assess(session, application, "presented")
    assert eligibility.evaluate(session, application, now=NOW).reasons == [
        "final work was presented but is not yet accepted"
    ]


def test_an_unpaid_balance_names_the_invoice_and_the_amount(
    session: Session, edition: Edition, storage: LocalStorage
) -> None:
    application, invoice = owing(session, storage, edition, "1050.00")
    result = eligibility.evaluate(session, application, now=NOW)
    assert result.reasons == [
        "registration is not confirmed (status: admitted)",
        f"invoice {invoice.number} has 450.00 EUR outstanding",
    ]
    assert not result.eligible
    # The same figure the portal shows as still to pay.
    assert payments.participant_balance(session, application.id or 0).due == Decimal("450.00")


def test_a_waived_participant_who_attended_and_was_accepted_is_eligible(
    session: Session, edition: Edition
) -> None:
    application = make_eligible_participant(session, edition, waived=True)
    assert application.fee_waiver_number is not None
    assert application.quoted_total == Decimal("0.00")
    result = eligibility.evaluate(session, application, now=NOW)
    assert result.eligible and result.reasons == []


def test_an_override_makes_eligible_keeps_the_reasons_and_is_audited(
    session: Session, edition: Edition, admin_user: StaffUser
) -> None:
    application = make_eligible_participant(session, edition)
    mark(session, application, session_of(session, edition, 1, "knowledge"), "absent")
    reason = "Absent for a documented family emergency; made up the lecture with a tutor."
    eligibility.grant_override(
        session, application_id=application.id or 0, reason=reason, actor=admin_user
    )
    result = eligibility.evaluate(session, application, now=NOW)
    assert result == eligibility.Eligibility(
        eligible=True,
        reasons=["absent from Lesson 1, knowledge session on 18 Nov"],
        overridden=True,
        override_reason=reason,
    )
    entry = session.exec(
        select(AuditEntry).where(AuditEntry.action == "eligibility.override_granted")
    ).one()
    assert entry.actor == "admin@example.org"
    assert entry.entity_id == str(application.id)
    assert entry.after is not None and entry.after["reason"] == reason

    eligibility.remove_override(
        session,
        application_id=application.id or 0,
        reason="Granted by mistake on the wrong participant.",
        actor=admin_user,
    )
    assert not eligibility.evaluate(session, application, now=NOW).eligible
    removed = session.exec(
        select(AuditEntry).where(AuditEntry.action == "eligibility.override_removed")
    ).one()
    assert removed.before is not None and removed.before["reason"] == reason


def test_an_override_needs_an_administrator_and_a_written_reason(
    session: Session, edition: Edition, tutor_user: StaffUser, admin_user: StaffUser
) -> None:
    application = make_eligible_participant(session, edition)
    with pytest.raises(Conflict):
        eligibility.grant_override(
            session,
            application_id=application.id or 0,
            reason="A long enough reason here.",
            actor=tutor_user,
        )
    with pytest.raises(InvalidInput) as short:
        eligibility.grant_override(
            session, application_id=application.id or 0, reason="  too   short ", actor=admin_user
        )
    assert "reason" in short.value.fields
    assert eligibility.override_of(session, application.id or 0) is None


# Time and the edition's rule


def test_an_unmarked_session_is_not_recorded_when_past_and_not_yet_held_when_future(
    session: Session, edition: Edition
) -> None:
    application = make_eligible_participant(session, edition)
    mark(session, application, session_of(session, edition, 5, "skills"), None)
    during = datetime(2024, 11, 22, 12, 0, tzinfo=UTC)
    assert eligibility.evaluate(session, application, now=during).reasons == [
        "Lesson 5, skills session on 22 Nov has not taken place yet"
    ]
    assert eligibility.evaluate(session, application, now=NOW).reasons == [
        "no attendance recorded for Lesson 5, skills session on 22 Nov"
    ]


def test_an_edition_rule_below_100_percent_asks_for_a_share_of_each_module_rounded_up(
    session: Session, edition: Edition
) -> None:
    edition.attendance_min_percent = 60
    session.add(edition)
    session.commit()
    application = make_eligible_participant(session, edition)
    # Lesson 3 has three sessions: 60 % is 1.8, so two are needed.
    mark(session, application, session_of(session, edition, 3, "site_visit"), "absent")
    assert eligibility.evaluate(session, application, now=NOW).eligible
    mark(session, application, session_of(session, edition, 3, "skills"), "excused")
    assert eligibility.evaluate(session, application, now=NOW).reasons == [
        "Lesson 3: present at 1 of 3 sessions, at least 2 needed (excused from Lesson 3, "
        "skills session on 20 Nov; absent from Lesson 3, site visit on 20 Nov)"
    ]
    assert [eligibility.required_sessions(n, 60) for n in (1, 2, 3, 5)] == [1, 2, 2, 3]
    assert eligibility.required_sessions(3, 100) == 3


def test_reasons_come_in_order_payment_attendance_by_lesson_then_final_work(
    session: Session, edition: Edition, storage: LocalStorage
) -> None:
    application, invoice = owing(session, storage, edition, "100.00")
    mark(session, application, session_of(session, edition, 4, "knowledge"), "absent")
    mark(session, application, session_of(session, edition, 2, "knowledge"), "excused")
    assess(session, application, "rejected", "Too short.")
    assert eligibility.evaluate(session, application, now=NOW).reasons == [
        "registration is not confirmed (status: admitted)",
        f"invoice {invoice.number} has 1,400.00 EUR outstanding",
        "excused from Lesson 2, knowledge session on 19 Nov",
        "absent from Lesson 4, knowledge session on 21 Nov",
        "final work was rejected: Too short.",
    ]


# The whole edition at once


@contextmanager
def counted_queries(session: Session) -> Iterator[list[str]]:
    statements: list[str] = []
    bind = session.connection()

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(bind, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(bind, "before_cursor_execute", count)


def test_the_edition_answer_equals_each_participants_in_a_fixed_number_of_queries(
    session: Session, edition: Edition, storage: LocalStorage
) -> None:
    first = make_eligible_participant(session, edition)
    second = make_eligible_participant(session, edition, waived=True)
    session.expire_all()
    with counted_queries(session) as few:
        small = eligibility.evaluate_edition(session, edition, now=NOW)
    for index in range(4):
        more = make_eligible_participant(session, edition, given_name=f"P{index}")
        mark(session, more, session_of(session, edition, 1 + index, "skills"), "absent")
    owing(session, storage, edition, "10.00", email="owing@example.org")
    assess(session, second, "rejected", "Please add the sources.")
    session.expire_all()
    with counted_queries(session) as many:
        answers = eligibility.evaluate_edition(session, edition, now=NOW)
    assert len(small) == 2 and len(answers) == 6
    assert len(many) == len(few) <= 10
    for application_id, answer in answers.items():
        application = session.get(Application, application_id)
        assert application is not None
        assert answer == eligibility.evaluate(session, application, now=NOW)
    assert answers[first.id or 0].eligible
    assert answers[second.id or 0].reasons == ["final work was rejected: Please add the sources."]
    assert sum(not a.eligible for a in answers.values()) == 5


def test_the_edition_answer_leaves_out_applicants_who_are_not_confirmed(
    session: Session, storage: LocalStorage
) -> None:
    edition = open_edition(session)
    confirmed = make_eligible_participant(session, edition)
    waiting, _ = owing(session, storage, edition, "10.00", email="waiting@example.org")
    answers = eligibility.evaluate_edition(session, edition)
    assert set(answers) == {confirmed.id}
    # Attendance marked present counts even before the session took place.
    assert answers[confirmed.id or 0].eligible
    assert waiting.id not in answers


def test_a_member_of_a_part_paid_group_invoice_owes_their_share_as_the_portal_says(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    organisation = make_organisation(session, name="Ciudad X", country="MEX")
    group, _ = applications_service.create_group(
        session,
        edition_slug=edition.slug,
        organisation_id=organisation.id or 0,
        contact_email="lead@ciudad.example",
        secret_key=FACTORY_SECRET,
        base_url=FACTORY_BASE_URL,
    )
    members = []
    for index in range(3):
        member = submit(
            session, storage, edition, email=f"m{index}@ciudad.example", group_code=group.code
        )
        members.append(admit(session, storage, admin_user, member))
    invoice = invoicing.issue_group_invoice(
        session,
        edition=edition,
        code=group.code,
        seller=SELLER,
        actor=admin_user.email,
        storage=storage,
    )
    session.commit()
    payments.record_payment(
        session,
        invoice_number=invoice.number,
        amount=Decimal("900.00"),
        received_on=date(2024, 11, 1),
        method="bank_transfer",
        reference=invoice.number,
        actor=admin_user.email,
    )
    answers = {m.id: eligibility.evaluate(session, m, now=NOW) for m in members}
    for member in members:
        due = payments.participant_balance(session, member.id or 0).due
        assert due == Decimal("600.00")
        assert answers[member.id].reasons[:2] == [
            "registration is not confirmed (status: admitted)",
            f"invoice {invoice.number} has 600.00 EUR outstanding",
        ]
