"""Agents using the tools of a real MCP server: a subprocess over stdio, reached with the official
SDK client, governed by its hints, audited, and reconnected when it exits."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import Tool as McpTool
from mcp_types import ToolAnnotations
from pydantic import ValidationError

from noosphere.agents.loop import Event
from noosphere.agents.mcp_tools import McpToolbox, governed, subject_of
from noosphere.agents.model import Reply
from noosphere.agents.profile import AgentProfile
from noosphere.agents.runtime import Runtime
from noosphere.auth.principal import ADMIN_ID, Principal, PrincipalKind
from noosphere.config import McpServerSettings
from noosphere.governance.checkpoints import Verdict
from noosphere.node import Node
from noosphere.testing import ScriptedModel, call

SERVER = Path(__file__).with_name("notes_mcp_server.py")
ADMIN = Principal(ADMIN_ID, PrincipalKind.ADMIN, ADMIN_ID)


def notes_server(notes: Path, **extra: Any) -> McpServerSettings:
    return McpServerSettings(
        name="notes",
        command=sys.executable,
        args=[str(SERVER)],
        env={"NOTES_FILE": str(notes)},
        trusted=True,
        **extra,
    )


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[McpToolbox]:
    """The notes server's tools, connected for the block (a context manager, not a fixture: the
    task group must be entered and left by the test's own task)."""
    box = McpToolbox([notes_server(tmp_path / "notes.txt", tools=["*_notes", "add_*", "broken", "crash"])])
    async with anyio.create_task_group() as group:
        await group.start(box.serve)
        yield box
        group.cancel_scope.cancel()


async def eventually(condition: Any, what: str, seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await anyio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _tool(**hints: bool) -> McpTool:
    return McpTool(
        name="t", input_schema={"type": "object"}, annotations=ToolAnnotations(**hints) if hints else None
    )


@pytest.mark.parametrize(
    ("hints", "impact", "trusted", "expected"),
    [
        ({}, 0.5, True, (True, 0.5)),
        ({"read_only_hint": True}, 0.5, True, (False, 0.2)),
        ({"read_only_hint": True}, 0.1, True, (False, 0.1)),
        ({"read_only_hint": True}, 0.5, False, (True, 0.5)),  # an untrusted server's word is not taken
        ({"read_only_hint": True, "destructive_hint": True}, 0.5, True, (True, 0.8)),
        ({"destructive_hint": True}, 0.5, False, (True, 0.8)),
        ({"destructive_hint": True}, 0.9, True, (True, 0.9)),
        ({"destructive_hint": False}, 0.4, True, (True, 0.4)),
    ],
)
def test_hints_decide_how_a_tool_is_governed(
    hints: dict[str, bool], impact: float, trusted: bool, expected: tuple[bool, float]
) -> None:
    server = McpServerSettings(name="s", url="http://127.0.0.1:1/mcp", impact=impact, trusted=trusted)
    assert governed(server, _tool(**hints)) == expected


@pytest.mark.parametrize(
    ("parameters", "subject"),
    [
        ({"properties": {"path": {"type": "string"}, "text": {"type": "string"}}}, "path"),
        (
            {"properties": {"text": {"type": "string"}, "n": {"type": "integer"}}, "required": ["text", "n"]},
            "text",
        ),
        ({"properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a", "b"]}, None),
        ({}, None),
    ],
)
def test_rules_match_the_conventional_or_only_string_argument(
    parameters: dict[str, Any], subject: str | None
) -> None:
    assert subject_of(parameters) == subject


def test_a_server_needs_exactly_one_transport() -> None:
    with pytest.raises(ValidationError, match="one of `command`"):
        McpServerSettings(name="s")
    with pytest.raises(ValidationError, match="one of `command`"):
        McpServerSettings(name="s", command="x", url="http://127.0.0.1/mcp")
    with pytest.raises(ValidationError, match="pattern"):
        McpServerSettings(name="bad name", command="x")


