"""The catalogs: every message in the templates and code is translated, placeholders intact."""

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from app.platform import i18n
from app.platform.stored_messages import quote_label, quote_reason

if TYPE_CHECKING:
    from fastapi.testclient import TestClient
    from sqlmodel import Session

    from app.models import StaffUser

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


def test_quote_lines_stored_before_ids_were_kept_still_read_in_the_readers_language() -> None:
    reason = (
        "Standard rate: Ciudad X is not a Metropolis member. Malawi is low income in the "
        "World Bank classification for FY2023, but a low-income waiver needs membership in "
        "good standing."
    )
    legacy_line = {"code": "standard_rate", "label": "Group discount (12.5 %)", "reason": reason}
    with i18n.use_language("en"):
        assert quote_reason(legacy_line) == reason
    with i18n.use_language("fr"):
        assert quote_label(legacy_line) == "Remise de groupe (12,5 %)"
        assert quote_reason(legacy_line).startswith(
            "Tarif standard : Ciudad X n'est pas membre de Metropolis. Malawi est un pays"
        )
        assert quote_reason({"reason": "Something new."}) == "Something new."


def test_stored_quote_lines_are_shown_from_their_message_in_the_readers_language() -> None:
    from app.services.billing.quotes import quote_line_json, stored_quote_in_english
    from app.services.editions.fees import CountryFacts, FeeSchedule, GroupTier, quote_fee

    quote = quote_fee(
        schedule=FeeSchedule(
            standard=Decimal("1500"),
            member=Decimal("1000"),
            group_tiers=(GroupTier(min_size=3, percent=Decimal("12.5")),),
        ),
        currency="EUR",
        dues_year=2024,
        income_fy=2023,
        organisation=None,
        country=CountryFacts(iso3="MWI", name="Malawi", income_group="L"),
        group_size=3,
    )
    # Stored and read back as JSON, as an application keeps its quote.
    stored = json.loads(json.dumps([quote_line_json(line) for line in quote.lines]))
    standard, group = stored
    assert group["label"] == "Group discount (12.5 %)"  # the English the API answers
    assert "messages" not in stored_quote_in_english({"lines": stored})["lines"][0]
    with i18n.use_language("en"):
        assert quote_reason(standard) == standard["reason"]
    with i18n.use_language("fr"):
        assert quote_label(group) == "Remise de groupe (12,5 %)"
        assert quote_reason(standard).startswith(
            "Tarif standard : l'organisation ne figure pas dans le registre des membres"
        )
        assert "Malawi est un pays" in quote_reason(standard)
    with i18n.use_language("es"):
        assert quote_label(group) == "Descuento de grupo (12,5 %)"
        assert quote_label(quote.lines[1]) == "Descuento de grupo (12,5 %)"  # a quote made now


def test_staff_pages_are_in_the_catalogs(messages: dict[str | tuple[str, ...], str]) -> None:
    places = set(messages.values())
    for where in (
        "billing/invoices/register.html",
        "registrations/review/list.html",
        "visa_letter",
    ):
        assert any(where in place for place in places), where
    assert "Groups waiting for their invoice" in messages
    assert "Decide on the selected applications" in messages


