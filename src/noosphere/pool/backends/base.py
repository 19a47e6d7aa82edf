"""The backend interface: a model runner that streams protocol frames for one job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from noosphere.pool.protocol import Chunk, Done, JobRequest, ModelOffer


class BackendError(Exception):
    """A job failed in the backend; ``code`` travels to the client."""

    def __init__(self, message: str, code: str = "backend_error") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Backend(Protocol):
    def offers(self) -> list[ModelOffer]:
        """The models this backend serves."""
        ...

    def stream(self, job_id: str, request: JobRequest) -> AsyncIterator[Chunk | Done]:
        """Chunks for ``request``, then one ``Done``. Closing the iterator stops generation.
        Raises ``BackendError`` on failure."""
        ...

    async def aclose(self) -> None: ...
