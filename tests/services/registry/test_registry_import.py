"""The registry CSV import (plan, then all rows or none), editing, and the listing filters."""

from datetime import date

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from app.models import AuditEntry, Organisation
from app.services.errors import Conflict, InvalidInput
from app.services.registry.organisations import (
    MAX_CSV_ROWS,
    MAX_IMPORT_BYTES,
    OrganisationIn,
    apply_organisation_import,
    decode_csv,
    default_dues_year,
    list_organisations,
    membership_status,
    plan_organisation_import,
    update_organisation,
)
from tests.factories import make_organisation

HEADER = "name,country,is_member,dues_paid_through\n"


def plan_of(session: Session, *lines: str, header: str = HEADER):  # type: ignore[no-untyped-def]
    return plan_organisation_import(session, header + "\n".join(lines) + "\n")


def organisation_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Organisation)).one()


def audit_actions(session: Session) -> list[str]:
    return list(session.exec(select(AuditEntry.action).order_by(col(AuditEntry.id))).all())


# Planning


def test_a_new_organisation_is_planned_as_a_create_with_parsed_values(session: Session) -> None:
    plan = plan_of(session, "Ciudad X,mx,yes,2023")
    [row] = plan.rows
    assert row.line == 2
    assert row.action == "create"
    assert row.values == {
        "name": "Ciudad X",
        "country": "MEX",
        "is_member": True,
        "dues_paid_through": 2023,
    }
    assert plan.can_apply
    assert (plan.creates, plan.updates, plan.error_rows) == (1, 0, 0)


def test_same_name_in_any_case_and_same_country_is_an_update_with_its_changes(
    session: Session,
) -> None:
    stored = make_organisation(session, name="Lilongwe City Council", dues_paid_through=2022)
    plan = plan_of(session, "LILONGWE city council,Malawi,yes,2023")
    [row] = plan.rows
    assert row.action == "update"
    assert row.organisation_id == stored.id
    assert row.changes == {
        "name": ("Lilongwe City Council", "LILONGWE city council"),
        "dues_paid_through": (2022, 2023),
    }
    assert plan.updates == 1


def test_the_same_name_in_another_country_is_a_create(session: Session) -> None:
    make_organisation(session, name="San José", country="CRI")
    [row] = plan_of(session, "San José,USA,no,").rows
    assert row.action == "create"


def test_a_row_equal_to_the_stored_entry_is_unchanged(session: Session) -> None:
    make_organisation(session, name="Lilongwe City Council", dues_paid_through=2023)
    plan = plan_of(session, "Lilongwe City Council,MWI,yes,2023")
    assert plan.rows[0].action == "update"
    assert plan.rows[0].changes == {}
    assert (plan.updates, plan.unchanged) == (0, 1)


@pytest.mark.parametrize("country", ["MW", "mwi", "Malawi"])
def test_alpha2_alpha3_and_english_name_all_give_the_alpha3_code(
    session: Session, country: str
) -> None:
    [row] = plan_of(session, f"Lilongwe City Council,{country},no,").rows
    assert row.action == "create"
    assert row.values["country"] == "MWI"


def test_congo_is_ambiguous_and_a_row_error(session: Session) -> None:
    [row] = plan_of(session, "Brazzaville,Congo,yes,2023").rows
    assert row.action == "error"
    assert "ambiguous" in row.errors["country"]
    assert "COG or COD" in row.errors["country"]


def test_an_unknown_country_is_a_row_error(session: Session) -> None:
    [row] = plan_of(session, "Cair Paravel,Narnia,yes,2023").rows
    assert row.action == "error"
    assert "'Narnia' is not a known country" in row.errors["country"]
    assert row.values["country"] == "Narnia"


