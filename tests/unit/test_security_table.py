"""The authorization table has a row for every route, socket, MCP tool and CLI command the node
has (and none for what it does not have), and docs/security.md shows exactly that table."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main
from fastapi.routing import APIWebSocketRoute
from starlette.routing import Route

from noosphere.auth.permissions import TABLE, Role
from noosphere.cli import app as cli_app
from noosphere.config import load_settings
from noosphere.server import worker_ws
from noosphere.server.app import create_app
from noosphere.server.mcp import build_mcp

DOC = Path(__file__).parents[2] / "docs" / "security.md"
# Served in front of FastAPI's routing (ChatCompletions and McpAuth): no APIRoute to list.
OUTSIDE_ROUTING = {"POST /v1/chat/completions", "POST /mcp", "GET /mcp", "DELETE /mcp"}


def _rows(surface: str) -> set[str]:
    return {g.name for g in TABLE if g.surface == surface}


def _routes(tmp_path: Path) -> tuple[set[str], set[str]]:
    app = create_app(load_settings(None, data_dir=tmp_path / "node"))
    http = {f"{m.upper()} {path}" for path, ops in app.openapi()["paths"].items() for m in ops}
    routes = list(app.router.routes)  # FastAPI's own pages (/docs, /openapi.json, ...) and the dashboard's
    while routes:
        route = routes.pop()
        included = getattr(route, "original_router", None)  # a router included as a whole (FastAPI >= 0.16x)
        if included is not None:
            routes.extend(included.routes)
        elif isinstance(route, Route):
            http.update(f"{m} {route.path}" for m in route.methods or () if m != "HEAD")
    ws = {route.path for route in worker_ws.router.routes if isinstance(route, APIWebSocketRoute)}
    return http | OUTSIDE_ROUTING, ws


def test_every_http_route_and_socket_has_exactly_one_row(tmp_path: Path) -> None:
    http, ws = _routes(tmp_path)
    assert http == _rows("http")
    assert ws == _rows("ws")
    names = [(g.surface, g.name) for g in TABLE]
    assert len(names) == len(set(names)), "a name has two rows"


async def test_every_mcp_tool_has_a_row() -> None:
    server = build_mcp(lambda: None, lambda ctx: None, lambda: None)  # type: ignore[arg-type, return-value]
    tools = {tool.name for tool in await server.list_tools()}
    assert tools == _rows("mcp")


def test_every_cli_command_has_a_row() -> None:
    commands: set[str] = set()

    def walk(command: object, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*path, name])
        else:
            commands.add(" ".join(path))

    walk(typer.main.get_command(cli_app), ["noosphere"])
    assert commands == _rows("cli")


def test_the_security_page_shows_the_table() -> None:
    lines = [
        line
        for line in DOC.read_text().splitlines()
        if line.startswith("| http ") or re.match(r"^\| (ws|mcp|cli) \|", line)
    ]
    header = next(line for line in DOC.read_text().splitlines() if line.startswith("| surface |"))
    roles = [cell.strip() for cell in header.strip("|").split("|")][2:-1]
    assert roles == [r.value for r in Role]
    documented = []
    for line in lines:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        granted = frozenset(Role(role) for role, mark in zip(roles, cells[2:-1], strict=True) if mark)
        documented.append((cells[0], cells[1].strip("`"), granted, cells[-1]))
    assert documented == [(g.surface, g.name, g.roles, g.rule) for g in TABLE], "run scripts/security-table"
