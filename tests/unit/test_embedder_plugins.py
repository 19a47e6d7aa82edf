from __future__ import annotations

import pytest

from noosphere.config import EmbeddingSettings
from noosphere.embeddings import available_embedders, create_embedder
from noosphere.errors import ConfigError


def test_built_in_embedders_are_registered_as_plugins() -> None:
    assert {"minilm", "openai"} <= set(available_embedders())


def test_an_unknown_provider_names_the_installed_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown embedder 'nope' \(installed: .*minilm.*openai"):
        create_embedder(EmbeddingSettings(provider="nope"))


def test_the_openai_plugin_needs_a_url_and_model() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        create_embedder(EmbeddingSettings(provider="openai"))
