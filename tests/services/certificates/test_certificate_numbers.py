"""Certificate numbers: random, readable, and typing mistakes caught by the check character."""

import math

import pytest

from app.services.certificates.numbers import (
    ALPHABET,
    EXAMPLE,
    LENGTH,
    RANDOM_SYMBOLS,
    InvalidNumber,
    check_symbol,
    new_number,
    normalise,
    prefix_for,
)

# The fast tier: pure rules, no database.
pytestmark = pytest.mark.rules


def test_a_number_is_the_prefix_and_groups_of_four_with_a_check_character() -> None:
    number = new_number(prefix_for(2024))
    groups = number.split("-")
    assert groups[0] == "MD24"
    assert [len(g) for g in groups] == [4, 4, 4, 4, 1]
    assert set(number.replace("-", "")) <= set(ALPHABET)
    assert not set("ILOU") & set(number[5:])
    assert normalise(number) == number


def test_a_number_carries_at_least_60_random_bits_and_is_not_sequential() -> None:
    assert RANDOM_SYMBOLS * math.log2(len(ALPHABET)) >= 60
    numbers = [new_number("MD24") for _ in range(2000)]
    assert len(set(numbers)) == len(numbers)
    bodies = sorted(n.replace("-", "")[4:16] for n in numbers)
    # Consecutive numbers in sorted order are far apart: nothing to guess from a neighbour.
    assert len({b[:3] for b in bodies}) > 1000


def test_case_dashes_spaces_and_confusable_letters_do_not_matter() -> None:
    number = new_number("MD24")
    compact = number.replace("-", "")
    assert normalise(compact.lower()) == number
    assert normalise(" ".join(compact)) == number
    assert normalise(number.replace("-", " – ")) == number
    if "0" in compact[4:] or "1" in compact[4:]:
        typed = compact[:4] + compact[4:].replace("0", "O").replace("1", "l")
        assert normalise(typed) == number


def test_every_single_mistyped_character_is_caught() -> None:
    number = new_number("MD24").replace("-", "")
    for position in range(LENGTH):
        for symbol in ALPHABET:
            if symbol == number[position]:
                continue
            typo = number[:position] + symbol + number[position + 1 :]
            with pytest.raises(InvalidNumber, match="typing mistake") as caught:
                normalise(typo)
            assert "check character" in caught.value.fields["number"]


def test_every_swap_of_neighbouring_characters_is_caught() -> None:
    for _ in range(50):
        number = new_number("MD24").replace("-", "")
        for position in range(LENGTH - 1):
            if number[position] == number[position + 1]:
                continue
            swapped = (
                number[:position] + number[position + 1] + number[position] + number[position + 2 :]
            )
            with pytest.raises(InvalidNumber):
                normalise(swapped)


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "Enter the number"),
        ("MD24-7KQ3-9XWF-2HBN", "a character is missing"),
        ("MD24-7KQ3-9XWF", "some characters are missing or extra"),
        (EXAMPLE + "A", "one character too many"),
        ("MD24-7KQ3-9XWF-2HB#-A", "'#' cannot be part of it"),
        ("MD24-7KQ3-9XWF-2HBU-A", "'U' cannot be part of it"),
    ],
)
def test_a_malformed_number_gets_a_message_that_says_what_is_wrong(typed: str, says: str) -> None:
    with pytest.raises(InvalidNumber) as caught:
        normalise(typed)
    assert says in caught.value.fields["number"]


def test_the_example_in_the_messages_is_a_valid_number() -> None:
    assert normalise(EXAMPLE) == EXAMPLE
    assert check_symbol(EXAMPLE.replace("-", "")[:-1]) == EXAMPLE[-1]
