"""Fee quotes: rate, low-income waiver, group discount, rounding and validation."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.editions.fees import (
    CountryFacts,
    FeeSchedule,
    GroupTier,
    OrganisationFacts,
    Quote,
    group_discount_percent,
    is_member_in_good_standing,
    quote_fee,
    validate_schedule,
)
from app.services.errors import InvalidInput

# The fast tier: pure rules, no database.
pytestmark = pytest.mark.rules

DUES_YEAR = 2023
INCOME_FY = 2023
TIERS = (GroupTier(2, Decimal("10")), GroupTier(5, Decimal("15")))


def schedule(
    standard: str = "1500.00",
    member: str = "1200.00",
    waiver_percent: str = "100",
    tiers: tuple[GroupTier, ...] = (),
) -> FeeSchedule:
    return FeeSchedule(
        standard=Decimal(standard),
        member=Decimal(member),
        waiver_percent=Decimal(waiver_percent),
        group_tiers=tiers,
    )


def member(dues_paid_through: int | None = DUES_YEAR, name: str = "Ciudad X") -> OrganisationFacts:
    return OrganisationFacts(name=name, is_member=True, dues_paid_through=dues_paid_through)


def non_member(name: str = "Ciudad X") -> OrganisationFacts:
    return OrganisationFacts(name=name, is_member=False, dues_paid_through=None)


def country(income_group: str | None = "UM") -> CountryFacts:
    names = {"L": ("MWI", "Malawi"), "UM": ("BRA", "Brazil"), "H": ("ESP", "Spain")}
    iso3, name = names.get(income_group or "", ("XKX", "Kosovo"))
    return CountryFacts(iso3=iso3, name=name, income_group=income_group)


def low_income() -> CountryFacts:
    return country("L")


def quote(
    *,
    fees: FeeSchedule | None = None,
    organisation: OrganisationFacts | None = None,
    where: CountryFacts | None = None,
    group_size: int = 1,
    income_fy: int = INCOME_FY,
) -> Quote:
    return quote_fee(
        schedule=fees or schedule(),
        currency="EUR",
        dues_year=DUES_YEAR,
        income_fy=income_fy,
        organisation=organisation,
        country=where or country(),
        group_size=group_size,
    )


def codes(q: Quote) -> list[str]:
    return [line.code for line in q.lines]


# Rate


def test_member_with_dues_paid_through_dues_year_gets_member_rate() -> None:
    q = quote(organisation=member(DUES_YEAR))

    assert codes(q) == ["member_rate"]
    assert q.total == Decimal("1200.00")
    assert q.member_in_good_standing
    assert q.lines[0].label == "Member rate"
    assert q.lines[0].reason == (
        "Member rate: Ciudad X is a Metropolis member with dues paid through 2023."
    )


def test_member_behind_on_dues_by_one_year_pays_standard_rate() -> None:
    q = quote(organisation=member(DUES_YEAR - 1))

    assert codes(q) == ["standard_rate"]
    assert q.total == Decimal("1500.00")
    assert not q.member_in_good_standing
    assert q.lines[0].reason == (
        "Standard rate: Ciudad X's membership dues are paid through 2022; "
        "the member rate needs dues paid through 2023."
    )


def test_non_member_pays_standard_rate() -> None:
    q = quote(organisation=non_member())

    assert codes(q) == ["standard_rate"]
    assert q.total == Decimal("1500.00")
    assert q.lines[0].reason == "Standard rate: Ciudad X is not a Metropolis member."


def test_organisation_not_in_registry_pays_standard_rate() -> None:
    q = quote(organisation=None)

    assert codes(q) == ["standard_rate"]
    assert q.total == Decimal("1500.00")
    assert not q.member_in_good_standing
    assert q.lines[0].reason == (
        "Standard rate: the organisation is not in the Metropolis member registry."
    )


def test_member_with_dues_paid_beyond_dues_year_is_in_good_standing() -> None:
    assert is_member_in_good_standing(member(DUES_YEAR + 1), DUES_YEAR)
    assert not is_member_in_good_standing(member(None), DUES_YEAR)
    assert not is_member_in_good_standing(None, DUES_YEAR)


# Low-income waiver


def test_low_income_member_in_good_standing_pays_nothing() -> None:
    q = quote(organisation=member(), where=low_income())

    assert codes(q) == ["member_rate", "low_income_waiver"]
    assert q.total == Decimal("0.00")
    assert q.waived
    waiver = q.lines[1]
    assert waiver.amount == Decimal("-1200.00")
    assert waiver.label == "Low-income fee waiver (100 %)"
    assert waiver.reason == (
        "Fee waived: Malawi is low income in the World Bank classification for FY2023."
    )


def test_low_income_member_behind_on_dues_pays_standard_rate_without_waiver() -> None:
    q = quote(organisation=member(DUES_YEAR - 1), where=low_income())

    assert codes(q) == ["standard_rate"]
    assert q.total == Decimal("1500.00")
    assert not q.waived
    assert "a low-income waiver needs membership in good standing" in q.lines[0].reason


def test_low_income_non_member_pays_standard_rate_without_waiver() -> None:
    q = quote(organisation=non_member(), where=low_income())

    assert codes(q) == ["standard_rate"]
    assert q.total == Decimal("1500.00")
    assert not q.waived


def test_upper_middle_income_member_pays_member_rate_without_waiver() -> None:
    q = quote(organisation=member(), where=country("UM"))

    assert codes(q) == ["member_rate"]
    assert q.total == Decimal("1200.00")
    assert not q.waived


def test_unclassified_country_gets_no_waiver() -> None:
    q = quote(organisation=member(), where=country(None))

    assert codes(q) == ["member_rate"]
    assert not q.waived


def test_waiver_percent_zero_adds_no_waiver_line() -> None:
    q = quote(fees=schedule(waiver_percent="0"), organisation=member(), where=low_income())

    assert codes(q) == ["member_rate"]
    assert q.total == Decimal("1200.00")
    assert not q.waived


def test_income_group_of_the_editions_fiscal_year_decides_the_waiver() -> None:
    # Zambia (ZMB) in data/world-bank-income-groups.csv: LM in fy2022, L in fy2023,
    # LM again in fy2024 -- the same member is waived in one edition and not the other.
    zambia_fy2023 = CountryFacts(iso3="ZMB", name="Zambia", income_group="L")
    zambia_fy2024 = CountryFacts(iso3="ZMB", name="Zambia", income_group="LM")

    waived = quote(organisation=member(), where=zambia_fy2023, income_fy=2023)
    not_waived = quote(organisation=member(), where=zambia_fy2024, income_fy=2024)

    assert waived.waived
    assert waived.total == Decimal("0.00")
    assert "Zambia is low income in the World Bank classification for FY2023" in (
        waived.lines[1].reason
    )
    assert not not_waived.waived
    assert not_waived.total == Decimal("1200.00")


# Group discount


@pytest.mark.parametrize(
    ("group_size", "percent"),
    [(1, "0"), (2, "10"), (4, "10"), (5, "15"), (6, "15")],
)
def test_group_discount_percent_is_that_of_the_highest_tier_reached(
    group_size: int, percent: str
) -> None:
    assert group_discount_percent(TIERS, group_size) == Decimal(percent)


@pytest.mark.parametrize(
    ("group_size", "discount", "total"),
    [
        (1, None, "1200.00"),
        (2, "-120.00", "1080.00"),
        (4, "-120.00", "1080.00"),
        (5, "-180.00", "1020.00"),
        (6, "-180.00", "1020.00"),
    ],
)
def test_group_discount_follows_tier_edges(
    group_size: int, discount: str | None, total: str
) -> None:
    q = quote(fees=schedule(tiers=TIERS), organisation=member(), group_size=group_size)

    assert q.total == Decimal(total)
    assert q.group_size == group_size
    if discount is None:
        assert codes(q) == ["member_rate"]
    else:
        assert codes(q) == ["member_rate", "group_discount"]
        assert q.lines[1].amount == Decimal(discount)


def test_group_discount_label_and_reason_name_size_and_percent() -> None:
    q = quote(fees=schedule(tiers=TIERS), organisation=non_member(), group_size=3)

    line = q.lines[1]
    assert line.label == "Group discount (10 %)"
    assert line.reason == "Group of 3 from one organisation: 10 % off."
    assert q.total == Decimal("1350.00")


def test_fractional_group_percent_keeps_its_decimals_in_the_label() -> None:
    tiers = (GroupTier(2, Decimal("12.50")),)
    q = quote(fees=schedule(tiers=tiers), organisation=member(), group_size=2)

    assert q.lines[1].label == "Group discount (12.5 %)"
    assert q.lines[1].amount == Decimal("-150.00")


def test_waived_participant_in_a_group_stays_at_zero_without_discount_line() -> None:
    q = quote(fees=schedule(tiers=TIERS), organisation=member(), where=low_income(), group_size=5)

    assert codes(q) == ["member_rate", "low_income_waiver"]
    assert q.total == Decimal("0.00")
    assert q.waived
    assert q.group_size == 5


def test_group_discount_line_ending_in_half_a_cent_rounds_half_up() -> None:
    # 10 % of 1234.45 is 123.445, which rounds half-up to 123.45.
    q = quote(fees=schedule(member="1234.45", tiers=TIERS), organisation=member(), group_size=2)

    assert q.lines[1].amount == Decimal("-123.45")
    assert q.total == Decimal("1111.00")


def test_partial_waiver_then_group_discount_on_the_remainder() -> None:
    fees = schedule(member="1200.00", waiver_percent="50", tiers=TIERS)
    q = quote(fees=fees, organisation=member(), where=low_income(), group_size=2)

    assert codes(q) == ["member_rate", "low_income_waiver", "group_discount"]
    assert [line.amount for line in q.lines] == [
        Decimal("1200.00"),
        Decimal("-600.00"),
        Decimal("-60.00"),
    ]
    assert q.lines[1].label == "Low-income fee waiver (50 %)"
    assert q.total == Decimal("540.00")
    assert q.waived


# Validation


def test_negative_fee_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        quote(fees=schedule(standard="-1.00"))

    assert set(caught.value.fields) == {"standard"}


def test_tier_percent_above_100_is_refused() -> None:
    tiers = (GroupTier(2, Decimal("120")),)
    with pytest.raises(InvalidInput) as caught:
        validate_schedule(schedule(tiers=tiers))

    assert set(caught.value.fields) == {"group_tiers"}


def test_tiers_not_strictly_increasing_are_refused() -> None:
    tiers = (GroupTier(5, Decimal("15")), GroupTier(5, Decimal("20")))
    with pytest.raises(InvalidInput) as caught:
        validate_schedule(schedule(tiers=tiers))

    assert set(caught.value.fields) == {"group_tiers"}


def test_group_size_zero_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        quote(group_size=0)

    assert set(caught.value.fields) == {"group_size"}


def test_every_fault_is_reported_at_once() -> None:
    fees = FeeSchedule(
        standard=Decimal("-1"),
        member=Decimal("-2"),
        waiver_percent=Decimal("101"),
        group_tiers=(GroupTier(1, Decimal("10")),),
    )
    with pytest.raises(InvalidInput) as caught:
        quote(fees=fees, group_size=0)

    assert set(caught.value.fields) == {
        "standard",
        "member",
        "waiver_percent",
        "group_tiers",
        "group_size",
    }


def test_valid_schedule_passes_validation() -> None:
    validate_schedule(schedule(tiers=TIERS))


# Properties

# Decimal(n).scaleb(-2) keeps two places (150 -> 1.50); n / 100 would give 1.5.
amounts = st.integers(min_value=0, max_value=10_000_000).map(lambda c: Decimal(c).scaleb(-2))
percents = st.integers(min_value=0, max_value=10_000).map(lambda bp: Decimal(bp).scaleb(-2))


@st.composite
def tier_lists(draw: st.DrawFn) -> tuple[GroupTier, ...]:
    sizes = sorted(draw(st.sets(st.integers(min_value=2, max_value=60), max_size=4)))
    # Percents rise with size, as a real schedule would; see the bigger-group property.
    pcts = sorted(draw(st.lists(percents, min_size=len(sizes), max_size=len(sizes))))
    return tuple(GroupTier(size, pct) for size, pct in zip(sizes, pcts, strict=True))


schedules = st.builds(
    FeeSchedule,
    standard=amounts,
    member=amounts,
    waiver_percent=st.one_of(st.just(Decimal("100")), percents),
    group_tiers=tier_lists(),
)
organisations = st.one_of(
    st.none(),
    st.builds(
        OrganisationFacts,
        name=st.just("Ciudad X"),
        is_member=st.booleans(),
        dues_paid_through=st.one_of(st.none(), st.integers(min_value=2015, max_value=2030)),
    ),
)
countries = st.builds(
    CountryFacts,
    iso3=st.just("XXX"),
    name=st.just("Testland"),
    income_group=st.sampled_from(["L", "LM", "UM", "H", None]),
)
group_sizes = st.integers(min_value=1, max_value=50)

PROPERTY = settings(max_examples=200, deadline=None)


@PROPERTY
@given(schedules, organisations, countries, group_sizes)
def test_quote_total_is_the_sum_of_its_two_place_lines_and_never_negative(
    fees: FeeSchedule, org: OrganisationFacts | None, where: CountryFacts, size: int
) -> None:
    q = quote(fees=fees, organisation=org, where=where, group_size=size)

    assert q.total == sum((line.amount for line in q.lines), Decimal("0.00"))
    running = Decimal("0.00")
    for line in q.lines:
        assert line.amount.as_tuple().exponent == -2
        running += line.amount
        assert running >= 0
    assert q.total.as_tuple().exponent == -2
    assert q.total >= 0


@PROPERTY
@given(schedules, organisations, countries, group_sizes)
def test_full_waiver_means_nothing_to_pay(
    fees: FeeSchedule, org: OrganisationFacts | None, where: CountryFacts, size: int
) -> None:
    q = quote(fees=fees, organisation=org, where=where, group_size=size)

    if q.waived and fees.waiver_percent == Decimal("100"):
        assert q.total == Decimal("0.00")
    assert q.waived == ("low_income_waiver" in codes(q))


@PROPERTY
@given(schedules, organisations, countries, group_sizes)
def test_only_members_in_good_standing_get_member_rate_or_waiver(
    fees: FeeSchedule, org: OrganisationFacts | None, where: CountryFacts, size: int
) -> None:
    q = quote(fees=fees, organisation=org, where=where, group_size=size)

    good = (
        org is not None
        and org.is_member
        and org.dues_paid_through is not None
        and org.dues_paid_through >= DUES_YEAR
    )
    assert q.member_in_good_standing == good
    if not good:
        assert "member_rate" not in codes(q)
        assert "low_income_waiver" not in codes(q)
        assert codes(q)[0] == "standard_rate"


@PROPERTY
@given(schedules, organisations, countries, st.integers(min_value=1, max_value=49))
def test_bigger_group_never_pays_more_per_person(
    fees: FeeSchedule, org: OrganisationFacts | None, where: CountryFacts, size: int
) -> None:
    smaller = quote(fees=fees, organisation=org, where=where, group_size=size)
    bigger = quote(fees=fees, organisation=org, where=where, group_size=size + 1)

    assert bigger.total <= smaller.total


@PROPERTY
@given(schedules, organisations, countries, group_sizes)
def test_quote_is_deterministic(
    fees: FeeSchedule, org: OrganisationFacts | None, where: CountryFacts, size: int
) -> None:
    first = quote(fees=fees, organisation=org, where=where, group_size=size)
    second = quote(fees=fees, organisation=org, where=where, group_size=size)

    assert first == second