def test_staff_pages_follow_the_chosen_language(
    client: "TestClient", session: "Session", admin_user: "StaffUser"
) -> None:
    from tests.conftest import ADMIN_PASSWORD
    from tests.factories import open_edition
    from tests.routers.billing.test_admin_invoices import admitted
    from tests.routers.office.test_auth import login

    edition = open_edition(session)
    storage = client.app.state.storage  # type: ignore[attr-defined]
    _application, invoice = admitted(session, storage, admin_user, edition)
    assert login(client, "admin@example.org", ADMIN_PASSWORD).status_code == 303
    register = f"/admin/invoices?edition={edition.slug}&status=all"
    listing = f"/admin/applications?edition={edition.slug}"

    english = client.get(register).text
    assert "Groups waiting for their invoice" in english
    with i18n.use_language("en"):
        assert i18n.money(invoice.total, invoice.currency) in english
    assert "admitted</span>" in client.get(listing).text

    french = client.get(register + "&lang=fr").text
    assert '<html lang="fr">' in french
    assert "Exporter en CSV" in french and "Export as CSV" not in french
    with i18n.use_language("fr"):
        total = i18n.money(invoice.total, invoice.currency)
    assert total.endswith("\u00a0€") and "," in total
    assert total in french
    french_list = client.get(listing).text  # the choice is kept for the visit
    assert "Filtrer les candidatures" in french_list
    assert "admise</span>" in french_list
    assert "Decide on the selected applications" not in french_list

    spanish = client.get(listing + "&lang=es").text
    assert "Decidir sobre las solicitudes seleccionadas" in spanish
    assert "admitida</span>" in spanish


# Templates: no visible English outside `_()` and `{% trans %}`

TEMPLATES = ROOT / "app" / "templates"
# Written in English on purpose, whatever the language of the request.
ENGLISH_TEMPLATES = {
    "emails/cancellation_office_note.html": "the office reads its own notes in English",
}
# Names, codes and abbreviations that read the same in every language.
SAME_IN_EVERY_LANGUAGE = {
    "diplomat",
    "Metropolis",
    "Barcelona",
    "LinkedIn",
    "Stripe",
    "EUR",
    "IBAN",
    "BIC",
    "SWIFT",
    "SEPA",
    "CSV",
    "XLSX",
    "PDF",
    "JSON",
    "ISO",
    "URL",
    "CV",
    "FY",
}
SHOWN_ATTRIBUTES = {"placeholder", "title", "aria-label", "alt"}
NOT_PROSE = {"script", "style", "code", "pre"}
JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)
TRANS_BLOCK = re.compile(r"\{%-?\s*trans\b.*?%\}.*?\{%-?\s*endtrans\s*-?%\}", re.S)
JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
# A tag whose string literals are names and paths, not words shown to a reader.
STRUCTURAL_TAG = re.compile(
    r"\{%-?\s*(trans|pluralize|endtrans|extends|include|import|from|block|macro|call)\b"
)
EXPRESSION_TOKEN = re.compile(
    r"""(?P<name>[A-Za-z_]\w*)\s*\(|(?P<open>\()|(?P<close>\))"""
    r"""|(?P<quote>["'])(?P<text>(?:(?!(?P=quote)).)*)(?P=quote)"""
)
GETTEXT_CALLS = {"_", "gettext", "ngettext", "pgettext"}
WORDS = re.compile(r"[^\W\d_]{2,}")
SENTENCE = re.compile(r"\b[A-Z][a-z]+ [a-z]+")
ATTRIBUTE_FRAGMENT = re.compile(r"^\s*[\w-]+=\"")  # a macro that writes attributes


def _blank(found: re.Match[str]) -> str:
    """Drop a template construct but keep the line count and a word break."""
    return "\n" * found.group(0).count("\n") + " "


def _english(text: str) -> bool:
    return any(word not in SAME_IN_EVERY_LANGUAGE for word in WORDS.findall(text))


def _untranslated_literals(expression: str) -> list[str]:
    """String literals in a `{{ }}`/`{% %}` that no gettext call encloses."""
    calls: list[str] = []
    found = []
    for token in EXPRESSION_TOKEN.finditer(expression):
        if token.group("name"):
            calls.append(token.group("name"))
        elif token.group("open"):
            calls.append("")
        elif token.group("close"):
            if calls:
                calls.pop()
        elif not (calls and calls[-1] in GETTEXT_CALLS):
            found.append(token.group("text"))
    return found


