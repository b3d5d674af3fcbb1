"""Rows stored before messages kept their id: their English sentences, read back per language.

Cancellation reasons, quote lines (with applications and under invoice lines) and the reasons
a certificate run gave for skipping someone were once stored as English sentences with the values in
(`Cancelled before the deadline (...): 75 % of the 1500.00 paid is refunded by 19 October
2024; ...`). Rows written since keep the message id and its values (`app.platform.i18n.Message`)
and never come here. For the older rows, each pattern below is a catalog message whose
`%(name)s` places match those values: the English text is recognised, the pattern translated
and the values put back, with dates and sums written the reader's way. Text that matches no
pattern is shown as stored.
"""

import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from app.platform.i18n import (
    DEFAULT_LANGUAGE,
    N_,
    current_language,
    day_month_year,
    gettext,
    money,
    translations,
)
from app.platform.i18n import amount as plain_amount

# Only the sentences that were stored: a cancellation's reason (accepted or refused) and the
# reasons a certificate run kept for the participants it skipped.
MESSAGES: tuple[str, ...] = (
    # The cancellation policy (app.services.registrations.cancellation_policy, cancellation_intake)
    N_(
        "Cancellations are accepted only before %(deadline)s, %(days)s days before the course "
        "starts; this one was received on %(received)s. The registration stands and nothing "
        "is refunded."
    ),
    N_("Cancelled before the deadline. Nothing was paid, so nothing is refunded."),
    N_(
        "Cancelled before the deadline (%(deadline)s): %(percent)s %% of the %(paid)s paid is "
        "refunded by %(due)s; %(retained)s is retained."
    ),
    N_(
        "%(reason)s The %(excess)s paid beyond the price is refunded in full as well "
        "(%(refund)s in all)."
    ),
    # Eligibility for the certificate (app.services.certificates.eligibility)
    N_("registration is not confirmed (status: %(status)s)"),
    N_("invoice %(number)s has %(sum)s outstanding"),
    N_("absent from %(session)s"),
    N_("excused from %(session)s"),
    N_("%(session)s has not taken place yet"),
    N_("no attendance recorded for %(session)s"),
    N_(
        "Lesson %(lesson)s: present at %(attended)s of %(count)s sessions, at least "
        "%(needed)s needed (%(missed)s)"
    ),
    N_("final work was rejected: %(note)s"),
)

_MONTHS = {
    name: number
    for number, name in enumerate(
        (
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ),
        start=1,
    )
}
_DATE = re.compile(r"\b(\d{1,2}) (" + "|".join(_MONTHS) + r") (\d{4})\b")
_AMOUNT = re.compile(r"-?\d+\.\d{2}")
_MONEY = re.compile(r"(-?[\d,]+\.\d{2}) ([A-Z]{3})")
_NUMBER = re.compile(r"\d+\.\d+")
_PLACE = re.compile(r"%\((\w+)\)s|%%")


@lru_cache
def _patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """Each message as a regular expression that captures its values."""
    compiled = []
    for message in MESSAGES:
        pattern, position = "", 0
        for place in _PLACE.finditer(message):
            pattern += re.escape(message[position : place.start()])
            name = place.group(1)
            pattern += f"(?P<{name}>.+?)" if name else "%"
            position = place.end()
        pattern += re.escape(message[position:])
        compiled.append((re.compile(pattern, re.S), message))
    return tuple(compiled)


def _dates(text: str) -> str:
    """English dates (`19 October 2024`) in the reader's words."""

    def local(found: re.Match[str]) -> str:
        try:
            day = date(int(found.group(3)), _MONTHS[found.group(2)], int(found.group(1)))
        except ValueError:
            return found.group(0)
        return day_month_year(day)

    return _DATE.sub(local, text)


def _value(name: str, value: str) -> str:
    """A captured value written the reader's way: a message, a sum, a percentage, a date."""
    catalog = translations(current_language())
    if name == "reason":
        return legacy_sentence_text(value)
    if name == "missed":
        return "; ".join(legacy_sentence_text(part) for part in value.split("; "))
    translated = catalog.gettext(value)
    if translated != value:
        return translated
    try:
        if _AMOUNT.fullmatch(value):
            return plain_amount(Decimal(value))
        found = _MONEY.fullmatch(value)
        if found:
            return money(Decimal(found.group(1).replace(",", "")), found.group(2))
    except InvalidOperation:
        return value
    if name == "percent" and _NUMBER.fullmatch(value):
        return value.replace(".", ",")
    return _dates(value)


def legacy_sentence_text(text: str | None) -> str:
    """A sentence stored in English before ids were kept, in the language now; as stored
    when no pattern fits."""
    if not text:
        return ""
    language = current_language()
    if language == DEFAULT_LANGUAGE:
        return text
    catalog = translations(language)
    whole = catalog.gettext(text)
    if whole != text:
        return whole
    for pattern, message in _patterns():
        found = pattern.fullmatch(text)
        if found:
            values = {name: _value(name, value) for name, value in found.groupdict().items()}
            return catalog.gettext(message) % values
    return text


