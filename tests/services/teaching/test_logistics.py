"""Logistics for the course week: validation, who may answer, visa letters and their erasure."""

import json
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import Session, select

from app.models import Application, AuditEntry, Edition, OutboxMessage, StaffUser
from app.platform.pdf import StaticOnlyFetcher
from app.platform.storage import LocalStorage
from app.services.errors import Conflict, InvalidInput
from app.services.registrations import applications as applications_service
from app.services.teaching import logistics as service
from tests.factories import application_payload, open_edition

SECRET = "test-secret-key-" + "x" * 32
BASE = "http://testserver"
TODAY = date(2025, 6, 1)
ORGANISATION = "Metropolis (World Association of the Major Metropolises)"
ADDRESS = "Avinyó, 15\n08002 Barcelona\nSpain"


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def pdf_text(data: bytes) -> str:
    """The text of a PDF as pdftotext reads it, with runs of whitespace made single spaces."""
    result = subprocess.run(
        ["/usr/bin/pdftotext", "-enc", "UTF-8", "-", "-"],
        input=data,
        capture_output=True,
        check=True,
    )
    return " ".join(result.stdout.decode("utf-8").split())


def admitted(
    session: Session,
    storage: LocalStorage,
    admin: StaffUser,
    edition: Edition,
    *,
    now: datetime | None = None,
    **overrides: Any,
) -> Application:
    """An application submitted and admitted through the services."""
    submitted = applications_service.submit_application(
        session,
        edition_slug=edition.slug,
        data=applications_service.ApplicationIn.model_validate(application_payload(**overrides)),
        cv=None,
        cv_filename=None,
        storage=storage,
        secret_key=SECRET,
        base_url=BASE,
        now=now,
    )
    return applications_service.decide(
        session,
        application_id=submitted.application.id or 0,
        decision="admit",
        actor=admin,
        storage=storage,
        secret_key=SECRET,
        base_url=BASE,
        now=now,
    )


def answers(**overrides: Any) -> dict[str, Any]:
    """A complete logistics form for the open test edition (16-20 November 2099)."""
    values: dict[str, Any] = {
        "certificate_name": "Ama Chisomo Banda",
        "dietary": "Vegetarian",
        "accessibility": "",
        "arrival_date": "2099-11-15",
        "departure_date": "2099-11-21",
        "visa_letter_needed": True,
        "nationality": "Malawi",
        "passport_number": "ma 123 4567",
        "date_of_birth": "1985-04-23",
    }
    values.update(overrides)
    return values


def parse(edition: Edition, **overrides: Any) -> service.LogisticsIn:
    return service.LogisticsIn.model_validate(
        answers(**overrides), context=service.validation_context(edition, today=TODAY)
    )


def save(session: Session, application: Application, edition: Edition, **overrides: Any) -> None:
    service.save_logistics(
        session,
        application=application,
        data=parse(edition, **overrides),
        actor=application.email,
        now=datetime(2099, 6, 1, 10, tzinfo=UTC),
    )


def issue(session: Session, application: Application, storage: LocalStorage, **kwargs: Any):  # type: ignore[no-untyped-def]
    return service.issue_visa_letter(
        session,
        application_id=application.id or 0,
        actor="admin@example.org",
        storage=storage,
        organisation_name=ORGANISATION,
        organisation_address=ADDRESS,
        secret_key=SECRET,
        base_url=BASE,
        **kwargs,
    )


