"""Export and import memories as a versioned JSONL bundle.

Line 1 is a header: ``{"format": "noosphere.memories", "version": 1, "embed_model", "dimension",
"node_id", "exported_at"}``. Every further line is one memory with its fields and ``embedding``
(base64 little-endian float32, or null). Importing keeps ids, owners, timestamps and versions
(so importing twice changes nothing), and re-embeds when the bundle's model differs from the
node's. L2 conversations travel as the ciphertext they are.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import numpy as np
from pydantic import ValidationError

from noosphere.auth.principal import Principal
from noosphere.errors import InvalidRequest, PermissionDenied
from noosphere.memory.access import check_write
from noosphere.memory.model import Memory
from noosphere.memory.service import MemoryService
from noosphere.store.contract import NewRecord, Vector, Viewer

FORMAT = "noosphere.memories"
VERSION = 1
Progress = Callable[[int], None]


@dataclass(frozen=True)
class ImportReport:
    imported: int
    skipped: int
    reembedded: int


async def export_lines(service: MemoryService, principal: Principal) -> AsyncIterator[str]:
    """The bundle, line by line: what ``principal`` may read, tombstones excluded."""
    header = {
        "format": FORMAT,
        "version": VERSION,
        "embed_model": service.embedder.model_id,
        "dimension": service.embedder.dimension,
        "node_id": service.node_id,
        "exported_at": datetime.now(UTC).isoformat(),
    }
    yield json.dumps(header)
    viewer = Viewer(None if principal.is_admin else principal.id)
    now = datetime.now(UTC)
    async for rows in service.store.scan(500):
        for memory, vector in rows:
            if not viewer.sees(memory, now):
                continue
            item: dict[str, Any] = memory.model_dump(mode="json", exclude={"seq"})
            item["embedding"] = (
                None if vector is None else base64.b64encode(vector.astype("<f4").tobytes()).decode()
            )
            yield json.dumps(item, ensure_ascii=False)


def _parse(lines: Iterable[str]) -> tuple[dict[str, Any], list[tuple[int, dict[str, Any]]]]:
    iterator = iter(enumerate(lines, start=1))
    try:
        _, first = next(iterator)
        header = json.loads(first)
    except StopIteration as exc:
        raise InvalidRequest("the bundle is empty") from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequest("line 1: the bundle header is not JSON") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InvalidRequest(f"line 1: not a noosphere memory bundle (format must be {FORMAT!r})")
    if header.get("version") != VERSION:
        raise InvalidRequest(
            f"line 1: bundle version {header.get('version')!r} is not supported (want {VERSION})"
        )
    items = []
    for number, line in iterator:
        if not line.strip():
            continue
        try:
            items.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"line {number}: not valid JSON ({exc.msg})") from exc
    return header, items


async def import_bundle(
    service: MemoryService, principal: Principal, source: IO[str], progress: Progress | None = None
) -> ImportReport:
    """Import a bundle. Validates every line before writing anything; writes in batches."""
    header, raw_items = _parse(source)
    same_model = (
        header.get("embed_model") == service.embedder.model_id
        and header.get("dimension") == service.embedder.dimension
    )
    parsed: list[tuple[Memory, Vector | None]] = []
    for number, item in raw_items:
        encoded = item.pop("embedding", None)
        try:
            memory = Memory.model_validate({**item, "seq": 0})
        except ValidationError as exc:
            raise InvalidRequest(
                f"line {number}: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}"
            ) from exc
        if not principal.is_admin and memory.owner != principal.id:
            raise PermissionDenied(f"line {number}: only the admin may import memories of other owners")
        try:
            check_write(principal, memory.zone)  # an import writes like any store
        except PermissionDenied as exc:
            raise PermissionDenied(f"line {number}: {exc.message}") from None
        vector = None
        if encoded is not None and same_model:
            vector = np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(np.float32)
            if vector.shape != (service.embedder.dimension,):
                vector = None
        parsed.append((memory, vector))

    imported = skipped = reembedded = 0
    for start in range(0, len(parsed), 256):
        batch = parsed[start : start + 256]
        fresh = [(m, v) for m, v in batch if await service.store.get(m.id, Viewer(None)) is None]
        skipped += len(batch) - len(fresh)
        need = [m for m, v in fresh if v is None and not m.encrypted]
        vectors = dict(zip([m.id for m in need], await service.embed([m.content for m in need]), strict=True))
        reembedded += len(need)
        records = [
            NewRecord(
                m.model_copy(update={"embed_model": None if m.encrypted else service.embedder.model_id}),
                None if m.encrypted else (v if v is not None else vectors[m.id]),
                None if m.encrypted else m.content,
            )
            for m, v in fresh
        ]
        stored = await service.store.write(records, [])
        imported += sum(1 for s, r in zip(stored, records, strict=True) if s.id == r.memory.id)
        skipped += sum(1 for s, r in zip(stored, records, strict=True) if s.id != r.memory.id)
        for m, _ in fresh:
            service.clock.observe(m.hlc)
        if progress:
            progress(len(batch))
    return ImportReport(imported=imported, skipped=skipped, reembedded=reembedded)
