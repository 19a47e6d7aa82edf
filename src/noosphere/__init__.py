"""noosphere: a self-hosted, federated runtime for LLM agents.

The public names below are imported when first used (PEP 562), not with the package: the CLI
imports ``noosphere`` for every command, and most commands never need the node's machinery."""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

if _TYPE_CHECKING:
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

_HOMES = {
    "Level": "noosphere.auth.principal",
    "Principal": "noosphere.auth.principal",
    "PrincipalKind": "noosphere.auth.principal",
    "Settings": "noosphere.config",
    "load_settings": "noosphere.config",
    "NoosphereError": "noosphere.errors",
    "ListQuery": "noosphere.memory.model",
    "Memory": "noosphere.memory.model",
    "MemoryDraft": "noosphere.memory.model",
    "Page": "noosphere.memory.model",
    "SearchHit": "noosphere.memory.model",
    "SearchQuery": "noosphere.memory.model",
    "Tier": "noosphere.memory.model",
    "Zone": "noosphere.memory.model",
    "MemoryService": "noosphere.memory.service",
    "Node": "noosphere.node",
    "open_node": "noosphere.node",
}

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


def __getattr__(name: str) -> _Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'noosphere' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
