"""Tool calling for local models that cannot be trusted to write JSON: the offered tools' JSON
schemas become a llama.cpp grammar, so sampling can only produce a well-formed call of an offered
tool (or, with ``tool_choice: auto``, plain text) — even a 135M model, on any CPU.

The model sees the tools in its system message and answers either with text or with one object
``{"name": <tool>, "arguments": {...}}``; the grammar makes sure that object names an offered
tool and that its arguments match that tool's schema. Pure functions; the backend samples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Text that is not a call: anything that does not open with "{" (the grammar's other branch).
_TEXT_RULES = "text ::= [^{ \\t\\n] [^\\x00]*\nroot ::= call | text"


@dataclass(frozen=True)
class ToolChoice:
    """Which tools the model may call, and whether it may answer in text instead."""

    tools: list[dict[str, Any]]  # OpenAI function definitions: name, description, parameters
    text_allowed: bool


def choose(tools: list[dict[str, Any]] | None, tool_choice: str | dict[str, Any] | None) -> ToolChoice | None:
    """What the request allows: ``None`` when no tool may be called (no tools, or ``none``)."""
    functions = [t["function"] for t in tools or [] if t.get("type", "function") == "function"]
    if not functions or tool_choice == "none":
        return None
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        forced = [f for f in functions if f.get("name") == wanted]
        return ToolChoice(forced or functions, text_allowed=False)
    return ToolChoice(functions, text_allowed=tool_choice != "required")


def _parameters(function: dict[str, Any]) -> dict[str, Any]:
    parameters = function.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        return {"type": "object", "properties": {}}
    return parameters


def call_schema(choice: ToolChoice) -> dict[str, Any]:
    """A JSON schema every allowed call satisfies: the tool's name, then its arguments."""
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": f["name"]}, "arguments": _parameters(f)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for f in choice.tools
    ]
    return calls[0] if len(calls) == 1 else {"oneOf": calls}


def grammar(choice: ToolChoice) -> str:
    """The GBNF grammar for ``choice`` (llama.cpp's own JSON-schema converter writes the call)."""
    from llama_cpp.llama_grammar import SchemaConverter

    # llama-cpp-python's converter carries no type annotations; its results are str and dict.
    converter: Any = SchemaConverter(  # type: ignore[no-untyped-call]
        prop_order={"name": 0, "arguments": 1}, allow_fetch=False, dotall=False, raw_pattern=False
    )
    schema = converter.resolve_refs(call_schema(choice), "tools")
    if not choice.text_allowed:
        converter.visit(schema, "")
        return str(converter.format_grammar())
    converter.visit(schema, "call")
    return f"{converter.format_grammar()}\n{_TEXT_RULES}"


def instructions(choice: ToolChoice) -> str:
    """What the system message tells the model about its tools."""
    lines = []
    if len(choice.tools) == 1 and not choice.text_allowed:
        name = choice.tools[0]["name"]
        lines.append(
            f'Call the tool {name} now. Reply with only a JSON object: {{"name": "{name}", '
            '"arguments": {...}}, with the arguments the task needs.'
        )
    else:
        lines.append(
            'To call a tool, reply with only a JSON object: {"name": <tool name>, "arguments": {...}}.'
        )
        if choice.text_allowed:
            lines.append("If no tool is needed, answer in plain text instead.")
    lines.append("Tools:")
    for f in choice.tools:
        about = f" - {f['description']}" if f.get("description") else ""
        lines.append(f"- {f['name']}{about}. Arguments: {json.dumps(_parameters(f), separators=(',', ':'))}")
    return "\n".join(lines)


def prompt_messages(messages: list[dict[str, Any]], choice: ToolChoice | None) -> list[dict[str, Any]]:
    """The conversation in the roles every chat template knows (system, user, assistant): earlier
    tool calls become the assistant's JSON, tool results become user turns; the tools are
    described at the end of the system message."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        text = content if isinstance(content, str) else _text(content)
        if role == "assistant" and message.get("tool_calls"):
            calls = [
                {"name": c["function"]["name"], "arguments": _arguments(c["function"].get("arguments"))}
                for c in message["tool_calls"]
            ]
            text = "\n".join(json.dumps(c, ensure_ascii=False) for c in calls)
        elif role == "tool":
            role, text = "user", f"Tool result: {text}"
        elif role not in ("system", "user", "assistant"):
            role = "user"
        out.append({"role": role, "content": text})
    if choice is not None:
        tools = instructions(choice)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{tools}"}
        else:
            out.insert(0, {"role": "system", "content": tools})
    return out


def parse_call(text: str, choice: ToolChoice) -> tuple[str, str] | None:
    """(name, arguments JSON) when ``text`` is a call of an allowed tool, else ``None`` (text)."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    names = {f["name"] for f in choice.tools}
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments")
    return str(value["name"]), json.dumps(
        arguments if isinstance(arguments, dict) else {}, ensure_ascii=False
    )


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _text(content: Any) -> str:
    """OpenAI content parts → their text."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


__all__ = ["ToolChoice", "call_schema", "choose", "grammar", "instructions", "parse_call", "prompt_messages"]
