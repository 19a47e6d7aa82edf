"""``python -m bench [NAME ...]``: run benchmarks (all when no name is given)."""

from __future__ import annotations

import importlib
import sys

import anyio

BENCHES = {
    "embedder": "bench.embedder",
    "vector_index": "bench.vector_index",
    "ingest": "bench.ingest",
    "search": "bench.search_latency",
    "retrieval": "bench.retrieval",
    "dialogue_retrieval": "bench.dialogue_retrieval",
    "gateway": "bench.gateway",
    "policy": "bench.policy",
    "bus": "bench.bus",
    "llama_builds": "bench.llama_builds",
    "soak": "bench.soak",
    "federation": "bench.federation",
    "federation_cluster": "bench.federation_cluster",
    "membership": "bench.membership",
    "cli": "bench.cli",
    "cluster": "bench.cluster",
}


def main() -> None:
    names = sys.argv[1:] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}")
    for name in names:
        anyio.run(importlib.import_module(BENCHES[name]).run)


main()
