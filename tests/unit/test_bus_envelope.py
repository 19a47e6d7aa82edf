from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from noosphere.bus.envelope import Envelope, Kind, inbox_for
from noosphere.bus.topics import check_pattern, check_topic, matches, subscribers
from noosphere.errors import InvalidRequest


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.b.c", "a.b", False),
        ("a.b", "a.b.c", False),
        ("a.*.c", "a.x.c", True),
        ("a.*.c", "a.x.y.c", False),
        ("a.*", "a", False),
        ("a.>", "a.b", True),
        ("a.>", "a.b.c.d", True),
        ("a.>", "a", False),
        (">", "anything.at.all", True),
        ("*.>", "x", False),
        ("*.>", "x.y", True),
        ("*", "x", True),
        ("*", "x.y", False),
    ],
)
def test_wildcard_patterns_match_like_nats_subjects(pattern: str, topic: str, expected: bool) -> None:
    assert matches(check_pattern(pattern), check_topic(topic)) is expected


@pytest.mark.parametrize("topic", ["", "a..b", "a.*", "a.>", "a b", ".", "x" * 65])
def test_malformed_topics_are_refused(topic: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid topic"):
        check_topic(topic)


@pytest.mark.parametrize("pattern", ["a.>.b", "a..b", "a.b*", ""])
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid subscription pattern"):
        check_pattern(pattern)


def test_subscribers_are_distinct_in_first_seen_order() -> None:
    subs = [("b", "t.>"), ("a", "t.x"), ("b", "t.x"), ("c", "u.x")]
    assert subscribers(subs, "t.x") == ["b", "a"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "exactly one of recipient or topic"),
        ({"recipient": "a", "topic": "t"}, "exactly one of recipient or topic"),
        ({"recipient": "no spaces"}, "invalid mailbox address"),
        ({"recipient": "a", "priority": 10}, "priority must be 0-9"),
        ({"recipient": "a", "priority": -1}, "priority must be 0-9"),
        ({"recipient": "a", "id": "x" * 129}, "invalid id"),
        ({"recipient": "a", "correlation_id": "a/b"}, "invalid correlation_id"),
        ({"recipient": "a", "expires_at": datetime(2030, 1, 1)}, "time zone"),
        ({"topic": "a.*"}, "invalid topic"),
    ],
)
def test_malformed_envelopes_name_their_problem(fields: dict[str, object], message: str) -> None:
    envelope = Envelope(Kind.EVENT, "alice", {}, **fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match=message):
        envelope.checked()


def test_envelopes_round_trip_through_json() -> None:
    sent = Envelope(
        Kind.TASK_DELEGATE,
        "planner",
        {"task": "review", "files": ["a.py"], "nested": {"n": 1.5}},
        recipient="coder",
        correlation_id="c1",
        reply_to="planner",
        priority=8,
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    ).checked()
    assert Envelope.from_json(sent.to_json()) == sent


def test_an_answer_goes_to_reply_to_correlated_by_the_request_id() -> None:
    request = Envelope(Kind.REQUEST, "alice", {}, recipient="bob", reply_to=inbox_for("r1"), id="r1")
    answer = request.answer(Kind.RESPONSE, "bob", {"ok": True})
    assert (answer.recipient, answer.correlation_id, answer.sender) == ("_inbox.r1", "r1", "bob")
    plain = Envelope(Kind.REQUEST, "alice", {}, recipient="bob").answer(Kind.ACK, "bob", {})
    assert plain.recipient == "alice"
