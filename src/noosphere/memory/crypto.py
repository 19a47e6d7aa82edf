"""L2 encryption: conversations are sealed with a key derived from the owner's own token.

The node stores only a SHA-256 hash of each token, so an admin with the database (or the node
itself, between requests) cannot derive the key. AES-256-GCM with the memory id as associated
data, so a ciphertext cannot be moved to another record unnoticed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from noosphere.errors import PermissionDenied

_PREFIX = "l2v1:"


def derive_key(token: str, salt: bytes) -> bytes:
    # Tokens are 256 random bits, so HKDF (not a slow password KDF) is the right tool.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"noosphere L2 v1").derive(
        token.encode("utf-8")
    )


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
