"""The administrators' review of applications: list, detail, decisions, exports, outbox."""

import csv
import io
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlalchemy import event, insert
from sqlmodel import Session, col, select

from app.models import (
    Application,
    AuditEntry,
    Edition,
    Organisation,
    OutboxMessage,
    StaffUser,
)
from app.platform.storage import Storage
from app.services.errors import NotFound
from app.services.registrations import applications as service
from app.services.registrations import review as review_service
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD
from tests.factories import application_payload, make_organisation, open_edition, submit
from tests.routers.office.test_auth import csrf_from, login

SECRET = "test-secret-key-" + "x" * 32
BASE = "http://testserver"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
LIST = "/admin/applications"


@pytest.fixture
def admin(client: TestClient, admin_user: StaffUser) -> TestClient:
    """The client, logged in as an administrator."""
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    return client


@pytest.fixture
def storage(client: TestClient) -> Storage:
    """The storage of the application under test, so its pages find what tests store."""
    found: Storage = client.app.state.storage  # type: ignore[attr-defined]
    return found


def decide(
    session: Session,
    storage: Storage,
    actor: StaffUser,
    application: Application,
    decision: str,
    **kw: Any,
) -> Application:
    return service.decide(
        session,
        application_id=application.id or 0,
        decision=decision,  # type: ignore[arg-type]
        actor=actor,
        storage=storage,
        secret_key=SECRET,
        base_url=BASE,
        **kw,
    )


def references(html: str) -> list[str]:
    """The references in the order the table lists them."""
    return re.findall(r'class="code-link" href="/admin/applications/\d+">([^<]+)</a>', html)


def token(client: TestClient, path: str = LIST) -> str:
    return csrf_from(client.get(path).text)


def flash(html: str) -> str:
    match = re.search(r'<p class="flash" role="status">([^<]*)</p>', html)
    assert match, "no flash message on the page"
    return unescape(match.group(1))


def hidden_fields(html: str) -> list[tuple[str, str]]:
    return [
        (name, unescape(value))
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)
    ]


def bulk_insert(
    session: Session,
    edition: Edition,
    count: int,
    *,
    start: int = 0,
    organisations: Sequence[Organisation] = (),
) -> None:
    """Many applications in one Core insert, as fast as the database takes them."""
    now = datetime(2099, 1, 1, tzinfo=UTC)
    rows = []
    for index in range(start, start + count):
        organisation = organisations[index % len(organisations)] if organisations else None
        rows.append(
            Application(
                edition_id=edition.id or 0,
                reference=f"MD99-B{index:07d}",
                given_name=f"Given{index}",
                family_name=f"Family{index}",
                email=f"bulk{index}@example.org",
                organisation_id=organisation.id if organisation else None,
                organisation_name=organisation.name if organisation else "Somewhere",
                country=organisation.country if organisation else "FRA",
                job_title="Officer",
                motivation="m" * 60,
                consent_at=now,
                quote={"currency": "EUR", "lines": [], "total": "1500.00"},
                quoted_total=Decimal("1500.00"),
                submitted_at=now + timedelta(seconds=index),
            ).model_dump(exclude={"id"})
        )
    session.execute(insert(Application), rows)
    session.commit()


# Access


def _paths(application_id: int, message_id: int) -> tuple[list[str], list[str]]:
    gets = [
        LIST,
        f"{LIST}/waiting-list",
        f"{LIST}/export.csv",
        f"{LIST}/export.xlsx",
        f"{LIST}/{application_id}",
        f"{LIST}/{application_id}/cv",
        f"{LIST}/{application_id}/fee-waiver.pdf",
        "/admin/outbox",
        f"/admin/outbox/{message_id}",
        f"/admin/outbox/{message_id}/body.html",
    ]
    posts = [
        f"{LIST}/bulk-decision",
        f"{LIST}/{application_id}/decision",
        f"{LIST}/{application_id}/notes",
        f"{LIST}/{application_id}/new-link",
        f"/admin/outbox/{message_id}/retry",
    ]
    return gets, posts


@pytest.fixture
def one_application(session: Session, storage: Storage) -> tuple[Application, OutboxMessage]:
    edition = open_edition(session)
    application = submit(session, storage, edition, cv=PDF, cv_filename="my cv.pdf")
    message = session.exec(select(OutboxMessage)).one()
    return application, message


