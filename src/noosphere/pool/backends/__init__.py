"""What actually generates tokens: llama.cpp in-process, or an OpenAI-compatible server."""

from noosphere.pool.backends.base import Backend, BackendError

__all__ = ["Backend", "BackendError"]