@pytest.mark.parametrize(
    ("line", "column", "words"),
    [
        ("X,ES,yes,2023", "name", "at least 2 characters"),
        ("A" * 201 + ",ES,yes,2023", "name", "at most 200 characters"),
        ("Madrid,ES,maybe,2023", "is_member", "'maybe' is not yes or no"),
        ("Madrid,ES,yes,20x3", "dues_paid_through", "'20x3' is not a year"),
        ("Madrid,ES,yes,1899", "dues_paid_through", "between 1900 and 2200"),
        ("Madrid,ES,yes,2201", "dues_paid_through", "between 1900 and 2200"),
        ("Madrid,ES,yes", "row", "Expected 4 columns, found 3"),
        ("Madrid,ES,yes,2023,extra", "row", "Expected 4 columns, found 5"),
    ],
)
def test_each_bad_value_is_a_row_error_on_its_column(
    session: Session, line: str, column: str, words: str
) -> None:
    [row] = plan_of(session, line).rows
    assert row.action == "error"
    assert words in row.errors[column]
    assert not plan_of(session, line).can_apply


def test_all_faults_of_a_row_are_reported_together(session: Session) -> None:
    [row] = plan_of(session, "X,Narnia,perhaps,99").rows
    assert set(row.errors) == {"name", "country", "is_member", "dues_paid_through"}


@pytest.mark.parametrize(
    ("written", "member"),
    [
        *[("yes", True), ("Y", True), ("true", True), ("1", True)],
        *[("no", False), ("N", False), ("FALSE", False), ("0", False), ("", False)],
    ],
)
def test_is_member_accepts_yes_no_words(session: Session, written: str, member: bool) -> None:
    [row] = plan_of(session, f"Madrid City Council,ES,{written},").rows
    assert row.values["is_member"] is member
    assert row.values["dues_paid_through"] is None


def test_the_same_organisation_twice_in_the_file_is_an_error_on_the_second(
    session: Session,
) -> None:
    plan = plan_of(session, "Madrid City Council,ES,yes,2023", "madrid city council,ESP,no,")
    first, second = plan.rows
    assert first.action == "create"
    assert second.action == "error"
    assert second.errors == {"row": "The same organisation as line 2."}
    assert plan.faults == {"row 3": "The same organisation as line 2."}


def test_columns_may_come_in_any_order_and_any_case(session: Session) -> None:
    plan = plan_of(
        session,
        "2023,yes,ES,Madrid City Council",
        header="DUES_PAID_THROUGH,Is_Member,country,Name\n",
    )
    assert plan.rows[0].values == {
        "name": "Madrid City Council",
        "country": "ESP",
        "is_member": True,
        "dues_paid_through": 2023,
    }


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("Madrid City Council,ES,yes,2023\n", "unknown column(s) 'Madrid City Council'"),
        ("name,country,is_member\n", "missing dues_paid_through"),
        ("name,country,is_member,dues_paid_through,notes\n", "unknown column(s) 'notes'"),
        ("name,name,country,is_member,dues_paid_through\n", "repeated name"),
    ],
)
def test_a_bad_header_refuses_the_whole_file(session: Session, header: str, words: str) -> None:
    plan = plan_of(session, "Barcelona City Council,ES,yes,2023", header=header)
    assert plan.rows == []
    assert words in plan.problems["header"]
    assert "name,country,is_member,dues_paid_through" in plan.problems["header"]
    assert not plan.can_apply


def test_an_empty_file_or_a_header_alone_cannot_be_applied(session: Session) -> None:
    assert "header" in plan_organisation_import(session, "").problems
    assert "no rows" in plan_organisation_import(session, HEADER).problems["file"]


def test_blank_lines_are_skipped_and_lines_keep_their_numbers(session: Session) -> None:
    plan = plan_organisation_import(session, "\ufeff" + HEADER + "\nMadrid City Council,ES,y,\n")
    assert [row.line for row in plan.rows] == [3]
    assert plan.can_apply


