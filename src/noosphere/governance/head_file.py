"""Signed tree heads, also kept outside the database: an append-only file beside it
(``audit-heads.jsonl``, one JSON head per line, fsynced). Someone who can rewrite the database —
drop the newest entries together with the heads that cover them, or edit an entry and delete every
head — cannot make the log verify against this file, or against a head a reader kept elsewhere
(``noosphere audit heads`` exports them; ``audit verify --trusted-head SIZE:ROOT`` checks one)."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from noosphere.errors import InvalidRequest
from noosphere.store.contract import TreeHead

HEAD_FILE = "audit-heads.jsonl"


def to_line(head: TreeHead) -> str:
    return json.dumps(
        {
            "size": head.size,
            "root": head.root.hex(),
            "at": head.at.astimezone(UTC).isoformat(),
            "signature": base64.b64encode(head.signature).decode("ascii"),
        },
        sort_keys=True,
    )


def from_line(line: str) -> TreeHead:
    raw = json.loads(line)
    return TreeHead(
        size=int(raw["size"]),
        root=bytes.fromhex(raw["root"]),
        at=datetime.fromisoformat(raw["at"]),
        signature=base64.b64decode(raw["signature"]),
    )


def append(path: Path, head: TreeHead) -> None:
    """Add ``head`` at the end of the file, on disk before this returns (owner-only file)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (to_line(head) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> list[TreeHead]:
    """Every head in the file, in the order written (none when there is no file); a line that
    does not parse is an error, never skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    heads = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            heads.append(from_line(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidRequest(f"{path}: line {number} is not a tree head ({exc})") from None
    return heads


def trusted(text: str) -> TreeHead:
    """A head someone kept elsewhere, given as ``SIZE:ROOT`` (root in hex); it carries no
    signature: the reader trusts it because they kept it."""
    size, _, root = text.partition(":")
    try:
        return TreeHead(size=int(size), root=bytes.fromhex(root), at=datetime.now(UTC), signature=b"")
    except ValueError:
        raise InvalidRequest(f"a trusted head is SIZE:ROOT with ROOT in hex, not {text!r}") from None


__all__ = ["HEAD_FILE", "append", "from_line", "read", "to_line", "trusted"]
