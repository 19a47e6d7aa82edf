"""Policy: may this caller make this tool call now? A pure function over plain data.

Rules use the ``Tool(pattern)`` grammar:

    Bash               every call of the tool Bash
    Bash(git:*)        Bash whose command is ``git`` or starts with ``git `` (a command prefix): a
                       line of several commands (``git status; rm -rf ~``) is allowed only when
                       each one is, and denied or asked when any one is (``command_line.py``)
    FileEdit(*.md)     FileEdit whose subject matches the glob (``*`` spans ``/`` too)
    memory_*(*)        any tool whose name matches the glob, any subject

A call's *subject* is the argument its tool names as the one rules look at (the command of a shell
tool, the path of a file tool, the id of a memory); a tool without one is matched on ``*`` only.

Rules come in three effects and three scopes: the node's, a level's (``L0``..``L3``) and an
agent's own; a call is checked against the union of the ones that apply to its caller. Node rules
bind people too (the admin and users calling through MCP, REST or the CLI). The decision, in order:

    1. a matching deny rule                        → deny
    2. a matching ask rule                         → ask a human
       (a person, no rule denying or asking       → allow: the steps below govern agents)
    3. estimated impact above ``HUMAN_ABOVE`` (0.7) → ask a human
    4. a matching allow rule                       → allow
    5. a write by an L3 agent                      → ask a human
    6. impact below ``AUTO_BELOW`` (0.3)            → allow
    7. otherwise (no rule, impact 0.3 to 0.7)      → the policy's default (ask, unless set to deny)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import translate

from noosphere.auth.principal import Level
from noosphere.errors import InvalidRequest
from noosphere.governance.command_line import split

AUTO_BELOW = 0.3
HUMAN_ABOVE = 0.7
_RULE = re.compile(r"^\s*(?P<tool>[A-Za-z0-9_.*?\-]+)\s*(?:\((?P<pattern>.*)\))?\s*$", re.DOTALL)


class Effect(StrEnum):
    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"


@dataclass(frozen=True)
class Rule:
    """One ``Tool(pattern)`` rule, compiled."""

    text: str
    effect: Effect
    scope: str  # "node", "level:L2" or "agent:NAME"
    tool: re.Pattern[str]
    literal: str | None  # the tool's exact name when it has no wildcard (looked up, not matched)
    subject: re.Pattern[str] | None  # None: any subject, including none
    prefix: str | None = None  # set for command rules (``Tool(cmd:*)``): the command prefix

    def matches(self, call: ToolCall) -> bool:
        if self.tool.fullmatch(call.tool) is None:
            return False
        if self.subject is None:
            return True
        if self.prefix is None:
            return self.subject.fullmatch(call.subject or "") is not None
        line = split(call.subject or "")
        if self.effect is Effect.ALLOW:  # every command it runs must be allowed
            covered = all(self.subject.fullmatch(c) for c in line.commands)
            return not line.opaque and bool(line.commands) and covered
        if line.opaque:  # cannot tell where commands start: the command appearing anywhere counts
            return self.prefix in (call.subject or "")
        return any(self.subject.fullmatch(c) for c in line.commands)


def parse_rule(text: str, effect: Effect, scope: str = "node") -> Rule:
    """Compile ``Tool(pattern)``; a malformed rule is an ``InvalidRequest`` naming it."""
    found = _RULE.match(text)
    if found is None:
        raise InvalidRequest(f"policy rule {text!r} is not Tool or Tool(pattern)")
    tool = re.compile(translate(found["tool"]).removesuffix(r"\Z"), re.DOTALL)
    pattern = found["pattern"]
    subject: re.Pattern[str] | None = None
    prefix: str | None = None
    if pattern is not None and pattern.strip() not in ("", "*"):
        pattern = pattern.strip()
        if pattern.endswith(":*"):  # a command prefix: the word(s) before, then anything
            prefix = " ".join(pattern[:-2].split())
            subject = re.compile(re.escape(prefix) + r"(?:\s.*)?", re.DOTALL)
        else:
            subject = re.compile(translate(pattern).removesuffix(r"\Z"), re.DOTALL)
    literal = None if any(c in found["tool"] for c in "*?[") else found["tool"]
    return Rule(
        text=text.strip(),
        effect=effect,
        scope=scope,
        tool=tool,
        literal=literal,
        subject=subject,
        prefix=prefix,
    )


@dataclass(frozen=True)
class ToolCall:
    """What policy sees of a call: the tool, its subject, and what the tool says of itself."""

    tool: str
    subject: str | None = None
    impact: float = 0.5  # estimated, 0 (harmless) .. 1 (irreversible, external)
    writes: bool = True  # has side effects (read-only tools run concurrently and are not writes)


@dataclass(frozen=True)
class Caller:
    name: str  # the caller's bus address: an agent's name, a person's principal id (admin, user:bob)
    level: Level | None = None  # None: a person (a user, the admin); jobs act as L0


@dataclass(frozen=True)
class Decision:
    effect: Effect
    reason: str
    rule: str | None = None

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW


@dataclass(frozen=True)
class _Scope:
    """One scope's rules, indexed: by exact tool name, and those whose tool name is a glob."""

    by_tool: Mapping[str, tuple[Rule, ...]]
    globbed: tuple[Rule, ...]

    @classmethod
    def of(cls, rules: Sequence[Rule]) -> _Scope:
        by_tool: dict[str, list[Rule]] = {}
        for rule in rules:
            if rule.literal is not None:
                by_tool.setdefault(rule.literal, []).append(rule)
        return cls({k: tuple(v) for k, v in by_tool.items()}, tuple(r for r in rules if r.literal is None))

    @property
    def rules(self) -> tuple[Rule, ...]:
        return (*(r for rules in self.by_tool.values() for r in rules), *self.globbed)