def test_answers_are_stored_with_the_time_and_the_nationality_as_a_code(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admitted(session, storage, admin_user, edition)
    save(session, application, edition)
    session.refresh(application)
    assert application.certificate_name == "Ama Chisomo Banda"
    assert application.dietary == "Vegetarian"
    assert application.arrival_date == date(2099, 11, 15)
    assert application.departure_date == date(2099, 11, 21)
    assert application.nationality == "MWI"
    assert application.passport_number == "MA1234567"
    assert application.date_of_birth == date(1985, 4, 23)
    assert application.logistics_updated_at == datetime(2099, 6, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"certificate_name": "A"}, "certificate_name", "2 to 200 characters"),
        ({"certificate_name": "x" * 201}, "certificate_name", "2 to 200 characters"),
        ({"dietary": "x" * 501}, "dietary", "dietary requirements in at most 500"),
        ({"accessibility": "x" * 501}, "accessibility", "accessibility needs in at most 500"),
        ({"arrival_date": "15/11/2099"}, "arrival_date", "year-month-day"),
        ({"arrival_date": "2099-11-01"}, "arrival_date", "between 2 November 2099 and"),
        ({"departure_date": "2099-12-05"}, "departure_date", "and 4 December 2099"),
        (
            {"arrival_date": "2099-11-18", "departure_date": "2099-11-17"},
            "departure_date",
            "cannot be before your arrival",
        ),
        ({"nationality": ""}, "nationality", "Choose the nationality"),
        ({"nationality": "Atlantis"}, "nationality", "not a known country"),
        ({"passport_number": "AB1"}, "passport_number", "5 to 20 letters and digits"),
        ({"passport_number": "AB12#456"}, "passport_number", "5 to 20 letters and digits"),
        ({"passport_number": "A" * 21}, "passport_number", "5 to 20 letters and digits"),
        ({"date_of_birth": ""}, "date_of_birth", "date of birth as shown in your passport"),
        ({"date_of_birth": "2025-06-02"}, "date_of_birth", "must be in the past"),
        ({"date_of_birth": "2015-01-01"}, "date_of_birth", "16 to 100 years old"),
        ({"date_of_birth": "1990-02-30"}, "date_of_birth", "year-month-day"),
    ],
)
def test_each_field_has_a_message_a_participant_can_act_on(
    session: Session, overrides: dict[str, Any], field: str, message: str
) -> None:
    edition = open_edition(session)
    with pytest.raises(ValidationError) as raised:
        parse(edition, **overrides)
    errors = {str(e["loc"][0]): e["msg"] for e in raised.value.errors()}
    assert list(errors) == [field]
    assert message in errors[field]


