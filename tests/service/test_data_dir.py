"""The data directory holds the database, the node's private key and the admin token: only its
owner may read it."""

from __future__ import annotations

import stat
from pathlib import Path

from noosphere.config import Settings
from noosphere.node import Node


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_data_directory_and_its_files_are_readable_by_the_owner_only(
    node: Node, settings: Settings
) -> None:
    data = settings.data_dir
    assert _mode(data) == 0o700
    files = [p for p in data.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"noosphere.db", "admin-token"}
    for path in files:
        assert _mode(path) == 0o600, path.name


async def test_an_existing_open_data_directory_is_tightened(tmp_path: Path) -> None:
    from noosphere.node import private_directory

    data = tmp_path / "open"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    private_directory(data)
    assert _mode(data) == 0o700
