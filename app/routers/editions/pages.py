"""Administrators' edition pages: the fee schedule form, its inline checks and its history."""

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from app.models import AuditEntry, Edition, StaffUser
from app.money import format_money
from app.platform.i18n import N_, gettext, translate
from app.services.editions import editions as edition_service
from app.services.editions.editions import EditionPatch, FeesPatch, GroupTierIn
from app.services.errors import Conflict, InvalidInput
from app.services.registry import organisations as registry
from app.web.dependencies import (
    PageAdmin,
    SessionDep,
    form_errors,
    is_htmx,
    money,
    percent,
    templates,
)
from app.web.security import verify_csrf

router = APIRouter(
    prefix="/admin/editions", include_in_schema=False, dependencies=[Depends(verify_csrf)]
)

FEES_PAGE = "editions/office/fees.html"
TIER_ROW = "editions/office/tier_row.html"
SPARE_TIER_ROWS = 2
# Far above the 20 tiers a schedule may hold; bounds the work a crafted form can cause.
MAX_TIER_ROWS = 60
MAX_TYPED_LENGTH = 40
HISTORY_LIMIT = 100
FEE_ACTIONS = ("edition.created", "edition.updated")
FEE_KEYS = {
    "fee_standard": N_("Standard fee"),
    "fee_member": N_("Member fee"),
    "waiver_percent": N_("Low-income waiver"),
    "group_tiers": N_("Group discounts"),
    "dues_year": N_("Dues year"),
    "income_fy": N_("Income fiscal year"),
}
FIELD_LABELS = {
    "standard": N_("Standard fee"),
    "member": N_("Member fee"),
    "waiver_percent": N_("Low-income waiver"),
    "dues_year": N_("Dues year"),
    "income_fy": N_("Income fiscal year"),
}
_TIER_INPUT = re.compile(r"^fees\.group_tiers\.(\d+)\.(min_size|percent)$")


@dataclass
class TierRow:
    """One group tier row as typed."""

    min_size: str = ""
    percent: str = ""
    remove: bool = False

    @property
    def is_empty(self) -> bool:
        """A row with nothing typed in it, which the form ignores."""
        return not self.min_size.strip() and not self.percent.strip()


@dataclass
class FeesForm:
    """The fee form's values as typed, so a page with errors shows them back."""

    standard: str
    member: str
    waiver_percent: str
    dues_year: str
    income_fy: str
    updated_at: str
    tiers: list[TierRow]


@dataclass
class FeesFormErrors:
    """Messages by input name; `tiers` is about the rows together and names them."""

    fields: dict[str, str] = field(default_factory=dict)
    tiers: str = ""
    flagged: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.fields or self.tiers)

    def summary(self) -> list[tuple[str, str]]:
        """(input id, message) in the order the inputs appear on the page."""
        items = [
            (name, f"{gettext(label)}: {self.fields[name]}")
            for name, label in FIELD_LABELS.items()
            if name in self.fields
        ]
        tier_names = sorted(
            (name for name in self.fields if name.startswith("tiers-")),
            key=lambda name: (int(name.split("-")[1]), name),
        )
        items += [(name, f"Tier {_tier_number(name)}: {self.fields[name]}") for name in tier_names]
        if self.tiers:
            first = min(self.flagged, key=lambda name: int(name.split("-")[1]), default="tiers")
            items.append((first, self.tiers))
        return items


@dataclass(frozen=True)
class FeeChange:
    """One fee setting in one audit entry, as words."""

    label: str
    before: str | None
    after: str


@dataclass(frozen=True)
class HistoryEntry:
    """One audited change to the fees, on the edition's clock."""

    at: datetime
    actor: str
    created: bool
    changes: list[FeeChange]


def _tier_number(name: str) -> int:
    return int(name.split("-")[1]) + 1


def _plain_percent(value: Decimal) -> str:
    """`10`, `12.5`, `100`: what an administrator would type."""
    return format(value.normalize(), "f")


