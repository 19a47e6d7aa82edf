"""Two real nodes on loopback, each the other's peer: they hear each other's signed heartbeats,
notice when one stops and when it comes back, honour the kill switch, and refuse (and audit)
requests that do not prove they come from a peer."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
import uvicorn

from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.federation.provenance import seal
from noosphere.federation.records import wire
from noosphere.federation.service import HEARTBEAT_PATH
from noosphere.federation.signing import sign
from noosphere.governance.head_file import HEAD_FILE
from noosphere.governance.merkle import leaf_hash
from noosphere.identity import NodeKey, load_or_create
from noosphere.memory.model import Memory, Zone
from noosphere.store.contract import Replica
from noosphere.store.sqlite import SQLiteStore
from noosphere.testing import FakeModel
from tests.integration.conftest import free_port
from tests.integration.test_cli import noosphere
from tests.pool.conftest import Gateway, serve

URL = "http://127.0.0.1:{}"


class Pair:
    def __init__(self, root: Path, minilm: MiniLMEmbedder) -> None:
        self.dirs = [root / "home", root / "garage"]
        self.keys = [load_or_create(d) for d in self.dirs]  # what `noosphere node show` does
        self.ports = [free_port(), free_port()]
        self.minilm = minilm

    def node(
        self,
        i: int,
        paused: bool = False,
        peers: bool = True,
        models: dict[str, FakeModel] | None = None,
        heartbeat: float = 0.2,
        federation: dict[str, Any] | None = None,
        **options: Any,
    ) -> contextlib.AbstractContextManager[Gateway]:
        """Node ``i`` with the other as its peer; ``options`` go on that peer's entry; ``models``
        are served by in-process workers."""
        other = 1 - i
        peer = {"id": self.keys[other].id, "public_key": self.keys[other].public_text, **options}
        declared = [{**peer, "url": URL.format(self.ports[other]), "paused": paused}] if peers else []
        settings = load_settings(
            None,
            data_dir=self.dirs[i],
            name=["home", "garage"][i],
            server={"port": self.ports[i]},
            pool={"checker": False, "local_worker": False},
            scheduler={"enabled": False},
            federation={
                "peers": declared,
                "heartbeat_seconds": heartbeat,
                "repair_seconds": 0.5 if heartbeat < 1 else 60.0,
                "witness_seconds": 0.3,
                **(federation or {}),
            },
            governance={"audit_head_interval_seconds": 0.2},
        )
        return contextlib.contextmanager(serve)(settings, self.minilm, models or {})

    def store(self, i: int) -> SQLiteStore:
        """Node ``i``'s store, for a test to set up what a long absence would leave (node stopped)."""
        return SQLiteStore(self.dirs[i] / "noosphere.db")


def _peers(port: int) -> dict[str, str]:
    return dict(httpx.get(URL.format(port) + "/readyz").json().get("peers", {}))