@dataclass(frozen=True)
class Policy:
    """Compiled rules by scope ("node", "level:L2", "agent:NAME"), ready for ``decide``."""

    scopes: Mapping[str, _Scope] = field(default_factory=dict)
    default: Effect = Effect.ASK

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(r for scope in self.scopes.values() for r in scope.rules)

    def rules_for(self, caller: Caller, tool: str) -> Iterable[Rule]:
        """The rules of every scope that applies to ``caller`` that may match ``tool``."""
        scopes = ["node", f"agent:{caller.name}"]
        if caller.level is not None:
            scopes.append(f"level:{caller.level.name}")
        for name in scopes:
            scope = self.scopes.get(name)
            if scope is not None:
                yield from scope.by_tool.get(tool, ())
                yield from scope.globbed


def compile_policy(
    node: Mapping[str, Sequence[str]] | None = None,
    levels: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    agents: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    default: Effect = Effect.ASK,
) -> Policy:
    """Rules given as ``{effect: [rule, ...]}`` for the node, per level name and per agent."""
    scoped: dict[str, list[Rule]] = {}

    def add(scope: str, rules: Mapping[str, Sequence[str]]) -> None:
        for effect_name, texts in rules.items():
            try:
                effect = Effect(effect_name)
            except ValueError:
                raise InvalidRequest(f"policy effect {effect_name!r} is not allow, ask or deny") from None
            scoped.setdefault(scope, []).extend(parse_rule(t, effect, scope) for t in texts)

    add("node", node or {})
    for level, rules in (levels or {}).items():
        if level not in Level.__members__:
            raise InvalidRequest(f"policy level {level!r} is not one of {', '.join(Level.__members__)}")
        add(f"level:{level}", rules)
    for agent, rules in (agents or {}).items():
        add(f"agent:{agent}", rules)
    return Policy(scopes={k: _Scope.of(v) for k, v in scoped.items()}, default=default)


def decide(policy: Policy, caller: Caller, call: ToolCall) -> Decision:
    """The decision for ``call`` by ``caller`` (see the module docstring for the order)."""
    allow: Rule | None = None
    ask: Rule | None = None
    for rule in policy.rules_for(caller, call.tool):
        if not rule.matches(call):
            continue
        if rule.effect is Effect.DENY:
            return Decision(Effect.DENY, f"denied by {rule.scope} rule {rule.text}", rule.text)
        if rule.effect is Effect.ASK:
            ask = ask or rule
        else:
            allow = allow or rule
    if ask is not None:
        return Decision(Effect.ASK, f"{ask.scope} rule {ask.text} asks a human", ask.text)
    if caller.level is None:  # a person acts on their own authority: only rules bind them
        if allow is not None:
            return Decision(Effect.ALLOW, f"allowed by {allow.scope} rule {allow.text}", allow.text)
        return Decision(Effect.ALLOW, "no rule denies or asks; people act on their own authority")
    if call.impact > HUMAN_ABOVE:
        return Decision(
            Effect.ASK, f"estimated impact {call.impact:.2f} is above {HUMAN_ABOVE}: a human decides"
        )
    if allow is not None:
        return Decision(Effect.ALLOW, f"allowed by {allow.scope} rule {allow.text}", allow.text)
    if call.writes and caller.level is Level.L3:
        return Decision(Effect.ASK, "writes by L3 agents need approval unless a rule allows them")
    if call.impact < AUTO_BELOW:
        return Decision(
            Effect.ALLOW, f"estimated impact {call.impact:.2f} is below {AUTO_BELOW}: auto-approved"
        )
    if policy.default is Effect.DENY:
        return Decision(
            Effect.DENY, f"no rule allows {call.tool} (impact {call.impact:.2f}); the default is deny"
        )
    return Decision(Effect.ASK, f"no rule allows {call.tool} (impact {call.impact:.2f}): a human decides")


__all__ = [
    "AUTO_BELOW",
    "HUMAN_ABOVE",
    "Caller",
    "Decision",
    "Effect",
    "Policy",
    "Rule",
    "ToolCall",
    "compile_policy",
    "decide",
    "parse_rule",
]