def _form_from_edition(edition: Edition) -> FeesForm:
    return FeesForm(
        standard=format_money(edition.fee_standard),
        member=format_money(edition.fee_member),
        waiver_percent=_plain_percent(edition.waiver_percent),
        dues_year=str(edition.dues_year),
        income_fy=str(edition.income_fy),
        updated_at=edition.updated_at.isoformat(),
        tiers=[
            TierRow(min_size=str(t.min_size), percent=_plain_percent(t.percent))
            for t in edition.group_tiers
        ],
    )


async def submitted_fees_form(request: Request) -> FeesForm:
    """The fee form from the request body (verify_csrf has already read and cached it)."""
    form = await request.form()

    def text(name: str) -> str:
        value = form.get(name)
        return value[:MAX_TYPED_LENGTH] if isinstance(value, str) else ""

    keys: list[int] = []
    for value in form.getlist("tier_row"):
        if isinstance(value, str) and value.isdigit() and int(value) < MAX_TIER_ROWS:
            keys.append(int(value))
    tiers = [
        TierRow(
            min_size=text(f"tiers-{key}-min_size"),
            percent=text(f"tiers-{key}-percent"),
            remove=form.get(f"tiers-{key}-remove") is not None,
        )
        for key in sorted(set(keys))
    ]
    return FeesForm(
        standard=text("standard"),
        member=text("member"),
        waiver_percent=text("waiver_percent"),
        dues_year=text("dues_year"),
        income_fy=text("income_fy"),
        updated_at=text("updated_at"),
        tiers=tiers,
    )


FeesFormDep = Annotated[FeesForm, Depends(submitted_fees_form)]


def _with_spare_rows(tiers: list[TierRow]) -> list[TierRow]:
    """The rows plus empty ones at the end, so a tier can be added without JavaScript."""
    trailing = 0
    for row in reversed(tiers):
        if not row.is_empty or row.remove:
            break
        trailing += 1
    spare = max(0, SPARE_TIER_ROWS - trailing)
    return [*tiers, *(TierRow() for _ in range(min(spare, MAX_TIER_ROWS - len(tiers))))]


def _amount_message(message: str) -> str:
    lowered = message.lower()
    if "greater than or equal" in lowered:
        return gettext("Enter an amount of 0 or more.")
    if "decimal places" in lowered:
        return gettext("Enter an amount with at most 2 decimals, such as 1500.00.")
    if "too large" in lowered:
        return gettext("Enter an amount below 1,000,000,000.00.")
    return gettext("Enter an amount such as 1500.00.")


def _percent_message(message: str) -> str:
    if "decimal places" in message.lower():
        return gettext("Enter a percent with at most 2 decimals, such as 12.5.")
    return gettext("Enter a percent from 0 to 100.")


def _min_size_message(message: str) -> str:
    lowered = message.lower()
    if "greater than or equal" in lowered:
        return gettext(
            "Enter a minimum group size of 2 or more: a group has at least 2 participants."
        )
    if "less than or equal" in lowered:
        return gettext("Enter a minimum group size of 1000 or less.")
    return gettext("Enter the minimum group size as a whole number, such as 5.")


def _tier_order_faults(
    kept: list[tuple[int, TierRow]], errors: FeesFormErrors, message: str
) -> None:
    """Name the rows that break the order; pydantic only says that some pair does."""
    if "at most" in message.lower():
        errors.tiers = gettext("Enter at most 20 tiers.")
        errors.flagged = {f"tiers-{position}-min_size" for position, _ in kept[20:]}
        return
    parsed = [
        (position, GroupTierIn.model_validate({"min_size": row.min_size, "percent": row.percent}))
        for position, row in kept
    ]
    faults: list[str] = []
    for (a_pos, a), (b_pos, b) in pairwise(parsed):
        if b.min_size <= a.min_size:
            faults.append(
                gettext(
                    "tier %(tier)s (groups of %(size)s) must be larger than tier %(other)s "
                    "(groups of %(other_size)s)"
                )
                % {
                    "tier": b_pos + 1,
                    "size": b.min_size,
                    "other": a_pos + 1,
                    "other_size": a.min_size,
                }
            )
            errors.flagged.add(f"tiers-{b_pos}-min_size")
        if b.percent < a.percent:
            faults.append(
                gettext(
                    "tier %(tier)s (%(percent)s off) cannot give less than tier %(other)s "
                    "(%(other_percent)s off)"
                )
                % {
                    "tier": b_pos + 1,
                    "percent": percent(b.percent),
                    "other": a_pos + 1,
                    "other_percent": percent(a.percent),
                }
            )
            errors.flagged.add(f"tiers-{b_pos}-percent")
    if faults:
        detail = "; ".join(faults)
        errors.tiers = gettext(
            "List the tiers from the smallest group up, a larger group never getting less off: "
            "%(faults)s."
        ) % {"faults": f"{detail[:1].upper()}{detail[1:]}"}
    else:
        errors.tiers = message


