"""How memories are indexed and found, on each backend with the real embedder: stems, the day a
turn was said, short replies embedded after the turn they answer, and a store indexed another
way (an older version, other settings) indexed again when it opens."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from noosphere.config import MemorySettings
from noosphere.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from noosphere.memory.model import Filters, MemoryDraft, SearchQuery
from noosphere.memory.service import MemoryService
from noosphere.node import Node
from noosphere.store.contract import Viewer
from tests.service.conftest import make_user

SAID = datetime(2023, 5, 14, 18, 0, tzinfo=UTC)


async def test_words_are_found_by_their_stems(any_node: Node) -> None:
    user = await make_user(any_node, "u")
    stored = await any_node.memory.store_one(user, MemoryDraft(content="We got married in a chapel in Cork"))
    terms = any_node.memory.analyzer.terms("who is marrying?")
    found = await any_node.store.text_candidates(terms, Viewer(user.id), Filters(), datetime.now(UTC), 5)
    assert [c.id for c in found] == [stored.id]


async def test_a_question_naming_a_day_finds_what_was_said_that_day(any_node: Node) -> None:
    user = await make_user(any_node, "u")
    said = [
        (13, "I baked bread this morning."),
        (14, "I ran my first race this morning."),
        (15, "I painted the fence this morning."),
    ]
    drafts = [
        MemoryDraft(content=f"Mia: {text}", kind="message", thread_id=f"s{d}", valid_at=SAID.replace(day=d))
        for d, text in said
    ]
    turns = await any_node.memory.store_many(user, drafts)
    hits = await any_node.memory.search(
        user, SearchQuery(query="What did Mia do on the morning of 14 May 2023?")
    )
    assert hits[0].memory.id == turns[1].id
    # The day is indexed too: its words find it without the vector.
    terms = any_node.memory.analyzer.terms("14 May 2023")
    found = await any_node.store.text_candidates(terms, Viewer(user.id), Filters(), datetime.now(UTC), 5)
    assert found[0].id == turns[1].id


async def test_a_short_reply_is_embedded_after_the_turn_it_answers(any_node: Node) -> None:
    user = await make_user(any_node, "u")
    question = "Omar: What did you end up naming the new puppy?"
    drafts = [
        MemoryDraft(content=text, kind="message", thread_id="t") for text in (question, "Mia: Biscuit!")
    ]
    _, reply = await any_node.memory.store_many(user, drafts)
    long_turn = "Mia: We finally adopted a beagle puppy from the shelter last week."
    alone = await any_node.memory.store_one(
        user, MemoryDraft(content=long_turn, kind="message", thread_id="t")
    )
    stored = {m.id: v async for rows in any_node.store.scan(100) for m, v in rows}
    embedder = any_node.memory.embedder
    assert np.allclose(stored[reply.id], embedder.embed([f"{question}\nMia: Biscuit!"])[0], atol=1e-5)
    assert np.allclose(stored[alone.id], embedder.embed([long_turn])[0], atol=1e-5)  # long enough alone


async def test_a_store_indexed_another_way_is_indexed_again_when_it_opens(any_node: Node) -> None:
    user = await make_user(any_node, "u")
    plain = MemoryService(
        any_node.store, any_node.memory.embedder, MemorySettings(stemming=False), any_node.key.id
    )
    await plain.check_index()  # the store now holds plain words
    stored = await plain.store_one(user, MemoryDraft(content="Our cats are allergic to the carpet"))
    stemmed = any_node.memory
    terms = stemmed.analyzer.terms("cat allergy")
    viewer, now = Viewer(user.id), datetime.now(UTC)
    assert await any_node.store.text_candidates(terms, viewer, Filters(), now, 5) == []  # "cats" != "cat"
    assert await stemmed.check_index() >= 1
    assert [c.id for c in await any_node.store.text_candidates(terms, viewer, Filters(), now, 5)] == [
        stored.id
    ]
    assert await stemmed.check_index() == 0  # recorded: not again
    assert await any_node.store.index_format() == stemmed.index_format


async def test_an_update_is_a_new_version_and_the_history_shows_every_one(any_node: Node) -> None:
    user, other = await make_user(any_node, "u"), await make_user(any_node, "o")
    memory = any_node.memory
    first = await memory.store_one(
        user, MemoryDraft(content="Standup is at 9:30", kind="decision", tags=["team"], thread_id="t1")
    )
    second = await memory.update(user, first.id, "Standup is at 10:00")
    assert (second.supersedes, second.kind, second.tags, second.thread_id) == (
        first.id,
        "decision",
        ["team"],
        "t1",
    )
    third = await memory.update(user, second.id, "Standup is at 10:15")
    for start in (first.id, second.id, third.id):  # any version's id gives the whole chain
        versions = await memory.history(user, start)
        assert [v.id for v in versions] == [first.id, second.id, third.id]
        assert [v.invalid_at is not None for v in versions] == [True, True, False]
    with pytest.raises(Conflict, match=third.id):
        await memory.update(user, first.id, "Standup is at 11")
    with pytest.raises(InvalidRequest):
        await memory.update(user, third.id, "Standup is at 10:15")
    with pytest.raises((NotFound, PermissionDenied)):
        await memory.update(other, third.id, "mine now")
    hits = await memory.search(user, SearchQuery(query="when is standup"))
    assert [h.memory.id for h in hits] == [third.id]
