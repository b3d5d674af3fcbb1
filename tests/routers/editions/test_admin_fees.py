"""The administrators' edition fee page: form, inline checks, saving, conflicts and history."""

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.models import AuditEntry, Edition, StaffUser
from app.services.editions.editions import EditionPatch, local_time, update_edition
from tests.conftest import ADMIN_PASSWORD, TUTOR_PASSWORD
from tests.factories import make_edition
from tests.routers.office.test_auth import login

SLUG = "diploma-test"
PAGE = f"/admin/editions/{SLUG}/fees"
FormData = dict[str, Any]


class _FormFields(HTMLParser):
    """The values the browser would send for the form with id="fees-form"."""

    def __init__(self) -> None:
        super().__init__()
        self.in_form = False
        self.select: str | None = None
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.in_form = a.get("id") == "fees-form"
        if not self.in_form:
            return
        if tag == "input":
            if a.get("type") == "checkbox" and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self.select = a["name"]
        elif tag == "option" and self.select and "selected" in a:
            self.fields.append((self.select, a["value"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.in_form = False
        elif tag == "select":
            self.select = None


def form_of(html: str) -> FormData:
    """The fee form as a browser would submit it (repeated names become lists)."""
    parser = _FormFields()
    parser.feed(html)
    data: FormData = {}
    for name, value in parser.fields:
        if name == "tier_row":
            data.setdefault(name, []).append(value)
        else:
            data[name] = value
    return data


def input_value(html: str, name: str) -> str:
    match = re.search(rf'<input id="{re.escape(name)}" name="{re.escape(name)}"[^>]*>', html)
    assert match, f"no input {name}"
    value = re.search(r'value="([^"]*)"', match.group(0))
    assert value
    return value.group(1)


def input_is_invalid(html: str, name: str) -> bool:
    match = re.search(rf'<input id="{re.escape(name)}" name="{re.escape(name)}"[^>]*>', html)
    assert match, f"no input {name}"
    return 'aria-invalid="true"' in match.group(0)


def error_next_to(html: str, name: str) -> str:
    """The message in the error slot of input `name` (empty when there is none)."""
    match = re.search(
        rf'<p class="field-error[^"]*" id="{re.escape(name)}-error">([^<]*)</p>', html
    )
    return match.group(1) if match else ""


def updates(session: Session) -> list[AuditEntry]:
    session.expire_all()
    return list(
        session.exec(
            select(AuditEntry)
            .where(AuditEntry.entity_id == SLUG, AuditEntry.action == "edition.updated")
            .order_by(col(AuditEntry.id))
        ).all()
    )


def api_fees(client: TestClient) -> dict[str, Any]:
    response = client.get(f"/api/v1/editions/{SLUG}")
    assert response.status_code == 200
    fees: dict[str, Any] = response.json()["fees"]
    fees["dues_year"] = response.json()["dues_year"]
    fees["income_fy"] = response.json()["income_fy"]
    return fees


@pytest.fixture
def edition(session: Session) -> Edition:
    """Standard 1500.00, member 1000.00, waiver 100 %, groups of 2+ get 10 % off."""
    return make_edition(session, slug=SLUG)


@pytest.fixture
def admin(client: TestClient, admin_user: StaffUser) -> TestClient:
    """The client, logged in as an administrator."""
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    return client


def current_form(client: TestClient) -> FormData:
    response = client.get(PAGE)
    assert response.status_code == 200
    return form_of(response.text)


def test_tutors_are_refused(client: TestClient, tutor_user: StaffUser, edition: Edition) -> None:
    login(client, "tutor@example.org", TUTOR_PASSWORD)
    assert client.get(PAGE).status_code == 403
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/admin").text)
    assert token
    response = client.post(
        PAGE, data={"standard": "1.00"}, headers={"X-CSRF-Token": token.group(1)}
    )
    assert response.status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client: TestClient, edition: Edition) -> None:
    response = client.get(PAGE, follow_redirects=False)
    assert response.status_code == 303
    assert (
        response.headers["location"]
        == "/admin/login?next=%2Fadmin%2Feditions%2Fdiploma-test%2Ffees"
    )


def test_unknown_edition_is_404(admin: TestClient) -> None:
    assert admin.get("/admin/editions/nope/fees").status_code == 404


def test_page_shows_the_stored_values_with_two_decimals(
    admin: TestClient, edition: Edition
) -> None:
    html = admin.get(PAGE).text
    assert input_value(html, "standard") == "1500.00"
    assert input_value(html, "member") == "1000.00"
    assert input_value(html, "waiver_percent") == "100"
    assert input_value(html, "dues_year") == "2023"
    assert '<option value="2023" selected>FY2023 (published July 2022)</option>' in html
    assert input_value(html, "tiers-0-min_size") == "2"
    assert input_value(html, "tiers-0-percent") == "10"
    # Two spare rows for adding tiers without JavaScript.
    assert input_value(html, "tiers-1-min_size") == ""
    assert input_value(html, "tiers-2-min_size") == ""
    assert "Minimum group size, tier 1</label>" in html
    assert "Groups of 2 or more from one organisation" in html


def test_page_shows_the_history_newest_first_on_the_edition_clock(
    admin: TestClient, edition: Edition, session: Session
) -> None:
    changed = update_edition(
        session,
        slug=SLUG,
        data=EditionPatch.model_validate({"fees": {"member": "900.50"}}),
        actor="other@example.org",
    )
    html = admin.get(PAGE).text
    history = html[html.index('id="history-heading"') :]
    assert history.index("other@example.org") < history.index(">test<")
    assert "1,000.00 EUR</span>" in history
    assert "900.50 EUR</span>" in history
    created = history[history.index(">test<") :]
    assert "created the edition with" in created
    assert '<span class="change-after">1,500.00 EUR</span>' in created
    local = local_time(changed, changed.updated_at)
    assert f"{local:%H:%M %Z}" in history


def test_saving_updates_the_edition_and_audits_only_the_changed_keys(
    admin: TestClient, edition: Edition, session: Session
) -> None:
    data = current_form(admin)
    data.update({"standard": "1600", "tiers-0-percent": "15", "tiers-1-min_size": "5"})
    data["tiers-1-percent"] = "20"
    response = admin.post(PAGE, data=data, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == PAGE
    assert "Fees saved." in admin.get(PAGE).text
    assert "Fees saved." not in admin.get(PAGE).text
    fees = api_fees(admin)
    assert fees["standard"] == "1600.00"
    assert fees["member"] == "1000.00"
    assert fees["group_tiers"] == [
        {"min_size": 2, "percent": "15.00"},
        {"min_size": 5, "percent": "20.00"},
    ]
    [entry] = updates(session)
    assert entry.actor == "admin@example.org"
    assert entry.before == {"fee_standard": "1500.00", "group_tiers": [[2, "10.00"]]}
    assert entry.after == {
        "fee_standard": "1600.00",
        "group_tiers": [[2, "15.00"], [5, "20.00"]],
    }


def test_dues_year_and_income_year_are_saved(
    admin: TestClient, edition: Edition, session: Session
) -> None:
    data = current_form(admin)
    data.update({"dues_year": "2024", "income_fy": "2025", "waiver_percent": "50"})
    assert admin.post(PAGE, data=data, follow_redirects=False).status_code == 303
    fees = api_fees(admin)
    assert (fees["dues_year"], fees["income_fy"], fees["waiver_percent"]) == (2024, 2025, "50.00")
    [entry] = updates(session)
    assert entry.after == {"dues_year": 2024, "income_fy": 2025, "waiver_percent": "50.00"}


def test_an_unchanged_form_saves_nothing_and_says_so(
    admin: TestClient, edition: Edition, session: Session
) -> None:
    response = admin.post(PAGE, data=current_form(admin), follow_redirects=False)
    assert response.status_code == 303
    assert "Nothing changed." in admin.get(PAGE).text
    assert updates(session) == []


@pytest.mark.parametrize(
    ("name", "typed", "message"),
    [
        ("standard", "-5", "Enter an amount of 0 or more."),
        ("member", "abc", "Enter an amount such as 1500.00."),
        ("standard", "1500.123", "Enter an amount with at most 2 decimals, such as 1500.00."),
        ("waiver_percent", "120", "Enter a percent from 0 to 100."),
        ("dues_year", "20x3", "Enter a year such as 2023."),
        ("income_fy", "1999", "Choose a fiscal year from the list."),
    ],
)
def test_a_wrong_value_is_422_with_the_message_next_to_it_and_nothing_saved(
    admin: TestClient, edition: Edition, session: Session, name: str, typed: str, message: str
) -> None:
    data = current_form(admin)
    data.update({name: typed, "member": "900.00" if name != "member" else typed})
    response = admin.post(PAGE, data=data)
    assert response.status_code == 422
    html = response.text
    assert error_next_to(html, name) == message
    if name != "income_fy":
        assert input_is_invalid(html, name)
        assert input_value(html, name) == typed
    assert input_value(html, "member") == data["member"]
    assert re.search(rf'<a href="#{name}">[^<:]+: {re.escape(message)}</a>', html)
    assert api_fees(admin)["member"] == "1000.00"
    assert updates(session) == []


@pytest.mark.parametrize(
    ("tiers", "invalid", "message"),
    [
        (
            [("5", "10"), ("3", "20")],
            "tiers-1-min_size",
            "tier 2 (groups of 3) must be larger than tier 1 (groups of 5)",
        ),
        (
            [("2", "20"), ("5", "10")],
            "tiers-1-percent",
            "tier 2 (10 % off) cannot give less than tier 1 (20 % off)",
        ),
    ],
)
def test_tiers_out_of_order_are_refused_naming_the_rows(
    admin: TestClient,
    edition: Edition,
    session: Session,
    tiers: list[tuple[str, str]],
    invalid: str,
    message: str,
) -> None:
    data = current_form(admin)
    for position, (size, pct) in enumerate(tiers):
        data[f"tiers-{position}-min_size"] = size
        data[f"tiers-{position}-percent"] = pct
    response = admin.post(PAGE, data=data)
    assert response.status_code == 422
    tiers_error = re.search(r'<p class="field-error" id="tiers-error">([^<]*)</p>', response.text)
    assert tiers_error
    assert message in tiers_error.group(1).lower()
    assert input_is_invalid(response.text, invalid)
    assert input_value(response.text, "tiers-0-min_size") == tiers[0][0]
    assert input_value(response.text, "tiers-1-min_size") == tiers[1][0]
    assert api_fees(admin)["group_tiers"] == [{"min_size": 2, "percent": "10.00"}]
    assert updates(session) == []


@pytest.mark.parametrize(
    ("size", "pct", "name", "message"),
    [
        ("1", "10", "tiers-0-min_size", "Tier 1: Enter a minimum group size of 2 or more"),
        ("2.5", "10", "tiers-0-min_size", "Tier 1: Enter the minimum group size as a whole"),
        ("2", "101", "tiers-0-percent", "Tier 1: Enter a percent from 0 to 100."),
    ],
)
def test_a_wrong_tier_value_is_422_with_the_message_under_its_row(
    admin: TestClient,
    edition: Edition,
    session: Session,
    size: str,
    pct: str,
    name: str,
    message: str,
) -> None:
    data = current_form(admin)
    data.update({"tiers-0-min_size": size, "tiers-0-percent": pct})
    response = admin.post(PAGE, data=data)
    assert response.status_code == 422
    assert error_next_to(response.text, name).startswith(message)
    assert input_is_invalid(response.text, name)
    assert input_value(response.text, "tiers-0-min_size") == size
    assert updates(session) == []


def test_removing_a_tier(admin: TestClient, session: Session) -> None:
    make_edition(
        session,
        slug=SLUG,
        fees={
            "standard": "1500",
            "member": "1000",
            "group_tiers": [{"min_size": 2, "percent": "10"}, {"min_size": 5, "percent": "15"}],
        },
    )
    data = current_form(admin)
    data["tiers-0-remove"] = "1"
    assert admin.post(PAGE, data=data, follow_redirects=False).status_code == 303
    assert api_fees(admin)["group_tiers"] == [{"min_size": 5, "percent": "15.00"}]
    [entry] = updates(session)
    assert entry.after == {"group_tiers": [[5, "15.00"]]}


def test_a_removed_row_is_not_checked(admin: TestClient, edition: Edition) -> None:
    data = current_form(admin)
    data.update({"tiers-0-min_size": "1", "tiers-0-remove": "1"})
    assert admin.post(PAGE, data=data, follow_redirects=False).status_code == 303
    assert api_fees(admin)["group_tiers"] == []


def test_adding_a_tier_through_a_spare_row(admin: TestClient, edition: Edition) -> None:
    data = current_form(admin)
    data.update({"tiers-2-min_size": "10", "tiers-2-percent": "25"})
    assert admin.post(PAGE, data=data, follow_redirects=False).status_code == 303
    assert api_fees(admin)["group_tiers"] == [
        {"min_size": 2, "percent": "10.00"},
        {"min_size": 10, "percent": "25.00"},
    ]


def test_add_a_tier_returns_the_next_empty_row(admin: TestClient, edition: Edition) -> None:
    response = admin.get(
        f"{PAGE}/tier-row", params=[("tier_row", "0"), ("tier_row", "1"), ("tier_row", "2")]
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'name="tier_row" value="3"' in response.text
    assert "Minimum group size, tier 4</label>" in response.text
    assert re.search(r'id="tiers-3-min_size"[^>]*autofocus', response.text)


def test_a_row_added_by_the_button_is_saved(admin: TestClient, edition: Edition) -> None:
    data = current_form(admin)
    row = admin.get(f"{PAGE}/tier-row", params=[("tier_row", k) for k in data["tier_row"]])
    data["tier_row"] = [*data["tier_row"], *re.findall(r'name="tier_row" value="(\d+)"', row.text)]
    data.update({"tiers-3-min_size": "8", "tiers-3-percent": "20"})
    assert admin.post(PAGE, data=data, follow_redirects=False).status_code == 303
    assert api_fees(admin)["group_tiers"][-1] == {"min_size": 8, "percent": "20.00"}


def test_validating_never_saves(admin: TestClient, edition: Edition, session: Session) -> None:
    data = current_form(admin)
    data["standard"] = "1750.00"
    response = admin.post(f"{PAGE}/validate", data=data, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert input_value(response.text, "standard") == "1750.00"
    assert api_fees(admin)["standard"] == "1500.00"
    assert updates(session) == []


def test_validating_returns_only_the_form_with_messages_and_typed_values(
    admin: TestClient, edition: Edition
) -> None:
    data = current_form(admin)
    data.update({"standard": "-1", "member": "950"})
    response = admin.post(f"{PAGE}/validate", data=data, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "<html" not in response.text
    assert response.text.lstrip().startswith('<form id="fees-form"')
    assert error_next_to(response.text, "standard") == "Enter an amount of 0 or more."
    assert error_next_to(response.text, "member") == ""
    assert input_value(response.text, "member") == "950"


def test_an_htmx_request_for_the_page_gets_only_the_form(
    admin: TestClient, edition: Edition
) -> None:
    response = admin.get(PAGE, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'id="fees-form"' in response.text


def test_saving_without_the_csrf_token_is_refused(
    admin: TestClient, edition: Edition, session: Session
) -> None:
    data = current_form(admin)
    data.pop("csrf_token")
    data["standard"] = "1.00"
    response = admin.post(PAGE, data=data)
    assert response.status_code == 403
    assert api_fees(admin)["standard"] == "1500.00"
    assert updates(session) == []


def test_a_stale_form_is_409_shows_the_stored_values_and_saves_nothing(
    admin: TestClient, edition: Edition, session: Session
) -> None:
    data = current_form(admin)
    theirs = update_edition(
        session,
        slug=SLUG,
        data=EditionPatch.model_validate({"fees": {"standard": "1550.00"}}),
        actor="other@example.org",
    )
    data["standard"] = "1700.00"
    response = admin.post(PAGE, data=data)
    assert response.status_code == 409
    at = local_time(theirs, theirs.updated_at)
    assert (
        f"Another administrator changed these fees at {at:%H:%M}; "
        "review their values and save again."
    ) in response.text
    assert input_value(response.text, "standard") == "1550.00"
    assert "Standard fee: 1,700.00 EUR" in response.text
    assert form_of(response.text)["updated_at"] == theirs.updated_at.isoformat()
    assert api_fees(admin)["standard"] == "1550.00"
    assert [e.actor for e in updates(session)] == ["other@example.org"]


def test_the_form_from_a_conflict_can_be_saved(
    admin: TestClient, edition: Edition, session: Session
) -> None:
    data = current_form(admin)
    update_edition(
        session,
        slug=SLUG,
        data=EditionPatch.model_validate({"fees": {"standard": "1550.00"}}),
        actor="other@example.org",
    )
    data["standard"] = "1700.00"
    again = form_of(admin.post(PAGE, data=data).text)
    again["standard"] = "1700.00"
    assert admin.post(PAGE, data=again, follow_redirects=False).status_code == 303
    assert api_fees(admin)["standard"] == "1700.00"


def test_a_form_without_its_loaded_time_is_a_conflict(
    admin: TestClient, edition: Edition, session: Session
) -> None:
    data = current_form(admin)
    data.update({"standard": "1700.00", "updated_at": "yesterday"})
    response = admin.post(PAGE, data=data)
    assert response.status_code == 409
    assert api_fees(admin)["standard"] == "1500.00"
