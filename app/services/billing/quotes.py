"""Quoting an edition's fee for an organisation or a country, from the stored registry."""

from typing import Any

from sqlmodel import Session

from app.models import Edition, Organisation
from app.money import format_money
from app.platform.stored_messages import MESSAGES_KEY, quote_part_json
from app.services.editions.editions import fee_schedule
from app.services.editions.fees import (
    CountryFacts,
    OrganisationFacts,
    Quote,
    QuoteLine,
    quote_fee,
)
from app.services.errors import InvalidInput
from app.services.registry.countries import country_name, parse_country
from app.services.registry.organisations import income_group_of

MAX_GROUP_SIZE = 500


def quote_for_edition(
    session: Session,
    *,
    edition: Edition,
    organisation_id: int | None = None,
    country: str | None = None,
    group_size: int = 1,
) -> Quote:
    """The fee one participant would pay: a registry organisation, or a country alone.

    An organisation given only by its country is not in the registry, so it is a non-member.
    """
    faults: dict[str, str] = {}
    organisation: Organisation | None = None
    iso3: str | None = None
    if organisation_id is not None:
        organisation = session.get(Organisation, organisation_id)
        if organisation is None:
            faults["organisation_id"] = "There is no organisation with this id in the registry."
        else:
            iso3 = organisation.country
    elif country:
        try:
            iso3 = parse_country(country)
        except InvalidInput as exc:
            faults.update(exc.fields)
    else:
        faults["organisation_id"] = "Choose your organisation, or give its country."
        faults["country"] = "Give the country when the organisation is not listed."
    if not 1 <= group_size <= MAX_GROUP_SIZE:
        faults["group_size"] = f"The group size is a whole number from 1 to {MAX_GROUP_SIZE}."
    if faults or iso3 is None:
        raise InvalidInput("The fee cannot be quoted.", fields=faults)
    return quote_from_facts(
        edition=edition,
        organisation=organisation,
        iso3=iso3,
        income_group=income_group_of(session, iso3=iso3, fiscal_year=edition.income_fy),
        group_size=group_size,
    )


def quote_from_facts(
    *,
    edition: Edition,
    organisation: Organisation | None,
    iso3: str,
    income_group: str | None,
    group_size: int,
) -> Quote:
    """The fee one participant would pay, from facts already read: the registry organisation
    (None for one given by its country alone), the country and its income group in the
    edition's fiscal year."""
    if not 1 <= group_size <= MAX_GROUP_SIZE:
        raise InvalidInput(
            "The fee cannot be quoted.",
            fields={"group_size": f"The group size is a whole number from 1 to {MAX_GROUP_SIZE}."},
        )
    facts = (
        OrganisationFacts(
            name=organisation.name,
            is_member=organisation.is_member,
            dues_paid_through=organisation.dues_paid_through,
        )
        if organisation is not None
        else None
    )
    return quote_fee(
        schedule=fee_schedule(edition, group_size=group_size),
        currency=edition.currency,
        dues_year=edition.dues_year,
        income_fy=edition.income_fy,
        organisation=facts,
        country=CountryFacts(
            iso3=iso3,
            name=country_name(iso3),
            income_group=income_group,
        ),
        group_size=group_size,
    )


def quote_as_json(quote: Quote) -> dict[str, Any]:
    """A quote as plain JSON values (money as two-decimal strings), for the API and storage."""
    return {
        "currency": quote.currency,
        "lines": [quote_line_json(line) for line in quote.lines],
        "total": format_money(quote.total),
        "member_in_good_standing": quote.member_in_good_standing,
        "waived": quote.waived,
        "group_size": quote.group_size,
    }


def quote_line_json(line: QuoteLine) -> dict[str, Any]:
    """A quote line as stored: its English label and reason (what the API answers) and their
    messages, so pages and documents write them in the reader's language."""
    return {
        "code": line.code,
        "label": str(line.label),
        "amount": format_money(line.amount),
        "reason": str(line.reason),
        MESSAGES_KEY: quote_part_json(line.label, line.reason),
    }


def stored_quote_in_english(quote: dict[str, Any]) -> dict[str, Any]:
    """A stored quote as the API answers it: English labels and reasons, no kept messages."""
    lines = quote.get("lines")
    if not isinstance(lines, list):
        return quote
    return {
        **quote,
        "lines": [
            {k: v for k, v in line.items() if k != MESSAGES_KEY} if isinstance(line, dict) else line
            for line in lines
        ],
    }
