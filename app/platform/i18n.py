"""Languages: the catalogs, the language in force, and dates and money written per language.

English is the source language: its strings are the message ids, and its formats are the ones
the office has always printed (`1,500.00 EUR`, `Saturday 19 October 2024`). Spanish and French
use the CLDR formats Babel carries (`1500,00 €` / `1 500,00 €`, `sábado, 19 de octubre de 2024`).
"""

import gettext as gettext_module
import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Union

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import Translations
from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from app.money import format_money as format_amount

DEFAULT_LANGUAGE = "en"
LANGUAGES = ("en", "es", "fr")
LANGUAGE_NAMES = {"en": "English", "es": "Español", "fr": "Français"}
TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"
DOMAIN = "messages"

# The language of what is being rendered now: set per request by the language middleware,
# and around an e-mail or a PDF by `use_language`. Context variables follow a request into the
# worker thread its endpoint runs in, so concurrent requests never see each other's language.
_language: ContextVar[str] = ContextVar("diplomat_language", default=DEFAULT_LANGUAGE)
# Whether the person picked the language with the switcher: that choice beats the language
# stored on an application when its portal is shown.
_chosen: ContextVar[bool] = ContextVar("diplomat_language_chosen", default=False)


def normalise_language(value: str | None) -> str:
    """One of LANGUAGES for a tag such as `fr-CA` or `ES`; English for anything else."""
    primary = (value or "").strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in LANGUAGES else DEFAULT_LANGUAGE


def is_language(value: str | None) -> bool:
    """Whether `value` names a language the office writes in."""
    return (value or "").strip().lower() in LANGUAGES