def check_fees_form(form: FeesForm, fiscal_years: list[int]) -> tuple[EditionPatch, FeesFormErrors]:
    """Validate the typed values with the service's models; messages by input name."""
    kept = [
        (position, row)
        for position, row in enumerate(form.tiers)
        if not row.remove and not row.is_empty
    ]
    payload: dict[str, Any] = {
        "dues_year": form.dues_year.strip(),
        "income_fy": form.income_fy.strip(),
        "fees": {
            "standard": form.standard.strip(),
            "member": form.member.strip(),
            "waiver_percent": form.waiver_percent.strip(),
            "group_tiers": [
                {"min_size": row.min_size.strip(), "percent": row.percent.strip()}
                for _, row in kept
            ],
        },
    }
    errors = FeesFormErrors()
    try:
        patch = EditionPatch.model_validate(payload)
    except ValidationError as exc:
        for path, message in form_errors(exc).items():
            tier_input = _TIER_INPUT.match(path)
            if path in ("fees.standard", "fees.member"):
                errors.fields[path.removeprefix("fees.")] = _amount_message(message)
            elif path == "fees.waiver_percent":
                errors.fields["waiver_percent"] = _percent_message(message)
            elif path == "dues_year":
                errors.fields["dues_year"] = gettext("Enter a year such as 2023.")
            elif path == "income_fy":
                errors.fields["income_fy"] = gettext("Choose a fiscal year from the list.")
            elif tier_input:
                position = kept[int(tier_input.group(1))][0]
                kind = tier_input.group(2)
                errors.fields[f"tiers-{position}-{kind}"] = (
                    _min_size_message(message) if kind == "min_size" else _percent_message(message)
                )
            elif path == "fees.group_tiers":
                _tier_order_faults(kept, errors, message)
            else:
                errors.tiers = errors.tiers or message
        return EditionPatch(), errors
    if patch.income_fy not in fiscal_years:
        errors.fields["income_fy"] = gettext("Choose a fiscal year from the list.")
    return patch, errors


def changed_fees(edition: Edition, patch: EditionPatch) -> EditionPatch:
    """Only the values that differ from what is stored."""
    fees = patch.fees or FeesPatch()
    changes: dict[str, Any] = {}
    fee_changes: dict[str, Any] = {}
    if patch.dues_year != edition.dues_year:
        changes["dues_year"] = patch.dues_year
    if patch.income_fy != edition.income_fy:
        changes["income_fy"] = patch.income_fy
    for name, stored in (
        ("standard", edition.fee_standard),
        ("member", edition.fee_member),
        ("waiver_percent", edition.waiver_percent),
    ):
        if getattr(fees, name) != stored:
            fee_changes[name] = getattr(fees, name)
    typed_tiers = [(t.min_size, t.percent) for t in fees.group_tiers or []]
    if typed_tiers != [(t.min_size, t.percent) for t in edition.group_tiers]:
        fee_changes["group_tiers"] = fees.group_tiers or []
    if fee_changes:
        changes["fees"] = FeesPatch(**fee_changes)
    return EditionPatch(**changes)


def _loaded_at(value: str) -> datetime | None:
    try:
        loaded = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return loaded if loaded.tzinfo is not None else None