def test_every_review_page_sends_anonymous_visitors_to_the_login(
    client: TestClient, one_application: tuple[Application, OutboxMessage]
) -> None:
    application, message = one_application
    gets, posts = _paths(application.id or 0, message.id or 0)
    csrf = csrf_from(client.get("/admin/login").text)
    for path in gets:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next="), path
    for path in posts:
        response = client.post(
            path, data={"csrf_token": csrf, "version": "1"}, follow_redirects=False
        )
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login"), path


def test_every_review_page_refuses_tutors(
    client: TestClient,
    tutor_user: StaffUser,
    session: Session,
    one_application: tuple[Application, OutboxMessage],
) -> None:
    application, message = one_application
    assert login(client, "tutor@example.org", TUTOR_PASSWORD).status_code == 303
    csrf = token(client, "/admin")
    gets, posts = _paths(application.id or 0, message.id or 0)
    for path in gets:
        assert client.get(path).status_code == 403, path
    for path in posts:
        response = client.post(
            path,
            data={"csrf_token": csrf, "version": "1", "decision": "reject", "selected": "1"},
        )
        assert response.status_code == 403, path
    session.refresh(application)
    assert application.status == "submitted"


def test_a_decision_without_the_csrf_token_is_refused_and_changes_nothing(
    admin: TestClient, session: Session, one_application: tuple[Application, OutboxMessage]
) -> None:
    application, _ = one_application
    response = admin.post(
        f"{LIST}/{application.id}/decision", data={"version": "1", "decision": "reject"}
    )
    assert response.status_code == 403
    assert "did not come from this site" in response.text
    session.refresh(application)
    assert application.status == "submitted"


def test_the_nav_links_to_applications_and_outbox_for_admins(admin: TestClient) -> None:
    page = admin.get("/admin").text
    assert 'href="/admin/applications"' in page
    assert 'href="/admin/outbox"' in page


# The list


@pytest.fixture
def applicants(session: Session, storage: Storage, admin_user: StaffUser) -> dict[str, Any]:
    """Five applications: a paid-up member in a group, a member behind, non-members."""
    edition = open_edition(session)
    paid = make_organisation(session, name="Ciudad X", country="MEX", dues_paid_through=2023)
    behind = make_organisation(session, name="Cidade Y", country="BRA", dues_paid_through=2019)
    group, _ = service.create_group(
        session,
        edition_slug=edition.slug,
        organisation_id=paid.id or 0,
        contact_email="lead@ciudad.example",
        secret_key=SECRET,
        base_url=BASE,
    )
    made = {
        "ana": submit(
            session,
            storage,
            edition,
            given_name="Ana",
            family_name="Zapata",
            email="ana@x.org",
            group_code=group.code,
        ),
        "bruno": submit(
            session,
            storage,
            edition,
            given_name="Bruno",
            family_name="Almeida",
            email="bruno@y.org",
            organisation_id=behind.id,
        ),
        "chloe": submit(
            session,
            storage,
            edition,
            given_name="Chloé",
            family_name="Martin",
            email="chloe@z.org",
            country="FRA",
            organisation_name="Ville de Z",
        ),
        "dara": submit(
            session,
            storage,
            edition,
            given_name="Dara",
            family_name="Okafor",
            email="dara@w.org",
            country="NGA",
            organisation_name="Lagos State",
        ),
    }
    decide(session, storage, admin_user, made["dara"], "waitlist")
    return {"edition": edition, "group": group, "paid": paid, "behind": behind, **made}


def refs(applicants: dict[str, Any], *names: str) -> list[str]:
    return [applicants[n].reference for n in names]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=waitlisted", ["dara"]),
        ("status=submitted", ["ana", "bruno", "chloe"]),
        ("country=FRA", ["chloe"]),
        ("country=bra", ["bruno"]),
        ("member=member", ["ana"]),
        ("member=behind", ["bruno"]),
        ("member=non_member", ["chloe", "dara"]),
        ("group=none", ["bruno", "chloe", "dara"]),
        ("group=any", ["ana"]),
        ("q=okaf", ["dara"]),
        ("q=VILLE", ["chloe"]),
        ("q=y.org", ["bruno"]),
    ],
)
def test_the_list_filters_by_status_country_member_status_group_and_search(
    admin: TestClient, applicants: dict[str, Any], query: str, expected: list[str]
) -> None:
    response = admin.get(f"{LIST}?edition=diploma-open&{query}")
    assert response.status_code == 200
    assert references(response.text) == refs(applicants, *expected)


