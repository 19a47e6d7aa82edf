"""A small MCP server over stdio, started by tests as a real subprocess: notes kept in the file
named by NOTES_FILE, with tools that declare each kind of hint, one that fails and one that exits."""

from __future__ import annotations

import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

NOTES = Path(os.environ["NOTES_FILE"])
server = MCPServer("notes")


def _read() -> list[str]:
    return NOTES.read_text().splitlines() if NOTES.exists() else []


@server.tool(description="Add a note.")
def add_note(text: str) -> str:
    NOTES.write_text("\n".join([*_read(), text]) + "\n")
    return f"noted: {text}"


@server.tool(description="The notes so far.", annotations=ToolAnnotations(read_only_hint=True))
def list_notes() -> dict[str, list[str]]:
    return {"notes": _read()}


@server.tool(description="Delete every note.", annotations=ToolAnnotations(destructive_hint=True))
def clear_notes() -> str:
    NOTES.unlink(missing_ok=True)
    return "cleared"


@server.tool(description="Always fails.")
def broken(reason: str) -> str:
    raise ToolError(reason)


@server.tool(description="Ends the server process.")
def crash() -> str:
    os._exit(3)


if __name__ == "__main__":
    server.run("stdio")