def test_more_than_the_row_limit_is_refused(session: Session) -> None:
    lines = [f"City {n},ES,no," for n in range(MAX_CSV_ROWS + 1)]
    plan = plan_of(session, *lines)
    assert f"At most {MAX_CSV_ROWS} rows" in plan.problems["file"]
    assert not plan.can_apply
    assert plan_of(session, *lines[:MAX_CSV_ROWS]).can_apply


def test_text_over_two_megabytes_is_refused(session: Session) -> None:
    plan = plan_organisation_import(session, HEADER + "x" * MAX_IMPORT_BYTES)
    assert "larger than 2 MB" in plan.problems["file"]


def test_uploads_must_be_utf8_and_small_enough() -> None:
    assert decode_csv("\ufeffname,país\n".encode(), max_bytes=100) == "name,país\n"
    with pytest.raises(InvalidInput) as not_utf8:
        decode_csv("name,país\n".encode("latin-1"), max_bytes=100)
    assert "UTF-8" in not_utf8.value.fields["file"]
    with pytest.raises(InvalidInput) as too_big:
        decode_csv(b"x" * 101, max_bytes=100)
    assert "larger than" in too_big.value.fields["file"]
    with pytest.raises(InvalidInput):
        decode_csv(b"name\x00,country", max_bytes=100)


# Applying


def test_apply_creates_and_updates_in_one_go_and_returns_the_counts(session: Session) -> None:
    stored = make_organisation(session, name="Lilongwe City Council", dues_paid_through=2022)
    make_organisation(session, name="Barcelona City Council", country="ESP")
    csv_text = (
        HEADER
        + "Lilongwe City Council,MW,yes,2023\n"
        + "Barcelona City Council,ESP,yes,2023\n"
        + "Ciudad X,Mexico,no,\n"
        + "Ville de Lyon,FR,yes,2024\n"
    )
    assert apply_organisation_import(session, csv_text=csv_text, actor="admin@example.org") == (
        2,
        1,
    )
    session.refresh(stored)
    assert stored.dues_paid_through == 2023
    lyon = session.exec(select(Organisation).where(Organisation.name == "Ville de Lyon")).one()
    assert (lyon.country, lyon.is_member, lyon.dues_paid_through) == ("FRA", True, 2024)
    assert organisation_count(session) == 4


def test_apply_writes_an_audit_entry_per_change_and_one_for_the_import(session: Session) -> None:
    stored = make_organisation(session, dues_paid_through=2022)
    before = len(audit_actions(session))
    apply_organisation_import(
        session,
        csv_text=HEADER + "Lilongwe City Council,MWI,yes,2023\nCiudad X,MX,no,\n",
        actor="admin@example.org",
    )
    entries = session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()[before:]
    assert sorted(e.action for e in entries) == [
        "organisation.created",
        "organisation.updated",
        "organisations.imported",
    ]
    updated = next(e for e in entries if e.action == "organisation.updated")
    assert updated.entity_id == str(stored.id)
    assert updated.before is not None and updated.before["dues_paid_through"] == 2022
    assert updated.after is not None and updated.after["dues_paid_through"] == 2023
    assert {e.actor for e in entries} == {"admin@example.org"}
    summary = next(e for e in entries if e.action == "organisations.imported")
    assert summary.after == {"rows": 2, "created": 1, "updated": 1}


def test_a_file_with_one_bad_row_changes_nothing(session: Session) -> None:
    stored = make_organisation(session, dues_paid_through=2022)
    count, audits = organisation_count(session), len(audit_actions(session))
    csv_text = (
        HEADER
        + "Lilongwe City Council,MWI,yes,2023\n"
        + "Ciudad X,MX,no,\n"
        + "Brazzaville,Congo,yes,2023\n"
    )
    with pytest.raises(InvalidInput) as refused:
        apply_organisation_import(session, csv_text=csv_text, actor="admin@example.org")
    assert set(refused.value.fields) == {"row 4"}
    assert "ambiguous" in refused.value.fields["row 4"]
    session.refresh(stored)
    assert stored.dues_paid_through == 2022
    assert organisation_count(session) == count
    assert len(audit_actions(session)) == audits


