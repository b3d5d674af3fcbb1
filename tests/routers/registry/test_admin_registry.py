"""The staff pages of the member registry and the income groups."""

import re
from datetime import date
from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, col, select

from app.models import AuditEntry, IncomeGroup, Organisation, StaffUser
from app.services.registry.organisations import income_group_of
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD
from tests.factories import make_organisation
from tests.routers.office.test_auth import csrf_from, login

HEADER = "name,country,is_member,dues_paid_through\n"
LAST_YEAR = date.today().year - 1


@pytest.fixture
def admin(client: TestClient, admin_user: StaffUser) -> TestClient:
    """The client, logged in as an administrator through the login form."""
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    return client


def token(client: TestClient, path: str = "/admin/organisations/new") -> str:
    return csrf_from(client.get(path).text)


def table_names(html: str) -> list[str]:
    """The organisation names in the registry table, in order."""
    return [unescape(n) for n in re.findall(r'<th scope="row">([^<]+)</th>', html)]


def audit(session: Session, action: str) -> list[AuditEntry]:
    return list(
        session.exec(
            select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
        ).all()
    )


def organisation_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Organisation)).one()


# Access

REGISTRY_PAGES = [
    "/admin/organisations",
    "/admin/organisations/new",
    "/admin/organisations/import",
    "/admin/income-groups",
]


@pytest.mark.parametrize("path", REGISTRY_PAGES)
def test_a_tutor_gets_403_on_registry_pages(
    client: TestClient, tutor_user: StaffUser, path: str
) -> None:
    login(client, "tutor@example.org", TUTOR_PASSWORD)
    response = client.get(path)
    assert response.status_code == 403
    assert "Your role does not allow this page." in response.text


