"""A model's answer assembled from the chunks a job streams: its text and its tool calls."""

from __future__ import annotations

from dataclasses import dataclass, field

from noosphere.ids import unique_hex
from noosphere.pool.protocol import Chunk


@dataclass
class ToolCallSoFar:
    id: str
    name: str
    arguments: str = ""  # JSON text, complete once the job is done


@dataclass
class Answer:
    content: list[str] = field(default_factory=list)
    calls: dict[int, ToolCallSoFar] = field(default_factory=dict)  # by the call's index

    def add(self, chunk: Chunk) -> bool:
        """Record ``chunk``; True when it starts a new tool call."""
        part = chunk.tool_call
        if part is None:
            self.content.append(chunk.content or "")
            return False
        call = self.calls.get(part.index)
        started = call is None
        if call is None:
            call = self.calls[part.index] = ToolCallSoFar(
                id=part.id or "call_" + unique_hex()[:24], name=part.name or ""
            )
        call.arguments += part.arguments
        return started

    @property
    def text(self) -> str:
        return "".join(self.content)

    def tool_calls(self) -> list[ToolCallSoFar]:
        """The calls in index order."""
        return [call for _, call in sorted(self.calls.items())]


__all__ = ["Answer", "ToolCallSoFar"]