def test_the_filter_menus_offer_what_occurs_in_the_edition_and_nothing_else(
    session: Session, storage: Storage, applicants: dict[str, Any]
) -> None:
    edition = applicants["edition"]
    other = open_edition(session, slug="another-edition")
    elsewhere = make_organisation(session, name="Stadt W", country="DEU")
    submit(session, storage, other, email="w@w.org", organisation_id=elsewhere.id)
    submit(session, storage, other, email="v@v.org", country="KEN", organisation_name="Nairobi")

    choices = review_service.filter_choices(session, edition.id)

    stored = session.exec(select(Application).where(Application.edition_id == edition.id)).all()
    assert sorted(code for code, _ in choices.countries) == sorted({a.country for a in stored})
    assert [name for _, name in choices.countries] == ["Brazil", "France", "Mexico", "Nigeria"]
    assert choices.organisations == [
        (applicants["behind"].id, "Cidade Y (BRA)"),
        (applicants["paid"].id, "Ciudad X (MEX)"),
    ]
    assert choices.groups == [(applicants["group"].code, "Ciudad X")]
    everywhere = review_service.filter_choices(session, None)
    assert {"DEU", "KEN"} <= {code for code, _ in everywhere.countries}
    assert (elsewhere.id, "Stadt W (DEU)") in everywhere.organisations


def test_the_list_filters_by_group_code_and_organisation(
    admin: TestClient, applicants: dict[str, Any]
) -> None:
    by_code = admin.get(f"{LIST}?group={applicants['group'].code.lower()}").text
    assert references(by_code) == refs(applicants, "ana")
    by_organisation = admin.get(f"{LIST}?organisation={applicants['behind'].id}").text
    assert references(by_organisation) == refs(applicants, "bruno")


def test_the_list_shows_organisation_member_status_group_and_total_per_row(
    admin: TestClient, applicants: dict[str, Any]
) -> None:
    page = admin.get(LIST).text
    row = page[page.index(applicants["ana"].reference) :].split("</tr>")[0]
    assert "Ciudad X" in row
    assert 'title="Member, dues paid">paid-up<' in row
    assert applicants["group"].code in row
    assert "1,000.00" in row
    behind_row = page[page.index(applicants["bruno"].reference) :].split("</tr>")[0]
    assert 'title="Member behind on dues">behind<' in behind_row


def test_the_list_sorts_by_a_column_and_marks_it_for_screen_readers(
    admin: TestClient, applicants: dict[str, Any]
) -> None:
    by_name = admin.get(f"{LIST}?sort=name").text
    assert references(by_name) == refs(applicants, "bruno", "chloe", "dara", "ana")
    assert 'aria-sort="ascending"' in by_name
    reverse = admin.get(f"{LIST}?sort=-name").text
    assert references(reverse) == refs(applicants, "ana", "dara", "chloe", "bruno")
    assert 'aria-sort="descending"' in reverse
    by_country = admin.get(f"{LIST}?sort=country").text
    assert references(by_country) == refs(applicants, "bruno", "chloe", "ana", "dara")


def test_the_status_chips_count_each_status(admin: TestClient, applicants: dict[str, Any]) -> None:
    page = admin.get(LIST).text
    chips = re.findall(
        r'<a class="chip[^"]*" href="[^"]*"[^>]*>(\w+) <span class="chip-count">(\d+)', page
    )
    assert chips == [("All", "4"), ("Submitted", "3"), ("Waitlisted", "1")]


