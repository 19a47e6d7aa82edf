"""How CLI commands print: messages and tables on stderr (rich), data on stdout (plain text or
``--json``), so a command's output can be piped while its messages stay on the terminal."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


_REAL: list[Console] = []


def rich_console() -> Console:
    """rich's stderr console, made at its first use (for what takes a real one: progress bars)."""
    if not _REAL:
        from rich.console import Console

        _REAL.append(Console(stderr=True))
    return _REAL[0]


class _Console:
    """``rich_console()`` for printing: a command that prints nothing through it (``--help``)
    never imports rich's console."""

    def __getattr__(self, name: str) -> Any:
        return getattr(rich_console(), name)


console: Console = _Console()  # type: ignore[assignment]


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")


def table(first: str, *columns: str) -> Any:
    """A rich table with these columns, the first (an id or name) never wrapped nor cut (rich.table
    is imported when a command prints one)."""
    from rich.table import Column, Table

    return Table(Column(first, no_wrap=True), *columns)


__all__ = ["console", "emit_json", "rich_console", "table"]
