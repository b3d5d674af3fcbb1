"""Submitting, deciding and withdrawing applications."""

import threading
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.db import writer_engine
from app.models import Application, AuditEntry, Edition, OutboxMessage, StaffUser
from app.platform.rows import insert_rows, new_row, reserve_id
from app.platform.storage import LocalStorage
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.registrations import applications as service
from tests.factories import make_organisation, open_edition, submission

SECRET = "test-secret-key-" + "x" * 32
BASE = "http://testserver"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def test_submission_stores_application_quote_receipt_and_audit_together(
    session: Session, storage: LocalStorage
) -> None:
    edition = open_edition(session)
    org = make_organisation(session, name="Ciudad X", country="MEX")
    submitted = submission(session, storage, edition, cv=PDF, organisation_id=org.id)
    application = submitted.application
    assert application.status == "submitted"
    assert application.reference.startswith("MD99-")
    assert application.quote["total"] == "1000.00"
    assert application.quoted_total == Decimal("1000.00")
    assert application.organisation_name == "Ciudad X"
    assert application.country == "MEX"
    assert storage.get(application.cv_key or "") == PDF
    mail = session.exec(select(OutboxMessage)).one()
    assert mail.kind == "application_received"
    assert mail.to_address == "ama.banda@lilongwe.example"
    assert application.reference in mail.body_text
    assert submitted.portal_url in mail.body_text
    audit = session.exec(
        select(AuditEntry).where(
            AuditEntry.action == "application.submitted",
            AuditEntry.entity_id == str(application.id),
        )
    )
    # Tests that commit for real may leave rows of an earlier application with the same id.
    mine = [e for e in audit.all() if (e.after or {}).get("reference") == application.reference]
    assert len(mine) == 1


def test_the_same_email_twice_is_a_conflict_whatever_its_case(
    session: Session, storage: LocalStorage
) -> None:
    edition = open_edition(session)
    submission(session, storage, edition)
    with pytest.raises(Conflict) as raised:
        submission(session, storage, edition, email="AMA.Banda@Lilongwe.example")
    assert "email" in raised.value.fields
    assert len(session.exec(select(Application)).all()) == 1


def test_a_closed_edition_takes_no_application(session: Session, storage: LocalStorage) -> None:
    edition = open_edition(session, applications_close="2021-01-01T00:00:00+00:00")
    with pytest.raises(service.ApplicationsClosed):
        submission(session, storage, edition)


@pytest.mark.parametrize(
    ("cv", "message"),
    [
        (b"MZ\x90\x00 this is an executable renamed to cv.pdf", "PDF file"),
        (b"%PDF-1.4\n" + b"0" * (5 * 1024 * 1024) + b"\n%%EOF", "at most 5 MB"),
    ],
)
def test_a_cv_that_is_not_a_small_pdf_is_refused_and_nothing_is_stored(
    session: Session, storage: LocalStorage, cv: bytes, message: str
) -> None:
    edition = open_edition(session)
    with pytest.raises(InvalidInput) as raised:
        submission(session, storage, edition, cv=cv)
    assert message in raised.value.fields["cv"]
    assert session.exec(select(Application)).all() == []
    assert not (storage.root / "cv").exists()


def test_a_group_code_joins_the_group_and_counts_towards_the_quote(
    session: Session, storage: LocalStorage
) -> None:
    edition = open_edition(session)
    org = make_organisation(session, name="Ciudad X", country="MEX")
    group, url = service.create_group(
        session,
        edition_slug=edition.slug,
        organisation_id=org.id or 0,
        contact_email="Lead@Ciudad.example",
        secret_key=SECRET,
        base_url=BASE,
    )
    assert url.startswith(f"{BASE}/groups/")
    first = submission(
        session, storage, edition, email="a@ciudad.example", group_code=group.code.lower()
    )
    second = submission(session, storage, edition, email="b@ciudad.example", group_code=group.code)
    assert first.application.group_id == group.id
    assert first.application.organisation_id == org.id
    assert first.application.quote["total"] == "1000.00"
    assert second.application.quote["total"] == "900.00"
    members = service.group_members(session, group.id or 0)
    assert [m.email for m in members] == ["a@ciudad.example", "b@ciudad.example"]


