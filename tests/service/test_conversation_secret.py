"""Someone holding the database file and every admin power — the admin token, every token and API
key the admin ever minted for the person, rotation, resetting their secret — cannot read the
person's conversations at rest: their key derives from a secret only the person holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from noosphere.auth.principal import PrincipalKind
from noosphere.config import load_settings
from noosphere.embeddings.minilm import MiniLMEmbedder
from noosphere.errors import PermissionDenied, WrongSecret
from noosphere.memory import crypto
from noosphere.memory.model import ListQuery, MemoryDraft
from noosphere.node import open_node

SECRET = "only ann knows this sentence"
TOLD = "my locker code at the gym is 70417, do not tell anyone"


async def test_the_database_and_every_admin_power_do_not_open_a_conversation(
    tmp_path: Path, minilm: MiniLMEmbedder
) -> None:
    settings = load_settings(None, data_dir=tmp_path / "node")
    async with open_node(settings, embedder=minilm) as node:
        _, first_token = await node.auth.create(PrincipalKind.USER, "ann")  # minted by the admin
        ann = await node.authenticate(first_token, SECRET)
        stored = await node.memory.store_one(ann, MemoryDraft(content=TOLD, kind="conversation"))
        assert (await node.memory.get(ann, stored.id)).content == TOLD

        # Every credential the admin can hold or make for ann.
        rotated = await node.auth.rotate(PrincipalKind.USER, "ann")
        _, key = await node.auth.create_api_key("ann")
        admin_token = (settings.data_dir / "admin-token").read_text().strip()
        credentials = [first_token, rotated, key, admin_token]
        for credential in (rotated, key, admin_token):
            caller = await node.authenticate(credential)
            assert TOLD not in (await node.memory.get(caller, stored.id)).content
        for guess in credentials:  # a token is not the secret, whoever tries it as one
            with pytest.raises(WrongSecret):
                await node.authenticate(rotated, guess)

        # What the database holds: salt, check value and ciphertext. Keys derived from it and from
        # any credential open nothing.
        row = await node.store.conversation_key("user:ann")
        assert row is not None
        salt, _ = row
        sealed = (await node.memory.get(await node.authenticate(admin_token), stored.id)).content
        for guess in credentials:
            with pytest.raises(PermissionDenied):
                crypto.open_sealed(crypto.derive_key(guess, salt), sealed, stored.id)

        # Resetting ann's secret lets a new one be chosen; it does not open what was sealed.
        assert await node.keys.reset("user:ann")
        usurper = await node.authenticate(rotated, "the admin picks a new secret")
        page = await node.memory.list_memories(usurper, ListQuery())
        assert [m.encrypted and TOLD not in m.content for m in page.items] == [True]

    on_disk = b"".join(p.read_bytes() for p in settings.data_dir.rglob("*") if p.is_file())
    assert TOLD.encode() not in on_disk and b"70417" not in on_disk
    assert SECRET.encode() not in on_disk
