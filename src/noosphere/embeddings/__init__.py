"""Embedders: plugins found by name in the ``noosphere.embedders`` entry-point group. Built in:
``minilm`` (all-MiniLM-L6-v2 without torch, the default) and ``openai`` (OpenAI-compatible APIs)."""

from __future__ import annotations

from importlib.metadata import entry_points

from noosphere.config import EmbeddingSettings
from noosphere.embeddings.base import Embedder
from noosphere.errors import ConfigError

GROUP = "noosphere.embedders"


def available_embedders() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def create_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder that ``settings.provider`` names, built by its plugin's factory."""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == settings.provider]
    if not found:
        raise ConfigError(
            f"embeddings.provider: unknown embedder {settings.provider!r} "
            f"(installed: {', '.join(available_embedders()) or 'none'})"
        )
    factory = found[0].load()
    embedder: Embedder = factory(settings)
    return embedder


__all__ = ["Embedder", "available_embedders", "create_embedder"]
