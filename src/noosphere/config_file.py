"""Reading a config file: YAML whose text may name environment variables (``${NAME}``,
``${NAME:-default}``). ``config.py`` validates what this reads into ``Settings``; the CLI reads a
value or two from it directly (where the data directory is, the admin token) without paying for
the whole settings model."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from noosphere.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """Replace ``${NAME}`` and ``${NAME:-default}`` with environment values."""
    source = os.environ if env is None else env

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in source:
            return source[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is referenced in the config but not set")

    return _ENV_REF.sub(replace, text)


def read_config(path: Path) -> dict[str, Any]:
    """The mapping a config file holds, environment references replaced; ``ConfigError`` when
    it cannot be read or is not a YAML mapping."""
    import yaml  # only for a config file: most CLI commands run without one

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        loaded = yaml.safe_load(interpolate(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of settings at the top level")
    return loaded or {}


__all__ = ["interpolate", "read_config"]
