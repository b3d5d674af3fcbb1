"""Languages: the catalogs, the language in force, and dates and money written per language.

English is the source language: its strings are the message ids, and its formats are the ones
the office has always printed (`1,500.00 EUR`, `Saturday 19 October 2024`). Spanish and French
use the CLDR formats Babel carries (`1500,00 €` / `1 500,00 €`, `sábado, 19 de octubre de 2024`).
"""

import gettext as gettext_module
import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

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


def translate(message: str | None) -> str:
    """A message held in a variable (marked with `N_` where it is written) in the language now.

    Unlike `_()` in a template it applies no `%` formatting, so any text is safe to pass. A
    service's message with its values in (`app.message_text`) is recognised as well.
    """
    from app.message_text import message_text  # it builds on this module's formats

    return message_text(message)


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