def test_unchanged_rows_are_neither_counted_nor_audited(session: Session) -> None:
    make_organisation(session, dues_paid_through=2023)
    before = len(audit_actions(session))
    counts = apply_organisation_import(
        session, csv_text=HEADER + "Lilongwe City Council,MWI,yes,2023\n", actor="a"
    )
    assert counts == (0, 0)
    assert audit_actions(session)[before:] == ["organisations.imported"]


# Editing


def test_update_changes_the_entry_and_audits_before_and_after(session: Session) -> None:
    stored = make_organisation(session, dues_paid_through=2022)
    was_updated = stored.updated_at
    changed = update_organisation(
        session,
        organisation_id=stored.id or 0,
        data=OrganisationIn(
            name="Lilongwe City", country="MW", is_member=True, dues_paid_through=2024
        ),
        actor="admin@example.org",
    )
    assert (changed.name, changed.dues_paid_through) == ("Lilongwe City", 2024)
    assert changed.updated_at > was_updated
    entry = session.exec(select(AuditEntry).order_by(col(AuditEntry.id).desc())).first()
    assert entry is not None
    assert entry.action == "organisation.updated"
    assert entry.before is not None and entry.before["name"] == "Lilongwe City Council"
    assert entry.after is not None and entry.after["name"] == "Lilongwe City"


def test_update_to_another_entrys_name_and_country_is_a_conflict_on_name(
    session: Session,
) -> None:
    make_organisation(session, name="Barcelona City Council", country="ESP")
    other = make_organisation(session, name="Madrid City Council", country="ESP")
    with pytest.raises(Conflict) as clash:
        update_organisation(
            session,
            organisation_id=other.id or 0,
            data=OrganisationIn(name="barcelona city council", country="ES"),
            actor="a",
        )
    assert "name" in clash.value.fields
    session.refresh(other)
    assert other.name == "Madrid City Council"


def test_update_keeping_its_own_name_is_not_a_conflict(session: Session) -> None:
    stored = make_organisation(session, dues_paid_through=2022)
    changed = update_organisation(
        session,
        organisation_id=stored.id or 0,
        data=OrganisationIn(name="Lilongwe City Council", country="MWI", dues_paid_through=2023),
        actor="a",
    )
    assert changed.dues_paid_through == 2023
    assert changed.is_member is False


# The listing


def test_dues_year_defaults_to_last_calendar_year() -> None:
    assert default_dues_year(date(2025, 3, 1)) == 2024


def test_membership_status_is_judged_against_the_dues_year(session: Session) -> None:
    paid = make_organisation(session, name="Paid", dues_paid_through=2023)
    never = make_organisation(session, name="Never paid", dues_paid_through=None)
    outsider = make_organisation(session, name="Outsider", is_member=False)
    assert membership_status(paid, dues_year=2023) == "member"
    assert membership_status(paid, dues_year=2024) == "behind"
    assert membership_status(never, dues_year=2023) == "behind"
    assert membership_status(outsider, dues_year=2023) == "non_member"


def test_listing_filters_agree_with_membership_status(session: Session) -> None:
    make_organisation(session, name="Paid", dues_paid_through=2023)
    make_organisation(session, name="Late", dues_paid_through=2021)
    make_organisation(session, name="Never paid", dues_paid_through=None)
    make_organisation(session, name="Outsider", is_member=False, dues_paid_through=None)

    def names(status: str, year: int = 2023) -> list[str]:
        page = list_organisations(session, status=status, dues_year=year)  # type: ignore[arg-type]
        return [o.name for o in page.organisations]

    assert names("member") == ["Paid"]
    assert names("behind") == ["Late", "Never paid"]
    assert names("behind", 2021) == ["Never paid"]
    assert names("non_member") == ["Outsider"]
    assert names("all") == ["Late", "Never paid", "Outsider", "Paid"]
