"""Rows stored before messages kept their id: their English sentences, read back per language.

Cancellation reasons and quote lines were once stored as English sentences with the values in
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

from babel import Locale

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

MESSAGES: tuple[str, ...] = (
    # The cancellation policy (app.services.registrations.cancellation_policy, cancellations)
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
    N_("This application is %(status)s; there is no place to cancel."),
    N_(
        "This place was already cancelled on %(day)s; nothing more happens and nothing more "
        "is refunded."
    ),
    N_("The cancellation does not give %(item)s."),
    N_("The cancellation cannot be recorded: it does not give %(items)s."),
    N_("%(first)s and %(last)s"),
    N_(
        "No fee invoice of exactly %(amount)s exists at a tax rate of %(rate)s %%; issue it by "
        "hand."
    ),
    N_("The credit note for %(number)s would not match it; nothing done."),
    N_("The cancellation fee would not be %(amount)s; nothing done."),
    N_("There is no refund %(id)s."),
    N_("Refund %(id)s was already marked as paid on %(day)s; nothing changed."),
    N_(
        "Refund %(id)s was already marked as paid on %(day)s (reference %(reference)s); "
        "nothing changed."
    ),
    N_("an earlier day"),
    N_(
        "Refund %(id)s goes back to the card through Stripe; it is marked as paid when Stripe "
        "confirms it."
    ),
    N_("Refund %(id)s is paid by bank transfer, not back to a card."),
    # Checking in to a session (app.services.teaching.check_in)
    N_("Too many wrong codes. Try again at %(time)s, or ask your tutor to mark you present."),
    N_("Check-in for “%(session)s” opens at %(when)s, 15 minutes before it starts."),
    N_(
        "Check-in for “%(session)s” closed when it ended, at %(when)s. Ask your tutor to "
        "correct your mark."
    ),
    N_(
        "That is the code of another session (“%(other)s”, %(when)s). Enter the code shown "
        "at “%(session)s”."
    ),
    # Verifying a certificate number (app.services.certificates.numbers)
    N_("Enter the number printed on the certificate, like %(example)s."),
    N_(
        "A certificate number has only digits and the letters A to Z except U (like "
        "%(example)s); %(shown)s cannot be part of it."
    ),
    N_(
        "A certificate number has %(length)s characters besides the dashes, like %(example)s; "
        "this one has %(count)s, so %(what)s."
    ),
    # Final work (app.services.teaching.final_work)
    N_("Final work is handed in by participants; this application is %(status)s."),
    N_("This file is not a PDF document (whatever its name says)."),
    N_("%(name)s is not a PDF document (whatever its name says)."),
    N_("At most %(count)s characters."),
    N_("%(name)s has not uploaded a final work yet."),
    N_(
        "Someone else changed this final work meanwhile: it is now %(status)s. Nothing was "
        "changed; look at it again and decide."
    ),
    # Seats offered from the waiting list (app.services.registrations.waitlist)
    N_("You have already %(status)s this seat."),
    # Eligibility for the certificate and the participants at risk
    # (app.services.certificates.eligibility)
    N_("registration is not confirmed (status: %(status)s)"),
    N_("invoice %(number)s has %(sum)s outstanding"),
    N_(
        "invoice %(number)s is %(days)s days overdue (%(sum)s outstanding); the place is not "
        "guaranteed"
    ),
    N_("absent from %(session)s"),
    N_("excused from %(session)s"),
    N_("%(session)s has not taken place yet"),
    N_("no attendance recorded for %(session)s"),
    N_(
        "Lesson %(lesson)s: present at %(attended)s of %(count)s sessions, at least "
        "%(needed)s needed (%(missed)s)"
    ),
    N_("final work was rejected: %(note)s"),
    N_("Write at least %(count)s characters: it is kept."),
    N_("Only confirmed participants can be made eligible; this application is %(status)s."),
    # Erasing personal data (app.services.office.personal_data)
    N_("it is paid to the bank account they gave (IBAN and holder)"),
    N_("it goes back to the card that paid"),
    N_(
        "A refund of %(sum)s due by %(day)s is still owed to them and %(needs)s: complete the "
        "refund first."
    ),
    N_(
        "Invoice %(number)s still has %(sum)s to pay: record the payment or cancel the "
        "registration (credit note) first."
    ),
    N_(
        "A payment of %(sum)s on invoice %(number)s is flagged and not resolved (%(flag)s): "
        "money may be owed back to them."
    ),
    N_(
        "They are %(status)s for %(course)s (%(start)s to %(end)s), which has not ended: record "
        "their cancellation first."
    ),
    N_(
        "A seat offered to them is open until %(until)s: let them answer or let it run out, so "
        "the seat passes on."
    ),
    N_("Write why the data is erased."),
    N_(
        "Write the reason for the erasure (at least %(count)s characters), e.g. the date and "
        "channel of the person's request."
    ),
    N_("Keep the reason to %(count)s characters."),
    N_("The personal data of %(reference)s cannot be erased yet."),
    N_("The personal data of %(reference)s was erased meanwhile; nothing is left to erase."),
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


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_AND_CLOCK = re.compile(
    r"\b(" + "|".join(_WEEKDAYS) + r") (\d{1,2}) (" + "|".join(_MONTHS) + r")(?! \d{4})"
)
_LIST = re.compile(r", (?:and )?| and ")


def _dates(text: str) -> str:
    """English dates (`19 October 2024`, `Monday 18 November`) in the reader's words."""
    language = current_language()

    def local(found: re.Match[str]) -> str:
        try:
            day = date(int(found.group(3)), _MONTHS[found.group(2)], int(found.group(1)))
        except ValueError:
            return found.group(0)
        return day_month_year(day)

    def weekday(found: re.Match[str]) -> str:
        names = Locale(language)
        day_name = names.days["format"]["wide"][_WEEKDAYS.index(found.group(1))]
        month_name = names.months["format"]["wide"][_MONTHS[found.group(3)]]
        if language == "es":
            return f"{day_name} {found.group(2)} de {month_name}"
        return f"{day_name} {found.group(2)} {month_name}"

    return _DAY_AND_CLOCK.sub(weekday, _DATE.sub(local, text))


def _value(name: str, value: str) -> str:
    """A captured value written the reader's way: a message, a sum, a percentage, a date."""
    catalog = translations(current_language())
    if name == "reason":
        return legacy_sentence_text(value)
    if name == "missed":
        return "; ".join(legacy_sentence_text(part) for part in value.split("; "))
    if name == "items":
        parts = [catalog.gettext(part) for part in _LIST.split(value)]
        if len(parts) < 2:
            return parts[0]
        return catalog.gettext("%(first)s and %(last)s") % {
            "first": ", ".join(parts[:-1]),
            "last": parts[-1],
        }
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
