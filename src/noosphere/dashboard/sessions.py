"""Dashboard logins: a person signs in with their token once and gets a session cookie.

The cookie holds a random session id and nothing else (HttpOnly, SameSite=Strict); the token
stays in this process, and each request authenticates it again, so a revoked token ends its
sessions at once. Each session has its own CSRF token, which every form and htmx request sends
back. Sessions live in the node's memory: a restart signs everyone out."""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

COOKIE = "noosphere_session"
IDLE_SECONDS = 12 * 3600.0  # a session nobody used for this long is gone
MAX_SESSIONS = 10_000  # the oldest go first past this many


@dataclass
class Session:
    id: str
    token: str
    principal: str  # the principal's id, for the page header and the logs
    secret: str | None = None  # a person's conversation secret, to read their own conversations
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    used_at: float = field(default_factory=time.monotonic)

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, idle_seconds: float = IDLE_SECONDS, limit: int = MAX_SESSIONS) -> None:
        self.idle_seconds = idle_seconds
        self.limit = limit
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def open(self, token: str, principal: str, secret: str | None = None) -> Session:
        session = Session(id=secrets.token_urlsafe(32), token=token, principal=principal, secret=secret)
        self._sessions[session.id] = session
        while len(self._sessions) > self.limit:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (its idle clock starts again), or None."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.used_at > self.idle_seconds:
            del self._sessions[session_id]
            return None
        session.used_at = now
        self._sessions.move_to_end(session_id)
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)


__all__ = ["COOKIE", "Session", "Sessions"]
