"""Searching peers: a search with ``include_federation`` also asks every live peer, which answers
from its own federated memories, within what the asking node may read there.

The asking node waits at most ``federation.search_timeout_seconds`` for all of them: a peer that
does not answer in time, or answers badly, is left out (partial results are the point of a
deadline). Hits are fused by rank with the local ones (``ranking.fuse_sources``): the same memory
held by several nodes is one hit, named after the first node that returned it. A peer never
forwards the search on (one hop), and only ever searches its ``federated`` zone for a peer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from noosphere.auth.principal import peer_principal
from noosphere.config import PeerSettings
from noosphere.federation.records import PeerRecord
from noosphere.federation.sync import Send
from noosphere.memory.model import KIND_PATTERN, SearchHit, SearchQuery, Text, When, Zone, check_tags
from noosphere.memory.service import MemoryService

log = logging.getLogger(__name__)

SEARCH_PATH = "/federation/v1/search"
MAX_HITS = 50


class PeerSearch(BaseModel):
    """A search a peer asks this node to run over its federated memories."""

    model_config = ConfigDict(extra="forbid")

    query: Text = Field(min_length=1, max_length=4000)
    limit: int = Field(10, ge=1, le=MAX_HITS)
    kinds: list[Annotated[str, Field(pattern=KIND_PATTERN.pattern)]] | None = Field(None, max_length=32)
    tags: list[str] | None = Field(None, max_length=32)
    since: When | None = None
    until: When | None = None
    include_invalid: bool = False

    def local(self) -> SearchQuery:
        fields = self.model_dump(exclude_none=True)
        if self.tags is not None:
            fields["tags"] = check_tags(self.tags)
        return SearchQuery.model_validate({**fields, "zones": [Zone.FEDERATED]})


class PeerHit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    memory: dict[str, Any]
    score: float = Field(allow_inf_nan=False)


class PeerHits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hits: list[PeerHit] = Field(max_length=MAX_HITS)


def ask_of(query: SearchQuery) -> dict[str, Any] | None:
    """What this node asks its peers for a local search; None when no peer could have a match.

    A kind no memory can have (the search itself takes any short text) matches nothing here or
    there: it is left out of what peers are asked, and a search for only such kinds asks none."""
    kinds = None if query.kinds is None else [k for k in query.kinds if KIND_PATTERN.match(k)]
    if kinds == []:
        return None
    try:
        asked = PeerSearch(
            query=query.query,
            limit=min(query.limit, MAX_HITS),
            kinds=kinds,
            tags=query.tags,
            since=query.since,
            until=query.until,
            include_invalid=query.include_invalid,
        )
    except ValidationError as exc:  # nothing a peer would accept: search here only
        log.info("a search was not asked of peers: %s", exc.errors()[0]["msg"])
        return None
    return asked.model_dump(mode="json", exclude_none=True)


async def serve(memory: MemoryService, peer: PeerSettings, asked: PeerSearch) -> dict[str, Any]:
    """This node's federated memories that match, as far as ``peer`` may read them."""
    if not peer.read:
        return {"hits": []}
    hits = await memory.search(peer_principal(peer.id), asked.local())
    wanted = set(peer.read_tags)
    return {
        "hits": [
            {"memory": hit.memory.model_dump(mode="json"), "score": hit.score}
            for hit in hits
            if hit.memory.zone is Zone.FEDERATED and (not wanted or wanted & set(hit.memory.tags))
        ]
    }


async def ask(
    send: Send, peers: list[PeerSettings], query: SearchQuery, seconds: float
) -> list[tuple[str, list[SearchHit]]]:
    """Each peer's hits, from those that answer well within ``seconds``."""
    payload = ask_of(query) if peers else None
    if payload is None:
        return []

    async def one(peer: PeerSettings) -> tuple[str, list[SearchHit]] | None:
        try:
            async with asyncio.timeout(seconds):
                data = await send(peer, SEARCH_PATH, payload)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("federation peer %s did not answer a search: %r", peer.id, exc)
            return None
        if data is None:
            return None
        try:
            answer = PeerHits.model_validate_json(data)
            hits = [
                SearchHit(memory=PeerRecord.model_validate(hit.memory).replica().memory, score=hit.score)
                for hit in answer.hits
            ]
        except (ValidationError, ValueError):
            log.warning("federation peer %s answered a search with malformed hits; left out", peer.id)
            return None
        return peer.id, hits

    answers = await asyncio.gather(*(one(peer) for peer in peers))
    return [answer for answer in answers if answer is not None]


__all__ = ["SEARCH_PATH", "PeerSearch", "ask", "serve"]
