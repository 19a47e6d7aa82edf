"""``<data_dir>/node.json``: how the CLI finds the node that runs on a data directory.

``noosphere up`` writes it once the node serves (its process id, its URL, the config file it
runs with) and marks it stopped (process id 0) when it stops. A CLI command that finds it with
that process alive talks to the node over its API instead of opening the data directory itself;
offline, it opens the store with the config the node last ran with, so it never acts on a
different store (a PostgreSQL node's data directory never grows a stray SQLite file).
Imports nothing heavy: every CLI command reads this first.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

RUN_FILE = "node.json"


@dataclass(frozen=True)
class RunInfo:
    pid: int
    url: str  # where the CLI reaches the node (http://127.0.0.1:3099)
    config: str | None  # the config file it runs with, absolute; None: defaults only
    storage: str  # sqlite | postgres, for messages

    @property
    def alive(self) -> bool:
        """The node's process still runs (and is a noosphere process, not another that took its
        id after a kill -9 left the file behind)."""
        if self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, another user's
            return True
        try:
            command = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:  # no /proc here: the signal's answer is all there is
            return True
        return b"noosphere" in command


def write(data_dir: Path, info: RunInfo) -> None:
    """Written whole or not at all (a reader never sees half a file)."""
    path = data_dir / RUN_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(asdict(info)), encoding="utf-8")
    os.chmod(partial, 0o600)
    partial.replace(path)


def read(data_dir: Path) -> RunInfo | None:
    """The run file's node, if the file is there and sane (its process may have died since)."""
    try:
        raw = json.loads((data_dir / RUN_FILE).read_text(encoding="utf-8"))
        return RunInfo(
            pid=int(raw["pid"]), url=str(raw["url"]), config=raw.get("config"), storage=str(raw["storage"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stopped(data_dir: Path, pid: int) -> None:
    """Mark the node stopped, if the run file is still this process's (the config stays named)."""
    info = read(data_dir)
    if info is not None and info.pid == pid:
        write(data_dir, RunInfo(0, info.url, info.config, info.storage))


__all__ = ["RUN_FILE", "RunInfo", "read", "stopped", "write"]
