"""The catalogs: every message in the templates and code is translated, placeholders intact."""

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from app import i18n
from app.quote_text import quote_label, quote_reason

ROOT = Path(__file__).resolve().parent.parent
TRANSLATED = ("es", "fr")
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|%%")


def extracted_messages() -> dict[str | tuple[str, ...], str]:
    """Message id -> where it was found, extracted the way `make catalogs` does."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    found: dict[str | tuple[str, ...], str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        found.setdefault(message, f"{filename}:{lineno}")
    return found


def catalog(language: str) -> Catalog:
    path = ROOT / "app" / "translations" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po_file:
        return read_po(po_file, locale=language)


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


@pytest.fixture(scope="module")
def messages() -> dict[str | tuple[str, ...], str]:
    return extracted_messages()


def test_extraction_finds_the_applicant_pages_mails_and_documents(
    messages: dict[str | tuple[str, ...], str],
) -> None:
    places = set(messages.values())
    for where in ("apply.html", "portal.html", "application_received.txt", "invoice.html"):
        assert any(where in place for place in places), where
    assert "Send my application" in messages
    assert "Enter your given name." in messages  # an N_() in a router


def untranslated(messages: dict[str | tuple[str, ...], str], translated: Catalog) -> list[str]:
    """Where each message without a (non-fuzzy, complete) translation was found."""
    missing = []
    for message_id, where in messages.items():
        key = message_id[0] if isinstance(message_id, tuple) else message_id
        entry = translated.get(key)
        strings = entry.string if entry is not None else None
        forms = strings if isinstance(strings, tuple) else (strings,)
        if entry is None or entry.fuzzy or not all(forms):
            missing.append(f"{where}: {key!r}")
    return missing


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_has_a_translation(
    language: str, messages: dict[str | tuple[str, ...], str]
) -> None:
    missing = untranslated(messages, catalog(language))
    assert not missing, f"{len(missing)} message(s) lack a {language} translation:\n" + "\n".join(
        missing
    )


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_the_placeholders_of_their_message(language: str) -> None:
    faults = []
    for entry in catalog(language):
        if not entry.id:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        expected = placeholders(ids[-1])
        for text in strings:
            if text and placeholders(text) != expected:
                faults.append(f"{ids[0]!r}: {text!r}")
    assert not faults, "\n".join(faults)


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_catalog_passes_babels_own_checks(language: str) -> None:
    problems = [
        f"{message.id!r}: {errors}" for message, errors in catalog(language).check() if errors
    ]
    assert not problems, "\n".join(problems)


def test_a_missing_or_empty_translation_is_reported(
    messages: dict[str | tuple[str, ...], str],
) -> None:
    translated = catalog("fr")
    translated.delete("Send my application")
    translated["Apply"].string = ""
    missing = untranslated(messages, translated)
    assert len(missing) == 2
    assert any("'Send my application'" in line and "apply.html" in line for line in missing)


def test_english_keeps_the_formats_the_office_always_printed() -> None:
    with i18n.use_language("en"):
        assert i18n.money(Decimal("1500")) == "1,500.00 EUR"
        assert i18n.money(Decimal("-1234.5"), "USD") == "-1,234.50 USD"
        assert i18n.date_words(date(2024, 10, 19)) == "Saturday 19 October 2024"
        assert i18n.date_range_words(date(2024, 11, 18), date(2024, 11, 22)) == (
            "18 to 22 November 2024"
        )
        assert i18n.percent(Decimal("12.50")) == "12.5 %"


def test_french_and_spanish_write_money_and_dates_their_way() -> None:
    nbsp, narrow = "\u00a0", "\u202f"
    with i18n.use_language("fr"):
        assert i18n.money(Decimal("1500")) == f"1{narrow}500,00{nbsp}€"
        assert i18n.date_words(date(2024, 10, 19)) == "samedi 19 octobre 2024"
        assert i18n.date_range_words(date(2024, 11, 18), date(2024, 11, 22)) == (
            "18–22 novembre 2024"
        )
        assert i18n.percent(Decimal("12.5")) == "12,5 %"
    with i18n.use_language("es"):
        assert i18n.money(Decimal("15000")) == f"15.000,00{nbsp}€"
        assert i18n.date_words(date(2024, 10, 19)) == "sábado, 19 de octubre de 2024"
        assert i18n.datetime_words(datetime(2024, 10, 18, 22, 0, tzinfo=UTC)) == (
            "18 de octubre de 2024, 22:00"
        )


def test_the_language_of_a_rendering_is_restored_afterwards() -> None:
    i18n.set_language("es")
    with i18n.use_language("fr"):
        assert i18n.gettext("Send my application") == "Envoyer ma candidature"
    assert i18n.current_language() == "es"
    assert i18n.gettext("Send my application") == "Enviar mi solicitud"
    i18n.set_language("en")


def test_accept_language_picks_our_best_language_by_quality() -> None:
    assert i18n.from_accept_language("de-DE,fr;q=0.8,es;q=0.9") == "es"
    assert i18n.from_accept_language("fr-CA, en;q=0.5") == "fr"
    assert i18n.from_accept_language("de, it;q=0.9") is None
    assert i18n.from_accept_language("fr;q=0, es;q=bad") is None
    assert i18n.normalise_language("FR-be") == "fr"
    assert i18n.normalise_language("xx") == "en"


class Texts:
    title = "Diploma in Internationalization for Local Authorities"
    description = "Five lessons."

    def __init__(self) -> None:
        self.translations = {
            "fr": {"title": "Diplôme en internationalisation"},
            "es": {"title": "  "},
        }


def test_course_texts_fall_back_to_english_where_none_was_entered() -> None:
    assert i18n.localized(Texts(), "title", "fr") == "Diplôme en internationalisation"
    assert i18n.localized(Texts(), "description", "fr") == "Five lessons."
    assert i18n.localized(Texts(), "title", "es") == Texts.title  # blank counts as none
    assert i18n.localized(Texts(), "title", "en") == Texts.title


def test_stored_quote_lines_are_shown_in_the_readers_language() -> None:
    reason = (
        "Standard rate: Ciudad X is not a Metropolis member. Malawi is low income in the "
        "World Bank classification for FY2023, but a low-income waiver needs membership in "
        "good standing."
    )
    with i18n.use_language("en"):
        assert quote_reason(reason) == reason
    with i18n.use_language("fr"):
        assert quote_label("Group discount (12.5 %)") == "Remise de groupe (12,5 %)"
        assert quote_reason(reason).startswith(
            "Tarif standard : Ciudad X n'est pas membre de Metropolis. Malawi est un pays"
        )
        assert quote_reason("Something new.") == "Something new."