def test_the_capacity_bar_says_confirmed_admitted_and_seats(
    admin: TestClient, session: Session, storage: Storage, admin_user: StaffUser
) -> None:
    edition = open_edition(session, capacity=4)
    waived_org = make_organisation(session)  # low income, dues paid: confirmed at admission
    waived = submit(session, storage, edition, email="w@x.org", organisation_id=waived_org.id)
    paying = submit(session, storage, edition, email="p@x.org")
    decide(session, storage, admin_user, waived, "admit")
    decide(session, storage, admin_user, paying, "admit")
    page = admin.get(LIST).text
    assert "1 confirmed," in page
    assert "1 admitted awaiting payment, 4 seats" in page
    assert '<span class="cap-confirmed w-25"></span><span class="cap-admitted w-25"></span>' in page
    assert "style=" not in page


def test_an_htmx_request_gets_only_the_results(
    admin: TestClient, applicants: dict[str, Any]
) -> None:
    response = admin.get(f"{LIST}?status=waitlisted", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'role="search"' not in response.text
    assert references(response.text) == refs(applicants, "dara")
    assert 'id="filter-status" value="waitlisted" hx-swap-oob="true"' in response.text


def test_htmx_restoring_history_gets_the_whole_page(
    admin: TestClient, applicants: dict[str, Any]
) -> None:
    response = admin.get(
        f"{LIST}?status=waitlisted",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in response.text
    assert references(response.text) == refs(applicants, "dara")


def test_the_list_works_without_javascript_as_a_plain_form(
    admin: TestClient, applicants: dict[str, Any]
) -> None:
    page = admin.get(LIST).text
    assert '<form method="get" action="/admin/applications"' in page
    assert 'hx-get="/admin/applications" hx-target="#results" hx-push-url="true"' in page
    assert "<html" in page


def test_the_list_has_pages_of_fifty(admin: TestClient, session: Session) -> None:
    edition = open_edition(session)
    bulk_insert(session, edition, 55)
    first = admin.get(LIST).text
    assert len(references(first)) == 50
    assert "page 1 of 2" in first
    assert 'rel="next"' in first
    second = admin.get(f"{LIST}?page=2").text
    assert references(second) == [f"MD99-B{i:07d}" for i in range(50, 55)]


def test_the_list_query_count_does_not_grow_with_applications(
    admin: TestClient, session: Session
) -> None:
    edition = open_edition(session)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    def render() -> tuple[int, float]:
        statements.clear()
        connection = session.connection()
        event.listen(connection, "before_cursor_execute", count)
        started = time.perf_counter()
        try:
            response = admin.get(f"{LIST}?sort=group")
        finally:
            event.remove(connection, "before_cursor_execute", count)
        assert response.status_code == 200
        assert len(references(response.text)) == 50
        return len(statements), time.perf_counter() - started

    organisations = [
        make_organisation(session, name=f"City {i}", country=c, dues_paid_through=2020 + i)
        for i, c in enumerate(["MEX", "BRA", "ESP"])
    ]
    bulk_insert(session, edition, 100, organisations=organisations)
    at_100, seconds_100 = render()
    bulk_insert(session, edition, 9_900, start=100, organisations=organisations)
    at_10000, seconds_10000 = render()
    dialect = session.get_bind().dialect.name
    print(
        f"\n[{dialect}] list page queries: {at_100} at 100 applications, "
        f"{at_10000} at 10,000 ({seconds_100:.3f} s, {seconds_10000:.3f} s)"
    )
    assert at_100 == at_10000
    assert at_10000 <= 12


# One application


def test_the_detail_page_shows_everything_sent_with_html_escaped(
    admin: TestClient, session: Session, storage: Storage
) -> None:
    edition = open_edition(session)
    org = make_organisation(session, name="Ciudad X", country="MEX")
    motivation = "I want to <b>learn</b> & <script>alert(1)</script> share.\nSecond line here, " * 2
    application = submit(
        session,
        storage,
        edition,
        cv=PDF,
        cv_filename="my cv.pdf",
        organisation_id=org.id,
        given_name="<i>Ama</i>",
        motivation=motivation,
        department="Mayor's office",
        language="fr",
    )
    page = admin.get(f"{LIST}/{application.id}").text
    assert "&lt;i&gt;Ama&lt;/i&gt;" in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "share.\nSecond line here" in page  # line breaks kept, shown with pre-line
    for text in [
        "ama.banda@lilongwe.example",
        "Ciudad X",
        "Member, dues paid",
        "Mexico",
        "International relations officer",
        "Mayor&#39;s office",
        "French",
        "Consent to data use",
        "Member rate",
        "1,000.00 EUR",
        f'href="/admin/applications/{application.id}/cv"',
        "my cv.pdf",
        "Applied",
        f'name="version" value="{application.version}"',
    ]:
        assert text in page, text


def test_the_cv_downloads_as_a_pdf_attachment(
    admin: TestClient, session: Session, storage: Storage
) -> None:
    application = submit(session, storage, open_edition(session), cv=PDF, cv_filename="my cv.pdf")
    response = admin.get(f"{LIST}/{application.id}/cv")
    assert response.status_code == 200
    assert response.content == PDF
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="cv-{application.reference}.pdf"'
    )


def test_the_cv_is_refused_to_tutors(
    client: TestClient, tutor_user: StaffUser, session: Session, storage: Storage
) -> None:
    application = submit(session, storage, open_edition(session), cv=PDF, cv_filename="my cv.pdf")
    login(client, "tutor@example.org", TUTOR_PASSWORD)
    response = client.get(f"{LIST}/{application.id}/cv")
    assert response.status_code == 403
    assert PDF not in response.content


def test_an_application_without_cv_has_no_cv_to_download(
    admin: TestClient, session: Session, storage: Storage
) -> None:
    application = submit(session, storage, open_edition(session))
    assert admin.get(f"{LIST}/{application.id}/cv").status_code == 404


def test_a_decision_with_a_message_queues_the_email_with_it(
    admin: TestClient, session: Session, storage: Storage
) -> None:
    application = submit(session, storage, open_edition(session))
    response = admin.post(
        f"{LIST}/{application.id}/decision",
        data={
            "csrf_token": token(admin, f"{LIST}/{application.id}"),
            "version": str(application.version),
            "decision": "admit",
            "message": "Welcome, see you in Barcelona!",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    session.refresh(application)
    assert application.status == "admitted"
    mail = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "decision_admit")).one()
    assert "Welcome, see you in Barcelona!" in mail.body_text
    assert mail.to_address == application.email
    page = admin.get(response.headers["location"]).text
    assert "admitted; the e-mail to ama.banda@lilongwe.example is queued" in flash(page)


def test_a_decision_on_a_stale_version_is_409_and_changes_nothing(
    admin: TestClient, session: Session, storage: Storage, admin_user: StaffUser
) -> None:
    application = submit(session, storage, open_edition(session))
    seen = application.version
    csrf = token(admin, f"{LIST}/{application.id}")
    decide(session, storage, admin_user, application, "waitlist")  # the other administrator
    response = admin.post(
        f"{LIST}/{application.id}/decision",
        data={"csrf_token": csrf, "version": str(seen), "decision": "reject", "message": "No"},
    )
    assert response.status_code == 409
    assert (
        "Another administrator changed this application meanwhile: it is now waitlisted. "
        "Nothing was changed."
    ) in response.text
    session.refresh(application)
    assert application.status == "waitlisted"
    kinds = session.exec(select(OutboxMessage.kind)).all()
    assert "decision_reject" not in kinds
    # The form offers the current version, so a second look can decide.
    assert f'name="version" value="{application.version}"' in response.text


def test_a_decision_without_a_choice_asks_for_one(
    admin: TestClient, session: Session, storage: Storage
) -> None:
    application = submit(session, storage, open_edition(session))
    response = admin.post(
        f"{LIST}/{application.id}/decision",
        data={"csrf_token": token(admin, f"{LIST}/{application.id}"), "version": "1"},
    )
    assert response.status_code == 422
    assert "Choose admit, waitlist or reject." in response.text


def test_admitting_past_capacity_asks_first_then_admits(
    admin: TestClient, session: Session, storage: Storage, admin_user: StaffUser
) -> None:
    edition = open_edition(session, capacity=1)
    first = submit(session, storage, edition, email="first@x.org")
    second = submit(session, storage, edition, email="second@x.org")
    decide(session, storage, admin_user, first, "admit")
    detail = admin.get(f"{LIST}/{second.id}").text
    assert "Admitting now goes past capacity" in detail
    response = admin.post(
        f"{LIST}/{second.id}/decision",
        data={"csrf_token": csrf_from(detail), "version": "1", "decision": "admit"},
    )
    assert response.status_code == 200
    assert (
        "This admits 1 beyond the 1 seats; seats are guaranteed only on payment. Admit anyway?"
        in response.text
    )
    session.refresh(second)
    assert second.status == "submitted"
    fields = hidden_fields(response.text)
    assert ("confirm_over_capacity", "1") in fields
    confirmed = admin.post(f"{LIST}/{second.id}/decision", data=dict(fields))
    assert confirmed.status_code == 200
    session.refresh(second)
    assert second.status == "admitted"


def test_notes_are_saved_and_audited(admin: TestClient, session: Session, storage: Storage) -> None:
    application = submit(session, storage, open_edition(session))
    page = admin.get(f"{LIST}/{application.id}").text
    seen = dict(hidden_fields(page))["notes_seen"]
    response = admin.post(
        f"{LIST}/{application.id}/notes",
        data={
            "csrf_token": csrf_from(page),
            "staff_notes": "Called her: <strong>keen</strong>.",
            "notes_seen": seen,
        },
    )
    assert response.status_code == 200
    assert "Called her: &lt;strong&gt;keen&lt;/strong&gt;." in response.text
    session.refresh(application)
    assert application.staff_notes == "Called her: <strong>keen</strong>."
    entry = session.exec(
        select(AuditEntry).where(AuditEntry.action == "application.notes_changed")
    ).one()
    assert entry.entity_id == str(application.id)
    assert entry.actor == "admin@example.org"
    assert entry.after == {"staff_notes": "Called her: <strong>keen</strong>."}
    assert "Staff notes changed" in response.text  # on the timeline


def test_notes_changed_meanwhile_are_not_overwritten(
    admin: TestClient, session: Session, storage: Storage
) -> None:
    application = submit(session, storage, open_edition(session))
    page = admin.get(f"{LIST}/{application.id}").text
    stale = dict(hidden_fields(page))["notes_seen"]
    application.staff_notes = "Written by a colleague."
    session.add(application)
    session.commit()
    response = admin.post(
        f"{LIST}/{application.id}/notes",
        data={"csrf_token": csrf_from(page), "staff_notes": "Mine.", "notes_seen": stale},
    )
    assert response.status_code == 409
    assert "Another administrator changed the notes meanwhile" in response.text
    session.refresh(application)
    assert application.staff_notes == "Written by a colleague."


def test_a_new_private_link_ends_the_old_one(
    admin: TestClient, session: Session, storage: Storage
) -> None:
    edition = open_edition(session)
    submitted = service.submit_application(
        session,
        edition_slug=edition.slug,
        data=service.ApplicationIn.model_validate(application_payload()),
        cv=None,
        cv_filename=None,
        storage=storage,
        secret_key=SECRET,
        base_url=BASE,
    )
    old_token = submitted.portal_url.rsplit("/", 1)[-1]
    application = submitted.application
    assert service.application_for_token(session, old_token, secret_key=SECRET).id == application.id
    response = admin.post(
        f"{LIST}/{application.id}/new-link",
        data={"csrf_token": token(admin, f"{LIST}/{application.id}")},
    )
    assert response.status_code == 200
    assert "The earlier private links no longer work" in response.text
    with pytest.raises(NotFound):
        service.application_for_token(session, old_token, secret_key=SECRET)
    mail = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "portal_link")).one()
    assert mail.to_address == application.email
    new_token = re.findall(r"/portal/(\S+)", mail.body_text)[0]
    assert service.application_for_token(session, new_token, secret_key=SECRET).id == application.id


