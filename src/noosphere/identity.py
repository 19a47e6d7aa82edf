"""The node's Ed25519 identity: created on first start in ``<data_dir>/node-key.pem`` (mode 0600).
It signs the audit log's tree heads; anyone with the public key can check them. The node's id
derives from the public key (``node_id_of``), so a peer that knows the key knows the id, and no one
can claim an id without the key."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE = "node-key.pem"
ID_PREFIX = "node-"


class NodeKey:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    @property
    def id(self) -> str:
        return node_id_of(self.public)

    @property
    def public_text(self) -> str:
        """The public key as base64 of its 32 raw bytes (what ``--public-key`` takes)."""
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()


def node_id_of(public: Ed25519PublicKey) -> str:
    """``node-`` and 24 base32 letters: the first 120 bits of the SHA-256 of the raw public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return ID_PREFIX + base64.b32encode(hashlib.sha256(raw).digest()[:15]).decode().lower()


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """A public key from base64 of its raw bytes; ValueError if it is not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise ValueError("a public key is base64 of 32 bytes") from exc
    if len(raw) != 32:
        raise ValueError("a public key is base64 of 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def load_or_create(data_dir: Path) -> NodeKey:
    path = data_dir / KEY_FILE
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 key")
        return NodeKey(loaded)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return NodeKey(private)


__all__ = [
    "ID_PREFIX",
    "KEY_FILE",
    "NodeKey",
    "load_or_create",
    "node_id_of",
    "public_key_from_text",
    "verify",
]
