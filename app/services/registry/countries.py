"""Country codes: ISO 3166-1 alpha-2, alpha-3 or an English name in, World Bank alpha-3 out."""

from functools import lru_cache

import pycountry
from babel import Locale

from app.platform.i18n import DEFAULT_LANGUAGE, current_language, normalise_language
from app.services.errors import InvalidInput
from app.services.registry.reference_data import shipped_economy_names

# Economies the World Bank classifies under codes ISO does not assign.
_EXTRA_ALPHA2 = {"XK": "XKX"}
# Names that ISO gives to one country but people use for two.
_AMBIGUOUS_NAMES = {"congo": "COG or COD"}


@lru_cache
def _names() -> dict[str, str]:
    names = {c.alpha_3: getattr(c, "common_name", None) or c.name for c in pycountry.countries}
    for code, name in shipped_economy_names().items():
        names.setdefault(code, name)
    return names


@lru_cache
def _by_lower_name() -> dict[str, set[str]]:
    index: dict[str, set[str]] = {}
    for country in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if value:
                index.setdefault(value.casefold(), set()).add(country.alpha_3)
    for code, name in shipped_economy_names().items():
        index.setdefault(name.casefold(), set()).add(code)
    return index


def country_name(iso3: str) -> str:
    """The English short name for a stored alpha-3 code."""
    return _names().get(iso3, iso3)


@lru_cache
def _alpha_2() -> dict[str, str]:
    codes = {c.alpha_3: c.alpha_2 for c in pycountry.countries}
    codes.update({iso3: iso2 for iso2, iso3 in _EXTRA_ALPHA2.items()})
    return codes


def alpha_2(iso3: str) -> str:
    """The ISO alpha-2 code of a stored alpha-3 code ("" for an economy ISO does not name)."""
    return _alpha_2().get(iso3, "")


def local_country_name(iso3: str, language: str | None = None) -> str:
    """The name of a stored alpha-3 code in `language` (default: the one in force).

    CLDR (through Babel) names territories by ISO alpha-2; a code it does not name, such as a
    World Bank aggregate, keeps its English name.
    """
    language = normalise_language(language or current_language())
    if language == DEFAULT_LANGUAGE:
        return country_name(iso3)
    alpha_2 = _alpha_2().get(iso3)
    name = Locale(language).territories.get(alpha_2) if alpha_2 else None
    return str(name) if name else country_name(iso3)


def is_known_country(iso3: str) -> bool:
    """Whether the alpha-3 code names a country or a World Bank economy."""
    return iso3 in _names()


def parse_country(value: str, *, field: str = "country") -> str:
    """Alpha-3 for an alpha-2, alpha-3 or unambiguous English name; InvalidInput otherwise."""
    text = (value or "").strip()
    if not text:
        raise InvalidInput("A country is required.", fields={field: "Give a country."})
    upper = text.upper()
    if len(upper) == 2 and upper.isalpha():
        if upper in _EXTRA_ALPHA2:
            return _EXTRA_ALPHA2[upper]
        found = pycountry.countries.get(alpha_2=upper)
        if found is not None:
            return str(found.alpha_3)
    if len(upper) == 3 and upper.isalpha() and upper in _names():
        return upper
    if text.casefold() in _AMBIGUOUS_NAMES:
        hint = _AMBIGUOUS_NAMES[text.casefold()]
        raise InvalidInput(
            f"{text!r} is ambiguous.", fields={field: f"{text!r} is ambiguous: use {hint}."}
        )
    matches = _by_lower_name().get(text.casefold(), set())
    if len(matches) == 1:
        return next(iter(matches))
    if not matches and len(text) > 3:
        try:
            fuzzy = pycountry.countries.search_fuzzy(text)
        except LookupError:
            fuzzy = []
        if len(fuzzy) == 1:
            return str(fuzzy[0].alpha_3)
        if len(fuzzy) > 1:
            options = ", ".join(f"{c.name} ({c.alpha_3})" for c in fuzzy[:5])
            raise InvalidInput(
                f"{text!r} is ambiguous: did you mean {options}?",
                fields={field: f"{text!r} is ambiguous: use a code such as {fuzzy[0].alpha_3}."},
            )
    if len(matches) > 1:
        raise InvalidInput(
            f"{text!r} is ambiguous.", fields={field: f"{text!r} is ambiguous: use a code."}
        )
    raise InvalidInput(
        f"{text!r} is not a country we know.",
        fields={field: f"{text!r} is not a known country (use ISO codes such as ES or ESP)."},
    )


def all_countries() -> list[tuple[str, str]]:
    """(alpha-3, name) for every country, sorted by name, for select lists."""
    return sorted(_names().items(), key=lambda item: item[1])
