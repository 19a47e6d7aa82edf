"""The gateway's token count: the word cache gives exactly what the tokenizer's full encode gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noosphere.pool.tokens import TokenCounter


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


def full(counter: TokenCounter, text: str) -> int:
    return len(counter._tokenizer.encode(text, add_special_tokens=False).ids)


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        " w0 w1 w2",
        "Hello, World! It's 3:15pm -- isn't it?",
        "snake_case and kebab-case and CamelCaseWords",
        "tab\tnew\nline\rreturn",
        "ab\x01cd\x7fef\x0bgh\x0cij",  # control characters vanish and join their neighbours
        "x" * 150 + " y",  # a word longer than WordPiece takes is one unknown token
        'def f(x):\n    return {"a": [1, 2.5e-3]}  # comment',
        "naïve café 東京 emoji 🎉",  # not ASCII: the full encode
    ],
)
def test_known_texts(counter: TokenCounter, text: str) -> None:
    assert counter.text(text) == full(counter, text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=200))
def test_any_ascii_text(counter: TokenCounter, text: str) -> None:
    assert counter.text(text) == full(counter, text)


def test_the_cache_is_bounded(counter: TokenCounter) -> None:
    for n in range(60_000):
        counter.text(f"word{n}")
    assert len(counter._words) <= 50_000
