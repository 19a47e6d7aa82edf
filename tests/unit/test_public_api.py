from __future__ import annotations

import types

import noosphere


def test_public_names_are_exactly_the_documented_surface() -> None:
    exported = {
        name
        for name in dir(noosphere)
        if not name.startswith("_") and not isinstance(getattr(noosphere, name), types.ModuleType)
    }
    assert exported == set(noosphere.__all__) - {"__version__"}


def test_the_clis_light_copies_match_what_they_copy() -> None:
    """The CLI keeps a few names of its own so that it need not import the node to parse options."""
    from noosphere.agents.package import MAX_MEMORIES
    from noosphere.cli import agent_package
    from noosphere.cli.options import ZoneName
    from noosphere.memory.model import Zone

    assert agent_package.MAX_MEMORIES == MAX_MEMORIES
    assert [z.value for z in ZoneName] == [z.value for z in Zone]
