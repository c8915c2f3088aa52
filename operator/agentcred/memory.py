"""Give freed heap memory back to the operating system after a burst.

A burst of thousands of tasks allocates a transient peak (request bodies, coroutines,
parsed JSON) that CPython frees but glibc's allocator keeps mapped, so the process's
RSS stays near the peak long after the work is done (measured: 1.6-2.5x the idle
figure, docs/performance.md). ``trim`` asks glibc to release it (``malloc_trim``);
the sweep calls it once per interval, which costs a few milliseconds. Elsewhere (musl,
macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def trim() -> bool:
    """Release free heap pages to the OS; True if the C library could."""
    release = _malloc_trim()
    return release is not None and bool(release(0))