class _ShownText(HTMLParser):
    """Text nodes and the attributes a reader sees or hears, with their line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skipping = 0
        self.shown: list[tuple[int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in NOT_PROSE:
            self.skipping += 1
        for name, value in attrs:
            if name in SHOWN_ATTRIBUTES and value:
                self.shown.append((self.getpos()[0], value))

    def handle_endtag(self, tag: str) -> None:
        if tag in NOT_PROSE and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping and not ATTRIBUTE_FRAGMENT.match(data):
            self.shown.append((self.getpos()[0], data))


def english_outside_the_catalog(source: str) -> list[tuple[int, str]]:
    """(line, text) of each English text a template shows without `_()` or `{% trans %}`."""
    source = TRANS_BLOCK.sub(_blank, JINJA_COMMENT.sub(_blank, source))
    found = []
    for tag in JINJA_TAG.finditer(source):
        if STRUCTURAL_TAG.match(tag.group(0)):
            continue
        line = source.count("\n", 0, tag.start()) + 1
        found += [
            (line, text) for text in _untranslated_literals(tag.group(0)) if SENTENCE.search(text)
        ]
    parser = _ShownText()
    parser.feed(JINJA_TAG.sub(_blank, source))
    parser.close()
    found += [(line, text.strip()) for line, text in parser.shown if _english(text)]
    return sorted(found)


def test_the_template_check_finds_english_text_attributes_and_literals() -> None:
    source = """{% extends "base.html" %}
{# A comment in English is for developers. #}
<h1>{{ _("Applications") }} · {{ edition.title }}</h1>
<p>Export the list</p>
<input placeholder="Search by name" aria-label="{{ _('Search') }}">
<img alt="">
{{ field("days", "Days kept after the end date", hint=_("From %(a)s days.", a=1)) }}
<p>{% trans n=3 %}{{ n }} rows{% endtrans %} · 12 EUR · PDF · – 3 %</p>
<pre>name,country</pre>
<script>const label = "Not prose";</script>
"""
    assert english_outside_the_catalog(source) == [
        (4, "Export the list"),
        (5, "Search by name"),
        (7, "Days kept after the end date"),
    ]


def test_templates_show_no_english_outside_the_catalog() -> None:
    faults = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        name = path.relative_to(TEMPLATES).as_posix()
        if name in ENGLISH_TEMPLATES:
            continue
        faults += [
            f"{name}:{line}: {text[:80]!r}"
            for line, text in english_outside_the_catalog(path.read_text(encoding="utf-8"))
        ]
    assert not faults, f"{len(faults)} English text(s) outside _() or trans:\n" + "\n".join(faults)


# Messages the services write in English, shown in the reader's language


def test_a_stored_cancellation_reason_reads_in_the_readers_language() -> None:
    from app.models import Cancellation
    from app.platform.stored_messages import cancellation_reason
    from app.services.registrations.cancellation_policy import PolicyFacts, decide_cancellation

    policy = PolicyFacts(start_date=date(2024, 11, 18), timezone="Europe/Madrid")
    decision = decide_cancellation(
        policy,
        received_at=datetime(2024, 9, 2, 10, tzinfo=UTC),
        payments_received=Decimal("1500"),
    )
    assert decision.reason == (
        "Cancelled before the deadline (19 October 2024, 00:00 (Europe/Madrid)): 75 % of the "
        "1500.00 paid is refunded by 2 October 2024; 375.00 is retained."
    )
    # Stored as the row keeps it: the English reason and its message as JSON.
    stored = json.loads(json.dumps(decision.reason.as_json()))
    recorded = Cancellation.model_construct(reason=str(decision.reason), reason_message=stored)
    with i18n.use_language("en"):
        assert cancellation_reason(recorded) == decision.reason
    with i18n.use_language("fr"):
        french = cancellation_reason(recorded)
    assert french.startswith("Annulation reçue avant la date limite (19 octobre 2024, 00:00")
    assert "1\u202f500,00" in french and "2 octobre 2024" in french and "375,00" in french
    with i18n.use_language("es"):
        spanish = cancellation_reason(recorded)
    assert "19 de octubre de 2024" in spanish and "1.500,00" in spanish


def test_a_cancellation_recorded_before_ids_were_kept_reads_in_the_readers_language() -> None:
    from app.models import Cancellation
    from app.platform.stored_messages import cancellation_reason

    legacy = Cancellation.model_construct(
        reason=(
            "Cancelled before the deadline (19 October 2024, 00:00 (Europe/Madrid)): 75 % of the "
            "1500.00 paid is refunded by 2 October 2024; 375.00 is retained."
        ),
        reason_message=None,
    )
    with i18n.use_language("en"):
        assert cancellation_reason(legacy) == legacy.reason
    with i18n.use_language("fr"):
        french = cancellation_reason(legacy)
        by_hand = cancellation_reason(
            Cancellation.model_construct(reason="Something the office wrote by hand.")
        )
    assert french.startswith("Annulation reçue avant la date limite (19 octobre 2024, 00:00")
    assert "1\u202f500,00" in french and "375,00" in french
    assert by_hand == "Something the office wrote by hand."


def test_service_errors_with_values_are_translated_around_their_values() -> None:
    from app.services.registrations.cancellation_intake import CancellationRequest, missing_items

    monday = datetime(2024, 11, 18, 9, 15, tzinfo=UTC)
    throttled = i18n.Message(
        i18n.N_(
            "Too many wrong codes. Try again at %(time)s, or ask your tutor to mark you present."
        ),
        {"time": i18n.Clock(monday.replace(hour=10, minute=45))},
    )
    opens = i18n.Message(
        i18n.N_("Check-in for “%(session)s” opens at %(when)s, 15 minutes before it starts."),
        {"session": "Urban mobility", "when": i18n.DayAndClock(monday)},
    )
    missing = i18n.Message(
        i18n.N_("The cancellation cannot be recorded: it does not give %(items)s."),
        {
            "items": i18n.Listing(
                (
                    i18n.Term(i18n.N_("the name of the course")),
                    i18n.Term(i18n.N_("contact information")),
                )
            )
        },
    )
    assert opens == (
        "Check-in for “Urban mobility” opens at Monday 18 November, 09:15, 15 minutes "
        "before it starts."
    )
    assert missing == (
        "The cancellation cannot be recorded: it does not give the name of the course and "
        "contact information."
    )
    request = CancellationRequest(
        channel="email",
        received_at=monday,
        course_name="",
        full_name="Ama Banda",
        registration_date=date(2024, 5, 1),
        contact="ama@example.org",
    )
    with i18n.use_language("es"):
        assert "10:45" in i18n.translate(throttled) and "Too many" not in i18n.translate(throttled)
        assert "“Urban mobility”" in i18n.translate(opens)
        assert "lunes 18 de noviembre, 09:15" in i18n.translate(opens)
        assert "el nombre del curso y los datos de contacto" in i18n.translate(missing)
        assert "el nombre del curso" in i18n.translate(missing_items(request)["course_name"])


def test_a_message_reads_as_its_english_and_keeps_its_id_and_values() -> None:
    import copy

    refund = i18n.Message(
        i18n.N_(
            "A refund of %(sum)s due by %(day)s is still owed to them and %(needs)s: "
            "complete the refund first."
        ),
        {
            "sum": i18n.Money(Decimal("1500"), "EUR"),
            "day": "2024-10-19",
            "needs": i18n.Term(i18n.N_("it goes back to the card that paid")),
        },
    )
    english = (
        "A refund of 1,500.00 EUR due by 2024-10-19 is still owed to them and it goes back to "
        "the card that paid: complete the refund first."
    )
    assert refund == english and isinstance(refund, str)
    assert json.dumps({"detail": refund}) == json.dumps({"detail": english})  # as the API answers
    with pytest.raises(AttributeError):
        refund.values = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        refund.values["sum"] = "nothing"  # type: ignore[index]
    for kept in (
        copy.deepcopy(refund),
        i18n.Message.from_json(json.loads(json.dumps(refund.as_json()))),
    ):
        assert kept == english and kept is not None and kept.id == refund.id
        with i18n.use_language("fr"):
            assert kept.text() == i18n.translate(refund)
    with i18n.use_language("fr"):
        french = i18n.translate(refund)
    assert "1\u202f500,00\u00a0€" in french and "carte" in french and "refund" not in french
    assert i18n.Message.from_json("A sentence stored before ids were kept.") is None
    assert i18n.translate("Something the office wrote by hand.") == (
        "Something the office wrote by hand."
    )


def test_country_names_follow_the_language_and_fall_back_to_english() -> None:
    from app.services.registry.countries import country_name, local_country_name

    assert local_country_name("CIV", "fr") == "Côte d’Ivoire"
    assert local_country_name("DEU", "es") == "Alemania"
    assert local_country_name("MWI", "en") == country_name("MWI") == "Malawi"
    assert local_country_name("XKX", "fr") == "Kosovo"
    assert local_country_name("XYZ", "fr") == "XYZ"  # unknown codes are shown as stored
    with i18n.use_language("fr"):
        assert local_country_name("DEU") == "Allemagne"


def test_a_participant_cancels_in_french_and_reads_each_message_in_french(
    client: "TestClient", session: "Session", admin_user: "StaffUser"
) -> None:
    from tests.routers.office.test_auth import csrf_from
    from tests.routers.registrations.test_cancellations import participant, portal_path

    storage = client.app.state.storage  # type: ignore[attr-defined]
    application = participant(session, storage, admin_user, paid="1000.00")
    path = portal_path(session, application)
    preview = client.get(f"{path}/cancel?lang=fr")
    assert "750,00\u00a0€" in preview.text and "What will happen" not in preview.text
    done = client.post(f"{path}/cancel", data={"csrf_token": csrf_from(preview.text)})
    assert "Votre place est annulée. Annulation reçue avant la date limite (" in done.text
    assert "Nous vous avons envoyé une confirmation." in done.text
    assert "We have sent you a confirmation." not in done.text
    bad = client.post(
        f"{path}/refund-details",
        data={
            "csrf_token": csrf_from(done.text),
            "account_holder": "Ama Banda",
            "iban": "ES91 2100 0418 4502 0005 1333",
            "bic": "",
        },
    )
    assert bad.status_code == 422 and "Cet IBAN" in bad.text
    good = client.post(
        f"{path}/refund-details",
        data={
            "csrf_token": csrf_from(done.text),
            "account_holder": "Ama Banda",
            "iban": "ES91 2100 0418 4502 0005 1332",
            "bic": "",
        },
    )
    assert "Nous verserons votre remboursement de 750,00\u00a0€" in good.text
    assert "se terminant par 1332" in good.text


def test_reasons_a_certificate_run_stored_read_in_the_readers_language() -> None:
    from app.platform.stored_messages import reasons_kept, stored_reasons

    absent = i18n.Message(i18n.N_("absent from %(session)s"), {"session": "Lesson 2"})
    kept = json.loads(json.dumps(reasons_kept({"name": "Ama Banda", "reasons": [absent]})))
    before = {"name": "Ama Banda", "reasons": ["absent from Lesson 2"]}  # stored before ids
    assert kept["reasons"] == ["absent from Lesson 2"]
    with i18n.use_language("es"):
        spanish = i18n.gettext("absent from %(session)s") % {"session": "Lesson 2"}
        assert spanish != "absent from Lesson 2"
        assert stored_reasons(kept) == [spanish]
        assert stored_reasons(before) == [spanish]
    with i18n.use_language("en"):
        assert stored_reasons(kept) == stored_reasons(before) == ["absent from Lesson 2"]