def _fiscal_year_options(session: Session, edition: Edition) -> list[tuple[int, str]]:
    """The fiscal years with a stored classification, as the World Bank names them."""
    options = [
        (
            year,
            gettext("FY%(year)s (published July %(previous)s)")
            % {"year": year, "previous": year - 1},
        )
        for year in registry.income_fiscal_years(session)
    ]
    # An edition set up before its year's classification was loaded keeps its choice.
    if edition.income_fy not in {year for year, _ in options}:
        options.append(
            (
                edition.income_fy,
                gettext("FY%(year)s (no classification stored)") % {"year": edition.income_fy},
            )
        )
        options.sort()
    return options


def _history_value(key: str, value: Any, currency: str) -> str:
    """An audited fee setting in words; anything unexpected is shown as stored."""
    try:
        if value is None:
            return gettext("none")
        if key in ("fee_standard", "fee_member"):
            return money(Decimal(str(value)), currency)
        if key == "waiver_percent":
            return percent(Decimal(str(value)))
        if key == "income_fy":
            return f"FY{value}"
        if key == "group_tiers":
            if not value:
                return gettext("none")
            return "; ".join(
                gettext("%(size)s or more: %(percent)s")
                % {"size": size, "percent": percent(Decimal(str(pct)))}
                for size, pct in value
            )
    except (InvalidOperation, TypeError, ValueError):
        pass
    return str(value)


def describe_changes(changes: EditionPatch, currency: str) -> list[tuple[str, str]]:
    """What a patch would set, as (label, words)."""
    fees = changes.fees or FeesPatch()
    values: dict[str, Any] = {
        "fee_standard": fees.standard,
        "fee_member": fees.member,
        "waiver_percent": fees.waiver_percent,
        "group_tiers": None
        if fees.group_tiers is None
        else [[t.min_size, str(t.percent)] for t in fees.group_tiers],
        "dues_year": changes.dues_year,
        "income_fy": changes.income_fy,
    }
    return [
        (gettext(label), _history_value(key, values[key], currency))
        for key, label in FEE_KEYS.items()
        if values[key] is not None
    ]


def fee_history(session: Session, edition: Edition) -> list[HistoryEntry]:
    """The audit log's changes to this edition's fees, newest first."""
    entries = session.exec(
        select(AuditEntry)
        .where(
            AuditEntry.entity == "edition",
            AuditEntry.entity_id == edition.slug,
            col(AuditEntry.action).in_(FEE_ACTIONS),
        )
        .order_by(col(AuditEntry.at).desc(), col(AuditEntry.id).desc())
        .limit(HISTORY_LIMIT)
    ).all()
    history = []
    for entry in entries:
        before = entry.before or {}
        after = entry.after or {}
        created = entry.action == "edition.created"
        changes = [
            FeeChange(
                label=gettext(label),
                before=None if created else _history_value(key, before.get(key), edition.currency),
                after=_history_value(key, after[key], edition.currency),
            )
            for key, label in FEE_KEYS.items()
            if key in after
        ]
        if changes:
            history.append(
                HistoryEntry(
                    at=edition_service.local_time(edition, entry.at),
                    actor=entry.actor,
                    created=created,
                    changes=changes,
                )
            )
    return history


def _render(
    request: Request,
    session: Session,
    *,
    user: StaffUser,
    edition: Edition,
    form: FeesForm,
    errors: FeesFormErrors | None = None,
    conflict: str = "",
    unsaved: list[tuple[str, str]] | None = None,
    flash: str = "",
    status_code: int = status.HTTP_200_OK,
) -> Response:
    context = {
        "user": user,
        "active": "home",
        "edition": edition,
        "form": form,
        "rows": _with_spare_rows(form.tiers),
        "errors": errors or FeesFormErrors(),
        "conflict": conflict,
        "unsaved": unsaved or [],
        "flash": flash,
        "fiscal_years": _fiscal_year_options(session, edition),
        "history": fee_history(session, edition),
    }
    if is_htmx(request):
        return templates.TemplateResponse(
            request, FEES_PAGE, context, status_code=status_code, block_name="fees_form"
        )
    return templates.TemplateResponse(request, FEES_PAGE, context, status_code=status_code)


