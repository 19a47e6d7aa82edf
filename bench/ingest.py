"""Ingest throughput including embedding: ``store_many`` in batches and ``store_one`` one by one,
through the memory service, on SQLite and PostgreSQL."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.corpus import texts
from bench.report import write_section
from noosphere.auth.principal import Level, Principal, PrincipalKind
from noosphere.config import MemorySettings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.memory.model import MemoryDraft
from noosphere.memory.service import MemoryService
from noosphere.store.contract import MemoryStore
from noosphere.store.pgserver import EmbeddedPostgres
from noosphere.store.postgres import PostgresStore
from noosphere.store.sqlite import SQLiteStore

BATCHED = 2000
BATCH = 100
SINGLE = 300
AGENT = Principal(id="agent:bench", kind=PrincipalKind.AGENT, name="bench", level=Level.L2)


async def _throughput(service: MemoryService) -> tuple[float, float]:
    corpus = texts(BATCHED + SINGLE, seed=5)
    await service.store_one(AGENT, MemoryDraft(content="warm-up"))
    t = time.perf_counter()
    for start in range(0, BATCHED, BATCH):
        await service.store_many(AGENT, [MemoryDraft(content=c) for c in corpus[start : start + BATCH]])
    batched = BATCHED / (time.perf_counter() - t)
    t = time.perf_counter()
    for content in corpus[BATCHED:]:
        await service.store_one(AGENT, MemoryDraft(content=content))
    single = SINGLE / (time.perf_counter() - t)
    return batched, single


async def run() -> None:
    embedder = MiniLMEmbedder()
    t = time.perf_counter()
    embedder.embed(texts(BATCHED, seed=5))
    vec_only = BATCHED / (time.perf_counter() - t)
    rows = [f"| embedding only (no store) | {vec_only:,.0f} | — |"]
    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg")
        stores: list[tuple[str, MemoryStore]] = [
            ("SQLite", SQLiteStore(Path(tmp) / "ingest.db")),
            ("PostgreSQL", PostgresStore(pg.start())),
        ]
        try:
            for name, store in stores:
                await store.open()
                service = MemoryService(store, embedder, MemorySettings(), "bench")
                await service.check_embedder()
                batched, single = await _throughput(service)
                rows.append(f"| {name} | {batched:,.0f} | {single:,.0f} |")
                print(rows[-1])
                await store.close()
        finally:
            pg.stop()
    body = (
        f"Memories per second through `MemoryService` with the default embedder (onnx runtime): "
        f"{BATCHED} memories in batches of {BATCH} (`store_many`), then {SINGLE} one at a time "
        "(`store_one`); each memory a distinct ~12-word note (`bench/corpus.py`). "
        "Target: ≥ 200 memories/s batched.\n\n"
        "| store | batched /s | single /s |\n|---|---|---|\n" + "\n".join(rows)
    )
    write_section("ingest", "Ingest throughput", body)
