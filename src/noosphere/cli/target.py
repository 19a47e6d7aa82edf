"""Which node a CLI command acts on, found without loading the node: its data directory (from
``--data-dir``, ``NOOSPHERE_DATA_DIR``, the config file, or ``./.noosphere``), whether a node runs
on it (``runfile.py``), and the config it runs with.

A running node is always asked over its API. Offline, the command opens the data directory with
the config the node last ran with (recorded in the run file) unless ``--config`` names one: a CLI
command never writes into a SQLite file beside a node that keeps its data in PostgreSQL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noosphere import runfile
from noosphere.auth.names import ADMIN_TOKEN_FILE
from noosphere.config_file import read_config
from noosphere.errors import Unauthenticated

DEFAULT_DATA_DIR = Path(".noosphere")


@dataclass(frozen=True)
class Target:
    data_dir: Path
    config: Path | None  # the config file to open the store with (offline)
    url: str | None  # the running node's base URL; None: offline
    raw: dict[str, Any]  # the config file's own settings (empty without one)

    def admin_token(self) -> str:
        """The admin token: ``auth.admin_token`` of the config, ``NOOSPHERE_ADMIN_TOKEN``, or the
        file the node wrote in its data directory."""
        configured = (self.raw.get("auth") or {}).get("admin_token")
        token = configured or os.environ.get("NOOSPHERE_ADMIN_TOKEN")
        if token:
            return str(token)
        path = self.data_dir / ADMIN_TOKEN_FILE
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError:
            raise Unauthenticated(f"no --token given and no admin token at {path}") from None


def locate(config: Path | None, data_dir: Path | None, url: str | None = None) -> Target:
    """``url`` (``--url``) names a node to ask whatever the data directory says."""
    raw = read_config(config) if config is not None else {}
    data = data_dir or (Path(raw["data_dir"]) if raw.get("data_dir") else DEFAULT_DATA_DIR)
    running = runfile.read(data)
    if running is not None and running.alive:
        url = url or running.url
    if config is None and running is not None and running.config:
        config = Path(running.config)  # offline too: the store the node ran with
        raw = read_config(config)
    return Target(data_dir=data, config=config, url=url, raw=raw)


__all__ = ["Target", "locate"]
