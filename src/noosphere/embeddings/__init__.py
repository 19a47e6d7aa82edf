"""Embedders: the local default (all-MiniLM-L6-v2 without torch) and OpenAI-compatible APIs."""

from __future__ import annotations

from noosphere.config import EmbeddingSettings
from noosphere.embeddings.base import Embedder
from noosphere.errors import ConfigError


def create_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder that ``settings`` describe."""
    if settings.provider == "openai":
        from noosphere.embeddings.openai_compat import OpenAICompatibleEmbedder

        if not settings.base_url or not settings.model:
            raise ConfigError("embeddings.base_url and embeddings.model are required for provider 'openai'")
        return OpenAICompatibleEmbedder(
            settings.base_url, settings.model, settings.api_key, settings.dimension
        )
    from noosphere.embeddings.minilm import MiniLMEmbedder

    return MiniLMEmbedder(runtime=settings.runtime, threads=settings.threads)


__all__ = ["Embedder", "create_embedder"]
