"""Fee quotes for one participant: rate, low-income waiver and group discount, as lines."""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from app.money import HUNDRED, ZERO, percent_of, round_cents
from app.platform.i18n import N_, Message, Number
from app.services.errors import InvalidInput

STANDARD_RATE = "standard_rate"
MEMBER_RATE = "member_rate"
LOW_INCOME_WAIVER = "low_income_waiver"
GROUP_DISCOUNT = "group_discount"

LOW_INCOME = "L"


@dataclass(frozen=True)
class GroupTier:
    """A group of at least `min_size` participants gets `percent` % off."""

    min_size: int
    percent: Decimal


@dataclass(frozen=True)
class FeeSchedule:
    """An edition's fee amounts, waiver percent and group tiers."""

    standard: Decimal
    member: Decimal
    waiver_percent: Decimal = Decimal("100")
    group_tiers: tuple[GroupTier, ...] = ()


@dataclass(frozen=True)
class OrganisationFacts:
    """What the member registry says about the participant's organisation."""

    name: str
    is_member: bool
    dues_paid_through: int | None


@dataclass(frozen=True)
class CountryFacts:
    """The organisation's country and its World Bank income group in the edition's FY."""

    iso3: str
    name: str
    income_group: str | None


@dataclass(frozen=True)
class QuoteLine:
    """One priced line of a quote, with the reason a person can read (in any language)."""

    code: str
    label: Message
    amount: Decimal
    reason: Message


@dataclass(frozen=True)
class Quote:
    """The lines of one participant's fee and their total."""

    currency: str
    lines: tuple[QuoteLine, ...]
    total: Decimal
    member_in_good_standing: bool
    waived: bool
    group_size: int


def group_discount_percent(tiers: Sequence[GroupTier], group_size: int) -> Decimal:
    """The percent of the highest tier whose min_size <= group_size (0 if none)."""
    reached = [tier for tier in tiers if tier.min_size <= group_size]
    if not reached:
        return Decimal("0")
    return max(reached, key=lambda tier: tier.min_size).percent


def is_member_in_good_standing(org: OrganisationFacts | None, dues_year: int) -> bool:
    """True when the organisation is a member with dues paid through `dues_year` or later."""
    return (
        org is not None
        and org.is_member
        and org.dues_paid_through is not None
        and org.dues_paid_through >= dues_year
    )


def validate_schedule(schedule: FeeSchedule) -> None:
    """Raise InvalidInput with `fields` naming every fault."""
    faults = _schedule_faults(schedule)
    if faults:
        raise InvalidInput(_message("The fee schedule is not valid", faults), fields=faults)


def quote_fee(
    *,
    schedule: FeeSchedule,
    currency: str,
    dues_year: int,
    income_fy: int,
    organisation: OrganisationFacts | None,
    country: CountryFacts,
    group_size: int = 1,
) -> Quote:
    """Quote one participant's fee: the rate, any waiver, any group discount."""
    faults: dict[str, str] = {}
    if group_size < 1:
        faults["group_size"] = f"The group size must be at least 1, not {group_size}."
    faults.update(_schedule_faults(schedule))
    if faults:
        raise InvalidInput(_message("The fee cannot be quoted", faults), fields=faults)

    good_standing = is_member_in_good_standing(organisation, dues_year)
    low_income = country.income_group == LOW_INCOME
    fy = f"FY{income_fy}"
    lines: list[QuoteLine] = []

    if good_standing and organisation is not None:
        rate = round_cents(schedule.member)
        lines.append(
            QuoteLine(
                code=MEMBER_RATE,
                label=Message(N_("Member rate")),
                amount=rate,
                reason=Message(
                    N_(
                        "Member rate: %(organisation)s is a Metropolis member with dues paid "
                        "through %(year)s."
                    ),
                    {
                        "organisation": organisation.name,
                        "year": str(organisation.dues_paid_through),
                    },
                ),
            )
        )
    else:
        rate = round_cents(schedule.standard)
        reason = _standard_rate_reason(organisation, dues_year)
        if low_income:
            no_waiver = Message(
                N_(
                    "%(country)s is low income in the World Bank classification for %(fy)s, "
                    "but a low-income waiver needs membership in good standing."
                ),
                {"country": country.name, "fy": fy},
            )
            # Two sentences, each from the catalog: the pair itself is no catalog message.
            reason = Message("%(first)s %(then)s", {"first": reason, "then": no_waiver})
        lines.append(
            QuoteLine(
                code=STANDARD_RATE,
                label=Message(N_("Standard rate")),
                amount=rate,
                reason=reason,
            )
        )

    base = rate
    if good_standing and low_income and schedule.waiver_percent > 0:
        waiver_pct = Number(schedule.waiver_percent)
        # ZERO - x rather than -x so a zero waiver is 0.00, not -0.00.
        waiver = ZERO - percent_of(rate, schedule.waiver_percent)
        low_income_country = {"country": country.name, "fy": fy}
        lines.append(
            QuoteLine(
                code=LOW_INCOME_WAIVER,
                label=Message(
                    N_("Low-income fee waiver (%(percent)s %%)"), {"percent": waiver_pct}
                ),
                amount=waiver,
                reason=(
                    Message(
                        N_(
                            "Fee waived: %(country)s is low income in the World Bank "
                            "classification for %(fy)s."
                        ),
                        low_income_country,
                    )
                    if schedule.waiver_percent == HUNDRED
                    else Message(
                        N_(
                            "Fee %(percent)s %% waived: %(country)s is low income in the World "
                            "Bank classification for %(fy)s."
                        ),
                        {**low_income_country, "percent": waiver_pct},
                    )
                ),
            )
        )
        base = rate + waiver

    discount_pct = group_discount_percent(schedule.group_tiers, group_size)
    if discount_pct > 0 and base > 0:
        pct = Number(discount_pct)
        lines.append(
            QuoteLine(
                code=GROUP_DISCOUNT,
                label=Message(N_("Group discount (%(percent)s %%)"), {"percent": pct}),
                amount=ZERO - percent_of(base, discount_pct),
                reason=Message(
                    N_("Group of %(size)s from one organisation: %(percent)s %% off."),
                    {"size": group_size, "percent": pct},
                ),
            )
        )

    total = sum((line.amount for line in lines), ZERO)
    return Quote(
        currency=currency,
        lines=tuple(lines),
        total=total,
        member_in_good_standing=good_standing,
        waived=any(line.code == LOW_INCOME_WAIVER for line in lines),
        group_size=group_size,
    )


