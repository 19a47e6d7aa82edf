"""The soak's short form: the long one's mixed load (``bench/soak.py``: chats with a metered key,
memory writes and searches, bus messages, approvals decided by a person) for
``NOOSPHERE_SHORT_SOAK_SECONDS`` against a real node process. Nothing fails and the ledger keeps
up; what the load does to memory and latency over 30 minutes is the benchmark's to say
(``make soak``, docs/benchmarks.md)."""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
from pathlib import Path

import anyio
import pytest
from bench.gateway import _port, _start, _stop
from bench.soak import _mixed, _node, _rss_mib

pytestmark = pytest.mark.slow
SECONDS = float(os.environ.get("NOOSPHERE_SHORT_SOAK_SECONDS", "20"))


def test_a_short_soak_of_mixed_load_fails_nothing_and_keeps_the_ledger_up() -> None:
    async def soak(tmp: Path) -> tuple[object, float, float]:
        mock_port = _port()
        mock = _start([sys.executable, "-m", "bench.mock_openai", str(mock_port)])
        try:
            node, url, key, agent = await _node(tmp, "node", mock_port, None)
            try:
                before = _rss_mib(node.pid)
                tally = await _mixed(url, key, agent, SECONDS, tmp / "chats.json")
                after = _rss_mib(node.pid)
            finally:
                _stop(node)
        finally:
            _stop(mock)
        return tally, before, after

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        tally, before, after = anyio.run(soak, tmp)
        with sqlite3.connect(tmp / "node" / "noosphere.db") as db:
            (recorded,) = db.execute("SELECT count(*) FROM usage_requests WHERE status = 'ok'").fetchone()
        logged = (tmp / "node.log").read_text(errors="replace")
    kinds = ["chat", "memory write", "memory search", "bus send", "approval"]
    done = {kind: sum(tally.per_minute[kind].values()) for kind in kinds}  # type: ignore[attr-defined]
    errors = {kind: tally.errors[kind] for kind in kinds}  # type: ignore[attr-defined]
    print(f"short soak, {SECONDS:g} s: {done}; errors {errors}; node RSS {before:.0f} → {after:.0f} MiB")
    assert all(done[kind] > 0 for kind in kinds), done
    assert not any(errors.values()), errors
    assert recorded >= done["chat"]  # every answered chat was paid for by the time the node stopped
    assert "Traceback" not in logged, logged[-3000:]
