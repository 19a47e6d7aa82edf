"""Topic names and wildcard subscriptions, in the NATS subject grammar so the NATS transport can
hand matching to the server unchanged.

A topic is dot-separated tokens (``tasks.code.review``). A pattern may use ``*`` for exactly one
token and, as its last token, ``>`` for one or more tokens: ``tasks.*.review``, ``tasks.>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from noosphere.errors import InvalidRequest

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_TOKENS = 16


def _tokens(text: str, what: str) -> list[str]:
    tokens = text.split(".")
    if not text or len(tokens) > _MAX_TOKENS:
        raise InvalidRequest(f"invalid {what} {text!r}: 1-{_MAX_TOKENS} dot-separated tokens")
    return tokens


def check_topic(topic: str) -> str:
    for token in _tokens(topic, "topic"):
        if not _TOKEN.fullmatch(token):
            raise InvalidRequest(
                f"invalid topic {topic!r}: tokens are letters, digits, _ and - (wildcards only in "
                "subscriptions)"
            )
    return topic


def check_pattern(pattern: str) -> str:
    tokens = _tokens(pattern, "subscription pattern")
    for position, token in enumerate(tokens):
        if token == ">" and position != len(tokens) - 1:
            raise InvalidRequest(f"invalid subscription pattern {pattern!r}: '>' must be the last token")
        if token not in ("*", ">") and not _TOKEN.fullmatch(token):
            raise InvalidRequest(
                f"invalid subscription pattern {pattern!r}: tokens are letters, digits, _, -, * or >"
            )
    return pattern


def matches(pattern: str, topic: str) -> bool:
    want = pattern.split(".")
    have = topic.split(".")
    for position, token in enumerate(want):
        if token == ">":
            return len(have) > position
        if position >= len(have) or (token != "*" and token != have[position]):
            return False
    return len(have) == len(want)


def subscribers(subscriptions: Iterable[tuple[str, str]], topic: str) -> list[str]:
    """The distinct subscribers, in first-seen order, whose (subscriber, pattern) matches ``topic``."""
    found: dict[str, None] = {}
    for subscriber, pattern in subscriptions:
        if subscriber not in found and matches(pattern, topic):
            found[subscriber] = None
    return list(found)


__all__ = ["check_pattern", "check_topic", "matches", "subscribers"]