def from_accept_language(header: str) -> str | None:
    """The best of our languages for an `Accept-Language` header, or None."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().split("-", 1)[0].lower()
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else None


def _compiled_catalog(language: str) -> bytes | None:
    """The .mo bytes of a language: the build's compiled file, else compiled now from the .po.

    The build compiles the catalogs (`make` and CI); compiling here as well keeps a fresh
    checkout and an edited .po working without a build step.
    """
    folder = TRANSLATIONS_DIR / language / "LC_MESSAGES"
    po_path, mo_path = folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"
    if mo_path.is_file() and (
        not po_path.is_file() or mo_path.stat().st_mtime >= po_path.stat().st_mtime
    ):
        return mo_path.read_bytes()
    if not po_path.is_file():
        return None
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    return buffer.getvalue()


@lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> gettext_module.NullTranslations:
    """The catalog of a language; English and a missing catalog translate nothing."""
    if language == DEFAULT_LANGUAGE:
        return gettext_module.NullTranslations()
    compiled = _compiled_catalog(language)
    if compiled is None:
        return gettext_module.NullTranslations()
    return Translations(io.BytesIO(compiled), domain=DOMAIN)


def current_language() -> str:
    """The language of what is being rendered now."""
    return _language.get()


def language_was_chosen() -> bool:
    """Whether the person chose the language with the switcher."""
    return _chosen.get()


def set_language(language: str, *, chosen: bool = False) -> None:
    """Render in `language` from now on in this request."""
    _language.set(normalise_language(language))
    _chosen.set(chosen)


def prefer_language(language: str | None) -> None:
    """Use a stored language (an applicant's) unless the person chose one with the switcher."""
    if language and not _chosen.get():
        _language.set(normalise_language(language))


@contextmanager
def use_language(language: str | None) -> Iterator[str]:
    """Render an e-mail or a document in `language`, then go back to the request's."""
    token = _language.set(normalise_language(language))
    try:
        yield token.var.get()
    finally:
        _language.reset(token)


def gettext(message: str) -> str:
    """`message` in the current language."""
    return translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The singular or plural form of a message in the current language."""
    return translations(current_language()).ngettext(singular, plural, count)


def pgettext(context: str, message: str) -> str:
    """`message` in the current language, told apart from the same words used elsewhere."""
    return translations(current_language()).pgettext(context, message)


def money(amount: Decimal, currency: str = "EUR") -> str:
    """`1,500.00 EUR` in English, `1500,00 €` in Spanish, `1 500,00 €` in French."""
    language = current_language()
    whole = format_amount(amount)
    if language == DEFAULT_LANGUAGE:
        sign = "-" if whole.startswith("-") else ""
        units, cents = whole.lstrip("-").split(".")
        return f"{sign}{int(units):,}.{cents} {currency}"
    return str(format_currency(Decimal(whole), currency, locale=language))


def stored_money(value: Any, currency: str) -> str:
    """A sum stored as text (`"1500.00"`): as stored in English, per locale otherwise."""
    if current_language() == DEFAULT_LANGUAGE:
        return f"{value} {currency}"
    try:
        return money(Decimal(str(value)), currency)
    except ArithmeticError:
        return f"{value} {currency}"


def stored_amount(value: Any) -> str:
    """A sum stored as text, without currency: as stored in English, per locale otherwise."""
    if current_language() == DEFAULT_LANGUAGE:
        return str(value)
    try:
        return amount(Decimal(str(value)))
    except ArithmeticError:
        return str(value)


def amount(amount: Decimal) -> str:
    """A sum without its currency: `1,500.00`, `1500,00`, `1 500,00`."""
    language = current_language()
    whole = Decimal(format_amount(amount))
    if language == DEFAULT_LANGUAGE:
        return f"{whole:,.2f}"
    return str(format_decimal(whole, format="#,##0.00", locale=language))


def percent(value: Decimal) -> str:
    """`10 %`, `12.5 %` in English; `12,5 %` in Spanish and French."""
    text = format(value.normalize(), "f")
    if current_language() != DEFAULT_LANGUAGE:
        text = text.replace(".", ",")
    return f"{text} %"


def date_words(value: date) -> str:
    """`Saturday 19 October 2024`, `sábado, 19 de octubre de 2024`, `samedi 19 octobre 2024`."""
    language = current_language()
    if language == DEFAULT_LANGUAGE:
        return f"{value:%A} {value.day} {value:%B} {value.year}"
    return str(format_date(value, format="full", locale=language))


def day_month_year(value: date) -> str:
    """`19 October 2024`, `19 de octubre de 2024`, `19 octobre 2024`."""
    language = current_language()
    if language == DEFAULT_LANGUAGE:
        return f"{value.day} {value:%B} {value.year}"
    return str(format_date(value, format="long", locale=language))


def datetime_words(value: datetime) -> str:
    """`19 October 2024, 00:00` on the wall clock the value already carries."""
    language = current_language()
    if language == DEFAULT_LANGUAGE:
        return f"{value.day} {value:%B %Y, %H:%M}"
    return f"{day_month_year(value)}, {value:%H:%M}"


def session_start(value: datetime) -> str:
    """`Mon 18 Nov, 09:30`, `lun 18 nov, 09:30`: the start of a course session."""
    language = current_language()
    if language == DEFAULT_LANGUAGE:
        return f"{value:%a} {value.day} {value:%b, %H:%M}"
    return str(format_datetime(value, "EEE d MMM, HH:mm", locale=language))


# Messages with their values: a service says what happened as a catalog id and the values that
# go in it; the page, e-mail or document that shows it writes it in its reader's language.


@dataclass(frozen=True)
class Amount:
    """A sum without currency: `1500.00` in a sentence in English, `1500,00` in Spanish."""

    value: Decimal

    def text(self) -> str:
        """The sum the reader's way."""
        if current_language() == DEFAULT_LANGUAGE:
            return format_amount(self.value)
        return amount(self.value)


@dataclass(frozen=True)
class Money:
    """A sum with its currency: `1,500.00 EUR` in English, `1500,00 €` in Spanish."""

    value: Decimal
    currency: str

    def text(self) -> str:
        """The sum and currency the reader's way."""
        return money(self.value, self.currency)


@dataclass(frozen=True)
class Number:
    """A percentage or other decimal: `12.5` in English, `12,5` in Spanish and French."""

    value: Decimal

    def text(self) -> str:
        """The number the reader's way."""
        written = format(self.value.normalize(), "f")
        return written if current_language() == DEFAULT_LANGUAGE else written.replace(".", ",")


@dataclass(frozen=True)
class Day:
    """A calendar day: `19 October 2024`, `19 de octubre de 2024`."""

    value: date

    def text(self) -> str:
        """The day the reader's way."""
        return day_month_year(self.value)


@dataclass(frozen=True)
class Moment:
    """An instant on a named clock: `19 October 2024, 00:00 (Europe/Madrid)`."""

    value: datetime
    zone: str

    def text(self) -> str:
        """The day and time the reader's way, with the clock's name."""
        return f"{datetime_words(self.value)} ({self.zone})"


@dataclass(frozen=True)
class DayAndClock:
    """A weekday, day, month and time of a session: `Monday 18 November, 09:15`."""

    value: datetime

    def text(self) -> str:
        """The weekday, day and time the reader's way."""
        language = current_language()
        if language == DEFAULT_LANGUAGE:
            return f"{self.value:%A} {self.value.day} {self.value:%B, %H:%M}"
        pattern = "EEEE d 'de' MMMM, HH:mm" if language == "es" else "EEEE d MMMM, HH:mm"
        return str(format_datetime(self.value, pattern, locale=language))


@dataclass(frozen=True)
class Clock:
    """A time of day: `10:45`."""

    value: datetime

    def text(self) -> str:
        """The time, written alike in every language."""
        return f"{self.value:%H:%M}"


@dataclass(frozen=True)
class Term:
    """A word from the catalog (marked with `N_`, or a stored status): translated, not formatted."""

    value: str

    def text(self) -> str:
        """The word in the reader's language."""
        if self.value in STORED_WORDS:
            return stored_word(self.value)
        return gettext(self.value)


@dataclass(frozen=True)
class Listing:
    """Words or messages joined: `a, b and c` (`and` in the reader's language), or by `joiner`."""

    items: tuple["Value", ...]
    joiner: str = ""

    def text(self) -> str:
        """The items joined the reader's way."""
        parts = [value_text(item) for item in self.items]
        if self.joiner or len(parts) < 2:
            return self.joiner.join(parts)
        return gettext(N_("%(first)s and %(last)s")) % {
            "first": ", ".join(parts[:-1]),
            "last": parts[-1],
        }


Value = Union[
    str, int, "Message", Amount, Money, Number, Day, Moment, DayAndClock, Clock, Term, Listing
]
_KINDS: dict[str, type[Any]] = {
    "amount": Amount,
    "money": Money,
    "number": Number,
    "day": Day,
    "moment": Moment,
    "day_and_clock": DayAndClock,
    "clock": Clock,
    "term": Term,
    "listing": Listing,
}


def value_text(value: Value) -> str:
    """One value of a message the reader's way (text and whole numbers as they are)."""
    if isinstance(value, Message):
        return value.text()
    if isinstance(value, str | int):
        return str(value)
    return value.text()


class Message(str):
    """A catalog id with its values: reads as the English sentence, shown in any language.

    It is the English text itself (so it is stored, compared, logged and answered by the API
    as always) and keeps the id and values, so `text()` writes it in the reader's language:
    `Message(N_("Refund of %(amount)s due by %(day)s"), {"amount": Amount(x), "day": Day(d)})`.
    """

    _parts: tuple[str, Mapping[str, Value]]

    def __new__(cls, message_id: str, values: Mapping[str, Value] | None = None) -> "Message":
        """The message `message_id` (a `%(name)s` format) with `values`."""
        frozen = MappingProxyType(dict(values or {}))
        # The English text, whatever the language of the request that made it (the context
        # variable directly: a quote makes six of these on the submission path).
        token = _language.set(DEFAULT_LANGUAGE)
        try:
            english = _formatted(message_id, frozen)
        finally:
            _language.reset(token)
        message = super().__new__(cls, english)
        object.__setattr__(message, "_parts", (message_id, frozen))
        return message

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a message is not changed once written")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Message, (self.id, dict(self.values)))

    @property
    def id(self) -> str:
        """The catalog id (the English format with its `%(name)s` places)."""
        return self._parts[0]

    @property
    def values(self) -> Mapping[str, Value]:
        """The values that go in the places."""
        return self._parts[1]

    def text(self) -> str:
        """The message in the language now, its values written the reader's way."""
        # The empty id would fetch the catalog's header, not a message.
        return _formatted(gettext(self.id) if self.id else self.id, self.values)

    def as_json(self) -> dict[str, Any]:
        """The id and values as JSON values, to be stored with a row."""
        return {"id": self.id, "values": {k: _value_json(v) for k, v in self.values.items()}}

    @classmethod
    def from_json(cls, data: Any) -> "Message | None":
        """A message stored by `as_json`; None for anything else (a row stored before)."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            return None
        values = data.get("values") or {}
        return cls(data["id"], {k: _value_from_json(v) for k, v in values.items()})


def _formatted(message_id: str, values: Mapping[str, Value]) -> str:
    # Always a format, as `_()` in templates: "%%" is a percent sign even without values.
    return message_id % {name: value_text(value) for name, value in values.items()}


def _value_json(value: Value) -> Any:
    if isinstance(value, Message):
        return {"message": value.as_json()}
    if isinstance(value, str | int):
        return value
    if isinstance(value, Listing):
        return {"listing": [_value_json(item) for item in value.items], "joiner": value.joiner}
    kind = next(name for name, kind in _KINDS.items() if isinstance(value, kind))
    raw = value.value
    written = format(raw, "f") if isinstance(raw, Decimal) else raw
    written = written.isoformat() if isinstance(written, date) else written  # and datetimes
    if isinstance(value, Moment):
        return {kind: written, "zone": value.zone}
    if isinstance(value, Money):
        return {kind: written, "currency": value.currency}
    return {kind: written}


def _value_from_json(data: Any) -> Value:
    if not isinstance(data, dict):
        return data if isinstance(data, str | int) else str(data)
    if "message" in data:
        return Message.from_json(data["message"]) or ""
    if "listing" in data:
        items = tuple(_value_from_json(item) for item in data["listing"])
        return Listing(items, str(data.get("joiner", "")))
    if "amount" in data:
        return Amount(Decimal(str(data["amount"])))
    if "money" in data:
        return Money(Decimal(str(data["money"])), str(data.get("currency", "")))
    if "number" in data:
        return Number(Decimal(str(data["number"])))
    if "day" in data:
        return Day(date.fromisoformat(data["day"]))
    if "moment" in data:
        return Moment(datetime.fromisoformat(data["moment"]), str(data.get("zone", "")))
    if "day_and_clock" in data:
        return DayAndClock(datetime.fromisoformat(data["day_and_clock"]))
    if "clock" in data:
        return Clock(datetime.fromisoformat(data["clock"]))
    return Term(str(data.get("term", "")))


def translate(message: str | None) -> str:
    """A message held in a variable in the language now: a `Message` with its values written
    the reader's way, or a plain message (marked with `N_` where it is written) from the catalog.

    Unlike `_()` in a template it applies no `%` formatting, so any text is safe to pass.
    """
    if not message:
        return ""
    if isinstance(message, Message):
        return message.text()
    return gettext(message)


def translate_fields(fields: dict[str, str]) -> dict[str, str]:
    """A form's messages per field (from a service) in the language now."""
    return {name: translate(message) for name, message in fields.items()}


def N_(message: str) -> str:
    """Mark a message for the catalogs where it is written; it is translated where shown."""
    return message


# Values stored in English that pages show: marked so the catalogs carry them.
STORED_TERMS = (N_("In person"), N_("Online"), N_("Hybrid"))


# Values stored in English (statuses, roles, kinds, methods) and the catalog ids pages show
# them with; a value not listed here shows as stored.
STORED_WORDS: dict[str, str] = {
    "submitted": N_("submitted"),
    "admitted": N_("admitted"),
    "waitlisted": N_("waitlisted"),
    "rejected": N_("rejected"),
    "confirmed": N_("confirmed"),
    "cancelled": N_("cancelled"),
    "completed": N_("completed"),
    "withdrawn": N_("withdrawn"),
    "presented": N_("presented"),
    "accepted": N_("accepted"),
    "declined": N_("declined"),
    "expired": N_("expired"),
    "open": N_("open"),
    "owed": N_("owed"),
    "pending": N_("pending"),
    "sending": N_("sending"),
    "sent": N_("sent"),
    "failed": N_("failed"),
    "paid": N_("paid"),
    "part paid": N_("part paid"),
    "unpaid": N_("unpaid"),
    "overdue": N_("overdue"),
    "credit note": N_("credit note"),
    "part credited": N_("part credited"),
    "refund owed": N_("refund owed"),
    "present": N_("present"),
    "absent": N_("absent"),
    "excused": N_("excused"),
    "admin": N_("admin"),
    "tutor": N_("tutor"),
    "invoice": N_("invoice"),
    "credit_note": N_("credit note"),
    "email": N_("e-mail"),
    "portal": N_("portal"),
    "card": N_("card"),
    "bank_transfer": N_("bank transfer"),
    "other": N_("other"),
}


def stored_word(value: Any) -> str:
    """A stored value (a status, role or kind) in the language now; English shows it as stored."""
    message = STORED_WORDS.get(value) if isinstance(value, str) else None
    if message is None:
        return "" if value is None else str(value)
    return gettext(message)


def date_range_words(start: date, end: date) -> str:
    """`18 to 22 November 2024`, shortened where month or year repeat."""
    language = current_language()
    if language != DEFAULT_LANGUAGE:
        # CLDR's interval patterns abbreviate months in French; the long form reads better.
        if start == end:
            return day_month_year(start)
        if (start.year, start.month) == (end.year, end.month):
            return f"{start.day}–{day_month_year(end)}"
        day_month = "d 'de' MMMM" if language == "es" else "d MMMM"
        first = (
            format_date(start, day_month, locale=language)
            if start.year == end.year
            else day_month_year(start)
        )
        return f"{first} – {day_month_year(end)}"
    if start == end:
        return f"{start.day} {start:%B} {start.year}"
    if (start.year, start.month) == (end.year, end.month):
        return f"{start.day} to {end.day} {end:%B} {end.year}"
    if start.year == end.year:
        return f"{start.day} {start:%B} to {end.day} {end:%B} {end.year}"
    return f"{start.day} {start:%B} {start.year} to {end.day} {end:%B} {end.year}"


def localized(obj: Any, field: str, language: str | None = None) -> str:
    """A course text (title, description) in a language an administrator entered, else English.

    `obj.translations` maps a language to its texts: `{"fr": {"title": "..."}}`.
    """
    english = getattr(obj, field, "") or ""
    language = normalise_language(language or current_language())
    if language == DEFAULT_LANGUAGE:
        return str(english)
    stored = getattr(obj, "translations", None) or {}
    texts = stored.get(language) if isinstance(stored, dict) else None
    text = texts.get(field) if isinstance(texts, dict) else None
    return str(text).strip() if isinstance(text, str) and text.strip() else str(english)


FILTERS: dict[str, Any] = {
    "money": money,
    "amount": amount,
    "stored_money": stored_money,
    "stored_amount": stored_amount,
    "percent": percent,
    "date_words": date_words,
    "day_month_year": day_month_year,
    "datetime_words": datetime_words,
    "localized": localized,
    "session_start": session_start,
    "translate": translate,
}


@pass_context
def _template_gettext(context: Context, message: str, /, **variables: Any) -> str:
    """`_()` and `{% trans %}` in templates: the i18n extension's new-style `gettext`, one call
    deep. The extension's own goes through the template's call machinery twice more (three
    times for `_()`), about 10 µs a message; a receipt e-mail has 25 of them."""
    text = gettext(message)
    if context.eval_ctx.autoescape:
        text = Markup(text)  # noqa: S704 - the catalog's text; the values are escaped by %
    # Always a format string, as in the extension: "%%" is a percent sign in every message.
    return text % variables


def install(environment: Environment) -> None:
    """Give a Jinja environment `_()`, `{% trans %}` and the formats of the current language."""
    environment.add_extension("jinja2.ext.i18n")
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        gettext, ngettext, newstyle=True, pgettext=pgettext
    )
    environment.globals.update(gettext=_template_gettext, _=_template_gettext)
    environment.filters.update(FILTERS)
    environment.globals.update(
        current_language=current_language,
        stored_word=stored_word,
        date_range_words=date_range_words,
        language_names=LANGUAGE_NAMES,
    )
