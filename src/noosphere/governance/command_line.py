"""A shell command line as the simple commands it runs, for command rules (``Bash(git:*)``).

``git status; rm -rf ~`` is two commands, and a rule that allows ``git`` allows only the first:
a prefix test on the whole line would let the second through. The line is split with the standard
library's shell lexer (quotes and escapes as POSIX shells read them) at the control operators
``;`` ``&`` ``&&`` ``|`` ``||`` and newlines. What a lexer cannot follow safely — command or
process substitution (``$(…)``, backticks, ``<(…)``), subshells and groups (``( )``, ``{ }``),
redirections (``>``, ``<``) and unbalanced quotes — makes the line *opaque*: no allow rule covers
it, and every deny or ask rule whose command appears in it applies.

The standard lexer is enough here because the decision never needs the command's meaning, only
its boundaries; anything past them is refused rather than interpreted (a full bash grammar, such
as bashlex's, would parse more lines but trust more of them).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import lru_cache

_OPAQUE_MARKS = ("$(", "`", "<(", ">(")
_OPERATORS = frozenset({";", "&", "&&", "|", "||", "|&", ";;"})
_OPAQUE_TOKENS = frozenset({"(", ")", "{", "}"})


@dataclass(frozen=True)
class CommandLine:
    commands: tuple[str, ...]  # each simple command, words joined by one space
    opaque: bool  # could not be split safely (see the module docstring)


@lru_cache(maxsize=4096)  # pure; one call meets several command rules
def split(line: str) -> CommandLine:
    """The simple commands of ``line``; ``opaque`` when it holds what a lexer cannot follow."""
    if any(mark in line for mark in _OPAQUE_MARKS):
        return CommandLine((line,), opaque=True)
    lexer = shlex.shlex(line.replace("\n", " ; "), posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = ""  # a '#' inside a word is not a comment; a comment hides nothing run
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes
        return CommandLine((line,), opaque=True)
    commands: list[str] = []
    words: list[str] = []
    for token in tokens:
        if token in _OPERATORS:
            if words:
                commands.append(" ".join(words))
            words = []
        elif token in _OPAQUE_TOKENS or set(token) <= set("<>&|;()"):
            return CommandLine((line,), opaque=True)
        else:
            words.append(token)
    if words:
        commands.append(" ".join(words))
    return CommandLine(tuple(commands), opaque=False)


__all__ = ["CommandLine", "split"]
