from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from noosphere.config import Settings, load_settings
from noosphere.config_file import interpolate
from noosphere.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_defaults_need_no_file() -> None:
    settings = load_settings(None)
    assert settings.server.port == 3099
    assert settings.storage.backend == "sqlite"


def test_yaml_file_with_env_interpolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NS_PORT", "4000")
    path = tmp_path / "node.yaml"
    path.write_text("name: home\nserver:\n  port: ${NS_PORT}\n  host: ${NS_HOST:-0.0.0.0}\n")
    settings = load_settings(path)
    assert (settings.name, settings.server.port, settings.server.host) == ("home", 4000, "0.0.0.0")


def test_a_config_that_names_the_node_with_node_id_still_loads(tmp_path: Path) -> None:
    """Before a node's id came from its key, ``node_id`` was its name; such files keep working."""
    path = tmp_path / "node.yaml"
    path.write_text("node_id: garage\n")
    assert load_settings(path).name == "garage"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server:\n  port: ninety\n", r"server\.port"),
        ("server:\n  prot: 1\n", r"server\.prot: Extra inputs"),
        ("storage:\n  backend: mongo\n", r"storage\.backend"),
        ("- a list\n", "mapping"),
        ("server: [unclosed\n", "not valid YAML"),
        ("auth:\n  admin_token: ${NOPE_NOT_SET}\n", "NOPE_NOT_SET"),
    ],
)
def test_invalid_files_name_the_key_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.yaml")


def test_interpolation_leaves_plain_text_alone() -> None:
    assert interpolate("a $HOME b ${X}", {"X": "y"}) == "a $HOME b y"


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_keys(annotation, f"{prefix}{name}."))
        else:
            keys.append(prefix + name)
        assert field.description, f"setting {prefix}{name} has no description"
    return keys


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"^\|\s*`([a-z_.]+)`", DOCS.read_text(), re.MULTILINE))
    missing = [key for key in _keys(Settings) if key not in documented]
    assert not missing, f"add these settings to docs/settings.md: {missing}"