def test_the_timeline_lists_audit_entries_oldest_first_in_edition_time(
    admin: TestClient, session: Session, storage: Storage, admin_user: StaffUser
) -> None:
    application = submit(session, storage, open_edition(session))
    decide(
        session,
        storage,
        admin_user,
        application,
        "waitlist",
        note="Full for now",
        now=datetime(2099, 3, 1, 12, 0, tzinfo=UTC),
    )
    page = admin.get(f"{LIST}/{application.id}").text
    timeline = page[page.index('class="timeline"') :]
    assert timeline.index("Applied") < timeline.index("Put on the waiting list")
    assert "(submitted → waitlisted)" in timeline
    assert "Message to the applicant: Full for now" in timeline
    assert "admin@example.org" in timeline
    assert re.search(r"\d+ \w{3} \d{4}, \d\d:\d\d CES?T", timeline)


# Bulk decisions and the waiting list


def test_bulk_decisions_report_the_one_that_could_not_be_changed(
    admin: TestClient, session: Session, storage: Storage
) -> None:
    edition = open_edition(session, capacity=30)
    made = [submit(session, storage, edition, email=f"p{i}@x.org") for i in range(4)]
    service.withdraw(session, application=made[3])
    page = admin.get(LIST).text
    response = admin.post(
        f"{LIST}/bulk-decision",
        data={
            "csrf_token": csrf_from(page),
            "selected": [f"{a.id}:1" for a in made[:3]] + [f"{made[3].id}:1"],
            "decision": "admit",
            "message": "Welcome",
            "back": f"{LIST}?edition={edition.slug}",
        },
    )
    assert response.status_code == 200
    assert flash(response.text) == (
        f"3 admitted, 1 could not be changed: {made[3].reference} is withdrawn now."
    )
    statuses = session.exec(
        select(Application.status).where(col(Application.id).in_([a.id for a in made]))
    ).all()
    assert sorted(statuses) == ["admitted", "admitted", "admitted", "withdrawn"]
    mails = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "decision_admit"))
    assert len(mails.all()) == 3