def _until(check: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def pair(tmp_path: Path, minilm: MiniLMEmbedder) -> Pair:
    return Pair(tmp_path, minilm)


def test_two_nodes_hear_each_other_and_notice_when_one_stops_and_returns(pair: Pair) -> None:
    home_id, garage_id = (k.id for k in pair.keys)
    with pair.node(0):
        with pair.node(1):
            _until(lambda: _peers(pair.ports[0]) == {garage_id: "alive"}, "home never heard garage")
            _until(lambda: _peers(pair.ports[1]) == {home_id: "alive"}, "garage never heard home")
        _until(lambda: _peers(pair.ports[0]) == {garage_id: "suspect"}, "a silent garage is not suspected")
        _until(lambda: _peers(pair.ports[0]) == {garage_id: "dead"}, "a silent garage is not declared dead")
        with pair.node(1):
            _until(lambda: _peers(pair.ports[0]) == {garage_id: "alive"}, "garage's return went unnoticed")


def test_a_paused_peer_is_neither_called_nor_answered(pair: Pair) -> None:
    home_id = pair.keys[0].id
    with pair.node(0, paused=True), pair.node(1):
        # Home neither sends heartbeats to garage nor answers its own: garage stops believing in it.
        _until(lambda: _peers(pair.ports[1]).get(home_id) == "dead", "garage still hears a paused home")
        body = b"{}"
        headers = sign(pair.keys[1], home_id, "POST", HEARTBEAT_PATH, body)
        assert _post(pair.ports[0], headers, body) == (503, "federation_paused")


def test_a_peer_that_sends_too_many_requests_is_refused_for_a_while(pair: Pair) -> None:
    home, garage = pair.keys
    with pair.node(1, federation={"requests_per_minute_per_peer": 3}):
        body = orjson.dumps({"id": home.id, "name": "home", "version": "0.1", "time": time.time()})
        answers = [
            _post(pair.ports[1], sign(home, garage.id, "POST", HEARTBEAT_PATH, body), body) for _ in range(4)
        ]
        assert answers == [(200, None)] * 3 + [(429, "rate_limited")]


def _post(port: int, headers: dict[str, str], body: bytes) -> tuple[int, str | None]:
    answer = httpx.post(URL.format(port) + HEARTBEAT_PATH, content=body, headers=headers)
    return answer.status_code, (answer.json().get("error") or {}).get("code")


def test_requests_that_do_not_prove_a_peer_sent_them_are_refused_and_audited(
    pair: Pair, tmp_path: Path
) -> None:
    home, garage = pair.keys
    stranger: NodeKey = load_or_create(tmp_path / "stranger")
    body = orjson.dumps({"id": garage.id, "name": "garage", "version": "0.1", "time": time.time()})
    with pair.node(0) as node:
        port = pair.ports[0]
        admin = (pair.dirs[0] / "admin-token").read_text().strip()
        signed = sign(garage, home.id, "POST", HEARTBEAT_PATH, body)
        cases: list[tuple[str, dict[str, str], bytes, int, str | None]] = [
            ("unsigned", {}, body, 401, "unsigned"),
            ("a local token", {"Authorization": f"Bearer {admin}"}, body, 403, "permission_denied"),
            (
                "a stranger's key",
                sign(stranger, home.id, "POST", HEARTBEAT_PATH, body),
                body,
                401,
                "unknown_peer",
            ),
            (
                "another node's request",
                sign(garage, stranger.id, "POST", HEARTBEAT_PATH, body),
                body,
                403,
                "misdirected",
            ),
            ("a tampered body", signed, body + b" ", 401, "bad_signature"),
            ("a forged origin", {**signed, "x-noosphere-from": stranger.id}, body, 401, "unknown_peer"),
            (
                "stale",
                sign(garage, home.id, "POST", HEARTBEAT_PATH, body, lambda: time.time() - 120),
                body,
                401,
                "stale",
            ),
            ("the genuine request", signed, body, 200, None),
            ("its replay", signed, body, 401, "replayed"),
        ]
        for case, headers, sent, status, code in cases:
            assert _post(port, headers, sent) == (status, code), case
        assert node.settings.data_dir == pair.dirs[0]
        for n in range(50):  # made-up origins, each new: one audit entry for all of them
            forged = {
                **sign(stranger, home.id, "POST", HEARTBEAT_PATH, body),
                "x-noosphere-from": f"node-{n}",
            }
            assert _post(port, forged, body)[1] == "unknown_peer"
    refused = anyio.run(_refusals, pair.dirs[0] / "noosphere.db")
    assert {"unsigned", "unknown_peer", "misdirected", "bad_signature", "stale", "replayed"} <= set(refused)
    assert refused.count("unknown_peer") == 1


async def _refusals(database: Path) -> list[str]:
    entries = await _audit_bodies(database)
    return [entry["body"]["code"] for entry in entries if entry.get("kind") == "federation.refused"]


def _admin(pair: Pair, i: int) -> dict[str, str]:
    return {"Authorization": "Bearer " + (pair.dirs[i] / "admin-token").read_text().strip()}


def _remember(pair: Pair, i: int, content: str, zone: str) -> str:
    answer = httpx.post(
        URL.format(pair.ports[i]) + "/api/v1/memories",
        json={"content": content, "zone": zone},
        headers=_admin(pair, i),
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _status(pair: Pair, i: int, memory_id: str) -> int:
    return httpx.get(
        URL.format(pair.ports[i]) + f"/api/v1/memories/{memory_id}", headers=_admin(pair, i)
    ).status_code


def test_federated_memories_reach_the_peer_and_nothing_else_does(pair: Pair) -> None:
    with pair.node(0), pair.node(1):
        shared = _remember(pair, 0, "the deploy key rotates on mondays", "shared")
        private = _remember(pair, 0, "my own note about the deploy key", "private")
        federated = _remember(pair, 0, "the staging cluster moved to rack 7", "federated")
        _until(lambda: _status(pair, 1, federated) == 200, "the federated memory never reached the peer")
        copy = httpx.get(
            URL.format(pair.ports[1]) + f"/api/v1/memories/{federated}", headers=_admin(pair, 1)
        ).json()
        assert copy["content"] == "the staging cluster moved to rack 7" and copy["zone"] == "federated"
        found = httpx.post(
            URL.format(pair.ports[1]) + "/api/v1/memories/search",
            json={"query": "where is the staging cluster"},
            headers=_admin(pair, 1),
        ).json()
        assert federated in [hit["memory"]["id"] for hit in found["hits"]]
        # a write on the peer comes back the other way
        back = _remember(pair, 1, "the garage printer needs toner", "federated")
        _until(lambda: _status(pair, 0, back) == 200, "the peer's federated memory never came back")
        assert _status(pair, 1, shared) == 404 and _status(pair, 1, private) == 404
        # forgetting on one node forgets on the other
        gone = httpx.delete(
            URL.format(pair.ports[0]) + f"/api/v1/memories/{federated}", headers=_admin(pair, 0)
        )
        assert gone.status_code in (200, 204), gone.text
        _until(lambda: _status(pair, 1, federated) == 404, "a forgotten memory stayed on the peer")


class _HostilePeer:
    """A peer node that says it is alive and serves a feed of its choosing, good and bad."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.pulls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while (await receive()).get("more_body"):
            pass
        body: dict[str, Any] = {"id": "fake"}
        if scope["path"] == "/federation/v1/changes":
            self.pulls += 1
            body = {"records": self.records, "last": self.records[-1]["seq"]}
        data = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})


def _record(key: NodeKey, seq: int, content: str, hlc: int, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    memory = Memory(
        id=f"m_peer_{seq}",
        seq=seq,
        zone=Zone.FEDERATED,
        owner="agent:far",
        kind="fact",
        content=content,
        tags=[],
        metadata={},
        content_hash=f"h{seq}",
        importance=0.5,
        created_at=now,
        valid_at=now,
        embed_model="another-embedder",  # this node re-embeds it with its own
        hlc=hlc,
        origin=key.id,
    )
    return {**wire(Replica(memory, None, seal(key, memory))), **changes}


def test_a_hostile_peers_bad_and_future_records_are_refused_or_deferred(pair: Pair, tmp_path: Path) -> None:
    now_hlc = (time.time_ns() // 1_000_000) << 16
    fake_key, other = load_or_create(tmp_path / "far"), load_or_create(tmp_path / "other")
    forged = _record(other, 9, "signed by another node", now_hlc)
    feed = [
        _record(fake_key, 1, "the good record", now_hlc),
        _record(fake_key, 2, "smuggled as shared", now_hlc, zone="shared"),
        _record(fake_key, 3, "bad\x00bytes", now_hlc),
        _record(fake_key, 7, "too long: " + "x" * 100_001, now_hlc),  # past memory.max_content_chars
        {**_record(fake_key, 8, "tampered", now_hlc), "content": "tampered after it was sealed"},
        {**forged, "origin": fake_key.id},  # another node's seal on this origin's record
        _record(fake_key, 4, "stamped an hour ahead", now_hlc + ((3_600_000) << 16)),
        _record(fake_key, 5, "behind the future one", now_hlc),
    ]
    peer = _HostilePeer(feed)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(peer, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    settings = load_settings(
        None,
        data_dir=pair.dirs[0],
        server={"port": pair.ports[0]},
        pool={"checker": False, "local_worker": False},
        scheduler={"enabled": False},
        federation={
            "peers": [{"id": fake_key.id, "public_key": fake_key.public_text, "url": URL.format(port)}],
            "heartbeat_seconds": 0.2,
        },
    )
    try:
        with contextlib.contextmanager(serve)(settings, pair.minilm, {}):
            _until(lambda: _status(pair, 0, "m_peer_1") == 200, "the good record was not applied")
            _until(lambda: peer.pulls >= 3, "the node stopped pulling")
            assert [_status(pair, 0, f"m_peer_{n}") for n in (2, 3, 7, 8, 9, 4, 5)] == [404] * 7
            found = httpx.post(
                URL.format(pair.ports[0]) + "/api/v1/memories/search",
                json={"query": "the good record"},
                headers=_admin(pair, 0),
            ).json()
            assert "m_peer_1" in [hit["memory"]["id"] for hit in found["hits"]]  # re-embedded here
            # its answer to a search is malformed: left out, and the search still answers
            asked = _search(pair, 0, "the good record", include_federation=True)
            assert [hit["source"] for hit in asked][:1] == [pair.keys[0].id]
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_peers_added_paused_and_removed_while_the_node_runs(pair: Pair) -> None:
    home, garage = pair.keys
    with pair.node(0, peers=False), pair.node(1):
        assert "peers" not in httpx.get(URL.format(pair.ports[0]) + "/readyz").json()
        added = noosphere(
            pair.dirs[0], "peers", "add", garage.id, garage.public_text, URL.format(pair.ports[1])
        )
        assert added.returncode == 0, added.stderr
        _until(lambda: _peers(pair.ports[0]) == {garage.id: "alive"}, "an added peer was not taken up")
        _until(lambda: _peers(pair.ports[1]) == {home.id: "alive"}, "the peer never heard the node")
        listed = json.loads(noosphere(pair.dirs[0], "peers", "list", "--json").stdout)
        shown = [{k: peer[k] for k in ("id", "url", "source", "paused")} for peer in listed]
        assert shown == [
            {"id": garage.id, "url": URL.format(pair.ports[1]), "source": "added", "paused": False}
        ]
        assert noosphere(pair.dirs[0], "federation", "pause").returncode == 0
        _until(lambda: _peers(pair.ports[1]) == {home.id: "dead"}, "a paused node kept talking")
        body = b"{}"
        assert _post(pair.ports[0], sign(garage, home.id, "POST", HEARTBEAT_PATH, body), body) == (
            503,
            "federation_paused",
        )
        assert noosphere(pair.dirs[0], "federation", "resume").returncode == 0
        _until(lambda: _peers(pair.ports[1]) == {home.id: "alive"}, "a resumed node stayed silent")
        wrong = noosphere(pair.dirs[0], "peers", "add", garage.id, home.public_text, "http://x")
        assert wrong.returncode != 0 and "does not belong" in wrong.stdout + wrong.stderr
        assert noosphere(pair.dirs[0], "peers", "remove", garage.id).returncode == 0
        _until(
            lambda: "peers" not in httpx.get(URL.format(pair.ports[0]) + "/readyz").json(),
            "a removed peer stayed",
        )


def test_a_node_whose_loop_stalls_for_5_s_still_believes_in_its_peers(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    """Lifeguard, for real: the node's own event loop blocks for 5 s while its peer keeps sending
    heartbeats every 0.2 s. When it wakes it does not suspect its peer, not even for a moment."""
    garage = pair.keys[1].id
    with pair.node(0) as home, pair.node(1):
        _until(lambda: _peers(pair.ports[0]) == {garage: "alive"}, "home never heard garage")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="noosphere.federation.service"):
            loop = home.server.servers[0].get_loop()
            loop.call_soon_threadsafe(time.sleep, 5.0)  # blocks the node's loop: a stall of its own
            time.sleep(5.5)
            _until(lambda: _peers(pair.ports[0]) == {garage: "alive"}, "home lost garage")
            time.sleep(1.0)
        judged = [r.getMessage() for r in caplog.records if r.name == "noosphere.federation.service"]
        assert not [m for m in judged if garage in m and ("suspect" in m or "dead" in m)], judged


async def _with_store(store: SQLiteStore, step: Callable[[SQLiteStore], Any]) -> Any:
    await store.open()
    try:
        return await step(store)
    finally:
        await store.close()


def test_repair_finds_what_the_change_feed_missed(pair: Pair) -> None:
    """Home believes it read all of garage's feed (as after a restore from an old backup): the
    fast path brings nothing, and reconciliation still finds garage's records."""
    garage_id = pair.keys[1].id
    with pair.node(1, peers=False):
        written = [_remember(pair, 1, f"the rack {n} switch was replaced", "federated") for n in range(5)]
    with pair.node(0, peers=False):  # home's store exists and is migrated
        pass
    anyio.run(_with_store, pair.store(0), lambda store: store.apply_federated(garage_id, [], cursor=10**9))
    with pair.node(0), pair.node(1):
        _until(lambda: all(_status(pair, 0, m) == 200 for m in written), "repair did not find them")
        cursor = anyio.run(_with_store, pair.store(0), lambda store: store.federation_cursor(garage_id))
        assert cursor == 10**9  # not the feed: repair found them


def test_a_peer_back_after_tombstones_were_purged_resyncs_and_drops_what_was_deleted(
    pair: Pair,
) -> None:
    garage_id = pair.keys[1].id
    with pair.node(0), pair.node(1):
        doomed = _remember(pair, 1, "the old vpn endpoint is vpn1.example", "federated")
        _until(lambda: _status(pair, 0, doomed) == 200, "the record never reached home")
    with pair.node(1, peers=False):  # home is away: garage forgets, and purges the tombstone
        gone = httpx.delete(URL.format(pair.ports[1]) + f"/api/v1/memories/{doomed}", headers=_admin(pair, 1))
        assert gone.status_code in (200, 204), gone.text
        fresh = _remember(pair, 1, "the vpn endpoint is vpn2.example", "federated")
    purged = anyio.run(
        _with_store,
        pair.store(1),
        lambda store: store.purge_tombstones(datetime.now(UTC) + timedelta(days=1)),
    )
    assert purged == 1
    with pair.node(0), pair.node(1):
        _until(lambda: _status(pair, 0, fresh) == 200, "home never caught up")
        _until(lambda: _status(pair, 0, doomed) == 404, "a deletion whose tombstone was purged came back")
        horizon = anyio.run(_with_store, pair.store(1), lambda store: store.federation_horizon())
        cursor = anyio.run(_with_store, pair.store(0), lambda store: store.federation_cursor(garage_id))
        assert cursor >= horizon > 0


def _search(pair: Pair, i: int, query: str, **options: Any) -> list[dict[str, Any]]:
    answer = httpx.post(
        URL.format(pair.ports[i]) + "/api/v1/memories/search",
        json={"query": query, **options},
        headers=_admin(pair, i),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["hits"])


def test_a_search_can_ask_live_peers_and_says_where_each_hit_came_from(pair: Pair) -> None:
    home_id, garage_id = (k.id for k in pair.keys)
    # Home takes nothing from garage: garage's memories are found only by asking it.
    with pair.node(0, write=False), pair.node(1):
        _until(lambda: _peers(pair.ports[0]) == {garage_id: "alive"}, "home never heard garage")
        theirs = _remember(pair, 1, "the garage door code changes every month", "federated")
        _remember(pair, 1, "the garage wifi password is hunter2", "shared")
        mine = _remember(pair, 0, "the garage door opener battery is in the kitchen drawer", "federated")
        _until(lambda: _status(pair, 1, mine) == 200, "home's memory never reached garage")
        assert _status(pair, 0, theirs) == 404
        local = _search(pair, 0, "garage door")
        assert [h["memory"]["id"] for h in local] == [mine] and local[0]["source"] is None
        both = _search(pair, 0, "garage door", include_federation=True)
        sources = {h["memory"]["id"]: h["source"] for h in both}
        # home's memory is on both nodes: one hit, named after home; garage's shared one never comes
        assert sources == {mine: home_id, theirs: garage_id}
        assert not any(
            "hunter2" in h["memory"]["content"] for h in _search(pair, 0, "wifi", include_federation=True)
        )
    with pair.node(0, write=False):  # garage is gone: the search still answers, with what it has
        began = time.monotonic()
        alone = _search(pair, 0, "garage door", include_federation=True)
        assert [h["memory"]["id"] for h in alone] == [mine]
        assert time.monotonic() - began < 10


def _chat(pair: Pair, i: int, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        URL.format(pair.ports[i]) + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hello"}], **extra},
        headers=_admin(pair, i),
        timeout=30,
    )


def _offered(pair: Pair, i: int) -> dict[str, Any]:
    listed = httpx.get(URL.format(pair.ports[i]) + "/v1/models", headers=_admin(pair, i)).json()
    return {m["id"]: m for m in listed["data"]}


def test_a_chat_no_local_worker_serves_runs_on_a_peer_that_offers_the_model(pair: Pair) -> None:
    home_id = pair.keys[0].id
    garage_models = {"fake": FakeModel("fake", reply="answered in the garage")}
    with pair.node(0, forward_chat=True), pair.node(1, models=garage_models, forward_chat=True):
        _until(lambda: "fake" in _offered(pair, 0), "home never offered the garage's model")
        assert _offered(pair, 0)["fake"]["upstreams"] == 1 and _offered(pair, 0)["fake"]["workers"] == 0
        answer = _chat(pair, 0, "fake")
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "answered in the garage"
        streamed = _chat(pair, 0, "fake", stream=True)
        assert streamed.status_code == 200 and "answered" in streamed.text and "[DONE]" in streamed.text
        # The garage metered and audited both as home's requests.
        served = [
            entry
            for entry in anyio.run(_audit_bodies, pair.dirs[1] / "noosphere.db")
            if entry["kind"] == "federation.chat"
        ]
        assert [(e["actor"], e["body"]["model"], e["body"]["outcome"]) for e in served] == [
            (f"peer:{home_id}", "fake", "ok")
        ] * 2
        assert all(e["body"]["completion_tokens"] > 0 for e in served)
        # A forwarded chat that already passed here, or names another sender, is refused; so is a
        # request replayed under the same idempotency key.
        garage = pair.keys[1]
        request = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
        loop = orjson.dumps({"request": request, "via": [garage.id, home_id], "key": "k" * 16})
        assert _signed(pair, 0, 1, "/federation/v1/chat", loop)[0] == 508
        once = orjson.dumps({"request": request, "via": [home_id], "key": "once-" * 4})
        assert _signed(pair, 0, 1, "/federation/v1/chat", once)[0] == 200
        assert _signed(pair, 0, 1, "/federation/v1/chat", once) == (409, "duplicate_request")


def test_a_peer_that_does_not_take_forwarded_chats_is_never_asked(pair: Pair) -> None:
    garage_models = {"fake": FakeModel("fake", reply="answered in the garage")}
    with pair.node(0, forward_chat=True), pair.node(1, models=garage_models):
        _until(lambda: _peers(pair.ports[0]) == {pair.keys[1].id: "alive"}, "home never heard garage")
        time.sleep(1.0)  # heartbeats come and go: home must still not offer the garage's model
        assert "fake" not in _offered(pair, 0)
        answer = _chat(pair, 0, "fake")
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "model_not_found"
        request = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
        asked = orjson.dumps({"request": request, "via": [pair.keys[0].id], "key": "k" * 16})
        assert _signed(pair, 0, 1, "/federation/v1/chat", asked) == (403, "permission_denied")


def _signed(pair: Pair, sender: int, receiver: int, path: str, body: bytes) -> tuple[int, str | None]:
    headers = sign(pair.keys[sender], pair.keys[receiver].id, "POST", path, body)
    answer = httpx.post(URL.format(pair.ports[receiver]) + path, content=body, headers=headers, timeout=30)
    if answer.headers.get("content-type", "").startswith("application/json"):
        return answer.status_code, (answer.json().get("error") or {}).get("code")
    return answer.status_code, None


async def _audit_bodies(database: Path) -> list[dict[str, Any]]:
    store = SQLiteStore(database)
    await store.open()
    try:
        entries = await store.audit_entries()
    finally:
        await store.close()
    return [orjson.loads(entry.entry) for entry in entries]


def test_a_write_rings_the_peers_doorbell_so_it_arrives_long_before_the_next_pull(pair: Pair) -> None:
    garage_id = pair.keys[1].id
    with pair.node(0, heartbeat=30.0), pair.node(1, heartbeat=30.0):
        _until(lambda: _peers(pair.ports[0]).get(garage_id) == "alive", "home never heard garage")
        _until(lambda: _peers(pair.ports[1]).get(pair.keys[0].id) == "alive", "garage never heard home")
        time.sleep(0.5)  # both nodes' first pulls are over: the next is 30 s away
        began = time.monotonic()
        fact = _remember(pair, 0, "the doorbell rings when a federated memory is written", "federated")
        _until(lambda: _status(pair, 1, fact) == 200, "the write waited for the next pull", seconds=10)
        assert time.monotonic() - began < 10
        gone = httpx.delete(URL.format(pair.ports[0]) + f"/api/v1/memories/{fact}", headers=_admin(pair, 0))
        assert gone.status_code in (200, 204)
        _until(lambda: _status(pair, 1, fact) == 404, "the deletion waited for the next pull", seconds=10)


def _witnessed(pair: Pair, i: int) -> tuple[int, list[dict[str, Any]]]:
    done = noosphere(pair.dirs[i], "audit", "verify", "--peers", "--json")
    return done.returncode, json.loads(done.stdout or "[]")


def _rewrite_history(database: Path) -> None:
    """What a node's owner could do to their own log: change an old entry and sign it all again."""
    conn = sqlite3.connect(database)
    with conn:
        (entry,) = conn.execute("SELECT entry FROM audit_log WHERE seq = 0").fetchone()
        forged = entry.replace("admin", "nobody") if "admin" in entry else entry + " "
        conn.execute(
            "UPDATE audit_log SET entry = ?, leaf = ? WHERE seq = 0", (forged, leaf_hash(forged.encode()))
        )
        conn.execute("DELETE FROM audit_heads")
    conn.close()
    (database.parent / HEAD_FILE).unlink(missing_ok=True)


def test_peers_witness_each_others_audit_log_and_catch_a_rewritten_history(pair: Pair) -> None:
    home_id = pair.keys[0].id
    with pair.node(0), pair.node(1):
        for n in range(3):
            _remember(pair, 0, f"an audited write {n}", "shared")
        _until(
            lambda: _witnessed(pair, 1)[1][:1] and _witnessed(pair, 1)[1][0]["size"] > 0,
            "garage never checked home",
        )
        code, records = _witnessed(pair, 1)
        assert code == 0 and [(r["peer"], r["ok"]) for r in records] == [(home_id, True)]
        # Gossip: a peer tells what it verified of the nodes it is asked about, and nothing else.
        asked = {"nodes": [home_id, "node-unknown"]}
        status, gossip = _signed_json(pair, 0, 1, "/federation/v1/audit/witnessed", asked)
        assert status == 200 and [h["node"] for h in gossip["heads"]] == [home_id]
        assert gossip["heads"][0]["head"]["size"] >= records[0]["size"]
    _rewrite_history(pair.dirs[0] / "noosphere.db")
    with pair.node(0), pair.node(1):
        _remember(pair, 0, "a write after the rewrite", "shared")  # the log grows; home signs anew
        _until(lambda: _witnessed(pair, 1)[0] == 1, "garage never noticed the rewritten history")
        (record,) = _witnessed(pair, 1)[1]
        assert record["peer"] == home_id and not record["ok"]
        assert "does not extend" in record["problem"] or "two different" in record["problem"]
        assert len(record["evidence"]["heads"]) == 2  # both signed by home: proof for anyone
    kinds = [entry["kind"] for entry in anyio.run(_audit_bodies, pair.dirs[1] / "noosphere.db")]
    assert "federation.witness_failed" in kinds


def _agent(pair: Pair, i: int, **profile: Any) -> None:
    answer = httpx.post(URL.format(pair.ports[i]) + "/api/v1/agents", json=profile, headers=_admin(pair, i))
    assert answer.status_code == 201, answer.text


def _tasks(pair: Pair, i: int) -> list[dict[str, Any]]:
    answer = httpx.get(URL.format(pair.ports[i]) + "/api/v1/tasks", headers=_admin(pair, i))
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def _plan(pair: Pair) -> dict[str, Any]:
    """Home's planner, run once by its admin."""
    run = httpx.post(
        URL.format(pair.ports[0]) + "/api/v1/agents/planner/run",
        json={"task": "Get the release notes written.", "stream": False},
        headers=_admin(pair, 0),
        timeout=60,
    )
    assert run.status_code == 200, run.text
    return dict(run.json())


PLANNER = {"name": "planner", "level": "L1", "model": "planbot", "tools": ["delegate"]}
DELEGATE = ("delegate", json.dumps({"agent": "coder", "task": "Write the release notes."}))


def test_an_agent_delegates_to_an_agent_only_a_peer_serves_and_hears_how_it_went(pair: Pair) -> None:
    home_id, garage_id = (k.id for k in pair.keys)
    home_models = {"planbot": FakeModel("planbot", reply="The garage wrote them.", tool_calls=[DELEGATE])}
    garage_models = {"coderbot": FakeModel("coderbot", reply="Release notes: faster sync.")}
    with (
        pair.node(0, models=home_models, forward_agents=True),
        pair.node(1, models=garage_models, forward_agents=True),
    ):
        _agent(pair, 0, **PLANNER, plan=["delegate", "reply"], max_steps=2)
        _agent(pair, 1, name="coder", level="L2", model="coderbot", tools=[], serve=True)
        deadline = time.monotonic() + 20
        while (run := _plan(pair))["calls"] != [{"tool": "delegate", "outcome": "ok"}]:
            assert time.monotonic() < deadline, run  # until a heartbeat offered the garage's coder
            time.sleep(0.2)
        assert run["answer"] == "The garage wrote them."
        (given,) = [t for t in _tasks(pair, 0) if t["status"] == "completed"]
        assert given["assignee"] == f"coder@{garage_id}" and given["delegator"] == "planner"
        assert given["result"] == "Release notes: faster sync."
        (taken,) = _tasks(pair, 1)
        assert (taken["delegator"], taken["assignee"], taken["status"]) == (
            f"peer:{home_id}",
            "coder",
            "completed",
        )
        # The garage audited the task as home's and metered the coder's model calls to home.
        audited = [
            e
            for e in anyio.run(_audit_bodies, pair.dirs[1] / "noosphere.db")
            if e["kind"] == "federation.task"
        ]
        assert [(e["actor"], e["body"]["agent"]) for e in audited] == [(f"peer:{home_id}", "coder")]
        database = pair.dirs[1] / "noosphere.db"
        _until(lambda: f"peer:{home_id}" in anyio.run(_spenders, database), "home was not metered")

        # Hostile or repeated requests: the same key is the same task; a loop, an agent the
        # garage does not serve, or a malformed task is refused.
        asked = {"key": given["id"], "agent": "coder", "task": "again", "via": [home_id]}
        again = _signed_json(pair, 0, 1, "/federation/v1/tasks", asked)
        assert again == (
            200,
            {"key": given["id"], "status": "completed", "result": "Release notes: faster sync."},
        )
        assert len(_tasks(pair, 1)) == 1
        loop = {**asked, "key": "k" * 16, "via": [garage_id, home_id]}
        assert _signed(pair, 0, 1, "/federation/v1/tasks", orjson.dumps(loop)) == (508, "loop_detected")
        stranger = {**asked, "key": "k" * 16, "agent": "planner"}
        assert _signed(pair, 0, 1, "/federation/v1/tasks", orjson.dumps(stranger)) == (404, "not_found")
        huge = {**asked, "key": "k" * 16, "task": "x" * 20_001}
        assert _signed(pair, 0, 1, "/federation/v1/tasks", orjson.dumps(huge)) == (400, "invalid_request")
        # A peer reads only the states of its own tasks: the garage's key means nothing from home.
        states = _signed_json(pair, 1, 0, "/federation/v1/tasks/states", {"keys": [taken["id"]]})
        assert states == (200, {"tasks": [{"key": taken["id"], "status": None, "result": None}]})


def test_a_peer_that_does_not_take_agent_tasks_is_never_given_one(pair: Pair) -> None:
    home_models = {"planbot": FakeModel("planbot", reply="done", tool_calls=[DELEGATE])}
    garage_models = {"coderbot": FakeModel("coderbot", reply="notes")}
    with pair.node(0, models=home_models, forward_agents=True), pair.node(1, models=garage_models):
        _agent(pair, 0, **PLANNER, plan=["delegate", "reply"], max_steps=2)
        _agent(pair, 1, name="coder", level="L2", model="coderbot", tools=[], serve=True)
        _until(lambda: _peers(pair.ports[0]) == {pair.keys[1].id: "alive"}, "home never heard garage")
        time.sleep(1.0)  # heartbeats come and go: the garage must still not offer its coder
        assert _plan(pair)["calls"] == []  # no agent to delegate to: the tool is not even offered
        assert _tasks(pair, 0) == [] and _tasks(pair, 1) == []
        asked = {"key": "k" * 16, "agent": "coder", "task": "notes", "via": [pair.keys[0].id]}
        assert _signed(pair, 0, 1, "/federation/v1/tasks", orjson.dumps(asked)) == (403, "permission_denied")


async def _spenders(database: Path) -> set[str]:
    store = SQLiteStore(database)
    await store.open()
    try:
        return {row.group for row in await store.usage_summary("principal", None) if row.completion_tokens}
    finally:
        await store.close()


def _signed_json(
    pair: Pair, sender: int, receiver: int, path: str, payload: dict[str, Any]
) -> tuple[int, Any]:
    body = orjson.dumps(payload)
    headers = sign(pair.keys[sender], pair.keys[receiver].id, "POST", path, body)
    answer = httpx.post(URL.format(pair.ports[receiver]) + path, content=body, headers=headers, timeout=30)
    return answer.status_code, answer.json()