# Quote lines (app.services.editions.fees) stored with English labels and reasons.

_Pattern = tuple[re.Pattern[str], str]


def _number(value: str) -> str:
    """A percentage or year as the reader writes decimals."""
    return value.replace(".", ",") if current_language() != DEFAULT_LANGUAGE else value


LABELS: tuple[_Pattern, ...] = (
    (re.compile(r"Member rate"), N_("Member rate")),
    (re.compile(r"Standard rate"), N_("Standard rate")),
    (
        re.compile(r"Low-income fee waiver \((?P<percent>[\d.]+) %\)"),
        N_("Low-income fee waiver (%(percent)s %%)"),
    ),
    (
        re.compile(r"Group discount \((?P<percent>[\d.]+) %\)"),
        N_("Group discount (%(percent)s %%)"),
    ),
)

SENTENCES: tuple[_Pattern, ...] = (
    (
        re.compile(
            r"Member rate: (?P<organisation>.+) is a Metropolis member "
            r"with dues paid through (?P<year>\d+)\."
        ),
        N_("Member rate: %(organisation)s is a Metropolis member with dues paid through %(year)s."),
    ),
    (
        re.compile(r"Standard rate: the organisation is not in the Metropolis member registry\."),
        N_("Standard rate: the organisation is not in the Metropolis member registry."),
    ),
    (
        re.compile(r"Standard rate: (?P<organisation>.+) is not a Metropolis member\."),
        N_("Standard rate: %(organisation)s is not a Metropolis member."),
    ),
    (
        re.compile(
            r"Standard rate: (?P<organisation>.+) has no membership dues on record; "
            r"the member rate needs dues paid through (?P<year>\d+)\."
        ),
        N_(
            "Standard rate: %(organisation)s has no membership dues on record; "
            "the member rate needs dues paid through %(year)s."
        ),
    ),
    (
        re.compile(
            r"Standard rate: (?P<organisation>.+)'s membership dues are paid through "
            r"(?P<paid>\d+); the member rate needs dues paid through (?P<year>\d+)\."
        ),
        N_(
            "Standard rate: the membership dues of %(organisation)s are paid through "
            "%(paid)s; the member rate needs dues paid through %(year)s."
        ),
    ),
    (
        re.compile(
            r"(?P<country>.+) is low income in the World Bank classification for "
            r"(?P<fy>FY\d+), but a low-income waiver needs membership in good standing\."
        ),
        N_(
            "%(country)s is low income in the World Bank classification for %(fy)s, "
            "but a low-income waiver needs membership in good standing."
        ),
    ),
    (
        re.compile(
            r"Fee waived: (?P<country>.+) is low income in the World Bank "
            r"classification for (?P<fy>FY\d+)\."
        ),
        N_("Fee waived: %(country)s is low income in the World Bank classification for %(fy)s."),
    ),
    (
        re.compile(
            r"Fee (?P<percent>[\d.]+) % waived: (?P<country>.+) is low income in the World Bank "
            r"classification for (?P<fy>FY\d+)\."
        ),
        N_(
            "Fee %(percent)s %% waived: %(country)s is low income in the World Bank "
            "classification for %(fy)s."
        ),
    ),
    (
        re.compile(r"Group of (?P<size>\d+) from one organisation: (?P<percent>[\d.]+) % off\."),
        N_("Group of %(size)s from one organisation: %(percent)s %% off."),
    ),
)
# A standard-rate reason may be followed by the low-income sentence: split there.
_SECOND_SENTENCE = re.compile(r"(?<=\.) (?=[^.]+ is low income in the World Bank)")


def _translated(text: str, patterns: tuple[_Pattern, ...]) -> str | None:
    for pattern, message in patterns:
        found = pattern.fullmatch(text)
        if found is not None:
            values = {
                name: _number(value) if name == "percent" else value
                for name, value in found.groupdict().items()
            }
            return gettext(message) % values
    return None


def _shown(text: str | None, translate: Callable[[str], str]) -> str:
    if not text or current_language() == DEFAULT_LANGUAGE:
        return text or ""
    return translate(text)


def legacy_quote_label(label: str | None) -> str:
    """A stored quote line's English label (no id kept) in the reader's language."""
    return _shown(label, lambda text: _translated(text, LABELS) or text)


def legacy_quote_reason(reason: str | None) -> str:
    """A stored quote line's English reason (no id kept) in the reader's language."""

    def translate(text: str) -> str:
        parts = _SECOND_SENTENCE.split(text)
        return " ".join(_translated(part, SENTENCES) or part for part in parts)

    return _shown(reason, translate)