def test_visa_details_are_dropped_when_no_letter_is_needed(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    data = parse(edition, visa_letter_needed=False, passport_number="bad!", date_of_birth="x")
    assert (data.nationality, data.passport_number, data.date_of_birth) == (None, None, None)
    application = admitted(session, storage, admin_user, edition)
    save(session, application, edition)
    save(session, application, edition, visa_letter_needed=False)
    session.refresh(application)
    assert application.visa_letter_needed is False
    assert application.nationality is None
    assert application.passport_number is None
    assert application.date_of_birth is None


@pytest.mark.parametrize(
    "status", ["submitted", "waitlisted", "rejected", "cancelled", "withdrawn"]
)
def test_only_admitted_or_confirmed_participants_may_give_logistics(
    session: Session, storage: LocalStorage, admin_user: StaffUser, status: str
) -> None:
    edition = open_edition(session)
    application = admitted(session, storage, admin_user, edition)
    application.status = status
    session.add(application)
    session.commit()
    with pytest.raises(service.NotAdmitted) as raised:
        save(session, application, edition)
    assert "once you are admitted" in raised.value.message
    session.refresh(application)
    assert application.certificate_name == ""
    assert application.logistics_updated_at is None


def test_a_confirmed_participant_may_give_logistics(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admitted(session, storage, admin_user, edition)
    application.status = "confirmed"
    session.add(application)
    session.commit()
    save(session, application, edition)
    assert application.logistics_updated_at is not None


def test_the_audit_log_never_holds_the_passport_number_or_date_of_birth(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admitted(session, storage, admin_user, edition)
    save(session, application, edition)
    save(session, application, edition, passport_number="ZX9876543", date_of_birth="1984-01-02")
    entries = session.exec(
        select(AuditEntry).where(AuditEntry.action == "application.logistics_saved")
    ).all()
    assert len(entries) == 2
    logged = json.dumps([[e.before, e.after] for e in entries])
    for secret in ("MA1234567", "ZX9876543", "1985-04-23", "1984-01-02", "23 April"):
        assert secret not in logged
    assert entries[0].after is not None
    assert entries[0].after["visa_details"] == "visa details given"
    assert entries[0].after["certificate_name"] == "Ama Chisomo Banda"
    assert entries[1].after == {"visa_details": "visa details changed"}


def test_the_service_refuses_travel_dates_outside_the_window_even_unchecked(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admitted(session, storage, admin_user, edition)
    # Validated without the edition's window: the service must still hold the rule.
    data = service.LogisticsIn.model_validate(answers(arrival_date="2099-10-01"))
    with pytest.raises(InvalidInput) as raised:
        service.save_logistics(session, application=application, data=data, actor="x")
    assert "between 2 November 2099 and 4 December 2099" in raised.value.fields["arrival_date"]


def test_a_passport_number_on_file_is_kept_when_left_empty(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admitted(session, storage, admin_user, edition)
    save(session, application, edition)
    data = service.LogisticsIn.model_validate(
        answers(passport_number="", dietary="Vegan"),
        context=service.validation_context(edition, today=TODAY, passport_on_file=True),
    )
    service.save_logistics(session, application=application, data=data, actor="x")
    session.refresh(application)
    assert application.passport_number == "MA1234567"
    assert application.dietary == "Vegan"


def test_the_participant_sees_only_the_last_three_characters_of_the_passport() -> None:
    assert service.mask_passport("MA1234567") == "••••••567"
    assert service.mask_passport(None) == ""


def test_a_visa_letter_states_name_passport_and_course_and_the_participant_is_told(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admitted(session, storage, admin_user, edition)
    save(session, application, edition)
    issue(session, application, storage)
    assert application.visa_letter_key is not None
    assert application.visa_letter_key.startswith("visa-letters/")
    assert application.visa_letter_issued_at is not None
    text = pdf_text(storage.get(application.visa_letter_key))
    assert "Ama Chisomo Banda" in text
    assert "MA1234567" in text
    assert "Malawi" in text
    assert "23 April 1985" in text
    assert edition.title in text
    assert "To the consular authorities concerned" in text
    assert "does not cover" in text
    assert application.reference in text
    mail = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "visa_letter_ready")
    ).one()
    assert mail.to_address == application.email
    assert f"{BASE}/portal/" in mail.body_text
    assert "MA1234567" not in mail.body_text
    audit = session.exec(
        select(AuditEntry).where(AuditEntry.action == "application.visa_letter_issued")
    ).one()
    assert "MA1234567" not in json.dumps(audit.after)


def test_markup_in_a_name_is_printed_as_text_and_nothing_is_fetched(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admitted(session, storage, admin_user, edition)
    name = '<img src="file:///etc/passwd">'
    save(session, application, edition, certificate_name=name)
    fetcher = StaticOnlyFetcher()
    issue(session, application, storage, fetcher=fetcher)
    assert fetcher.refused == []
    text = pdf_text(storage.get(application.visa_letter_key or ""))
    assert name in text
    assert "root:" not in text


def test_issuing_again_replaces_the_stored_letter(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admitted(session, storage, admin_user, edition)
    save(session, application, edition)
    issue(session, application, storage)
    first = application.visa_letter_key or ""
    save(session, application, edition, passport_number="ZX9876543")
    issue(session, application, storage)
    second = application.visa_letter_key or ""
    assert second != first
    assert not storage.exists(first)
    text = pdf_text(storage.get(second))
    assert "ZX9876543" in text
    assert "MA1234567" not in text


def test_no_letter_is_issued_without_a_request_for_one(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admitted(session, storage, admin_user, edition)
    save(session, application, edition, visa_letter_needed=False)
    with pytest.raises(service.VisaLetterNotPossible) as raised:
        issue(session, application, storage)
    assert "did not ask for a visa letter" in raised.value.message
    assert application.visa_letter_key is None
    assert not (storage.root / "visa-letters").exists()


def test_unticking_the_visa_box_withdraws_an_issued_letter(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admitted(session, storage, admin_user, edition)
    save(session, application, edition)
    issue(session, application, storage)
    key = application.visa_letter_key or ""
    service.save_logistics(
        session,
        application=application,
        data=parse(edition, visa_letter_needed=False),
        actor=application.email,
        storage=storage,
    )
    assert application.visa_letter_key is None
    assert not storage.exists(key)


def past_edition(session: Session) -> Edition:
    return open_edition(
        session,
        slug="diploma-past",
        start_date="2020-11-16",
        end_date="2020-11-20",
        applications_open="2020-01-01T00:00:00+00:00",
    )


def test_erasure_clears_visa_details_and_letters_only_of_ended_editions(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    ended = past_edition(session)
    running = open_edition(session)
    then = datetime(2020, 6, 1, tzinfo=UTC)
    old = admitted(session, storage, admin_user, ended, now=then, email="old@example.org")
    service.save_logistics(
        session,
        application=old,
        data=service.LogisticsIn.model_validate(
            answers(arrival_date="2020-11-15", departure_date="2020-11-21"),
            context=service.validation_context(ended, today=then.date()),
        ),
        actor=old.email,
    )
    issue(session, old, storage, now=then)
    current = admitted(session, storage, admin_user, running, email="new@example.org")
    save(session, current, running)
    issue(session, current, storage)
    old_key, current_key = old.visa_letter_key or "", current.visa_letter_key or ""

    erased = service.erase_visa_details(session, storage=storage, now=datetime.now(UTC))

    assert erased == 1
    session.refresh(old)
    session.refresh(current)
    assert (old.nationality, old.passport_number, old.date_of_birth) == (None, None, None)
    assert old.visa_letter_key is None
    assert not storage.exists(old_key)
    assert current.passport_number == "MA1234567"
    assert storage.exists(current_key)
    entries = session.exec(
        select(AuditEntry).where(AuditEntry.action == "edition.visa_details_erased")
    ).all()
    assert [(e.entity_id, e.after) for e in entries] == [
        (str(ended.id), {"applications": 1, "letters_deleted": 1})
    ]
    assert service.erase_visa_details(session, storage=storage, now=datetime.now(UTC)) == 0


def test_erasing_an_edition_that_has_not_ended_is_refused(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admitted(session, storage, admin_user, edition)
    save(session, application, edition)
    with pytest.raises(Conflict):
        service.erase_visa_details(
            session, storage=storage, edition_id=edition.id, now=datetime.now(UTC)
        )
    # The day after the last course day in Barcelona, it goes.
    after = datetime(2099, 11, 20, 23, 30, tzinfo=UTC)  # 21 November, 00:30 in Madrid
    erased = service.erase_visa_details(session, storage=storage, edition_id=edition.id, now=after)
    assert erased == 1
    assert application.passport_number is None


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_csv_cell_that_a_spreadsheet_would_run_is_made_text(start: str) -> None:
    assert service.csv_cell(f"{start}SUM(A1)") == f"'{start}SUM(A1)"
    assert service.csv_cell("Vegetarian") == "Vegetarian"


def test_the_logistics_csv_has_needs_and_dates_but_no_visa_details(
    session: Session, storage: LocalStorage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    application = admitted(session, storage, admin_user, edition)
    save(session, application, edition, dietary='=HYPERLINK("http://evil.example","x")')
    body = service.logistics_csv(service.logistics_list(session, edition))
    assert body.splitlines()[0].startswith("Reference,Name on certificate,")
    assert "'=HYPERLINK" in body
    assert "2099-11-15" in body
    for secret in ("MA1234567", "1985-04-23", "MWI", "Malawi"):
        assert secret not in body