def test_an_unknown_group_code_is_a_field_error(session: Session, storage: LocalStorage) -> None:
    edition = open_edition(session)
    with pytest.raises(InvalidInput) as raised:
        submission(session, storage, edition, group_code="G-XXXX-XXXX")
    assert "group_code" in raised.value.fields


def test_portal_token_opens_exactly_its_application_until_revoked(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    one = submission(session, storage, edition, email="one@example.org")
    two = submission(session, storage, edition, email="two@example.org")
    token_one = one.portal_url.rsplit("/", 1)[-1]
    assert (
        service.application_for_token(session, token_one, secret_key=SECRET).id
        == one.application.id
    )
    assert (
        service.application_for_token(
            session, two.portal_url.rsplit("/", 1)[-1], secret_key=SECRET
        ).id
        == two.application.id
    )
    with pytest.raises(NotFound):
        service.application_for_token(session, token_one[:-2] + "xx", secret_key=SECRET)
    with pytest.raises(NotFound):
        service.application_for_token(session, token_one, secret_key="another-secret" * 4)
    service.revoke_portal_links(
        session,
        application_id=one.application.id or 0,
        actor=admin_user.email,
        secret_key=SECRET,
        base_url=BASE,
    )
    with pytest.raises(NotFound):
        service.application_for_token(session, token_one, secret_key=SECRET)


def test_resending_the_link_mails_only_an_address_that_applied(
    session: Session, storage: LocalStorage
) -> None:
    edition = open_edition(session)
    submission(session, storage, edition)
    service.resend_portal_link(
        session,
        edition=edition,
        email=" AMA.banda@lilongwe.example ",
        secret_key=SECRET,
        base_url=BASE,
    )
    service.resend_portal_link(
        session, edition=edition, email="nobody@example.org", secret_key=SECRET, base_url=BASE
    )
    kinds = [
        m.kind for m in session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
    ]
    assert kinds == ["application_received", "portal_link"]


def test_withdrawing_is_possible_only_while_submitted_or_waitlisted(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = submission(session, storage, edition).application
    service.withdraw(session, application=application)
    assert application.status == "withdrawn"
    with pytest.raises(Conflict):
        service.withdraw(session, application=application)


def decide(
    session: Session,
    storage: LocalStorage,
    admin: StaffUser,
    application_id: int,
    decision: str,
    **kw,
):  # type: ignore[no-untyped-def]
    return service.decide(
        session,
        application_id=application_id,
        decision=decision,
        actor=admin,  # type: ignore[arg-type]
        storage=storage,
        secret_key=SECRET,
        base_url=BASE,
        **kw,
    )


def test_admitting_a_paying_applicant_leaves_them_admitted_with_an_email(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    org = make_organisation(session, name="Ciudad X", country="MEX")
    application = submission(session, storage, edition, organisation_id=org.id).application
    decided = decide(session, storage, admin_user, application.id or 0, "admit", note="Welcome!")
    assert decided.status == "admitted"
    assert decided.decided_by == admin_user.email
    mail = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "decision_admit")).one()
    assert "Welcome!" in mail.body_text
    assert "invoice" in mail.body_text


def test_admitting_a_waived_participant_confirms_them_with_a_numbered_waiver(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    org = make_organisation(session)  # Lilongwe, low income, dues paid
    application = submission(session, storage, edition, organisation_id=org.id).application
    assert application.quote["total"] == "0.00"
    decided = decide(session, storage, admin_user, application.id or 0, "admit")
    assert decided.status == "confirmed"
    assert decided.fee_waiver_number is not None
    assert decided.fee_waiver_number.startswith("W")
    assert storage.get(decided.fee_waiver_key or "").startswith(b"%PDF")
    mail = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "decision_admit")).one()
    assert mail.attachments[0]["filename"] == f"fee-waiver-{decided.fee_waiver_number}.pdf"