def _standard_rate_reason(org: OrganisationFacts | None, dues_year: int) -> Message:
    """Why a participant pays the standard rate."""
    if org is None:
        return Message(
            N_("Standard rate: the organisation is not in the Metropolis member registry.")
        )
    if not org.is_member:
        return Message(
            N_("Standard rate: %(organisation)s is not a Metropolis member."),
            {"organisation": org.name},
        )
    if org.dues_paid_through is None:
        return Message(
            N_(
                "Standard rate: %(organisation)s has no membership dues on record; "
                "the member rate needs dues paid through %(year)s."
            ),
            {"organisation": org.name, "year": str(dues_year)},
        )
    return Message(
        N_(
            "Standard rate: %(organisation)s's membership dues are paid through %(paid)s; "
            "the member rate needs dues paid through %(year)s."
        ),
        {"organisation": org.name, "paid": str(org.dues_paid_through), "year": str(dues_year)},
    )


def _schedule_faults(schedule: FeeSchedule) -> dict[str, str]:
    """Every fault of a fee schedule, by field name."""
    faults: dict[str, str] = {}
    for field, amount in (("standard", schedule.standard), ("member", schedule.member)):
        if not amount.is_finite() or amount < 0:
            faults[field] = f"The {field} fee must be an amount of at least 0, not {amount}."
    if not _is_percent(schedule.waiver_percent):
        faults["waiver_percent"] = (
            f"The waiver percent must be between 0 and 100, not {schedule.waiver_percent}."
        )
    tier_faults: list[str] = []
    previous: int | None = None
    previous_percent: Decimal | None = None
    for tier in schedule.group_tiers:
        if not _is_percent(tier.percent):
            tier_faults.append(
                f"the tier from {tier.min_size} has percent {tier.percent}; "
                "it must be between 0 and 100"
            )
        if tier.min_size < 2:
            tier_faults.append(f"a tier's minimum size must be at least 2, not {tier.min_size}")
        if previous is not None and tier.min_size <= previous:
            tier_faults.append(
                f"minimum sizes must be strictly increasing ({previous} then {tier.min_size})"
            )
        # A larger group paying more per person than a smaller one is always a typo.
        if previous_percent is not None and tier.percent < previous_percent:
            tier_faults.append(
                f"a larger group cannot get less off ({previous_percent} % then {tier.percent} %)"
            )
        previous = tier.min_size
        previous_percent = tier.percent
    if tier_faults:
        faults["group_tiers"] = "Group tiers: " + "; ".join(tier_faults) + "."
    return faults


def _is_percent(value: Decimal) -> bool:
    """True for a finite percent from 0 to 100."""
    return value.is_finite() and ZERO <= value <= HUNDRED


def _message(prefix: str, faults: dict[str, str]) -> str:
    """One sentence listing every fault."""
    return f"{prefix}: " + " ".join(faults.values())