@pytest.mark.parametrize("path", REGISTRY_PAGES)
def test_anonymous_visitors_are_sent_to_the_login(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login?next=%2Fadmin%2F")


def test_the_admin_nav_links_to_both_pages(admin: TestClient) -> None:
    html = admin.get("/admin/organisations").text
    assert re.search(r'<a href="/admin/organisations"\s+aria-current="page">Member registry', html)
    assert re.search(r'<a href="/admin/income-groups"\s*>Income groups', html)


# The list


def test_the_list_shows_country_dues_and_a_status_badge(
    admin: TestClient, session: Session
) -> None:
    make_organisation(session, name="Paid Up", country="MWI", dues_paid_through=LAST_YEAR)
    make_organisation(session, name="Late Payer", country="ESP", dues_paid_through=LAST_YEAR - 2)
    make_organisation(
        session, name="Outsider", country="MEX", is_member=False, dues_paid_through=None
    )
    html = admin.get("/admin/organisations").text
    assert table_names(html) == ["Late Payer", "Outsider", "Paid Up"]
    assert 'Malawi <span class="code">MWI</span>' in html
    assert f'<td class="num">{LAST_YEAR - 2}</td>' in html
    assert '<span class="tag tag-ok">member, dues paid</span>' in html
    assert '<span class="tag tag-warn">behind on dues</span>' in html
    assert '<span class="tag">non-member</span>' in html
    # The dues year the badges are judged by is shown, and defaults to last year.
    assert re.search(rf'id="dues_year" name="dues_year" [^>]*value="{LAST_YEAR}"', html)


def test_search_matches_the_name_or_the_country(admin: TestClient, session: Session) -> None:
    make_organisation(session, name="Lilongwe City Council", country="MWI")
    make_organisation(session, name="Barcelona City Council", country="ESP")
    by_name = admin.get("/admin/organisations", params={"q": "lilong"}).text
    assert table_names(by_name) == ["Lilongwe City Council"]
    by_country = admin.get("/admin/organisations", params={"q": "spain"}).text
    assert table_names(by_country) == ["Barcelona City Council"]
    by_code = admin.get("/admin/organisations", params={"q": "mwi"}).text
    assert table_names(by_code) == ["Lilongwe City Council"]
    nothing = admin.get("/admin/organisations", params={"q": "zzz"}).text
    assert "No organisation matches." in nothing


@pytest.mark.parametrize(
    ("status", "dues_year", "expected"),
    [
        ("member", None, ["Paid Up"]),
        ("behind", None, ["Late Payer", "Never Paid"]),
        ("non_member", None, ["Outsider"]),
        ("all", None, ["Late Payer", "Never Paid", "Outsider", "Paid Up"]),
        # Judged against an earlier dues year, the late payer is in good standing.
        ("member", LAST_YEAR - 2, ["Late Payer", "Paid Up"]),
        ("behind", LAST_YEAR - 2, ["Never Paid"]),
    ],
)
def test_the_membership_filter(
    admin: TestClient,
    session: Session,
    status: str,
    dues_year: int | None,
    expected: list[str],
) -> None:
    make_organisation(session, name="Paid Up", dues_paid_through=LAST_YEAR)
    make_organisation(session, name="Late Payer", dues_paid_through=LAST_YEAR - 2)
    make_organisation(session, name="Never Paid", dues_paid_through=None)
    make_organisation(session, name="Outsider", is_member=False, dues_paid_through=None)
    params: dict[str, str | int] = {"status": status}
    if dues_year:
        params["dues_year"] = dues_year
    html = admin.get("/admin/organisations", params=params).text
    assert table_names(html) == expected


def test_an_unknown_status_filter_is_refused(admin: TestClient) -> None:
    assert admin.get("/admin/organisations", params={"status": "vip"}).status_code == 422


def test_the_country_filter_lists_registry_countries_and_filters(
    admin: TestClient, session: Session
) -> None:
    make_organisation(session, name="Lilongwe City Council", country="MWI")
    make_organisation(session, name="Blantyre City Council", country="MWI")
    make_organisation(session, name="Barcelona City Council", country="ESP")
    html = admin.get("/admin/organisations", params={"country": "MWI"}).text
    assert table_names(html) == ["Blantyre City Council", "Lilongwe City Council"]
    assert '<option value="MWI" selected>Malawi (MWI)</option>' in html
    assert '<option value="ESP">Spain (ESP)</option>' in html
    assert '<option value="FRA"' not in html


def test_an_htmx_request_gets_only_the_results_fragment(
    admin: TestClient, session: Session
) -> None:
    make_organisation(session, name="Lilongwe City Council")
    response = admin.get(
        "/admin/organisations", params={"q": "lilong"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'id="q"' not in response.text
    assert table_names(response.text) == ["Lilongwe City Council"]
    full = admin.get("/admin/organisations", params={"q": "lilong"}).text
    assert "<html" in full
    assert 'hx-get="/admin/organisations" hx-target="#results" hx-push-url="true"' in full


def test_the_list_is_paged_fifty_at_a_time(admin: TestClient, session: Session) -> None:
    for n in range(51):
        session.add(Organisation(name=f"City {n:02d}", country="ESP"))
    session.commit()
    first = admin.get("/admin/organisations", params={"status": "all"}).text
    assert len(table_names(first)) == 50
    assert "51 organisations, page 1 of 2" in first
    assert 'page=2" rel="next"' in first
    second = admin.get("/admin/organisations", params={"page": 2}).text
    assert table_names(second) == ["City 50"]


# Create and edit


def test_an_admin_adds_an_organisation_and_it_is_audited(
    admin: TestClient, session: Session
) -> None:
    response = admin.post(
        "/admin/organisations/new",
        data={
            "name": "Ciudad X",
            "country": "mx",
            "is_member": "yes",
            "dues_paid_through": "2023",
            "csrf_token": token(admin),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/organisations"
    stored = session.exec(select(Organisation).where(Organisation.name == "Ciudad X")).one()
    assert (stored.country, stored.is_member, stored.dues_paid_through) == ("MEX", True, 2023)
    [entry] = audit(session, "organisation.created")
    assert entry.actor == "admin@example.org"
    assert entry.entity_id == str(stored.id)
    page = admin.get("/admin/organisations").text
    assert "Ciudad X (MEX) added." in page
    # The message is shown once.
    assert "Ciudad X (MEX) added." not in admin.get("/admin/organisations").text


def test_bad_fields_are_422_with_a_message_next_to_each_and_values_kept(
    admin: TestClient, session: Session
) -> None:
    before = organisation_count(session)
    response = admin.post(
        "/admin/organisations/new",
        data={
            "name": "X",
            "country": "Narnia",
            "is_member": "yes",
            "dues_paid_through": "1066",
            "csrf_token": token(admin),
        },
    )
    assert response.status_code == 422
    html = response.text
    assert 'role="alert"' in html
    assert '<a href="#country">' in html
    assert re.search(r'id="name-error">[^<]*at least 2 characters', html)
    assert re.search(r"id=\"country-error\">[^<]*&#39;Narnia&#39; is not a known country", html)
    assert re.search(r'id="dues_paid_through-error">[^<]*greater than or equal to 1900', html)
    assert 'name="name" type="text" value="X"' in html
    assert 'name="country" type="text" value="Narnia"' in html
    assert 'value="1066"' in html
    assert re.search(r'name="is_member" type="checkbox" value="yes" checked', html)
    assert organisation_count(session) == before


def test_an_ambiguous_country_is_explained_next_to_the_field(admin: TestClient) -> None:
    response = admin.post(
        "/admin/organisations/new",
        data={"name": "Brazzaville", "country": "Congo", "csrf_token": token(admin)},
    )
    assert response.status_code == 422
    assert "use COG or COD" in response.text


def test_the_same_organisation_twice_is_refused_with_a_message_on_the_name(
    admin: TestClient, session: Session
) -> None:
    make_organisation(session, name="Ciudad X", country="MEX")
    response = admin.post(
        "/admin/organisations/new",
        data={"name": "ciudad x", "country": "Mexico", "csrf_token": token(admin)},
    )
    assert response.status_code == 409
    assert re.search(r'id="name-error">Already in the registry for this country.', response.text)
    assert 'value="ciudad x"' in response.text


def test_an_admin_edits_an_organisation_and_it_is_audited(
    admin: TestClient, session: Session
) -> None:
    stored = make_organisation(session, dues_paid_through=2022)
    form = admin.get(f"/admin/organisations/{stored.id}/edit")
    assert form.status_code == 200
    assert 'value="Lilongwe City Council"' in form.text
    assert 'value="MWI"' in form.text
    response = admin.post(
        f"/admin/organisations/{stored.id}/edit",
        data={
            "name": "Lilongwe City Council",
            "country": "Malawi",
            "dues_paid_through": "2024",
            "csrf_token": csrf_from(form.text),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    session.refresh(stored)
    # The box was left unticked: no longer a member.
    assert (stored.is_member, stored.dues_paid_through) == (False, 2024)
    [entry] = audit(session, "organisation.updated")
    assert entry.before is not None and entry.before["dues_paid_through"] == 2022
    assert entry.after is not None and entry.after["is_member"] is False


def test_editing_into_a_duplicate_shows_the_message(admin: TestClient, session: Session) -> None:
    make_organisation(session, name="Barcelona City Council", country="ESP")
    other = make_organisation(session, name="Madrid City Council", country="ESP")
    response = admin.post(
        f"/admin/organisations/{other.id}/edit",
        data={"name": "Barcelona City Council", "country": "ES", "csrf_token": token(admin)},
    )
    assert response.status_code == 409
    assert "Another entry has this name in this country." in response.text
    session.refresh(other)
    assert other.name == "Madrid City Council"


def test_editing_an_unknown_organisation_is_404(admin: TestClient) -> None:
    assert admin.get("/admin/organisations/999999/edit").status_code == 404


def test_a_form_without_the_csrf_token_is_403(admin: TestClient, session: Session) -> None:
    before = organisation_count(session)
    response = admin.post("/admin/organisations/new", data={"name": "Ciudad X", "country": "MX"})
    assert response.status_code == 403
    assert organisation_count(session) == before


# Import


def preview(client: TestClient, csv_text: str, *, as_file: bool = True):  # type: ignore[no-untyped-def]
    csrf = token(client, "/admin/organisations/import")
    if as_file:
        return client.post(
            "/admin/organisations/import/preview",
            data={"csrf_token": csrf},
            files={"file": ("registry.csv", csv_text.encode(), "text/csv")},
        )
    return client.post(
        "/admin/organisations/import/preview",
        data={"csrf_token": csrf, "csv_text": csv_text},
        files={"file": ("", b"", "application/octet-stream")},
    )


def test_the_import_preview_shows_each_rows_errors_and_no_apply_button(
    admin: TestClient, session: Session
) -> None:
    csv_text = (
        HEADER + "Ciudad X,MX,yes,2023\nBrazzaville,Congo,yes,2023\nCair Paravel,Narnia,no,\n"
    )
    response = preview(admin, csv_text)
    assert response.status_code == 422
    html = response.text
    assert 'role="alert"' in html
    assert '<a href="#line-3">Line 3: Country: &#39;Congo&#39; is ambiguous' in html
    assert '<a href="#line-4">Line 4:' in html
    assert '<tr id="line-3" class="row-error">' in html
    assert "Apply" not in html
    assert "/admin/organisations/import/apply" not in html
    assert organisation_count(session) == 0


def test_the_import_preview_says_what_will_be_created_and_updated(
    admin: TestClient, session: Session
) -> None:
    make_organisation(session, name="Lilongwe City Council", dues_paid_through=2022)
    csv_text = HEADER + "lilongwe city council,MW,yes,2023\nCiudad X,Mexico,no,\n"
    response = preview(admin, csv_text)
    assert response.status_code == 200
    html = response.text
    assert '<span class="tag tag-ok">create</span>' in html
    assert '<span class="tag tag-warn">update</span>' in html
    assert "Dues paid through: 2022 → 2023" in html
    assert 'Mexico <span class="code">MEX</span>' in html
    assert "<dt>To create</dt><dd>1</dd>" in html
    assert "<dt>To update</dt><dd>1</dd>" in html
    assert "Apply 2 rows" in html
    # The apply form carries the same text and its own token.
    apply_form = html[html.index('action="/admin/organisations/import/apply"') :]
    assert 'name="csrf_token"' in apply_form
    assert "lilongwe city council,MW,yes,2023" in apply_form
    assert organisation_count(session) == 1


def test_pasted_rows_are_previewed_when_no_file_is_chosen(admin: TestClient) -> None:
    response = preview(admin, HEADER + "Ciudad X,MX,yes,2023\n", as_file=False)
    assert response.status_code == 200
    assert "Apply 1 row" in response.text


def test_an_import_with_neither_file_nor_text_asks_for_one(admin: TestClient) -> None:
    response = preview(admin, "", as_file=False)
    assert response.status_code == 422
    assert "Choose a CSV file or paste the rows" in response.text


def test_a_file_that_is_not_utf8_is_refused(admin: TestClient) -> None:
    csrf = token(admin, "/admin/organisations/import")
    response = admin.post(
        "/admin/organisations/import/preview",
        data={"csrf_token": csrf},
        files={"file": ("r.csv", (HEADER + "Bogotá,CO,yes,2023\n").encode("latin-1"), "text/csv")},
    )
    assert response.status_code == 422
    assert "UTF-8" in response.text


def test_pasted_text_over_the_usual_one_megabyte_field_limit_is_read(admin: TestClient) -> None:
    # The file may be 2 MB; Starlette would refuse a text field over 1 MB with a bare 400.
    big = "notes," + HEADER + ("x" * 1000 + "\n") * 1200
    response = preview(admin, big, as_file=False)
    assert response.status_code == 422
    assert "unknown column(s) &#39;notes&#39;" in response.text


def test_applying_the_import_creates_and_updates_all_rows_with_audit(
    admin: TestClient, session: Session
) -> None:
    stored = make_organisation(session, name="Lilongwe City Council", dues_paid_through=2022)
    csv_text = (
        HEADER + "Lilongwe City Council,MW,yes,2023\nCiudad X,Mexico,no,\nVille de Lyon,FR,y,2024\n"
    )
    page = preview(admin, csv_text)
    response = admin.post(
        "/admin/organisations/import/apply",
        data={"csrf_token": csrf_from(page.text), "csv_text": csv_text},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/organisations"
    session.refresh(stored)
    assert stored.dues_paid_through == 2023
    assert organisation_count(session) == 3
    assert len(audit(session, "organisation.created")) == 1 + 2  # the factory's and the import's
    assert len(audit(session, "organisation.updated")) == 1
    [summary] = audit(session, "organisations.imported")
    assert summary.actor == "admin@example.org"
    assert "2 created, 1 updated." in admin.get("/admin/organisations").text


def test_apply_checks_the_rows_again_and_applies_nothing_if_one_is_wrong(
    admin: TestClient, session: Session
) -> None:
    # The posted text is not trusted to be what was previewed.
    csv_text = HEADER + "Ciudad X,MX,yes,2023\nBrazzaville,Congo,yes,2023\n"
    response = admin.post(
        "/admin/organisations/import/apply",
        data={"csrf_token": token(admin, "/admin/organisations/import"), "csv_text": csv_text},
        follow_redirects=False,
    )
    assert response.status_code == 422
    assert "Nothing was changed." in response.text
    assert '<a href="#line-3">' in response.text
    assert organisation_count(session) == 0
    assert audit(session, "organisations.imported") == []


def test_apply_without_the_csrf_token_is_403(admin: TestClient, session: Session) -> None:
    response = admin.post(
        "/admin/organisations/import/apply",
        data={"csv_text": HEADER + "Ciudad X,MX,yes,2023\n"},
    )
    assert response.status_code == 403
    assert organisation_count(session) == 0


# Income groups


def test_the_income_groups_page_shows_fy2023_with_28_low_income(admin: TestClient) -> None:
    response = admin.get("/admin/income-groups", params={"fy": 2023})
    assert response.status_code == 200
    html = response.text
    assert '<option value="2023" selected>FY2023</option>' in html
    assert '<div class="group-l"><dt>low income</dt><dd>28</dd></div>' in html
    assert html.count('<span class="tag group-tag group-l">low income</span>') == 28
    assert re.search(r'<span class="code">MWI</span></td>\s*<th scope="row">Malawi</th>', html)


def test_the_income_groups_page_defaults_to_the_latest_year(admin: TestClient) -> None:
    html = admin.get("/admin/income-groups").text
    assert '<option value="2026" selected>FY2026</option>' in html


def test_the_income_groups_search_filters_by_code_or_name(admin: TestClient) -> None:
    html = admin.get("/admin/income-groups", params={"fy": 2023, "q": "malawi"}).text
    assert re.findall(r'<th scope="row">([^<]+)</th>', html) == ["Malawi"]
    assert "1 of 217 economies match" in html
    by_code = admin.get("/admin/income-groups", params={"fy": 2023, "q": "esp"}).text
    assert "Spain" in re.findall(r'<th scope="row">([^<]+)</th>', by_code)


def test_uploading_a_new_year_stores_it_and_shows_it(admin: TestClient, session: Session) -> None:
    csrf = token(admin, "/admin/income-groups")
    response = admin.post(
        "/admin/income-groups",
        data={"csrf_token": csrf, "fiscal_year": "FY2031"},
        files={"file": ("fy2031.csv", b"iso3,income_group\nMWI,LM\nESP,H\n", "text/csv")},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/income-groups?fy=2031"
    assert income_group_of(session, iso3="MWI", fiscal_year=2031) == "LM"
    [entry] = audit(session, "income_groups.replaced")
    assert (entry.entity_id, entry.actor) == ("FY2031", "admin@example.org")
    page = admin.get("/admin/income-groups", params={"fy": 2031}).text
    assert "FY2031 stored: 2 economies." in page
    assert '<div class="group-lm"><dt>lower-middle income</dt><dd>1</dd></div>' in page


def test_pasted_income_rows_are_used_when_no_file_is_chosen(
    admin: TestClient, session: Session
) -> None:
    response = admin.post(
        "/admin/income-groups",
        data={
            "csrf_token": token(admin, "/admin/income-groups"),
            "fiscal_year": "2032",
            "csv_text": "MWI,L\n",
        },
        files={"file": ("", b"", "application/octet-stream")},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert income_group_of(session, iso3="MWI", fiscal_year=2032) == "L"


def test_bad_income_rows_are_listed_next_to_the_form_and_nothing_changes(
    admin: TestClient, session: Session
) -> None:
    fy2023 = session.exec(
        select(func.count()).select_from(IncomeGroup).where(IncomeGroup.fiscal_year == 2023)
    ).one()
    response = admin.post(
        "/admin/income-groups",
        data={
            "csrf_token": token(admin, "/admin/income-groups"),
            "fiscal_year": "2023",
            "csv_text": "iso3,income_group\nMWI,H\nZZZ,L\nESP,RICH\n",
        },
    )
    assert response.status_code == 422
    html = response.text
    assert 'role="alert"' in html
    assert "Row 3: &#39;ZZZ&#39; is not a known ISO alpha-3" in html
    assert "Row 4: &#39;RICH&#39; is not an income group" in html
    assert "MWI,H" in html  # the pasted text is kept
    assert income_group_of(session, iso3="MWI", fiscal_year=2023) == "L"
    assert (
        session.exec(
            select(func.count()).select_from(IncomeGroup).where(IncomeGroup.fiscal_year == 2023)
        ).one()
        == fy2023
    )
    assert audit(session, "income_groups.replaced") == []


def test_a_bad_fiscal_year_and_a_missing_file_are_both_reported(admin: TestClient) -> None:
    response = admin.post(
        "/admin/income-groups",
        data={"csrf_token": token(admin, "/admin/income-groups"), "fiscal_year": "next"},
    )
    assert response.status_code == 422
    assert re.search(r'id="fiscal_year-error">Give a year such as 2023 or FY2023.', response.text)
    assert re.search(r'id="csv_file-error">Choose a CSV file', response.text)
    assert 'value="next"' in response.text


def test_uploading_income_groups_needs_the_csrf_token(admin: TestClient, session: Session) -> None:
    response = admin.post(
        "/admin/income-groups", data={"fiscal_year": "2031", "csv_text": "MWI,L\n"}
    )
    assert response.status_code == 403
    assert income_group_of(session, iso3="MWI", fiscal_year=2031) is None


def test_registry_pages_have_no_inline_script_or_style(admin: TestClient, session: Session) -> None:
    make_organisation(session)
    pages = [
        admin.get("/admin/organisations").text,
        admin.get("/admin/organisations/new").text,
        admin.get("/admin/organisations/import").text,
        preview(admin, HEADER + "Ciudad X,MX,yes,2023\n").text,
        admin.get("/admin/income-groups").text,
    ]
    for html in pages:
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None
        assert " style=" not in html
        assert " on" + "click=" not in html