def test_waiver_numbers_are_consecutive(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    org = make_organisation(session)
    numbers = []
    for index in range(3):
        application = submission(
            session, storage, edition, email=f"p{index}@x.org", organisation_id=org.id
        ).application
        numbers.append(
            decide(session, storage, admin_user, application.id or 0, "admit").fee_waiver_number
        )
    counters = [int(n.split("-")[1]) for n in numbers]  # type: ignore[union-attr]
    assert counters == [counters[0], counters[0] + 1, counters[0] + 2]


def test_a_stale_decision_loses_and_is_told(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = submission(session, storage, edition).application
    seen_version = application.version
    decide(
        session, storage, admin_user, application.id or 0, "waitlist", expected_version=seen_version
    )
    with pytest.raises(Conflict) as raised:
        decide(
            session,
            storage,
            admin_user,
            application.id or 0,
            "reject",
            expected_version=seen_version,
        )
    assert "waitlisted" in raised.value.message
    assert session.get(Application, application.id).status == "waitlisted"  # type: ignore[union-attr]


def test_impossible_transitions_are_refused(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = submission(session, storage, edition).application
    decide(session, storage, admin_user, application.id or 0, "reject")
    with pytest.raises(Conflict):
        decide(session, storage, admin_user, application.id or 0, "admit")


def test_capacity_counts_confirmed_and_admitted(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session, capacity=2)
    org = make_organisation(session)
    waived = submission(
        session, storage, edition, email="w@x.org", organisation_id=org.id
    ).application
    paying = submission(session, storage, edition, email="p@x.org").application
    decide(session, storage, admin_user, waived.id or 0, "admit")
    decide(session, storage, admin_user, paying.id or 0, "admit")
    seats = service.capacity(session, edition)
    assert (seats.confirmed, seats.admitted, seats.free) == (1, 1, 1)
    assert seats.over_if_admitting is True


_RACE_CLEANUP = (
    "DELETE FROM outbox_message WHERE application_id IN "
    "(SELECT id FROM application WHERE edition_id = :e)",
    "DELETE FROM audit_entry WHERE entity = 'application' AND entity_id IN "
    "(SELECT CAST(id AS VARCHAR) FROM application WHERE edition_id = :e)",
    "DELETE FROM application WHERE edition_id = :e",
    "DELETE FROM course_session WHERE module_id IN (SELECT id FROM module WHERE edition_id = :e)",
    "DELETE FROM module WHERE edition_id = :e",
    "DELETE FROM group_tier WHERE edition_id = :e",
    "DELETE FROM audit_entry WHERE entity = 'edition' AND entity_id = :slug",
    "DELETE FROM edition WHERE id = :e",
)


def test_a_double_clicked_submit_stores_one_application_and_answers_the_other_with_409(
    engine: Engine, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "files")
    slug = "double-click-race"
    with Session(engine, expire_on_commit=False) as session:
        edition_id = open_edition(session, slug=slug).id
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def click() -> None:
        barrier.wait()
        with Session(writer_engine(engine), expire_on_commit=False) as session:
            edition = session.get(Edition, edition_id)
            try:
                submitted = submission(session, storage, edition, cv=PDF)
                outcomes.append(f"stored:{submitted.application.reference}")
            except Conflict as exc:
                outcomes.append(f"conflict:{sorted(exc.fields)}")

    threads = [threading.Thread(target=click) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(o.split(":")[0] for o in outcomes) == ["conflict", "stored"]
        assert "conflict:['email']" in outcomes
        with Session(engine) as session:
            stored = session.exec(select(Application).where(Application.edition_id == edition_id))
            (application,) = stored.all()
            assert f"stored:{application.reference}" in outcomes
            receipts = session.exec(
                select(OutboxMessage).where(OutboxMessage.application_id == application.id)
            ).all()
            assert len(receipts) == 1
        # The refused click's CV is not left behind in storage.
        assert [p.name for p in (tmp_path / "files" / "cv").iterdir()] == [
            (application.cv_key or "").split("/")[-1]
        ]
    finally:
        with engine.begin() as connection:
            for statement in _RACE_CLEANUP:
                connection.execute(text(statement), {"e": edition_id, "slug": slug})


def test_a_reference_drawn_twice_is_drawn_again(
    session: Session, storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    edition = open_edition(session)
    first = submission(session, storage, edition).application
    draws = iter([first.reference.split("-")[1], first.reference.split("-")[1], "ZZZZZZ"])
    monkeypatch.setattr(service, "_random_code", lambda length: next(draws))
    second = submission(session, storage, edition, email="second@city.example").application
    assert second.reference == first.reference.split("-")[0] + "-ZZZZZZ"
    stored = session.exec(select(Application).where(Application.edition_id == edition.id))
    assert {a.reference for a in stored.all()} == {
        first.reference,
        second.reference,
    }


def test_a_submission_writes_its_rows_in_one_statement_on_postgresql(
    session: Session, storage: LocalStorage
) -> None:
    edition = open_edition(session)
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    bind = session.connection()
    event.listen(bind, "before_cursor_execute", count)
    try:
        submitted = submission(session, storage, edition)
    finally:
        event.remove(bind, "before_cursor_execute", count)
    inserts = [s for s in statements if "INSERT INTO" in s]
    postgresql = session.get_bind().dialect.name == "postgresql"
    # The application, its receipt and its audit entry: one statement on PostgreSQL (with
    # the id reserved beforehand, along with the income group), one each on SQLite.
    assert len(inserts) == (1 if postgresql else 3)
    assert sum(s.count("INSERT INTO") for s in inserts) == 3
    application = submitted.application
    mail = session.exec(
        select(OutboxMessage).where(OutboxMessage.application_id == application.id)
    ).one()
    assert submitted.portal_url in mail.body_text
    assert application.reference in mail.subject
    entry = session.exec(
        select(AuditEntry).where(
            AuditEntry.action == "application.submitted",
            AuditEntry.entity_id == str(application.id),
        )
    ).all()[-1]
    assert entry.after == {
        "reference": application.reference,
        "total": str(application.quoted_total),
        "group": 1,
    }
    assert session.get(Application, application.id) is application
    session.expire_all()
    stored = session.get(Application, application.id)
    assert stored is not None and stored.email == "ama.banda@lilongwe.example"
    assert stored.years_in_international_affairs == 4 and stored.cv_key is None


def test_rows_written_together_are_refused_together(
    session: Session, storage: LocalStorage
) -> None:
    edition = open_edition(session)
    first = submission(session, storage, edition).application
    mails_before = len(session.exec(select(OutboxMessage)).all())
    twin = new_row(
        Application,
        id=reserve_id(session, Application)[0],
        edition_id=edition.id or 0,
        reference="MD99-TWIN00",
        given_name="Ama",
        family_name="Banda",
        email=first.email,  # the same e-mail in the same edition: refused
        organisation_name="Lilongwe City Council",
        country="MWI",
        job_title="Officer",
        motivation="Twice.",
        consent_at=first.consent_at,
        quote={},
        quoted_total=Decimal("0.00"),
    )
    note = new_row(
        OutboxMessage,
        kind="note",
        to_address="someone@example.org",
        subject="A note",
        body_text="text",
        body_html="<p>html</p>",
        message_id="<twin@diplomat.local>",
    )
    nested = session.begin_nested()
    with pytest.raises(IntegrityError):
        insert_rows(session, twin, note)
    nested.rollback()
    assert len(session.exec(select(OutboxMessage)).all()) == mails_before
    assert (
        session.exec(select(Application).where(Application.reference == "MD99-TWIN00")).all() == []
    )
