"""Records on the wire between nodes: what this node sends, a peer accepts unchanged; what a
hostile or broken peer might send instead is refused record by record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from noosphere.federation.records import ChangesRequest, PeerRecord, wire
from noosphere.memory.model import Memory, Zone
from noosphere.store.contract import Replica

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _memory(**changes: Any) -> Memory:
    fields: dict[str, Any] = {
        "id": "m_1",
        "seq": 12,
        "zone": Zone.FEDERATED,
        "owner": "agent:scribe",
        "kind": "fact",
        "content": "the staging cluster moved to rack 7",
        "tags": ["infra"],
        "metadata": {"rack": 7},
        "content_hash": "abc",
        "importance": 0.5,
        "created_at": NOW,
        "valid_at": NOW,
        "embed_model": "all-MiniLM-L6-v2",
        "hlc": 99,
        "origin": "node-abc",
    }
    return Memory.model_validate({**fields, **changes})


def test_what_this_node_sends_a_peer_accepts_unchanged() -> None:
    vector = np.linspace(-1, 1, 384, dtype=np.float32)
    back = PeerRecord.model_validate(wire(Replica(_memory(), vector, "k.s"))).replica()
    assert (back.memory, back.seal) == (_memory(), "k.s")
    assert back.vector is not None and np.allclose(back.vector, vector)
    tombstone = _memory(tombstone=True, content="", tags=[], metadata={})
    assert PeerRecord.model_validate(wire(Replica(tombstone))).replica() == Replica(tombstone)


@pytest.mark.parametrize(
    ("case", "changes"),
    [
        ("a private memory", {"zone": "private"}),
        ("a shared memory", {"zone": "shared"}),
        ("an encrypted one", {"encrypted": True}),
        ("a NUL in the content", {"content": "a\x00b"}),
        ("a lone surrogate", {"content": "\ud800"}),
        ("a year out of range", {"valid_at": "9999-12-31T23:59:59Z"}),
        ("a bad kind", {"kind": "Fact; DROP"}),
        ("a bad tag", {"tags": ["no spaces allowed"]}),
        ("too many tags", {"tags": [f"t{n}" for n in range(40)]}),
        ("a bad metadata key", {"metadata": {"a b": 1}}),
        ("a clock past 64 bits", {"hlc": 1 << 64}),
        ("a negative clock", {"hlc": -1}),
        ("a NaN in the embedding", {"embedding": [0.1, float("nan")]}),
        ("a huge embedding", {"embedding": [0.0] * 5000}),
        ("an unknown field", {"sql": "DROP TABLE memories"}),
        ("no origin", {"origin": ""}),
        ("a huge seal", {"seal": "k" * 201}),
    ],
)
def test_a_record_a_node_would_never_send_is_refused(case: str, changes: dict[str, Any]) -> None:
    sent = {**wire(Replica(_memory())), **changes}
    with pytest.raises(ValidationError):
        PeerRecord.model_validate(sent)


def test_a_page_request_is_bounded() -> None:
    assert ChangesRequest.model_validate({}).limit == 200
    for bad in ({"limit": 0}, {"limit": 501}, {"after": -1}, {"after": 1 << 64}):
        with pytest.raises(ValidationError):
            ChangesRequest.model_validate(bad)