def test_bulk_admission_past_capacity_is_confirmed_first(
    admin: TestClient, session: Session, storage: Storage
) -> None:
    edition = open_edition(session, capacity=2)
    made = [submit(session, storage, edition, email=f"p{i}@x.org") for i in range(3)]
    response = admin.post(
        f"{LIST}/bulk-decision",
        data={
            "csrf_token": token(admin),
            "selected": [f"{a.id}:{a.version}" for a in made],
            "decision": "admit",
        },
    )
    assert response.status_code == 200
    assert (
        "This admits 1 beyond the 2 seats; seats are guaranteed only on payment. Admit anyway?"
        in response.text
    )
    assert all(session.get(Application, a.id).status == "submitted" for a in made)  # type: ignore[union-attr]
    fields = hidden_fields(response.text)
    assert ("confirm_over_capacity", "1") in fields
    confirmed = admin.post(f"{LIST}/bulk-decision", data=_multi(fields))
    assert "3 admitted" in flash(confirmed.text)
    for application in made:
        session.refresh(application)
        assert application.status == "admitted"


def _multi(fields: list[tuple[str, str]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, value in fields:
        if name == "selected":
            data.setdefault(name, []).append(value)
        else:
            data[name] = value
    return data


def test_the_waiting_list_is_in_order_and_admits_from_it(
    admin: TestClient, session: Session, storage: Storage, admin_user: StaffUser
) -> None:
    edition = open_edition(session)
    early = submit(session, storage, edition, email="early@x.org")
    late = submit(session, storage, edition, email="late@x.org")
    middle = submit(session, storage, edition, email="middle@x.org")
    day = datetime(2099, 2, 1, 9, 0, tzinfo=UTC)
    decide(session, storage, admin_user, late, "waitlist", now=day + timedelta(days=2))
    decide(session, storage, admin_user, early, "waitlist", now=day)
    decide(session, storage, admin_user, middle, "waitlist", now=day + timedelta(days=1))
    page = admin.get(f"{LIST}/waiting-list?edition={edition.slug}").text
    assert references(page) == [early.reference, middle.reference, late.reference]
    positions = re.findall(r'<td class="num position">(\d+)</td>', page)
    assert positions == ["1", "2", "3"]
    form = page[page.index(f'action="/admin/applications/{middle.id}/decision"') :]
    fields = hidden_fields(form.split("</form>")[0])
    response = admin.post(f"{LIST}/{middle.id}/decision", data=dict(fields))
    assert response.status_code == 200
    assert references(response.text) == [early.reference, late.reference]
    session.refresh(middle)
    assert middle.status == "admitted"


# Exports


def test_the_csv_export_has_the_filtered_rows_a_bom_and_no_formulas(
    admin: TestClient, applicants: dict[str, Any], session: Session, storage: Storage
) -> None:
    submit(
        session,
        storage,
        applicants["edition"],
        given_name='=HYPERLINK("http://evil.example","x")',
        email="evil@x.org",
        country="FRA",
        department="-2+3",
    )
    response = admin.get(f"{LIST}/export.csv?country=FRA&sort=name&page=2")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="applications-diploma-open-' in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["reference", "status", "given name", "family name", "e-mail"]
    assert len(rows[0]) == 18
    by_name = {row[2]: row for row in rows[1:]}
    assert set(by_name) == {"Chloé", '\'=HYPERLINK("http://evil.example","x")'}
    evil = by_name['\'=HYPERLINK("http://evil.example","x")']
    assert evil[11] == "'-2+3"
    chloe = by_name["Chloé"]
    assert chloe[6:9] == ["FRA", "France", "Non-member"]
    assert chloe[13:15] == ["1500.00", "EUR"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00", chloe[15])


def test_the_xlsx_export_opens_and_has_the_rows(
    admin: TestClient, applicants: dict[str, Any]
) -> None:
    response = admin.get(f"{LIST}/export.xlsx?status=submitted&sort=name")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    sheet = load_workbook(io.BytesIO(response.content)).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0][0] == "reference"
    assert [row[0] for row in values[1:]] == refs(applicants, "bruno", "chloe", "ana")
    assert sheet["A1"].font.bold
    assert sheet.freeze_panes == "A2"
    assert values[3][9] == applicants["group"].code
    assert values[3][13] == 1000


# Outbox


def test_the_outbox_lists_every_mail_and_retries_a_failed_one(
    admin: TestClient, applicants: dict[str, Any], session: Session
) -> None:
    failed = session.exec(
        select(OutboxMessage).where(OutboxMessage.to_address == "chloe@z.org")
    ).one()
    failed.status = "failed"
    failed.attempts = 12
    failed.last_error = "SMTPServerDisconnected: <gone>"
    session.add(failed)
    session.commit()
    page = admin.get("/admin/outbox").text
    count = len(session.exec(select(OutboxMessage)).all())
    assert f"{count} e-mails." in page
    assert "We received your application" in page
    assert "SMTPServerDisconnected: &lt;gone&gt;" in page
    assert page.count(">Retry<") == 1
    failed_only = admin.get("/admin/outbox?status=failed").text
    assert failed_only.count('href="/admin/outbox/') == 1
    response = admin.post(
        f"/admin/outbox/{failed.id}/retry",
        data={"csrf_token": csrf_from(page), "back": "/admin/outbox?status=pending"},
    )
    assert response.status_code == 200
    assert "The e-mail to chloe@z.org is queued again." in response.text
    session.refresh(failed)
    assert (failed.status, failed.attempts) == ("pending", 0)


def test_retry_leaves_a_mail_that_has_not_failed_alone(
    admin: TestClient, applicants: dict[str, Any], session: Session
) -> None:
    sent = session.exec(select(OutboxMessage)).first()
    assert sent is not None
    sent.status = "sent"
    sent.attempts = 1
    session.add(sent)
    session.commit()
    response = admin.post(f"/admin/outbox/{sent.id}/retry", data={"csrf_token": token(admin)})
    assert "Only a failed e-mail can be retried; this one is sent." in response.text
    session.refresh(sent)
    assert (sent.status, sent.attempts) == ("sent", 1)


def test_an_outbox_message_shows_its_text_and_offers_its_html_as_plain_text(
    admin: TestClient, applicants: dict[str, Any], session: Session
) -> None:
    message = session.exec(
        select(OutboxMessage).where(OutboxMessage.to_address == "ana@x.org")
    ).one()
    page = admin.get(f"/admin/outbox/{message.id}").text
    assert '<pre class="mail-text">Dear Ana Zapata,' in page
    assert "<iframe" not in page
    assert "&lt;html" in page or "&lt;!doctype" in page.lower()
    assert f'href="/admin/outbox/{message.id}/body.html"' in page
    body = admin.get(f"/admin/outbox/{message.id}/body.html")
    assert body.headers["content-type"] == "text/plain; charset=utf-8"
    assert body.headers["content-disposition"].startswith("attachment;")
    assert body.text == message.body_html
