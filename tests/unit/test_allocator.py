"""The node tunes glibc's allocator at start (``noosphere up``); settings in the environment win."""

from __future__ import annotations

import platform

import pytest

from noosphere import allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_the_allocator_is_tuned_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    assert allocator.tune()
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the operator's own choice is left alone
    assert allocator.tune()
