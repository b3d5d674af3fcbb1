"""Quote lines in the reader's language.

A quote is stored with English labels and reasons (app.services.editions.fees), so that what an
applicant was shown is kept word for word. Pages and documents show them in the reader's
language by recognising each English sentence and translating its pattern; text that matches
no pattern is shown as stored.
"""

import re
from collections.abc import Callable

from app.platform.i18n import DEFAULT_LANGUAGE, N_, current_language, gettext

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


def quote_label(label: str | None) -> str:
    """A quote line's label in the reader's language."""
    return _shown(label, lambda text: _translated(text, LABELS) or text)


def quote_reason(reason: str | None) -> str:
    """A quote line's reason in the reader's language, sentence by sentence."""

    def translate(text: str) -> str:
        parts = _SECOND_SENTENCE.split(text)
        return " ".join(_translated(part, SENTENCES) or part for part in parts)

    return _shown(reason, translate)
