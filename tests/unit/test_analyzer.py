"""What full-text search indexes and asks for, and the days a query names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from noosphere.memory.analyzer import Analyzer
from noosphere.memory.dates import MAX_DAYS, named_days


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("Hello, hello WORLD!", ["hello", "world"]),
        ('" OR 1=1 --', ["1"]),
        ("NEAR(a b) AND c*", ["near", "b", "c"]),
        ("What is my cat called?", ["cat", "called"]),
        ("who is it", ["who", "is", "it"]),  # only function words: keep them
        ("東京は日本", ["東京は日本"]),
        ("", []),
        ("   ", []),
    ],
)
def test_query_terms_are_plain_words(text: str, terms: list[str]) -> None:
    assert Analyzer(stemming=False).terms(text) == terms


def test_stemming_matches_the_forms_of_a_word_on_both_sides() -> None:
    stems = Analyzer()
    assert stems.terms("Who got married? Allergic to cats!") == [
        "marri",
        "allerg",
        "cat",
    ]  # "got" is a function word
    assert set(stems.terms("marrying cats allergic")) <= set(
        stems.index("We married; the cats' allergic").split()
    )


def test_a_turn_is_indexed_with_its_context_and_the_day_it_was_said() -> None:
    said = datetime(2023, 5, 14, 18, 30, tzinfo=UTC)
    text = Analyzer().index("Biscuit, after the cookies!", ["What did you call the puppy?"], said)
    assert text.split() == ["call", "puppi", "biscuit", "after", "cooki", "14", "may", "2023", "sunday"]


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("What did Mia do on the morning of 15 May 2023?", ["2023-05-15"]),
        ("on May 15, 2023 and on 2023-06-01", ["2023-05-15", "2023-06-01"]),
        ("the 3rd of March 2024", ["2024-03-03"]),
        ("Sept 9 2022, then 9 Sept 2022 again", ["2022-09-09"]),
        ("31 February 2023 and 2023-13-01", []),
        ("in May 2023, last week, 12 2023", []),
    ],
)
def test_a_query_names_only_explicit_calendar_days(text: str, days: list[str]) -> None:
    found = named_days(text)
    assert [start.date().isoformat() for start, _ in found] == days
    assert all((end - start).days == 1 for start, end in found)


def test_a_query_names_at_most_a_few_days() -> None:
    many = " ".join(f"2023-01-{d:02d}" for d in range(1, 20))
    assert len(named_days(many)) == MAX_DAYS
