"""Certificate numbers: random, easy to read aloud, with a check character that catches typos.

A number looks like `MD24-7KQ3-9XWF-2HBN-A`: the course initials and the edition's year, twelve
random Crockford base-32 characters (60 random bits) and one check character.

The check character makes the whole number a codeword of a simple code over GF(32): reading
the symbols left to right, `r = a*r + d` with a fixed `a` outside {0, 1}, and the check is the
symbol that brings `r` to zero. Every single mistyped character and every swap of two
neighbouring characters changes the result, so it is caught before any look-up; the check
stays inside the same 32-symbol alphabet (Crockford's own mod-37 check adds `*~$=U`, which
people cannot read aloud or type easily).
"""

import re
import secrets

from app.platform.i18n import N_, Message, Term
from app.services.errors import InvalidInput

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
VALUES = {symbol: index for index, symbol in enumerate(ALPHABET)}
# Crockford's decoding: letters people confuse with digits read as those digits.
CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})
RANDOM_SYMBOLS = 12
GROUP = 4
LENGTH = GROUP + RANDOM_SYMBOLS + 1
EXAMPLE = "MD24-7KQ3-9XWF-2HBN-A"
# GF(32) as polynomials over GF(2) modulo x^5 + x^2 + 1; the multiplier is x.
_MODULUS = 0b100101
_MULTIPLIER = 0b00010
_SEPARATORS = re.compile(r"[\s\-‐‑‒–—_.]+")


class InvalidNumber(InvalidInput):
    """A certificate number that cannot be right, with a message that says how it is wrong."""


def _times(a: int, b: int) -> int:
    """Multiplication in GF(32)."""
    product = 0
    while b:
        if b & 1:
            product ^= a
        b >>= 1
        a <<= 1
        if a & 0b100000:
            a ^= _MODULUS
    return product


def _remainder(symbols: str) -> int:
    value = 0
    for symbol in symbols:
        value = _times(_MULTIPLIER, value) ^ VALUES[symbol]
    return value


def check_symbol(symbols: str) -> str:
    """The check character for a run of alphabet symbols."""
    return ALPHABET[_times(_MULTIPLIER, _remainder(symbols))]


def prefix_for(start_year: int) -> str:
    """The course initials and two digits of the edition's year, e.g. `MD24`."""
    return f"MD{start_year % 100:02d}"


def new_number(prefix: str) -> str:
    """A fresh random number under `prefix`, formatted in groups of four."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_SYMBOLS))
    return format_number(prefix + body + check_symbol(prefix + body))


def format_number(compact: str) -> str:
    """`MD247KQ39XWF2HBNT` -> `MD24-7KQ3-9XWF-2HBN-T`."""
    groups = [compact[i : i + GROUP] for i in range(0, len(compact) - 1, GROUP)]
    return "-".join([*groups, compact[-1]])


def normalise(typed: str) -> str:
    """The canonical form of a typed number; InvalidNumber says what is wrong with a bad one.

    Case, spaces and dashes do not matter, and O, I and L read as 0, 1 and 1.
    """
    compact = _SEPARATORS.sub("", typed.strip().upper()).translate(CONFUSABLE)
    if not compact:
        raise InvalidNumber(
            N_("Enter the certificate number."),
            fields={
                "number": Message(
                    N_("Enter the number printed on the certificate, like %(example)s."),
                    {"example": EXAMPLE},
                )
            },
        )
    strange = sorted({c for c in compact if c not in VALUES})
    if strange:
        shown = ", ".join(repr(c) for c in strange[:5])
        raise InvalidNumber(
            N_("That is not a certificate number."),
            fields={
                "number": Message(
                    N_(
                        "A certificate number has only digits and the letters A to Z except U "
                        "(like %(example)s); %(shown)s cannot be part of it."
                    ),
                    {"example": EXAMPLE, "shown": shown},
                )
            },
        )
    if len(compact) != LENGTH:
        if len(compact) == LENGTH - 1:
            what = N_("a character is missing")
        elif len(compact) == LENGTH + 1:
            what = N_("there is one character too many")
        else:
            what = N_("some characters are missing or extra")
        raise InvalidNumber(
            N_("That is not a complete certificate number."),
            fields={
                "number": Message(
                    N_(
                        "A certificate number has %(length)s characters besides the dashes, like "
                        "%(example)s; this one has %(count)s, so %(what)s."
                    ),
                    {
                        "length": LENGTH,
                        "example": EXAMPLE,
                        "count": len(compact),
                        "what": Term(what),
                    },
                )
            },
        )
    if _remainder(compact) != 0:
        raise InvalidNumber(
            N_("That certificate number has a typing mistake."),
            fields={
                "number": (
                    N_(
                        "This number cannot be right: its last character is a check character, "
                        "and it does not match the others. A character was probably mistyped or "
                        "two were swapped; compare the number with the certificate."
                    )
                )
            },
        )
    return format_number(compact)
