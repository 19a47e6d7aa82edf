"""A node's id comes from its public key: the same key gives the same id, another key another."""

from __future__ import annotations

import re
from pathlib import Path

from noosphere.identity import load_or_create, node_id_of, public_key_from_text


def test_the_id_is_derived_from_the_public_key_alone(tmp_path: Path) -> None:
    first = load_or_create(tmp_path / "a")
    assert re.fullmatch(r"node-[a-z2-7]{24}", first.id)
    assert load_or_create(tmp_path / "a").id == first.id  # kept across restarts
    assert node_id_of(public_key_from_text(first.public_text)) == first.id  # peers compute it too
    assert load_or_create(tmp_path / "b").id != first.id
