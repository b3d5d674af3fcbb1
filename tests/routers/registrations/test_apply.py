"""The application form, the portal, link re-sending and group pages."""

import re

from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlmodel import Session, select

from app.models import Application, OutboxMessage
from tests.factories import make_organisation, open_edition
from tests.routers.office.test_auth import csrf_from

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def form_data(**overrides: str) -> dict[str, str]:
    data = {
        "given_name": "Ama",
        "family_name": "Banda",
        "email": "ama@lilongwe.example",
        "organisation_id": "",
        "organisation_name": "Lilongwe City Council",
        "country": "MWI",
        "job_title": "International relations officer",
        "department": "Mayor's office",
        "years_in_international_affairs": "4",
        "motivation": "I coordinate our city's partnerships and want to build a strategy. " * 2,
        "group_code": "",
        "consent": "on",
    }
    data.update(overrides)
    return data


def post_form(client: TestClient, data: dict[str, str], files=None):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/editions/diploma-open/apply").text)
    return client.post(
        "/editions/diploma-open/apply",
        data={**data, "csrf_token": token},
        files=files,
        follow_redirects=False,
    )


def test_the_form_shows_every_field_with_a_label(client: TestClient, session: Session) -> None:
    open_edition(session)
    html = client.get("/editions/diploma-open/apply").text
    for name in (
        "given_name",
        "family_name",
        "email",
        "job_title",
        "department",
        "years_in_international_affairs",
        "motivation",
        "cv",
        "group_code",
        "consent",
    ):
        assert f'id="{name}"' in html
        assert f'for="{name}"' in html


