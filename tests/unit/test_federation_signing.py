"""Signed node-to-node requests: what is accepted, and each way a request is refused, with its
stable code and status."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from noosphere.federation.signing import SKEW, Refused, Verifier, sign
from noosphere.identity import NodeKey, load_or_create

T0 = 1_800_000_000.0
BODY = b'{"since": 42}'
PATH = "/federation/v1/changes?limit=100"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, NodeKey]:
    return {name: load_or_create(tmp_path / name) for name in ("home", "garage", "stranger")}


def receiver(keys: dict[str, NodeKey], clock: Clock, per_peer: int = 100) -> Verifier:
    """The ``home`` node, whose only peer is ``garage``."""
    peers = {keys["garage"].id: keys["garage"].public}
    return Verifier(keys["home"].id, peers.get, clock, per_peer)


def test_a_signed_request_from_a_peer_is_accepted_once(keys: dict[str, NodeKey]) -> None:
    clock = Clock()
    home = receiver(keys, clock)
    headers = sign(keys["garage"], keys["home"].id, "POST", PATH, BODY, clock)
    assert home.check("POST", PATH, headers, BODY) == keys["garage"].id
    with pytest.raises(Refused) as refused:
        home.check("POST", PATH, headers, BODY)
    assert (refused.value.code, refused.value.status) == ("replayed", 401)


Tamper = Callable[[dict[str, NodeKey], dict[str, str]], tuple[str, str, dict[str, str], bytes]]


@pytest.mark.parametrize(
    ("case", "tamper", "code", "status"),
    [
        ("no headers", lambda k, h: ("POST", PATH, {}, BODY), "unsigned", 401),
        (
            "no signature",
            lambda k, h: ("POST", PATH, _without(h, "x-noosphere-signature"), BODY),
            "unsigned",
            401,
        ),
        (
            "time not a number",
            lambda k, h: ("POST", PATH, {**h, "x-noosphere-time": "soon"}, BODY),
            "unsigned",
            401,
        ),
        (
            "signature not base64",
            lambda k, h: ("POST", PATH, {**h, "x-noosphere-signature": "%%"}, BODY),
            "unsigned",
            401,
        ),
        ("other body", lambda k, h: ("POST", PATH, h, b'{"since": 0}'), "bad_signature", 401),
        (
            "other path",
            lambda k, h: ("POST", "/federation/v1/changes?limit=9", h, BODY),
            "bad_signature",
            401,
        ),
        ("other method", lambda k, h: ("PUT", PATH, h, BODY), "bad_signature", 401),
        (
            "other time",
            lambda k, h: ("POST", PATH, {**h, "x-noosphere-time": str(int(T0) + 1)}, BODY),
            "bad_signature",
            401,
        ),
        (
            "other nonce",
            lambda k, h: ("POST", PATH, {**h, "x-noosphere-nonce": "A" * 22}, BODY),
            "bad_signature",
            401,
        ),
        (
            "origin claims another peer's id",
            lambda k, h: ("POST", PATH, {**h, "x-noosphere-from": k["stranger"].id}, BODY),
            "unknown_peer",
            401,
        ),
        (
            "signed for another node",
            lambda k, h: ("POST", PATH, {**h, "x-noosphere-to": k["stranger"].id}, BODY),
            "misdirected",
            403,
        ),
    ],
)
def test_a_tampered_or_unsigned_request_is_refused(
    keys: dict[str, NodeKey], case: str, tamper: Tamper, code: str, status: int
) -> None:
    clock = Clock()
    headers = sign(keys["garage"], keys["home"].id, "POST", PATH, BODY, clock)
    method, path, sent, body = tamper(keys, headers)
    with pytest.raises(Refused) as refused:
        receiver(keys, clock).check(method, path, sent, body)
    assert (refused.value.code, refused.value.status) == (code, status), case


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != name}


def test_a_stranger_signing_with_its_own_key_is_unknown(keys: dict[str, NodeKey]) -> None:
    clock = Clock()
    headers = sign(keys["stranger"], keys["home"].id, "POST", PATH, BODY, clock)
    with pytest.raises(Refused) as refused:
        receiver(keys, clock).check("POST", PATH, headers, BODY)
    assert refused.value.code == "unknown_peer"


@pytest.mark.parametrize("offset", [-(SKEW + 1), SKEW + 1])
def test_a_request_outside_the_clock_window_is_stale(keys: dict[str, NodeKey], offset: float) -> None:
    sender = Clock()
    sender.now = T0 + offset
    headers = sign(keys["garage"], keys["home"].id, "POST", PATH, BODY, sender)
    with pytest.raises(Refused) as refused:
        receiver(keys, Clock()).check("POST", PATH, headers, BODY)
    assert (refused.value.code, refused.value.status) == ("stale", 401)


def test_nonces_are_forgotten_only_once_their_requests_are_stale(keys: dict[str, NodeKey]) -> None:
    clock = Clock()
    home = receiver(keys, clock, per_peer=2)
    first = sign(keys["garage"], keys["home"].id, "GET", PATH, b"", clock)
    home.check("GET", PATH, first, b"")
    home.check("GET", PATH, sign(keys["garage"], keys["home"].id, "GET", PATH, b"", clock), b"")
    with pytest.raises(Refused) as refused:  # a full window: wait, rather than forget a nonce
        home.check("GET", PATH, sign(keys["garage"], keys["home"].id, "GET", PATH, b"", clock), b"")
    assert (refused.value.code, refused.value.status) == ("busy", 429)
    clock.now += 2 * SKEW + 1  # the first two are stale now: their nonces may go
    home.check("GET", PATH, sign(keys["garage"], keys["home"].id, "GET", PATH, b"", clock), b"")
    with pytest.raises(Refused) as refused:
        home.check("GET", PATH, first, b"")
    assert refused.value.code == "stale"  # a replay after the window is stale, never accepted