async def test_tools_are_listed_filtered_and_governed_by_their_hints(tmp_path: Path) -> None:
    async with serving(tmp_path) as toolbox:
        tools = dict(toolbox.tools)
    assert sorted(tools) == [
        "notes__add_note",
        "notes__broken",
        "notes__clear_notes",
        "notes__crash",
        "notes__list_notes",
    ]
    assert (tools["notes__list_notes"].writes, tools["notes__list_notes"].impact) == (False, 0.2)
    assert (tools["notes__clear_notes"].writes, tools["notes__clear_notes"].impact) == (True, 0.8)
    assert (tools["notes__add_note"].subject, tools["notes__add_note"].source) == ("text", "notes")
    assert tools["notes__add_note"].parameters["required"] == ["text"]


async def test_an_agent_uses_mcp_tools_under_policy_and_every_call_is_audited(
    node: Node, tmp_path: Path
) -> None:
    await node.agents.create(
        AgentProfile(name="scribe", rules={"allow": ["notes__add_note(*)", "notes__broken"]})
    )
    script = [
        Reply("", [call("notes__add_note", {"text": "ship friday"}), call("notes__list_notes", {})]),
        Reply("", [call("notes__clear_notes", {}), call("notes__broken", {"reason": "disk full"})]),
        Reply("done"),
    ]
    model = ScriptedModel({"scribe": script})

    async def approve(event: Event) -> None:
        if event.type == "approval_waiting":
            assert event.data["tool"] == "notes__clear_notes"  # destructive: a person decides
            await node.checkpoints.decide(event.data["approval_id"], ADMIN, Verdict.APPROVE)

    async with serving(tmp_path) as toolbox:
        rt = Runtime(node, model, "fake", node.settings.runtime, toolbox=toolbox)
        with anyio.fail_after(30):
            result = await rt.run("scribe", "keep notes", emit=approve)
    assert result.status == "completed"
    assert result.calls == [
        {"tool": "notes__add_note", "outcome": "ok"},
        {"tool": "notes__list_notes", "outcome": "ok"},
        {"tool": "notes__clear_notes", "outcome": "ok"},
        {"tool": "notes__broken", "outcome": "tool_failed"},
    ]
    answers = [json.loads(m["content"]) for m in model.requests[2][1].messages if m["role"] == "tool"]
    assert answers[:3] == [
        {"result": "noted: ship friday"},
        {"notes": ["ship friday"]},
        {"result": "cleared"},
    ]
    assert "disk full" in answers[3]["error"]["message"]
    assert not (tmp_path / "notes.txt").exists()  # clear_notes really ran in the server process
    await node.audit.close()
    entries = [json.loads(e.entry) for e in await node.store.audit_entries()]
    tool_entries = [(e["body"]["tool"], e["body"]["outcome"]) for e in entries if e["kind"] == "tool"]
    assert tool_entries == [
        ("notes__add_note", "ok"),
        ("notes__list_notes", "ok"),
        ("notes__clear_notes", "ok"),
        ("notes__broken", "tool_failed"),
    ]


async def test_a_server_that_exits_is_reported_then_reconnected(node: Node, tmp_path: Path) -> None:
    await node.agents.create(AgentProfile(name="scribe", rules={"allow": ["notes__crash"]}))
    script = [Reply("", [call("notes__crash", {})]), Reply("it crashed")]
    async with serving(tmp_path) as toolbox:
        rt = Runtime(node, ScriptedModel({"scribe": script}), "fake", node.settings.runtime, toolbox=toolbox)
        with anyio.fail_after(30):
            result = await rt.run("scribe", "crash it")
        assert result.calls == [{"tool": "notes__crash", "outcome": "unavailable"}]
        await eventually(lambda: "notes__add_note" not in rt.tools, "the lost server's tools to go")
        await eventually(lambda: "notes__add_note" in rt.tools, "the server to be restarted")
        again = await rt.tools["notes__add_note"].run(None, {"text": "back"})  # type: ignore[arg-type]
        assert again == {"result": "noted: back"}


async def test_an_unreachable_server_does_not_stop_the_node(tmp_path: Path) -> None:
    box = McpToolbox(
        [
            McpServerSettings(name="gone", command=str(tmp_path / "no-such-program")),
            notes_server(tmp_path / "notes.txt", tools=["list_notes"]),
        ]
    )
    async with anyio.create_task_group() as group:
        with anyio.fail_after(30):
            await group.start(box.serve)
        assert box.connected() == ["notes"]
        assert sorted(box.tools) == ["notes__list_notes"]
        group.cancel_scope.cancel()
