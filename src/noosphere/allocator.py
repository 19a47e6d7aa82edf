"""Tune the C allocator (glibc's malloc) for a long-running node process, before it starts threads.

By default glibc gives each thread that allocates its own arena (up to eight per core) and raises
its mmap threshold each time a large block is freed, so that later blocks up to that size come
from the arenas. In a node — an event loop plus worker threads for the store, the embedder and
the ONNX runtime, and numpy arrays that grow by reallocation — memory freed in one arena is
rarely reusable by another and large freed blocks stay in the heap: resident memory climbs
without a leak. Two arenas and a fixed 128 KiB mmap threshold (large blocks always mapped, so
returned to the system when freed) cost nothing measurable and keep it down (docs/benchmarks.md,
sustained mixed load).

Written here because no maintained Python package exposes ``mallopt``; it is two calls through
ctypes. Settings given in the environment (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``) win.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 * 1024


def tune() -> bool:
    """Apply the settings above; False where the C library is not glibc (nothing changes)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = True
    if "MALLOC_ARENA_MAX" not in os.environ:
        applied &= mallopt(M_ARENA_MAX, ARENAS) == 1
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        applied &= mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return applied


__all__ = ["tune"]