@router.get("/{slug}/fees", response_class=HTMLResponse)
def fees_page(request: Request, slug: str, session: SessionDep, user: PageAdmin) -> Response:
    """The fee schedule form, what applicants see, and the history of changes."""
    edition = edition_service.get_edition(session, slug)
    flash = request.session.pop("flash", "")
    return _render(
        request,
        session,
        user=user,
        edition=edition,
        form=_form_from_edition(edition),
        flash=flash if isinstance(flash, str) else "",
    )


@router.post("/{slug}/fees/validate", response_class=HTMLResponse)
def validate_fees(
    request: Request, slug: str, session: SessionDep, user: PageAdmin, form: FeesFormDep
) -> Response:
    """The form again with a message next to each wrong value; never saves."""
    edition = edition_service.get_edition(session, slug)
    _, errors = check_fees_form(form, [year for year, _ in _fiscal_year_options(session, edition)])
    # 200 even with errors: htmx swaps only successful responses, and nothing was refused.
    return _render(request, session, user=user, edition=edition, form=form, errors=errors)


@router.get("/{slug}/fees/tier-row", response_class=HTMLResponse)
def new_tier_row(
    request: Request,
    slug: str,
    session: SessionDep,
    user: PageAdmin,
    tier_row: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """An empty tier row to append, numbered after the rows the page already has."""
    edition = edition_service.get_edition(session, slug)
    taken = [int(key) for key in tier_row or [] if key.isdigit() and int(key) < MAX_TIER_ROWS]
    position = max(taken, default=-1) + 1
    if position >= MAX_TIER_ROWS:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return templates.TemplateResponse(
        request,
        TIER_ROW,
        {"edition": edition, "row": TierRow(), "position": position, "errors": FeesFormErrors()},
    )


@router.post("/{slug}/fees", response_class=HTMLResponse)
def save_fees(
    request: Request, slug: str, session: SessionDep, user: PageAdmin, form: FeesFormDep
) -> Response:
    """Save the fee schedule through the audited service, unless someone saved in between."""
    edition = edition_service.get_edition(session, slug)
    fiscal_years = [year for year, _ in _fiscal_year_options(session, edition)]
    patch, errors = check_fees_form(form, fiscal_years)
    if errors:
        return _render(
            request,
            session,
            user=user,
            edition=edition,
            form=form,
            errors=errors,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    changes = changed_fees(edition, patch)
    if not changes.model_dump(exclude_unset=True):
        request.session["flash"] = gettext("Nothing changed.")
        return RedirectResponse(request.url.path, status_code=status.HTTP_303_SEE_OTHER)
    loaded_at = _loaded_at(form.updated_at)
    try:
        if loaded_at is None:
            raise Conflict("The form did not say when the fees were loaded.")
        edition_service.update_edition(
            session, slug=slug, data=changes, actor=user.email, expected_updated_at=loaded_at
        )
    except Conflict:
        session.rollback()
        edition = edition_service.get_edition(session, slug)
        changed_at = edition_service.local_time(edition, edition.updated_at)
        message = (
            gettext(
                "Another administrator changed these fees at %(time)s; review their values and "
                "save again."
            )
            % {"time": f"{changed_at:%H:%M}"}
            if loaded_at is not None
            else gettext(
                "This form did not say which version of the fees it was editing; review the "
                "stored values and save again."
            )
        )
        return _render(
            request,
            session,
            user=user,
            edition=edition,
            form=_form_from_edition(edition),
            conflict=message,
            unsaved=describe_changes(changed_fees(edition, patch), edition.currency),
            status_code=status.HTTP_409_CONFLICT,
        )
    except InvalidInput as exc:
        edition = edition_service.get_edition(session, slug)
        errors = FeesFormErrors(tiers=translate(exc.message))
        return _render(
            request,
            session,
            user=user,
            edition=edition,
            form=form,
            errors=errors,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    request.session["flash"] = gettext("Fees saved.")
    return RedirectResponse(request.url.path, status_code=status.HTTP_303_SEE_OTHER)
