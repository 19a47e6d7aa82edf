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
