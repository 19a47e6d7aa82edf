"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint (Ollama, vLLM, OpenAI)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np
from numpy.typing import NDArray

from noosphere.config import EmbeddingSettings
from noosphere.errors import ConfigError, EmbedderUnavailable

_BATCH = 128


class OpenAICompatibleEmbedder:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        dimension: int | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self._model = model
        self._dimension = dimension

    @property
    def model_id(self) -> str:
        return f"openai-compat:{self._model}"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
        return self._dimension

    def close(self) -> None:
        self._client.close()

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        chunks = []
        for start in range(0, len(texts), _BATCH):
            chunks.append(self._request(list(texts[start : start + _BATCH])))
        if not chunks:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        vectors = np.concatenate(chunks).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def _request(self, texts: list[str]) -> NDArray[np.float32]:
        # Some servers reject empty strings; a single space embeds the same "nothing".
        payload = {"model": self._model, "input": [t or " " for t in texts]}
        try:
            response = self._client.post("/embeddings", json=payload)
        except httpx.HTTPError as exc:
            raise EmbedderUnavailable(f"embedding endpoint unreachable: {exc}") from exc
        if response.status_code != 200:
            raise EmbedderUnavailable(
                f"embedding endpoint answered {response.status_code}: {response.text[:200]}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            return np.asarray([item["embedding"] for item in data], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbedderUnavailable("embedding endpoint gave a malformed answer") from exc


def from_settings(settings: EmbeddingSettings) -> OpenAICompatibleEmbedder:
    """The ``openai`` plugin's factory."""
    if not settings.base_url or not settings.model:
        raise ConfigError("embeddings.base_url and embeddings.model are required for provider 'openai'")
    return OpenAICompatibleEmbedder(settings.base_url, settings.model, settings.api_key, settings.dimension)
