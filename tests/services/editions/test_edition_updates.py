"""Changing an edition: the guard against overwriting a change made since it was loaded."""

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from app.models import AuditEntry
from app.services.editions.editions import EditionPatch, get_edition, update_edition
from app.services.errors import Conflict, InvalidInput
from tests.factories import make_edition

NEW_MEMBER_FEE = EditionPatch.model_validate({"fees": {"member": "900.00"}})


def audit_actions(session: Session, slug: str) -> list[str]:
    return list(
        session.exec(
            select(AuditEntry.action)
            .where(AuditEntry.entity_id == slug)
            .order_by(col(AuditEntry.id))
        ).all()
    )


def test_update_with_the_loaded_updated_at_is_saved(session: Session) -> None:
    edition = make_edition(session)
    loaded_at = edition.updated_at
    changed = update_edition(
        session,
        slug=edition.slug,
        data=NEW_MEMBER_FEE,
        actor="admin@example.org",
        expected_updated_at=loaded_at,
    )
    assert changed.fee_member == Decimal("900.00")
    assert changed.updated_at > loaded_at


def test_the_same_instant_in_another_offset_matches(session: Session) -> None:
    edition = make_edition(session)
    in_tokyo = edition.updated_at.astimezone(ZoneInfo("Asia/Tokyo"))
    changed = update_edition(
        session,
        slug=edition.slug,
        data=NEW_MEMBER_FEE,
        actor="admin@example.org",
        expected_updated_at=in_tokyo,
    )
    assert changed.fee_member == Decimal("900.00")


def test_a_stale_updated_at_is_a_conflict_and_changes_nothing(session: Session) -> None:
    edition = make_edition(session)
    stale = edition.updated_at - timedelta(microseconds=1)
    with pytest.raises(Conflict) as raised:
        update_edition(
            session,
            slug=edition.slug,
            data=NEW_MEMBER_FEE,
            actor="admin@example.org",
            expected_updated_at=stale,
        )
    assert raised.value.fields["updated_at"] == edition.updated_at.isoformat()
    session.expire_all()
    assert get_edition(session, edition.slug).fee_member == Decimal("1000.00")
    assert audit_actions(session, edition.slug) == ["edition.created"]


def test_a_change_saved_in_between_makes_the_older_form_conflict(session: Session) -> None:
    edition = make_edition(session)
    loaded_at = edition.updated_at
    update_edition(
        session,
        slug=edition.slug,
        data=EditionPatch.model_validate({"fees": {"standard": "1600.00"}}),
        actor="first@example.org",
        expected_updated_at=loaded_at,
    )
    with pytest.raises(Conflict):
        update_edition(
            session,
            slug=edition.slug,
            data=NEW_MEMBER_FEE,
            actor="second@example.org",
            expected_updated_at=loaded_at,
        )
    session.expire_all()
    assert get_edition(session, edition.slug).fee_member == Decimal("1000.00")
    assert audit_actions(session, edition.slug) == ["edition.created", "edition.updated"]


def test_a_naive_updated_at_is_refused(session: Session) -> None:
    edition = make_edition(session)
    with pytest.raises(InvalidInput):
        update_edition(
            session,
            slug=edition.slug,
            data=NEW_MEMBER_FEE,
            actor="admin@example.org",
            expected_updated_at=edition.updated_at.replace(tzinfo=None),
        )


def test_without_expected_updated_at_the_change_is_saved_as_before(session: Session) -> None:
    edition = make_edition(session)
    update_edition(
        session,
        slug=edition.slug,
        data=EditionPatch.model_validate({"fees": {"standard": "1600.00"}}),
        actor="first@example.org",
    )
    changed = update_edition(session, slug=edition.slug, data=NEW_MEMBER_FEE, actor="api")
    assert (changed.fee_standard, changed.fee_member) == (Decimal("1600.00"), Decimal("900.00"))


def test_a_tier_can_keep_its_size_and_change_its_percent(session: Session) -> None:
    edition = make_edition(session)
    changed = update_edition(
        session,
        slug=edition.slug,
        data=EditionPatch.model_validate(
            {"fees": {"group_tiers": [{"min_size": 2, "percent": "15"}]}}
        ),
        actor="admin@example.org",
    )
    assert [(t.min_size, t.percent) for t in changed.group_tiers] == [(2, Decimal("15.00"))]


def test_modules_with_attendance_taken_are_not_replaced(session: Session) -> None:
    from tests.factories import make_eligible_participant, open_edition

    edition = open_edition(session)
    make_eligible_participant(session, edition)
    before = [(s.id, s.title) for m in edition.modules for s in m.sessions]
    patch = EditionPatch.model_validate(
        {
            "modules": [
                {
                    "title": "Only one",
                    "sessions": [
                        {
                            "kind": "knowledge",
                            "title": "New",
                            "starts_at": "2027-11-15T09:00:00+01:00",
                            "ends_at": "2027-11-15T11:00:00+01:00",
                        }
                    ],
                }
            ]
        }
    )
    with pytest.raises(Conflict, match="Attendance has been taken"):
        update_edition(session, slug=edition.slug, data=patch, actor="admin@example.org")
    edition = get_edition(session, edition.slug)
    assert [(s.id, s.title) for m in edition.modules for s in m.sessions] == before
