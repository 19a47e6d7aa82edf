"""Identifiers that must be unique but need not be secret: job, request, completion and
conversation ids.

``uuid.uuid4`` reads the kernel's random source on every call, which costs more than the rest of
creating a job on the gateway's hot path. These come from a generator seeded once from that source
(and again in a forked child, so parent and child never share a sequence). Tokens, keys and
anything else a caller must not guess use ``secrets``.
"""

from __future__ import annotations

import os
import random

_generator = random.Random()  # seeded from os.urandom
os.register_at_fork(after_in_child=_generator.seed)


def unique_hex() -> str:
    """128 random bits as 32 hex digits."""
    return f"{_generator.getrandbits(128):032x}"


__all__ = ["unique_hex"]
