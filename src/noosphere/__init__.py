"""noosphere: a self-hosted, federated runtime for LLM agents."""

from noosphere.auth.principal import Level, Principal, PrincipalKind
from noosphere.config import Settings, load_settings
from noosphere.errors import NoosphereError
from noosphere.memory.model import (
    ListQuery,
    Memory,
    MemoryDraft,
    Page,
    SearchHit,
    SearchQuery,
    Tier,
    Zone,
)
from noosphere.memory.service import MemoryService
from noosphere.node import Node, open_node

__version__ = "0.1.0"

__all__ = [
    "Level",
    "ListQuery",
    "Memory",
    "MemoryDraft",
    "MemoryService",
    "Node",
    "NoosphereError",
    "Page",
    "Principal",
    "PrincipalKind",
    "SearchHit",
    "SearchQuery",
    "Settings",
    "Tier",
    "Zone",
    "__version__",
    "load_settings",
    "open_node",
]