def test_a_good_application_lands_on_the_portal_with_the_receipt(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    response = post_form(client, form_data(), files={"cv": ("cv.pdf", PDF, "application/pdf")})
    assert response.status_code == 303, response.text
    portal = client.get(response.headers["location"])
    application = session.exec(select(Application)).one()
    assert application.cv_key is not None
    assert "we received your application" in portal.text
    assert application.reference in portal.text
    mail = session.exec(select(OutboxMessage)).one()
    assert response.headers["location"].split("?")[0] in mail.body_text


def test_errors_sit_next_to_their_fields_and_nothing_typed_is_lost(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    response = post_form(client, form_data(email="nope", motivation="too short", consent=""))
    assert response.status_code == 422
    html = response.text
    assert re.search(r'id="email-error"[^>]*>Enter an e-mail address', html)
    assert re.search(r'id="consent-error"[^>]*>Please agree', html)
    assert re.search(r'id="motivation-error"[^>]*>Tell us in 50 to 2000', html)
    assert 'value="Banda"' in html
    assert ">too short</textarea>" in html
    assert session.exec(select(Application)).all() == []


def test_a_renamed_executable_or_a_6_mb_file_is_refused_as_cv(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    fake = post_form(
        client, form_data(), files={"cv": ("cv.pdf", b"MZ\x90\x00binary", "application/pdf")}
    )
    assert fake.status_code == 422
    assert "must be a PDF file" in fake.text
    big = b"%PDF-1.4\n" + b"0" * (6 * 1024 * 1024) + b"\n%%EOF"
    large = post_form(
        client, form_data(email="b@x.org"), files={"cv": ("cv.pdf", big, "application/pdf")}
    )
    assert large.status_code in (413, 422)
    assert "at most 5 MB" in large.text
    assert session.exec(select(Application)).all() == []


def test_applying_twice_offers_to_resend_the_link(client: TestClient, session: Session) -> None:
    open_edition(session)
    assert post_form(client, form_data()).status_code == 303
    again = post_form(client, form_data())
    assert again.status_code == 409
    assert "/editions/diploma-open/portal-link" in again.text


def test_inline_validation_returns_messages_without_saving(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    token = csrf_from(client.get("/editions/diploma-open/apply").text)
    response = client.post(
        "/editions/diploma-open/apply/validate",
        data=form_data(email="bad"),
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert response.status_code == 200
    assert re.search(r'id="email-error"[^>]*>Enter an e-mail address', response.text)
    assert session.exec(select(Application)).all() == []


def test_a_form_without_csrf_token_is_refused(client: TestClient, session: Session) -> None:
    open_edition(session)
    client.get("/editions/diploma-open/apply")
    response = client.post("/editions/diploma-open/apply", data=form_data())
    assert response.status_code == 403


def test_closed_edition_shows_a_page_not_a_form(client: TestClient, session: Session) -> None:
    open_edition(session, applications_close="2021-01-01T00:00:00+00:00")
    html = client.get("/editions/diploma-open/apply").text
    assert "Applications are closed" in html
    assert "<textarea" not in html


def test_html_looking_names_are_text_in_pages_and_mail(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    response = post_form(client, form_data(given_name="<script>alert(1)</script>"))
    portal = client.get(response.headers["location"]).text
    assert "<script>alert(1)</script>" not in portal
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in portal
    mail = session.exec(select(OutboxMessage)).one()
    assert "<script>" not in mail.body_html
    assert "&lt;script&gt;" in mail.body_html


def test_portal_withdraw_then_no_more_withdrawing(client: TestClient, session: Session) -> None:
    open_edition(session)
    location = post_form(client, form_data()).headers["location"].split("?")[0]
    page = client.get(location)
    assert "Withdraw my application" in page.text
    done = client.post(f"{location}/withdraw", data={"csrf_token": csrf_from(page.text)})
    assert "Your application is withdrawn." in done.text
    assert "Withdraw my application" not in done.text


def test_the_portal_before_admission_reads_no_programme_and_the_invoices_once(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    location = post_form(client, form_data()).headers["location"].split("?")[0]
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(" ".join(str(args[2]).split()))

    bind = session.connection()
    event.listen(bind, "before_cursor_execute", count)
    try:
        page = client.get(location)
    finally:
        event.remove(bind, "before_cursor_execute", count)
    assert page.status_code == 200 and "Withdraw my application" in page.text
    # Nothing of the programme or attendance is shown before admission, so none is read.
    assert not [s for s in statements if "FROM module" in s or "FROM course_session" in s]
    assert len([s for s in statements if "FROM invoice " in s + " "]) == 1, statements


def test_a_bad_portal_token_is_404(client: TestClient) -> None:
    assert client.get("/portal/not-a-token").status_code == 404


def test_resend_link_answers_the_same_for_unknown_addresses(
    client: TestClient, session: Session
) -> None:
    open_edition(session)
    post_form(client, form_data())
    page = client.get("/editions/diploma-open/portal-link")
    token = csrf_from(page.text)
    known = client.post(
        "/editions/diploma-open/portal-link",
        data={"email": "ama@lilongwe.example", "csrf_token": token},
    )
    unknown = client.post(
        "/editions/diploma-open/portal-link", data={"email": "who@x.org", "csrf_token": token}
    )
    strip = lambda html: html.replace("ama@lilongwe.example", "X").replace("who@x.org", "X")  # noqa: E731
    assert strip(known.text) == strip(unknown.text)
    kinds = [m.kind for m in session.exec(select(OutboxMessage)).all()]
    assert kinds.count("portal_link") == 1


def test_group_page_lists_members(client: TestClient, session: Session) -> None:
    open_edition(session)
    org = make_organisation(session, name="Ciudad X", country="MEX")
    page = client.get("/editions/diploma-open/groups/new", params={"org_q": "Ciudad"})
    created = client.post(
        "/editions/diploma-open/groups/new",
        data={
            "organisation_id": str(org.id),
            "contact_email": "lead@ciudad.example",
            "csrf_token": csrf_from(page.text),
        },
    )
    code = re.search(r'class="group-code">([^<]+)<', created.text)
    assert code
    post_form(client, form_data(group_code=code.group(1), organisation_name="", country=""))
    mail = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "group_created")).one()
    link = re.search(r"http://\S+/groups/\S+", mail.body_text)
    assert link
    coordinator = client.get(link.group(0).replace("http://127.0.0.1:8000", ""))
    assert "Ama Banda" in coordinator.text
