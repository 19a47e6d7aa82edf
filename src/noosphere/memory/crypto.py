"""L2 encryption: conversations are sealed with a key derived from a secret only their owner
holds (``auth/conversation_key.py``), never stored. AES-256-GCM with the memory id as associated
data, so a ciphertext cannot be moved to another record unnoticed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from noosphere.errors import PermissionDenied

_PREFIX = "l2v1:"


_CHECK = b"noosphere L2 check v1"


def derive_key(secret: str, salt: bytes) -> bytes:
    """The key from the owner's secret: scrypt (2^15, 8, 1: 32 MiB, tens of milliseconds), because
    a secret a person chose may be guessable, and whoever holds the database may try guesses."""
    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(secret.encode("utf-8"))


def check_value(key: bytes) -> str:
    """What the node keeps to tell the right secret from a wrong one. It confirms a guess no better
    than a sealed conversation does (each guess still costs a scrypt)."""
    return hmac.new(key, _CHECK, hashlib.sha256).hexdigest()


def seal(key: bytes, plaintext: str, memory_id: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), memory_id.encode("utf-8"))
    return _PREFIX + base64.b64encode(nonce + sealed).decode("ascii")


def keyed_hash(key: bytes, plaintext: str) -> str:
    return hmac.new(key, plaintext.encode("utf-8"), hashlib.sha256).hexdigest()


def open_sealed(key: bytes, ciphertext: str, memory_id: str) -> str:
    if not ciphertext.startswith(_PREFIX):
        raise PermissionDenied("not an L2 ciphertext")
    raw = base64.b64decode(ciphertext[len(_PREFIX) :])
    try:
        plain = AESGCM(key).decrypt(raw[:12], raw[12:], memory_id.encode("utf-8"))
    except InvalidTag as exc:
        raise PermissionDenied("this conversation is sealed with another credential") from exc
    return plain.decode("utf-8")
